#!/usr/bin/env python3
"""A local GuardDuty server speaking the real wire format (REST-JSON), for tests: moto has detectors but no
findings.
- `GET /detector` (ListDetectors: maxResults, nextToken), `POST /detector/{id}/findings` (ListFindings:
  findingCriteria.criterion.updatedAt with greaterThanOrEqual/greaterThan/lessThan/lessThanOrEqual (or gte, gt,
  lt, lte), sortCriteria on updatedAt, maxResults <= 50, nextToken), `POST /detector/{id}/findings/get`
  (GetFindings, <= 50 ids), camelCase bodies as GuardDuty's;
- STS GetCallerIdentity at the same endpoint (the collector's setup calls it);
- every request's SigV4 signature is checked with botocore's signer run on the request as received: a wrong
  secret gets 403 InvalidSignatureException;
- a token bucket of `--rate` requests per second (burst 2): beyond it 429 TooManyRequestsException;
- pages of a sorted listing continue after the last finding returned (its sort key), so a finding updated while
  listed moves to the end of the listing instead of shifting the pages;
- `POST /_update {"detector": D, "id": I}` updates a finding (updatedAt = now, service.count + 1) and returns it;
  `GET /_requests` returns every request seen.

Findings come from a JSON-lines file (`--findings`), one per line:
  {"detector": "d1", "id": "f1", "updated": <epoch ms>, "seq": 7, "type": "Recon:EC2/PortProbeUnprotectedPort"}
Usage: guardduty_server.py --port P --findings FILE [--detectors d1,d2] [--rate 10] [--key K --secret S]
"""
import argparse
import base64
import json
import os
import re
import sys
import time
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aws_wire  # noqa: E402

PAGE_MAX = 50
REGION = "us-east-1"
LIST_FINDINGS = re.compile(r"^/detector/([^/]+)/findings$")
GET_FINDINGS = re.compile(r"^/detector/([^/]+)/findings/get$")
CONDITIONS = {
    "greaterThanOrEqual": lambda v, x: v >= x, "gte": lambda v, x: v >= x,
    "greaterThan": lambda v, x: v > x, "gt": lambda v, x: v > x,
    "lessThanOrEqual": lambda v, x: v <= x, "lte": lambda v, x: v <= x,
    "lessThan": lambda v, x: v < x, "lt": lambda v, x: v < x,
}


def iso_ms(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".%03dZ" % (ms % 1000)


def finding_json(detector, f):
    """A finding as GetFindings returns it."""
    return {
        "accountId": aws_wire.ACCOUNT,
        "arn": f"arn:aws:guardduty:{REGION}:{aws_wire.ACCOUNT}:detector/{detector}/finding/{f['id']}",
        "createdAt": iso_ms(f["created"]),
        "description": f"EC2 instance i-0abc{f['seq']} is being probed (seq={f['seq']} version={f['count']}).",
        "id": f["id"],
        "partition": "aws",
        "region": REGION,
        "resource": {"resourceType": "Instance",
                     "instanceDetails": {"instanceId": f"i-0abc{f['seq']}", "instanceType": "t3.micro"}},
        "schemaVersion": "2.0",
        "service": {"serviceName": "guardduty", "detectorId": detector, "archived": False,
                    "count": f["count"], "eventFirstSeen": iso_ms(f["created"]),
                    "eventLastSeen": iso_ms(f["updated"]), "resourceRole": "TARGET",
                    "additionalInfo": {"value": json.dumps({"seq": f["seq"]}), "type": "default"}},
        "severity": 5.0,
        "title": "Unprotected port on EC2 instance is being probed.",
        "type": f.get("type", "Recon:EC2/PortProbeUnprotectedPort"),
        "updatedAt": iso_ms(f["updated"]),
    }


def encode_token(value):
    return base64.b64encode(json.dumps(value).encode()).decode()


def decode_token(token):
    return json.loads(base64.b64decode(token))


class Handler(aws_wire.Handler):
    def rest_error(self, status, code, message):
        self.reply(status, json.dumps({"message": message, "__type": code}), "application/json",
                   [("x-amzn-ErrorType", code)])

    def admitted(self, entry, refusal):
        """Signature and budget: False (answered) when the request is refused."""
        if refusal:
            entry["outcome"] = refusal[0]
            self.note(entry)
            self.rest_error(403, *refusal)
            return False
        if not self.server.bucket.take():
            entry["outcome"] = "TooManyRequestsException"
            self.note(entry)
            self.rest_error(429, "TooManyRequestsException", "Rate exceeded")
            return False
        entry["outcome"] = "ok"
        return True

    def do_GET(self):
        if self.serve_requests_record():
            return
        url = urlsplit(self.path)
        refusal = self.signature_refusal("GET", b"")
        if url.path != "/detector":
            return self.rest_error(404, "BadRequestException", f"no such path {url.path}")
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        entry = {"target": "ListDetectors", "token": query.get("nextToken")}
        if not self.admitted(entry, refusal):
            return
        size = min(int(query.get("maxResults", PAGE_MAX)), PAGE_MAX)
        offset = decode_token(query["nextToken"]) if query.get("nextToken") else 0
        ids = self.server.detectors[offset:offset + size]
        out = {"detectorIds": ids}
        if offset + size < len(self.server.detectors):
            out["nextToken"] = encode_token(offset + size)
        self.note(entry)
        self.reply(200, json.dumps(out), "application/json")

    def do_POST(self):
        body = self.read_body()
        path = urlsplit(self.path).path
        if path == "/_update":
            return self.update(json.loads(body))
        refusal = self.signature_refusal("POST", body)
        if b"Action=GetCallerIdentity" in body:
            return self.get_caller_identity(refusal)
        listing, getting = LIST_FINDINGS.match(path), GET_FINDINGS.match(path)
        if not (listing or getting):
            return self.rest_error(404, "BadRequestException", f"no such path {path}")
        detector = (listing or getting).group(1)
        req = json.loads(body or b"{}")
        entry = {"target": "ListFindings" if listing else "GetFindings", "detector": detector,
                 "token": req.get("nextToken")}
        if not self.admitted(entry, refusal):
            return
        if detector not in self.server.detectors:
            entry["outcome"] = "BadRequestException"
            self.note(entry)
            return self.rest_error(400, "BadRequestException", f"The request is rejected because the input "
                                   f"detectorId is not owned by the current account: {detector}")
        if listing:
            return self.list_findings(detector, req, entry)
        self.get_findings(detector, req, entry)

    def list_findings(self, detector, req, entry):
        conditions = req.get("findingCriteria", {}).get("criterion", {}).get("updatedAt", {})
        sort = req.get("sortCriteria") or {}
        if sort and sort.get("attributeName") != "updatedAt":
            return self.rest_error(400, "BadRequestException", "this server sorts on updatedAt only")
        descending = sort.get("orderBy") == "DESC"
        size = min(int(req.get("maxResults", PAGE_MAX)), PAGE_MAX)
        with self.server.lock:
            rows = [(f["updated"], f["id"]) for f in self.server.findings[detector].values()
                    if all(CONDITIONS[c](f["updated"], x) for c, x in conditions.items())]
        rows.sort(reverse=descending)
        if req.get("nextToken"):
            after = tuple(decode_token(req["nextToken"]))
            rows = [r for r in rows if (r < after if descending else r > after)]
        page = rows[:size]
        out = {"findingIds": [r[1] for r in page]}
        if len(rows) > size:
            out["nextToken"] = encode_token(list(page[-1]))
        entry["findings"] = len(page)
        self.note(entry)
        self.reply(200, json.dumps(out), "application/json")

    def get_findings(self, detector, req, entry):
        ids = req.get("findingIds", [])
        if not ids or len(ids) > PAGE_MAX:
            return self.rest_error(400, "BadRequestException", "findingIds must hold 1 to 50 ids")
        with self.server.lock:
            found = [finding_json(detector, self.server.findings[detector][i]) for i in ids
                     if i in self.server.findings[detector]]
        entry["findings"] = len(found)
        self.note(entry)
        self.reply(200, json.dumps({"findings": found}), "application/json")

    def update(self, req):
        with self.server.lock:
            f = self.server.findings[req["detector"]][req["id"]]
            f["updated"] = max(int(time.time() * 1000), f["updated"] + 1)
            f["count"] += 1
            out = finding_json(req["detector"], f)
        self.reply(200, json.dumps(out), "application/json")


def load_findings(path, detectors):
    findings = {d: {} for d in detectors}
    with open(path) as lines:
        for line in lines:
            if line.strip():
                f = json.loads(line)
                f.setdefault("created", f["updated"])
                f["count"] = 1
                findings.setdefault(f["detector"], {})[f["id"]] = f
    return findings


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--findings", required=True)
    p.add_argument("--detectors", default="")
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--key", default="AKIDLOGFERRY")
    p.add_argument("--secret", default="logferry-secret")
    a = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.findings = load_findings(a.findings, [d for d in a.detectors.split(",") if d])
    server.detectors = sorted(server.findings)
    aws_wire.setup_server(server, a.key, a.secret, a.rate)
    total = sum(len(f) for f in server.findings.values())
    print(f"listening on {a.port} with {total} findings in {len(server.detectors)} detector(s)",
          file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
