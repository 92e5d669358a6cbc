#!/usr/bin/env bash
# The control API under load (release build): the built-in demo runs while
# Debian's `wrk` drives `GET /api/v1/nodes` and then `GET /metrics` for
# SECONDS each (default 30) over CONNECTIONS connections (default 32, 2
# threads); reported: requests/s and latency percentiles from wrk, and the
# pipeline's rate and drops from the server's own stats (the goal: the demo
# keeps 30 fps with 0 drops). The server's CPU is read from /proc/PID.
# The server's serving threads run at nice 10 (the pipeline's at 0), so
# clients asking more than the CPUs have slow the answers, not the pipeline.
#
#   benches/api_load.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
conns=${2:-32}
command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)"; exit 1; }
cargo build --release --bin eyrie
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
ticks=$(getconf CLK_TCK)
source benches/lib.sh
start "" $((2 * secs + 20)) api
sleep 5
for path in /api/v1/nodes /metrics; do
  echo "== GET $path: ${secs} s, $conns connections"
  before=$(cpu $pid)
  # wrk runs on the same two cores: as nice as the server's serving
  # threads, it stands for clients on other machines ($WRK_NICE=0 to compete).
  nice -n "${WRK_NICE:-10}" wrk -t2 -c"$conns" -d"${secs}s" --latency "http://$addr$path" | grep -E 'Requests/sec|Latency|50%|90%|99%|Non-2xx|Socket errors'
  echo "  server CPU: $(( ($(cpu $pid) - before) * 100 / ticks / secs ))% of one core"
done
wait $pid || true
python3 - "$work/api/stats.json" <<'PY'
import json, sys
stats = json.load(open(sys.argv[1]))
worst = min((n for n in stats["nodes"] if n["kind"] != "snapshot"), key=lambda n: n["fps"])
drops = sum(n["frames_dropped"] for n in stats["nodes"])
print(f'pipeline: slowest node {worst["name"]} at {worst["fps"]:.2f} fps, {drops} frames dropped in all')
for n in stats["nodes"]:
    if n["frames_dropped"]:
        print(f'  {n["name"]} ({n["kind"]}) dropped {n["frames_dropped"]}')
PY
