"""Redis's share of the queue's cost (benchmark, not a test): a redis-server started as the embedded one (unix socket,
append-only file fsynced every second, rewritten from 256 MB) plus the options given, a producer pushing wraps as the
InputProcess's sink does (MULTI, 8 x XADD of 96 KiB wraps, HINCRBY n and b, EXEC; it waits while the stream holds
MAX_EVENTS events or MAX_MB MB, as the queue limits make it), and a consumer reading 64 entries per XREADGROUP and
acknowledging them with the output's Lua script (XACK, XDEL, size). 1 GiB goes through. Prints one table row: wall
seconds, redis-server CPU seconds (user + sys, its waited-for rewrite children included) and its peak PSS (with any
rewrite child: copy-on-write pages once) and peak RSS in MiB.

Usage: python3 bench/redis/options.py <label> [redis-server option ...] [ENV:NAME=value ...]
  e.g. python3 bench/redis/options.py no-preamble --aof-use-rdb-preamble no
Env: MAX_EVENTS (10000, the default queue_max_size_in_messages), MAX_MB (32, queue_max_size_in_mb), EVENTS_PER_WRAP
(80: ~1.2 KB events; 4: 24 KB events). Run the variants one after another, alternating, on a quiet machine."""
import os, re, shutil, socket, subprocess, sys, tempfile, threading, time
variant, extra, total_mb = sys.argv[1], sys.argv[2:], 1024
d = tempfile.mkdtemp(prefix="logferry-redis-options-")
sock = f"{d}/s.sock"
env = dict(os.environ)
args = ["/usr/bin/redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--appendonly", "yes",
        "--appendfsync", "everysec", "--save", "", "--auto-aof-rewrite-min-size", "256mb", "--rdbcompression", "no",
        "--dir", d, "--logfile", f"{d}/log"]
for e in extra:
    if e.startswith("ENV:"):
        k, v = e[4:].split("=", 1); env[k] = v
    else:
        args.append(e)
rs = subprocess.Popen(args, env=env)
class Conn:
    def __init__(s):
        for _ in range(200):
            try:
                s.s = socket.socket(socket.AF_UNIX); s.s.connect(sock); break
            except OSError: time.sleep(0.02)
        s.f = s.s.makefile("rb", buffering=1 << 20)
    def send(s, *cmds):
        out = []
        for c in cmds:
            out.append(b"*%d\r\n" % len(c))
            for a in c:
                a = a if isinstance(a, bytes) else str(a).encode()
                out.append(b"$%d\r\n" % len(a)); out.append(a); out.append(b"\r\n")
        s.s.sendall(b"".join(out))
    def reply(s):
        line = s.f.readline(); t, rest = line[:1], line[1:-2]
        if t in (b"+", b":"): return rest
        if t == b"-": raise RuntimeError(rest)
        if t == b"$":
            n = int(rest)
            if n < 0: return None
            v = s.f.read(n + 2); return v[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [s.reply() for _ in range(n)]
MAX_EVENTS, EVENTS_PER_WRAP, WRAP = int(os.environ.get("MAX_EVENTS", "10000")), int(os.environ.get("EVENTS_PER_WRAP", "80")), 96 * 1024
MAX_BYTES = int(os.environ.get("MAX_MB", "32")) << 20
wrap = (b"x" * (WRAP // EVENTS_PER_WRAP - 1) + b"\n") * EVENTS_PER_WRAP
wrap = wrap[:WRAP]
# The output's acknowledgement script, as src/queue.rs holds it.
ACK = re.search(r'const ACK_SCRIPT: &str = r#"(.*?)"#;',
                open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../src/queue.rs")).read(),
                re.S).group(1)
def main():
    c = Conn(); c.send(["XGROUP", "CREATE", "q", "output", "0", "MKSTREAM"]); c.reply()
    pushes = total_mb * 1024 * 1024 // (8 * WRAP)
    done = [False]
    def consume():
        k = Conn(); got = 0
        while got < pushes * 8:
            k.send(["XREADGROUP", "GROUP", "output", "c", "COUNT", 64, "BLOCK", 100, "STREAMS", "q", ">"]); r = k.reply()
            if not r: continue
            ids = [e[0] for e in r[0][1]]
            got += len(ids)
            a = ["EVAL", ACK, 2, "q", "q:size", "output"]
            for i in ids: a += [i, EVENTS_PER_WRAP, WRAP]
            k.send(a); k.reply()
        done[0] = True
    def cpu(pid):
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")
    def mem(pid, key):
        for l in open(f"/proc/{pid}/{'smaps_rollup' if key == 'Pss:' else 'status'}"):
            if l.startswith(key): return int(l.split()[1])
        return 0
    peak = [0, 0]
    def sample():
        while not done[0]:
            kids = subprocess.run(["pgrep", "-P", str(rs.pid)], capture_output=True, text=True).stdout.split()
            try:
                pss = mem(rs.pid, "Pss:") + sum(mem(int(k), "Pss:") for k in kids)
                peak[0] = max(peak[0], pss); peak[1] = max(peak[1], mem(rs.pid, "VmHWM:"))
            except Exception: pass
            time.sleep(0.1)
    t = threading.Thread(target=consume); t.start(); threading.Thread(target=sample, daemon=True).start()
    t0 = time.time(); known = known_b = 0
    for p in range(pushes):
        while known > 0 and (known + 8 * EVENTS_PER_WRAP > MAX_EVENTS or known_b + 8 * WRAP > MAX_BYTES):
            time.sleep(0.001); c.send(["HMGET", "q:size", "n", "b"]); known, known_b = (int(x or 0) for x in c.reply())
        cmds = [["MULTI"]] + [["XADD", "q", "*", "n", EVENTS_PER_WRAP, "b", WRAP, "w", wrap] for _ in range(8)]
        cmds += [["HINCRBY", "q:size", "n", 8 * EVENTS_PER_WRAP], ["HINCRBY", "q:size", "b", 8 * WRAP], ["EXEC"]]
        c.send(*cmds)
        for _ in range(len(cmds) - 1): c.reply()
        r = c.reply(); known, known_b = int(r[-2]), int(r[-1])
    t.join(); secs = time.time() - t0
    time.sleep(0.3)
    print(f"| {variant} | {' '.join(extra) or '(as today)'} | {total_mb} | {secs:.1f} | {cpu(rs.pid):.2f} | {peak[0]/1024:.0f} | {peak[1]/1024:.0f} |", flush=True)


try:
    main()
finally:
    rs.terminate()
    rs.wait()
    shutil.rmtree(d, ignore_errors=True)
