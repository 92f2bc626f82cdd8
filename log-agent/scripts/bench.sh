#!/usr/bin/env bash
# scripts/bench.sh: the log-agent binary on one file of 200-byte lines, into
# the discard sink and into the file sink: MB/s, CPU seconds per GB and peak
# RSS of the agent process (BENCHMARKS.md).
#
#   bash log-agent/scripts/bench.sh [MB] [buffer]     (defaults: 1024 MB, 1048576)
#
# The file is written first; the agent starts with read_from beginning and
# the clock stops when the project's status.json (rewritten every 50 ms)
# says every line was acknowledged by the sink and nothing lags. CPU is
# utime + stime of the process (/proc/<pid>/stat), RSS its VmHWM.
set -euo pipefail
MB=${1:-1024}
BUFFER=${2:-1048576}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${BIN:-$REPO/bin/log-agent}
[ -x "$BIN" ] || (cd "$REPO/log-agent" && go build -o "$BIN" .)
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
size=$((MB * 1024 * 1024 / 200 * 200))
python3 - "$work/app.log" "$size" <<'PY'
import sys
path, size = sys.argv[1], int(sys.argv[2])
pad = ''.join(chr(97 + i % 26) for i in range(188))
with open(path, 'w', buffering=1 << 22) as f:
    for i in range(size // 200):
        f.write('%010d %s\n' % (i, pad))
PY
hz=$(getconf CLK_TCK)
run() {
	local sink=$1 name=$2
	rm -rf "$work/data" "$work/out"
	printf '[{"name":"bench","type":"logtail","paths":["%s"],"read_from":"beginning","batch":100000,"buffer":%s,"interval":1}]\n' \
		"$work/app.log" "$BUFFER" >"$work/projects.json"
	cat >"$work/agent.conf" <<CONF
basic.id = bench
basic.server = 127.0.0.1:1
basic.log.target = file
basic.log.dir = $work/logs
basic.monitor.enabled = false
collect.projects = $work/projects.json
collect.data_dir = $work/data
collect.sink = $sink
collect.spool_size = 1G
collect.checkpoint_interval = 50ms
CONF
	local t0 t1
	t0=$(date +%s.%N)
	"$BIN" --conf "$work/agent.conf" run >/dev/null 2>&1 &
	pid=$!
	lines=$((size / 200))
	until python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
sys.exit(0 if d["shipped_lines"] >= int(sys.argv[2]) and d["lag_bytes"] == 0 else 1)' "$work/data/bench/status.json" "$lines" 2>/dev/null; do
		sleep 0.02
	done
	t1=$(date +%s.%N)
	read -r ut st < <(awk '{print $14, $15}' /proc/$pid/stat)
	hwm=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
	kill $pid; wait $pid 2>/dev/null || true
	python3 - "$name" "$t0" "$t1" "$ut" "$st" "$hz" "$hwm" "$size" <<'PY'
import sys
name, t0, t1, ut, st, hz, hwm, size = sys.argv[1:]
secs = float(t1) - float(t0)
cpu = (int(ut) + int(st)) / int(hz)
mb = int(size) / 2**20
print(f"{name:28s} {mb/secs:8.1f} MB/s  {cpu/(int(size)/2**30):6.2f} CPU-s/GB  peak RSS {int(hwm)/1024:6.1f} MiB  ({secs:.1f} s, {cpu:.1f} CPU-s)")
PY
}
echo "log-agent, one file of $MB MB of 200-byte lines, buffer $BUFFER"
run discard "discard sink"
run "file:$work/out" "file sink"
