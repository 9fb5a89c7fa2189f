#!/usr/bin/env python3
"""A proxy in front of a real AWS peer (moto, or a local server) that adds the faults AWS answers with, in the
real wire format of JSON APIs (AWS JSON 1.1 errors), for fault tests:
- `--rate R`: a token bucket of R requests per second (burst 2) over the requests whose `X-Amz-Target` names one
  of `--targets`; beyond it `ThrottlingException` (HTTP 400, "Rate exceeded");
- `--fail-every N`: every Nth such request is answered `--fail-status` (default 500) `InternalFailure`.
Every other request (STS, other operations) is forwarded as is, headers included (the Host the client signed is
kept, so a signature checked upstream still matches). An operation is named by its `X-Amz-Target` (JSON
protocols) or the `Action` of its form body (query protocol: CloudWatch, STS). `GET /_faults` returns the counts as
JSON, with the requests seen per operation (`operations`).
Usage: fault_proxy.py --port P --upstream http://127.0.0.1:Q --targets FilterLogEvents,LookupEvents
       [--rate 1] [--fail-every 3] [--fail-status 500]
"""
import argparse
import http.client
import json
import os
import sys
import threading
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aws_wire  # noqa: E402

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class Proxy(aws_wire.Handler):
    def do_GET(self):
        if self.path == "/_faults":
            with self.server.lock:
                body = json.dumps(self.server.counts)
            return self.reply(200, body, "application/json")
        self.forward("GET", b"")

    def do_POST(self):
        body = self.read_body()
        operation = self.operation(body)
        with self.server.lock:
            seen = self.server.counts["operations"]
            seen[operation] = seen.get(operation, 0) + 1
        fault = self.fault(operation)
        if fault:
            status, code, message = fault
            return self.reply(status, json.dumps({"__type": code, "message": message}),
                              "application/x-amz-json-1.1")
        self.forward("POST", body)

    def operation(self, body):
        """The operation of a request: its `X-Amz-Target`'s last part, else its form's `Action`."""
        target = self.headers.get("X-Amz-Target", "")
        if target:
            return target.rsplit(".", 1)[-1]
        return parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]

    def fault(self, operation):
        """The fault to answer this request with, or None to forward it."""
        if operation not in self.server.targets:
            return None
        s = self.server
        with s.lock:
            s.counts["matched"] += 1
            if s.fail_every and s.counts["matched"] % s.fail_every == 0:
                s.counts["failed"] += 1
                return (s.fail_status, "InternalFailure", "The request processing has failed because of an "
                        "unknown error, exception or failure.")
        if s.bucket and not s.bucket.take():
            with s.lock:
                s.counts["throttled"] += 1
            return (400, "ThrottlingException", "Rate exceeded")
        with s.lock:
            s.counts["forwarded"] += 1
        return None

    def forward(self, method, body):
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        conn.request(method, self.path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--targets", required=True)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--fail-every", type=int, default=0)
    p.add_argument("--fail-status", type=int, default=500)
    a = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Proxy)
    server.upstream = urlsplit(a.upstream)
    server.targets = [t for t in a.targets.split(",") if t]
    server.bucket = aws_wire.Bucket(a.rate, 2) if a.rate > 0 else None
    server.fail_every, server.fail_status = a.fail_every, a.fail_status
    server.lock = threading.Lock()
    server.counts = {"matched": 0, "forwarded": 0, "throttled": 0, "failed": 0, "operations": {}}
    print(f"proxy on {a.port} to {a.upstream}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
