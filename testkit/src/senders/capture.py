"""A TCP (optionally TLS, optionally requiring a client certificate) receiver that stores the bytes of each accepted
connection in OUT_DIR/conn_<n>.bin and handshake errors in OUT_DIR/errors.log.
Usage: capture.py PORT OUT_DIR [CERT KEY [CA]]   (CA given = client certificate required)"""
import os, socket, ssl, sys, threading

port, out = int(sys.argv[1]), sys.argv[2]
ctx = None
if len(sys.argv) > 4:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    if len(sys.argv) > 5:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(sys.argv[5])
lock = threading.Lock()
count = [0]


def log_error(msg):
    with lock:
        with open(os.path.join(out, "errors.log"), "a") as f:
            f.write(msg + "\n")


def serve(conn, n):
    try:
        if ctx is not None:
            conn = ctx.wrap_socket(conn, server_side=True)
        with open(os.path.join(out, "conn_%d.part" % n), "wb", buffering=0) as f:
            while True:
                data = conn.recv(1 << 20)
                if not data:
                    break
                f.write(data)
    except Exception as e:  # handshake refused, reset...
        log_error("conn %d: %s" % (n, e))
    finally:
        try:
            conn.close()
        except Exception:
            pass
        os.rename(os.path.join(out, "conn_%d.part" % n), os.path.join(out, "conn_%d.bin" % n)) if os.path.exists(os.path.join(out, "conn_%d.part" % n)) else None


srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(64)
open(os.path.join(out, "ready"), "w").close()
while True:
    c, _ = srv.accept()
    count[0] += 1
    threading.Thread(target=serve, args=(c, count[0]), daemon=True).start()
