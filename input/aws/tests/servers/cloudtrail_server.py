#!/usr/bin/env python3
"""A local CloudTrail LookupEvents server speaking the real wire format, for tests and the benchmark.

moto has no LookupEvents, so this stands in for CloudTrail's endpoint:
- AWS JSON 1.1: POST / with `X-Amz-Target: com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents`,
  StartTime/EndTime (epoch seconds, both inclusive), LookupAttributes (EventSource), MaxResults (<= 50),
  NextToken; events newest first, as CloudTrail returns them;
- STS GetCallerIdentity (AWS query protocol, XML), which the collector's setup calls at the same endpoint;
- every request's SigV4 signature is checked with botocore's own signer run on the request as received
  (the headers the client signed, its X-Amz-Date): a wrong secret gets the service's real error;
- regional, as CloudTrail's event history is: a request signed for region R (its SigV4 credential scope) sees
  the events whose `region` is R, and each region has its own token bucket of `--rate` requests per second
  (burst 2, AWS's 2 requests/s per account and region for LookupEvents by default): beyond it
  `ThrottlingException` (HTTP 400), as CloudTrail answers;
- `GET /_requests` returns every request seen (time, region, target, StartTime/EndTime, NextToken, outcome) as
  JSON.

Events come from a JSON-lines file (`--events`), one per line:
  {"id": "...", "time": <epoch seconds>, "source": "s3.amazonaws.com", "name": "GetObject",
   "region": "us-east-1", "account": "123456789012"}
Usage: cloudtrail_server.py --port P --events FILE [--rate 2] [--key K --secret S]
"""
import argparse
import base64
import json
import os
import sys
import time
from http.server import ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aws_wire  # noqa: E402

# botocore sends the long target prefix, the Rust SDK the short one; CloudTrail accepts both.
TARGETS = ("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
           "CloudTrail_20131101.LookupEvents")
PAGE_MAX = 50


def load_events(path):
    events = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                events.append(json.loads(line))
    # Newest first, as LookupEvents returns them; ties in a stable order.
    events.sort(key=lambda e: (-e["time"], e["id"]))
    return events


def cloudtrail_event(e):
    """The CloudTrailEvent JSON string of an event, shaped as CloudTrail's records."""
    t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e["time"]))
    return json.dumps({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "accountId": e["account"], "userName": "tester"},
        "eventTime": t,
        "eventSource": e["source"],
        "eventName": e["name"],
        "awsRegion": e["region"],
        "sourceIPAddress": "198.51.100.7",
        "requestParameters": {"seq": e.get("seq", 0)},
        "eventID": e["id"],
        "readOnly": True,
        "eventType": "AwsApiCall",
        "recipientAccountId": e["account"],
    }, separators=(",", ":"))


class Handler(aws_wire.Handler):
    def json_error(self, status, code, message):
        self.reply(status, json.dumps({"__type": code, "message": message}), "application/x-amz-json-1.1")

    def do_GET(self):
        if not self.serve_requests_record():
            self.reply(404, "{}", "application/json")

    def do_POST(self):
        body = self.read_body()
        target = self.headers.get("X-Amz-Target", "")
        refusal = self.signature_refusal("POST", body)
        if target in TARGETS:
            self.lookup_events(body, refusal)
        elif b"Action=GetCallerIdentity" in body:
            self.get_caller_identity(refusal)
        else:
            self.json_error(400, "UnknownOperationException", f"unknown target {target!r}")

    def lookup_events(self, body, refusal):
        req = json.loads(body or b"{}")
        region = self.scope_region()
        entry = {"target": "LookupEvents", "region": region, "start": req.get("StartTime"), "end": req.get("EndTime"),
                 "token": req.get("NextToken"), "attributes": req.get("LookupAttributes", [])}
        if refusal:
            entry["outcome"] = refusal[0]
            self.note(entry)
            return self.json_error(403 if refusal[0] == "InvalidSignatureException" else 400, *refusal)
        if not self.take_region_token(region):
            entry["outcome"] = "ThrottlingException"
            self.note(entry)
            return self.json_error(400, "ThrottlingException", "Rate exceeded")
        start, end = req.get("StartTime", 0), req.get("EndTime", 1e12)
        sources = [a["AttributeValue"] for a in req.get("LookupAttributes", [])
                   if a.get("AttributeKey") == "EventSource"]
        page_size = min(int(req.get("MaxResults", PAGE_MAX)), PAGE_MAX)
        offset = 0
        if req.get("NextToken"):
            offset = int(base64.b64decode(req["NextToken"]).decode().split(":")[1])
        matching = [e for e in self.server.events if start <= e["time"] <= end and e["region"] == region
                    and (not sources or e["source"] in sources)]
        page = matching[offset:offset + page_size]
        out = {"Events": [{
            "EventId": e["id"], "EventName": e["name"], "ReadOnly": "true", "AccessKeyId": "AKIDTESTER",
            "EventTime": e["time"], "EventSource": e["source"], "Username": "tester", "Resources": [],
            "CloudTrailEvent": cloudtrail_event(e)} for e in page]}
        if offset + page_size < len(matching):
            out["NextToken"] = base64.b64encode(f"page:{offset + page_size}".encode()).decode()
        entry["outcome"] = "ok"
        entry["events"] = len(page)
        self.note(entry)
        self.reply(200, json.dumps(out), "application/x-amz-json-1.1")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--rate", type=float, default=2.0)
    p.add_argument("--key", default="AKIDLOGFERRY")
    p.add_argument("--secret", default="logferry-secret")
    a = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.events = load_events(a.events)
    aws_wire.setup_server(server, a.key, a.secret, a.rate)
    print(f"listening on {a.port} with {len(server.events)} events", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
