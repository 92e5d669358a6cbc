#!/usr/bin/env bash
# Side by side: re-serving one RTSP camera to N clients. Eyrie (an `rtsp`
# node passing the camera's packets through, its RTSP server) against
# GStreamer's RTSP server (a shared media factory: `rtspsrc ! rtph264depay !
# rtph264pay`, one pipeline for all clients), both reading the same upstream
# camera — a 1080p30 ≈ 4 Mbit/s H.264 clip served by GStreamer's RTSP server
# (tests/rtsp/server.py). N light clients (benches/rtsp_clients.rs: the RTSP
# handshake over TCP, then count interleaved RTP bytes and sequence gaps,
# no decoding) watch for SECS seconds.
#
#   benches/compare_rtsp_serve.sh                 # N = 1 10 100 500, SECS=20, RUNS=1
#   NS="1 100" SECS=60 RUNS=3 benches/compare_rtsp_serve.sh
#
# Reported per side and N: the restreamer's CPU-seconds per client-minute
# (user + system from /proc/PID/stat over the window after the clients
# joined, divided by the clients served at full rate: 90% of the median
# client's bytes or more), its RSS at the end, the clients' received rate
# against the camera's (≈ 4 Mbit/s), and RTP packets lost. Median of RUNS
# runs, sides alternating. On loopback the kernel's TCP work (both ends of
# every connection) is charged to the sender and dominates both sides.
#
# Needs: /usr/bin/python3 with GStreamer's RTSP server, ffmpeg (what
# scripts/test.sh installs); builds eyrie and the clients in release.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-1}
SECS=${SECS:-20}
NS=${NS:-"1 10 100 500"}
dir=target/bench-rtsp-serve
mkdir -p "$dir"
clip=$dir/1080p30-4M-$((SECS + 15))s.mkv
if [ ! -s "$clip" ]; then
  echo "encoding the clip (1080p30, $((SECS + 15)) s, 4 Mbit/s, GOP 30)..." >&2
  ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30 -t $((SECS + 15)) -pix_fmt yuv420p \
    -c:v libx264 -preset ultrafast -b:v 4M -maxrate 4M -bufsize 8M -g 30 -bf 0 "$clip"
fi
cargo build --release --bin eyrie >&2
cargo bench --no-run --bench rtsp_clients >&2 2>/dev/null
clients=$(ls -t target/release/deps/rtsp_clients-* | grep -v '\.d$' | head -1)

python3 - "$RUNS" "$SECS" "$NS" "$clip" "$dir" target/release/eyrie "$clients" <<'PY'
import json, os, socket, statistics, subprocess, sys, time
runs, secs, ns, clip, out, eyrie, clients = int(sys.argv[1]), int(sys.argv[2]), [int(n) for n in sys.argv[3].split()], *sys.argv[4:]
tick = os.sysconf("SC_CLK_TCK")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick

def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

def wait_port(port, proc):
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit("the restreamer exited")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the restreamer does not listen")

GST = r'''
import sys, gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
Gst.init(None)
server = GstRtspServer.RTSPServer(); server.set_address("127.0.0.1"); server.set_service(sys.argv[1])
f = GstRtspServer.RTSPMediaFactory()
f.set_launch("( rtspsrc location=%s protocols=tcp latency=0 ! rtph264depay ! rtph264pay name=pay0 pt=96 config-interval=-1 )" % sys.argv[2])
f.set_shared(True)
server.get_mount_points().add_factory("/cam", f)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
'''

def run(side, n):
    up_port = free_port()
    upstream = subprocess.Popen(["/usr/bin/python3", "tests/rtsp/server.py", "--port", str(up_port), "--file", f"clip={os.path.abspath(clip)}"],
                                stdout=subprocess.PIPE, text=True)
    assert upstream.stdout.readline().strip() == f"ready {up_port}"
    up = f"rtsp://127.0.0.1:{up_port}/clip"
    port = free_port()
    if side == "eyrie":
        cfg = f"{out}/eyrie.toml"
        open(cfg, "w").write(f'[server]\nmedia_root = "{out}/media"\n[server.rtsp]\nlisten = "127.0.0.1:{port}"\nmax_clients = 2000\n'
                             f'[[node]]\nname = "cam"\nkind = "rtsp"\nurl = "{up}"\ntransport = "tcp"\n')
        proc = subprocess.Popen([eyrie, "run", "-c", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "EYRIE_LOG": "warn"})
    else:
        proc = subprocess.Popen(["/usr/bin/python3", "-c", GST, str(port), up], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
    try:
        wait_port(port, proc)
        client = subprocess.Popen([clients, str(n), f"rtsp://127.0.0.1:{port}/cam", str(secs)], stdout=subprocess.PIPE, text=True)
        time.sleep(3 + n * 0.004)  # the clients join (4 ms apart); the window starts after
        c0, t0 = cpu(proc.pid), time.monotonic()
        result = json.loads(client.communicate()[0])
        c1, t1 = cpu(proc.pid), time.monotonic()
        rss = rss_mib(proc.pid)
    finally:
        proc.kill(); proc.wait(); upstream.kill(); upstream.wait()
    window_min = (t1 - t0) / 60
    # The camera sends about 4 Mbit/s: what each client got against it.
    rate = result["bytes"] / max(result["clients"], 1) / secs * 8 / 1e6
    # Per client served at full rate (a server that drops clients does not get their share).
    served = max(result["served"], 1)
    return {"cpu_s_per_client_min": (c1 - c0) / served / window_min, "rss_mib": rss, "mbit_per_client": rate, "served": result["served"],
            "lost": result["lost"], "packets": result["packets"], "clients": result["clients"],
            "failed": result["failed"], "slowest_share": result["slowest_share"], "error": result["first_error"]}

rows = []
for n in ns:
    got = {"eyrie": [], "gstreamer": []}
    for _ in range(runs):
        for side in ("eyrie", "gstreamer"):
            got[side].append(run(side, n))
    row = {"n": n}
    for side, rs in got.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("cpu_s_per_client_min", "rss_mib", "mbit_per_client", "lost", "slowest_share", "clients", "failed", "served")}
        med["error"] = rs[0]["error"]
        row[side] = med
    row["cpu_ratio"] = row["eyrie"]["cpu_s_per_client_min"] / max(row["gstreamer"]["cpu_s_per_client_min"], 1e-9)
    rows.append(row)
    print(json.dumps(row), flush=True)

print(f"\n{'N':>5} | {'side':>9} | {'CPU s/client-min':>16} | {'RSS MiB':>7} | {'Mbit/s/client':>13} | {'lost pkts':>9} | {'slowest':>7} | clients")
for r in rows:
    for side in ("eyrie", "gstreamer"):
        m = r[side]
        print(f"{r['n']:>5} | {side:>9} | {m['cpu_s_per_client_min']:>16.4f} | {m['rss_mib']:>7.1f} | {m['mbit_per_client']:>13.2f} | {m['lost']:>9.0f} | {m['slowest_share']:>7.2f} | {m['served']:.0f} at full rate, {m['clients']:.0f} connected, {m['failed']:.0f} failed {m['error'][:80]}")
    print(f"{r['n']:>5} | Eyrie's CPU per client / GStreamer's: {r['cpu_ratio']:.3f}")
PY
