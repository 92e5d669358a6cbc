#!/usr/bin/env bash
# Side by side: `eyrie mux`, `ffmpeg -c copy` and `cp` on the same 1080p,
# 60 s, 8 Mbit/s H.264 elementary stream, for each container. Reports the
# median whole-process CPU time (user + system) and wall time of each over
# RUNS runs, and eyrie's CPU as a ratio of cp's and of ffmpeg's.
#
#   benches/compare_mux.sh            # RUNS=7 by default
#
# Needs: ffmpeg (Debian package ffmpeg), python3, a release build of eyrie
# (built here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-7}
dir=target/bench-mux
mkdir -p "$dir"
input=$dir/1080p-60s-8M.h264
if [ ! -s "$input" ]; then
  echo "encoding the input (1080p, 60 s, 8 Mbit/s, x264 ultrafast)..." >&2
  ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30 -t 60 -pix_fmt yuv420p \
    -c:v libx264 -preset ultrafast -b:v 8M -maxrate 8M -bufsize 16M -g 60 "$input"
fi
cargo build --release --bin eyrie >&2
eyrie=target/release/eyrie

python3 - "$RUNS" "$input" "$dir" "$eyrie" <<'PY'
import os, statistics, subprocess, sys, time
runs, src, out, eyrie = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

def measure(cmd, dst):
    cpu, wall = [], []
    for _ in range(runs):
        if os.path.exists(dst):
            os.remove(dst)
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall.append(time.perf_counter() - t0)
        if status != 0:
            sys.exit(f"failed: {' '.join(cmd)}")
        cpu.append(ru.ru_utime + ru.ru_stime)
    return statistics.median(cpu), statistics.median(wall)

size = os.path.getsize(src)
print(f"input: {src}, {size/1e6:.1f} MB; medians of {runs} runs")
cp_cpu, cp_wall = measure(["cp", src, f"{out}/copy.h264"], f"{out}/copy.h264")
print(f"{'cp':28} cpu {cp_cpu*1000:7.1f} ms  wall {cp_wall*1000:7.1f} ms")
ff_extra = {"mp4": [], "fmp4": ["-movflags", "frag_keyframe+empty_moov"]}
for name, ext in [("ts", "ts"), ("mkv", "mkv"), ("mp4", "mp4"), ("fmp4", "mp4")]:
    dst_f, dst_e = f"{out}/ffmpeg.{name}.{ext}", f"{out}/eyrie.{name}.{ext}"
    ff = ["ffmpeg", "-v", "error", "-y", "-f", "h264", "-r", "30", "-i", src, "-c", "copy",
          *ff_extra.get(name, []), dst_f]
    ey = [eyrie, "mux", src, dst_e, "--fps", "30", *(["--fragmented"] if name == "fmp4" else [])]
    f_cpu, f_wall = measure(ff, dst_f)
    e_cpu, e_wall = measure(ey, dst_e)
    print(f"{name:5} ffmpeg -c copy            cpu {f_cpu*1000:7.1f} ms  wall {f_wall*1000:7.1f} ms  ({f_cpu/cp_cpu:.2f}x cp)")
    print(f"{name:5} eyrie mux                 cpu {e_cpu*1000:7.1f} ms  wall {e_wall*1000:7.1f} ms  "
          f"({e_cpu/cp_cpu:.2f}x cp, {e_cpu/f_cpu:.2f}x ffmpeg)")
PY
