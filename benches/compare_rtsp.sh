#!/usr/bin/env bash
# Side by side: CPU per stream to receive N RTSP streams in passthrough, Eyrie
# (one process, N `rtsp` nodes, packets published to the hub) against ffmpeg
# (`ffmpeg -rtsp_transport tcp -i URL -c copy -f null -`, one process per
# stream, as it has to be run), on the same streams: a 1080p30 H.264 clip at
# about 4 Mbit/s served by GStreamer's RTSP server (tests/rtsp/server.py, one
# pipeline per client, no re-encoding), over TCP.
#
#   benches/compare_rtsp.sh              # N = 1 8 32, SECS=20, RUNS=3
#   NS="1 8" SECS=10 RUNS=5 benches/compare_rtsp.sh
#   MODE=record benches/compare_rtsp.sh  # and store every stream to disk:
#     Eyrie's `record` nodes (fragmented MP4, 10 s segments) against
#     `ffmpeg ... -c copy -f segment -segment_time 10` into MP4 files
#
# Each run receives for SECS seconds; the figure is whole-process CPU (user +
# system, summed over ffmpeg's processes) divided by N, median of RUNS runs,
# the two sides alternating. The server's own CPU is not counted.
#
# Needs: ffmpeg, /usr/bin/python3 with GStreamer's RTSP server (what
# scripts/test.sh installs), a release build of eyrie (built here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECS:-20}
NS=${NS:-"1 8 32"}
MODE=${MODE:-receive}
dir=target/bench-rtsp
mkdir -p "$dir"
clip=$dir/1080p30-4M.mkv
if [ ! -s "$clip" ]; then
  echo "encoding the clip (1080p30, $((SECS + 20)) s, 4 Mbit/s, GOP 30)..." >&2
  ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30 -t $((SECS + 20)) -pix_fmt yuv420p \
    -c:v libx264 -preset ultrafast -b:v 4M -maxrate 4M -bufsize 8M -g 30 -bf 0 "$clip"
fi
cargo build --release --bin eyrie >&2

python3 - "$RUNS" "$SECS" "$NS" "$clip" "$dir" target/release/eyrie "$MODE" <<'PY'
import json, os, re, shutil, socket, statistics, subprocess, sys, time
runs, secs, ns, clip, out, eyrie, mode = int(sys.argv[1]), int(sys.argv[2]), [int(n) for n in sys.argv[3].split()], *sys.argv[4:]
record = mode == "record"
media = f"{out}/media"

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
server = subprocess.Popen(["/usr/bin/python3", "tests/rtsp/server.py", "--port", str(port), "--file", f"clip={os.path.abspath(clip)}"],
                          stdout=subprocess.PIPE, text=True)
assert server.stdout.readline().strip() == f"ready {port}", "the RTSP server did not start"
url = f"rtsp://127.0.0.1:{port}/clip"

def eyrie_run(n):
    cfg, stats = f"{out}/n{n}.toml", f"{out}/n{n}.json"
    shutil.rmtree(media, ignore_errors=True)
    with open(cfg, "w") as f:
        f.write(f'[server]\nmedia_root = "{media}"\n\n')
        for i in range(n):
            f.write(f'[[node]]\nname = "cam{i}"\nkind = "rtsp"\nurl = "{url}"\n\n')
            if record:
                f.write(f'[[node]]\nname = "rec{i}"\nkind = "record"\nlisten_to = "cam{i}"\nsegment = 10\n\n')
    p = subprocess.Popen([eyrie, "run", "-c", cfg, "--for", str(secs), "--stats", stats],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "EYRIE_LOG": "warn"})
    _, status, ru = os.wait4(p.pid, 0)
    assert status == 0, "eyrie failed"
    nodes = [n for n in json.load(open(stats))["nodes"] if n["kind"] == ("record" if record else "rtsp")]
    frames = statistics.median(n["frames_out"] for n in nodes)
    return (ru.ru_utime + ru.ru_stime) / n, frames

def ffmpeg_run(n):
    shutil.rmtree(media, ignore_errors=True)
    os.makedirs(media)
    sink = lambda i: (["-f", "segment", "-segment_time", "10", "-segment_format", "mp4", f"{media}/ff{i}-%03d.mp4"]
                      if record else ["-f", "null", "-"])
    procs = [subprocess.Popen(["ffmpeg", "-nostdin", "-rtsp_transport", "tcp", "-i", url, "-t", str(secs),
                               "-c", "copy", *sink(i)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in range(n)]
    cpu, frames = 0.0, []
    for p in procs:
        _, status, ru = os.wait4(p.pid, 0)
        log = p.stderr.read()
        assert status == 0, log[-2000:]
        cpu += ru.ru_utime + ru.ru_stime
        got = re.findall(r"frame=\s*(\d+)", log)
        frames.append(int(got[-1]) if got else 0)
    return cpu / n, statistics.median(frames)

what = "received and recorded to 10 s MP4 segments" if record else "received"
print(f"{clip}: 1080p30 H.264 ~4 Mbit/s over RTSP/TCP from GStreamer's RTSP server, {what}; {secs} s per run, medians of {runs} runs")
print(f"{'N':>3} | {'ffmpeg CPU/stream':>17} | {'eyrie CPU/stream':>16} | eyrie/ffmpeg | pictures/stream (ffmpeg, eyrie)")
try:
    for n in ns:
        e, f = [], []
        for _ in range(runs):
            f.append(ffmpeg_run(n))
            e.append(eyrie_run(n))
        fc, ec = statistics.median(x[0] for x in f), statistics.median(x[0] for x in e)
        ff, ef = statistics.median(x[1] for x in f), statistics.median(x[1] for x in e)
        print(f"{n:>3} | {fc*1000:14.1f} ms | {ec*1000:13.1f} ms | {ec/fc:11.3f}x | {ff:.0f}, {ef:.0f}", flush=True)
finally:
    server.kill()
PY
