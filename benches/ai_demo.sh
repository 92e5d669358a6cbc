#!/usr/bin/env bash
# The default AI demo on this machine: 4 inputs (two 1280x720 30 fps synthetic
# cameras, each twice) -> infer (built-in model, tract, batch 4, every frame)
# -> track -> tile 2x2 -> OSD -> H.264, plus the demo's second encoder,
# recording, smart-record caches and snapshots. Prints, per run of SECS
# seconds (RUNS runs, medians):
#   - frames/s per input through the detector and the mosaic's frames/s,
#   - frames dropped anywhere, bytes copied per frame,
#   - µs per frame by stage, from the nodes' `stages_us` (preprocess,
#     inference, decode+NMS and track per input frame; tile and OSD per
#     mosaic frame),
#   - whole-process CPU (user + system) per second of wall time.
# Stage costs in isolation are in `cargo bench --bench infer`; detector-only
# speed in `eyrie eval`.
#
#   benches/ai_demo.sh                 # SECS=20 RUNS=3
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECS:-20}
dir=target/bench-ai
mkdir -p "$dir"
[ -x target/release/eyrie ] || cargo build --release --bin eyrie
for run in $(seq "$RUNS"); do
  rm -rf "$dir/media"; mkdir -p "$dir/media"
  ( cd "$dir/media" && EYRIE_LOG=info /usr/bin/time -f '%U %S %e' -o ../time.txt \
      ../../release/eyrie run --for "$SECS" --stats ../stats.json 2> ../log.txt )
  python3 - "$dir" "$run" <<'PY'
import json, sys
d, run = sys.argv[1], sys.argv[2]
s = json.load(open(f"{d}/stats.json"))
user, system, wall = map(float, open(f"{d}/time.txt").read().split()[-3:])
nodes = {n["name"]: n for n in s["nodes"]}
infer, tile = nodes["infer"], nodes["tile"]
up = s["uptime_s"]
dropped = sum(n["frames_dropped"] for n in s["nodes"])
cams = nodes["cam0"]["frames_out"] + nodes["cam1"]["frames_out"]
print(json.dumps({
    "run": int(run),
    "per_input_fps": round(infer["frames_out"] / 4 / up, 2),
    "mosaic_fps": round(tile["fps"], 2),
    "dropped": dropped,
    "bytes_copied_per_frame": s["bytes_copied"] / max(cams, 1),
    "us_per_frame": {k: round(v) for name in ["infer", "track", "tile", "deep"] for k, v in nodes[name].get("stages_us", {}).items()},
    "cpu_per_wall_s": round((user + system) / wall, 2),
}), flush=True)
PY
done
