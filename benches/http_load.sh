#!/usr/bin/env bash
# The HTTP listener under load (release build), with light viewers that do
# not decode (benches/http_viewers.rs), the server's CPU and RSS read from
# /proc/PID of the server alone:
#
#   1. bounded memory: on the built-in demo, 200 WebSocket viewers, 200
#      LL-HLS pollers, 50 MJPEG viewers and 20 stuck clients that never read,
#      for SECONDS (default 60): the pipeline's rate and drops, RSS each
#      second, the stuck clients dropped;
#   2. speed: CPU seconds per viewer-minute for each protocol at 10, 100 and
#      200 viewers, beyond an idle server's own (one 1280x720 30 fps camera,
#      encoded to H.264; its raw frames for MJPEG);
#   3. JPEG encodes per second with 0, 1 and 50 MJPEG viewers.
#
#   benches/http_load.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cargo build --release --bin eyrie
cargo bench --no-run --bench http_viewers 2>/dev/null
viewers=$(ls -t target/release/deps/http_viewers-* | grep -v '\.d$' | head -1)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
ticks=$(getconf CLK_TCK)

source benches/lib.sh
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

echo "== 1. bounded memory: the demo, 200 ws + 200 LL-HLS + 50 MJPEG + 20 stuck, ${secs} s"
start "" $((secs + 15)) load
sleep 5
( while kill -0 $pid 2>/dev/null; do echo "$(date +%s) $(rss_kib $pid)"; sleep 1; done ) > "$work/rss" 2>/dev/null &
"$viewers" "$addr" "$secs" ws=200 hls=200 mjpeg=50 stuck=20 coded=h264 raw=cam0 | tee "$work/load.json"
wait $pid || true
python3 - "$work/load/stats.json" "$work/rss" <<'PY'
import json, sys
stats = json.load(open(sys.argv[1]))
rss = [int(l.split()[1]) for l in open(sys.argv[2]) if len(l.split()) == 2 and l.split()[1].isdigit()]
for n in stats["nodes"]:
    if n["kind"] in ("testsrc", "encode", "tile", "infer"):
        print(f'  {n["name"]:6} {n["kind"]:8} fps={n["fps"]:.2f} dropped={n["frames_dropped"]}')
h = stats.get("http", {})
print(f'  http: connections={h.get("connections")} stalled={h.get("stalled")} refused={h.get("refused")}')
if rss:
    tenth = max(1, len(rss) // 10)
    print(f'  RSS MiB: first 10% {sum(rss[:tenth]) / tenth / 1024:.1f}, last 10% {sum(rss[-tenth:]) / tenth / 1024:.1f}, max {max(rss) / 1024:.1f}')
PY

cat > "$work/speed.toml" <<'TOML'
[[node]]
name = "cam0"
kind = "testsrc"
[[node]]
name = "h264"
kind = "encode"
listen_to = "cam0"
TOML
span=15
echo "== 2. CPU per viewer-minute (one 1280x720 camera; ${span} s per run)"
start "$work/speed.toml" 3600 speed
sleep 3
c0=$(cpu $pid); sleep $span; idle=$(( $(cpu $pid) - c0 ))
echo "  idle server: $(python3 -c "print(round($idle / $ticks / $span * 60, 3))") CPU s per minute"
for kind in ws hls mjpeg; do
  for n in 10 100 200; do
    c0=$(cpu $pid)
    out=$("$viewers" "$addr" "$span" "$kind=$n" coded=h264 raw=cam0)
    used=$(( $(cpu $pid) - c0 ))
    python3 - "$out" "$used" "$idle" "$ticks" "$span" "$n" "$kind" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); used, idle, ticks, span, n = (float(x) for x in sys.argv[2:7])
per = (used - idle) / ticks / n / (span / 60)
print(f'  {sys.argv[7]:5} {int(n):4} viewers: {per:.4f} CPU s per viewer-minute; {r["connected"]} connected, '
      f'median {r["median_per_s"]:.1f}/s, slowest {r["slowest_per_s"]:.1f}/s')
PY
    sleep 2
  done
done
kill -INT $pid; wait $pid || true

echo "== 3. JPEG encodes per second of one raw stream (mjpeg_fps = 10)"
for n in 0 1 50; do
  start "$work/speed.toml" $((span + 3)) "jpeg$n"
  sleep 1
  [ $n -gt 0 ] && "$viewers" "$addr" "$span" "mjpeg=$n" raw=cam0 > /dev/null
  wait $pid || true
  python3 - "$work/jpeg$n/stats.json" "$n" "$span" <<'PY'
import json, sys
stats = json.load(open(sys.argv[1])); made = sum(m["pictures"] for m in stats.get("http", {}).get("mjpeg", []))
print(f'  {sys.argv[2]:>2} viewers: {made / float(sys.argv[3]):.1f} JPEG encodes per second')
PY
done
