"""What the local AWS servers of the tests share: SigV4 checked with botocore's own signer run on the request as
received, STS GetCallerIdentity (the collector's setup calls it at the same endpoint), a token bucket for an
API's requests-per-second budget, replies, and the record of every request (`GET /_requests`)."""
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCOUNT = "123456789012"


class Bucket:
    """Token bucket: `rate` tokens per second, at most `burst` banked."""

    def __init__(self, rate, burst):
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


def setup_server(server, key, secret, rate, burst=2):
    """The shared state a Handler needs on its server."""
    server.key, server.secret = key, secret
    server.bucket = Bucket(rate, burst)
    server.rate, server.burst = rate, burst
    server.region_buckets = {}
    server.lock = threading.Lock()
    server.seen = []


class Handler(BaseHTTPRequestHandler):
    """Base of the servers' handlers: replies, signature check, STS, the request record."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type, headers=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def xml_error(self, status, code, message):
        self.reply(status, "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
                   f"<Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
                   f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>", "text/xml")

    def read_body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def serve_requests_record(self):
        """`GET /_requests`: every request seen, as JSON. True when this was that request."""
        if self.path != "/_requests":
            return False
        with self.server.lock:
            body = json.dumps(self.server.seen)
        self.reply(200, body, "application/json")
        return True

    def scope_region(self):
        """The region of the request's SigV4 credential scope (None when it is not signed)."""
        auth = self.headers.get("Authorization", "")
        at = auth.find("Credential=")
        if at < 0:
            return None
        return auth[at + len("Credential="):].split(",")[0].split("/")[2]

    def take_region_token(self, region):
        """A token of the region's own bucket: AWS budgets an API per account and region."""
        with self.server.lock:
            bucket = self.server.region_buckets.setdefault(region, Bucket(self.server.rate, self.server.burst))
        return bucket.take()

    def signature_refusal(self, method, body):
        """None when the request is signed with the expected key and secret, else (code, message)."""
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return ("MissingAuthenticationToken", "Request is missing Authentication Token")
        fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
        key, date, region, service, _ = fields["Credential"].split("/")
        if key != self.server.key:
            return ("UnrecognizedClientException", "The security token included in the request is invalid.")
        signed = fields["SignedHeaders"].split(";")
        headers = {h: self.headers[h] for h in signed if self.headers.get(h) is not None}
        request = AWSRequest(method=method, url=f"http://{self.headers['host']}{self.path}", data=body,
                             headers=headers)
        request.context["timestamp"] = self.headers["X-Amz-Date"]
        signer = SigV4Auth(Credentials(key, self.server.secret, self.headers.get("X-Amz-Security-Token")),
                           service, region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if expected != fields["Signature"]:
            return ("InvalidSignatureException",
                    "The request signature we calculated does not match the signature you provided. "
                    "Check your AWS Secret Access Key and signing method.")
        return None

    def note(self, entry):
        entry["at"] = time.time()
        with self.server.lock:
            self.server.seen.append(entry)

    def get_caller_identity(self, refusal):
        self.note({"target": "GetCallerIdentity", "outcome": refusal[0] if refusal else "ok"})
        if refusal:
            code = "SignatureDoesNotMatch" if refusal[0] == "InvalidSignatureException" else "InvalidClientTokenId"
            return self.xml_error(403, code, refusal[1])
        self.reply(200, "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
                   f"<GetCallerIdentityResult><Arn>arn:aws:iam::{ACCOUNT}:user/tester</Arn>"
                   f"<UserId>AIDATESTER</UserId><Account>{ACCOUNT}</Account></GetCallerIdentityResult>"
                   f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
                   "</GetCallerIdentityResponse>", "text/xml")
