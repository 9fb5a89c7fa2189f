# Shared by the AWS API pullers' benchmarks (bench/cloudtrail_api, bench/guardduty, bench/metrics): a scratch
# directory, free ports, the release binary (BIN overrides it: e.g. a copy of an earlier build, to compare two
# builds in alternate rounds), logferry started on a config, and CPU seconds of processes from /proc.
# Source it after `set -euo pipefail` with ROOT set to the repository.
WORK=$(mktemp -d /tmp/aws-api-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    until python3 -c "import socket; socket.create_connection(('127.0.0.1', $1))" 2>/dev/null; do sleep 0.2; done
}

# The binary measured: $BIN, else the release build of the workspace (built here, under nice).
logferry_bin() {
    if [ -z "${BIN:-}" ]; then
        nice -n 19 cargo build --release -q -p logferry-supervisor --manifest-path "$ROOT/Cargo.toml"
        BIN="$ROOT/target/release/logferry"
    fi
}

# Starts logferry on $WORK/config.yaml (log in $WORK/run.log) and sets INPUT to its InputProcess's pid.
start_logferry() {
    "$BIN" run --config "$WORK/config.yaml" > "$WORK/run.log" 2>&1 &
    PIDS+=($!)
    LOGFERRY=$!
    until grep -q "InputProcess started (pid" "$WORK/run.log" 2>/dev/null; do sleep 0.2; done
    INPUT=$(grep -o "InputProcess started (pid [0-9]*" "$WORK/run.log" | head -1 | grep -o "[0-9]*$")
}

# CPU seconds (user + system) a process used so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"
}

# CPU seconds of a process and all its descendants (alive ones; plus what they waited for).
tree_cpu_seconds() {
    python3 - "$1" <<'PY'
import os, sys
hz = os.sysconf("SC_CLK_TCK")
children = {}
stats = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    children.setdefault(fields[1], []).append(pid)
    stats[pid] = sum(int(x) for x in fields[11:15])
todo, total = [sys.argv[1]], 0
while todo:
    pid = todo.pop()
    total += stats.get(pid, 0)
    todo += children.get(pid, [])
print(f"{total / hz:.2f}")
PY
}

# Writes $WORK/config.yaml: collector id $1, the embedded Redis in $WORK/state, one `aws` input (us-east-1) reading
# endpoint $2 with access key $3 and secret $4, its services $5 (YAML indented by 6), and a console output.
write_config() {
    cat > "$WORK/config.yaml" <<YAML
globals:
  id: $1
  persistence: {type: embedded, directory: "$WORK/state"}
inputs:
  aws:
    id: 1
    region: us-east-1
    endpoint: $2
    credentials: {access_key: $3, access_secret: $4}
    services:
$5
outputs:
  console:
    type: console
YAML
}
