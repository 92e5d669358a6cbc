#!/usr/bin/env bash
# Side by side: H.264 software encoding of the same frames by Eyrie
# (`eyrie encode`, OpenH264, one thread) and by FFmpeg (`-c:v libx264 -preset
# ultrafast -tune zerolatency`, its default threads), at 1280x720 and
# 1920x1080, 4 Mbit/s; then Eyrie's JPEG encoder (quality 85) at 1080p.
#
#   benches/compare_encode.sh                 # FRAMES=150 RUNS=5
#   FRAMES=300 RUNS=7 benches/compare_encode.sh
#
# Input: FFmpeg's testsrc2 with temporal noise (so that every frame costs
# bits), written once as .y4m; both tools read that file. Figures are
# whole-process CPU time (user + system) and wall time, median of RUNS runs,
# the two sides alternating; fps = frames / wall. Eyrie's own report splits
# its time into the codec's and Eyrie's (conversion, packetizing, writing);
# the last column is Eyrie's share of the codec's time.
#
# Needs: ffmpeg with libx264, python3, a release build of eyrie (built here
# if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
FRAMES=${FRAMES:-150}
dir=target/bench-encode
mkdir -p "$dir"
[ -x target/release/eyrie ] || cargo build --release --bin eyrie
for size in 1280x720 1920x1080; do
  src=$dir/$size-$FRAMES.y4m
  [ -s "$src" ] || ffmpeg -v error -y -f lavfi -i "testsrc2=size=$size:rate=30,noise=alls=3:allf=t" \
    -frames:v "$FRAMES" -pix_fmt yuv420p "$src"
done
python3 - "$dir" "$FRAMES" "$RUNS" <<'PY'
import json, resource, statistics, subprocess, sys, time
dir, frames, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def run(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, out

def eyrie(src, codec, extra):
    return ["target/release/eyrie", "--log", "warn", "encode", "--input", src, "--codec", codec,
            "-o", f"{dir}/out.{'h264' if codec == 'h264' else 'mjpeg'}", "--json"] + extra

print(f"{frames} frames per run, median of {runs} runs\n")
print(f"{'':10} {'tool':8} {'fps':>7} {'CPU ms/frame':>13} {'wall s':>7} {'CPU ratio':>10} {'codec ms':>9} {'Eyrie %':>8}")
for size in ["1280x720", "1920x1080"]:
    src = f"{dir}/{size}-{frames}.y4m"
    ours, theirs, reports = [], [], []
    for _ in range(runs):
        cpu, wall, out = run(eyrie(src, "h264", ["--bitrate", "4000000"]))
        ours.append((cpu, wall)); reports.append(json.loads(out))
        theirs.append(run(["ffmpeg", "-v", "error", "-y", "-i", src, "-c:v", "libx264", "-preset", "ultrafast",
                           "-tune", "zerolatency", "-b:v", "4M", "-f", "h264", f"{dir}/ffmpeg.h264"])[:2])
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    codec = statistics.median(r["codec_ms"] for r in reports)
    share = statistics.median(r["overhead_pct"] for r in reports)
    for name, xs in [("eyrie", ours), ("ffmpeg", theirs)]:
        cpu, wall = med(xs, 0), med(xs, 1)
        ratio = cpu / med(theirs, 0)
        extra = f"{codec:9.2f} {share:8.2f}" if name == "eyrie" else ""
        print(f"{size:10} {name:8} {frames / wall:7.1f} {cpu * 1e3 / frames:13.2f} {wall:7.2f} {ratio:10.2f} {extra}")
    r = sorted(reports, key=lambda r: r['codec_ms'])[len(reports) // 2]
    print(f"{'':10} eyrie per frame: codec {r['codec_ms']:.3f} ms, convert {r['convert_ms']:.3f} ms, "
          f"packetize {r['packetize_ms']:.3f} ms, write {r['write_ms']:.3f} ms, {r['mbit_s']:.2f} Mbit/s")
src = f"{dir}/1920x1080-{frames}.y4m"
jpeg = [json.loads(run(eyrie(src, "mjpeg", ["--quality", "85"]))[2]) for _ in range(runs)]
print(f"\nJPEG q85 1920x1080: {statistics.median(r['codec_ms'] for r in jpeg):.2f} ms per frame (encoder), "
      f"{statistics.median(r['cpu_s'] for r in jpeg) * 1e3 / frames:.2f} ms CPU per frame (whole process)")
PY
