"""A local Splunk HEC receiver implementing ../shared/reference/splunk-hec.md for the sender tests.
Usage: hec_receiver.py PORT TOKEN READY_FILE [CERT KEY]   (HTTPS with CERT/KEY)
Control: POST /control {"ack": "immediate"|"late"|"never", "late_polls": N, "busy": N, "invalid_marker": "BAD",
                        "retry_after": SECONDS (sent with busy answers), "token": "accepted token",
                        "echo_headers": true (a refused token's answer repeats the request headers, as some proxies do)}
Inspect: GET /received -> {"events": [...accepted envelopes...], "gzip_posts": n, "posts": n, "ack_polls": n,
                           "post_times": {channel: [seconds since start of each event post]}}"""
import gzip, json, ssl, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, token, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
state = {"ack": "immediate", "late_polls": 2, "busy": 0, "invalid_marker": None, "retry_after": None,
         "token": token, "echo_headers": False}
received, stats = [], {"gzip_posts": 0, "posts": 0, "ack_polls": 0, "post_times": {}}
started = time.monotonic()
channels = {}  # channel -> {"next": int, "acks": {id: polls_seen}}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, obj, headers=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(n)
        if self.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
            with lock:
                stats["gzip_posts"] += 1
        return data

    def auth(self):
        a = self.headers.get("Authorization")
        if not a:
            self.reply(401, {"text": "Token is required", "code": 2})
            return False
        with lock:
            accepted = state["token"]
        if a != "Splunk " + accepted:
            self.reply(403, {"text": self.echoed("Invalid token"), "code": 4})
            return False
        return True

    def echoed(self, text):
        """`text`, followed by the request line and headers when echo_headers is on."""
        with lock:
            if not state["echo_headers"]:
                return text
        headers = "; ".join(f"{k}: {v}" for k, v in self.headers.items())
        return f"{text}; request: {self.command} {self.path}; request headers: {headers}"

    def not_found(self):
        with lock:
            echo = state["echo_headers"]
        # Echoing servers (proxies, misconfigured gateways) refuse what they do not know, repeating the request.
        self.reply(403 if echo else 404, {"text": self.echoed("not found"), "Message": self.echoed("Forbidden")})

    def do_GET(self):
        if self.path.startswith("/services/collector/health"):
            return self.reply(200, {"text": "HEC is healthy", "code": 17})
        if self.path == "/received":
            with lock:
                return self.reply(200, dict(stats, events=list(received)))
        self.not_found()

    def do_POST(self):
        data = self.body()
        if self.path == "/control":
            with lock:
                state.update(json.loads(data))
            return self.reply(200, {"ok": True})
        if not self.path.startswith("/services/collector"):
            return self.not_found()
        channel = self.headers.get("X-Splunk-Request-Channel")
        if self.path.startswith("/services/collector/event"):
            with lock:
                stats["post_times"].setdefault(channel, []).append(time.monotonic() - started)
        if not self.auth():
            return
        if self.path.startswith("/services/collector/ack"):
            with lock:
                stats["ack_polls"] += 1
                ch = channels.get(channel, {"next": 0, "acks": {}})
                out = {}
                for i in json.loads(data)["acks"]:
                    seen = ch["acks"].get(i)
                    if seen is None:
                        out[str(i)] = False
                        continue
                    ch["acks"][i] = seen + 1
                    done = state["ack"] == "immediate" or (state["ack"] == "late" and seen + 1 > state["late_polls"])
                    out[str(i)] = done
                    if done:
                        del ch["acks"][i]  # a confirmed id is forgotten
            return self.reply(200, {"acks": out})
        if not self.path.startswith("/services/collector/event"):
            return self.not_found()
        if not channel:
            return self.reply(400, {"text": "Data channel is missing", "code": 10})
        with lock:
            stats["posts"] += 1
            if state["busy"] > 0:
                state["busy"] -= 1
                after = state["retry_after"]
                headers = [("Retry-After", str(after))] if after is not None else []
                return self.reply(503, {"text": "Server is busy", "code": 9}, headers)
        dec, events, idx, text = json.JSONDecoder(), [], 0, data.decode("utf-8")
        while idx < len(text):
            while idx < len(text) and text[idx] in " \r\n\t":
                idx += 1
            if idx >= len(text):
                break
            obj, idx = dec.raw_decode(text, idx)
            events.append(obj)
        if not events:
            return self.reply(400, {"text": "No data", "code": 5})
        marker = state["invalid_marker"]
        for n, e in enumerate(events):
            if "event" not in e:
                return self.reply(400, {"text": "Event field is required", "code": 12, "invalid-event-number": n})
            if marker and marker in json.dumps(e["event"]):
                return self.reply(400, {"text": "Invalid data format", "code": 6, "invalid-event-number": n})
        with lock:
            received.extend(events)
            ch = channels.setdefault(channel, {"next": 0, "acks": {}})
            ack = ch["next"]
            ch["next"] += 1
            ch["acks"][ack] = 0
        self.reply(200, {"text": "Success", "code": 0, "ackId": ack})


srv = ThreadingHTTPServer(("127.0.0.1", port), H)
if len(sys.argv) > 5:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open(ready, "w").close()
srv.serve_forever()
