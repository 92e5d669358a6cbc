#!/usr/bin/env bash
# Churn and a stuck client against Eyrie's RTSP server, with its RSS over time:
# a synthetic 1280×720 30 fps camera encoded to H.264 and served; for SECS
# seconds (default 60) CLIENTS clients (default 50) connect over TCP, play,
# read 5 pictures and leave, again and again, while one client plays and never
# reads and one ffmpeg watches (and decodes) the whole time. Prints the server's RSS every
# 5 s, the rounds done, the pictures the watcher decoded (its timestamps must
# be one frame apart: none lost), and the server's `stuck` count.
#
#   benches/rtsp_churn.sh [SECS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
CLIENTS=${2:-50}
cargo build --release --bin eyrie >&2
dir=target/bench-rtsp-churn
mkdir -p "$dir"
python3 - "$SECS" "$CLIENTS" "$dir" target/release/eyrie <<'PY'
import json, os, socket, subprocess, sys, threading, time
secs, n, out, eyrie = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
cfg = f"{out}/churn.toml"
open(cfg, "w").write(f'[server]\nmedia_root = "{out}/media"\n[server.rtsp]\nlisten = "127.0.0.1:{port}"\nwrite_timeout = 5\n'
                     '[[node]]\nname = "cam"\nkind = "testsrc"\n[[node]]\nname = "h264"\nkind = "encode"\nlisten_to = "cam"\nkeyint = 30\n')
stats = f"{out}/stats.json"
server = subprocess.Popen([eyrie, "run", "-c", cfg, "--for", str(secs + 15), "--stats", stats],
                          stderr=subprocess.DEVNULL, env={**os.environ, "EYRIE_LOG": "warn"})
url = f"rtsp://127.0.0.1:{port}/h264"
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close(); break
    except OSError:
        time.sleep(0.1)

def play(read=True):
    s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
    def req(r):
        s.sendall(r.encode()); head = b""
        while not head.endswith(b"\r\n\r\n"):
            b = f.read(1)
            if not b: raise EOFError
            head += b
        h = head.decode()
        for l in h.split("\r\n"):
            if l.lower().startswith("content-length:"): f.read(int(l.split(":")[1]))
        return h
    req(f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n")
    h = req(f"SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n")
    sess = [l for l in h.split("\r\n") if l.startswith("Session:")][0].split(":")[1].split(";")[0].strip()
    req(f"PLAY {url}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {sess}\r\n\r\n")
    if not read:
        return s
    pictures = 0
    while pictures < 5:
        hd = f.read(4)
        body = f.read(int.from_bytes(hd[2:4], "big"))
        if hd[1] == 0 and body[1] & 0x80: pictures += 1
    s.close()

stuck = play(read=False)
stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
rounds, errors, stop = [0], [], time.monotonic() + secs
def churn():
    while time.monotonic() < stop:
        try:
            play(); rounds[0] += 1
        except Exception as e:
            errors.append(repr(e))
threads = [threading.Thread(target=churn) for _ in range(n)]
watcher = subprocess.Popen(["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-t", str(secs), "-copyts",
                            "-vsync", "passthrough", "-f", "framecrc", "-"], stdout=subprocess.PIPE, text=True)
for t in threads: t.start()
rss = []
while time.monotonic() < stop:
    for line in open(f"/proc/{server.pid}/status"):
        if line.startswith("VmRSS:"): rss.append(int(line.split()[1]) // 1024)
    time.sleep(5)
for t in threads: t.join()
pts = [int(l.split(",")[2]) for l in watcher.communicate()[0].splitlines() if not l.startswith("#")]
steps = {b - a for a, b in zip(pts, pts[1:])}
server.wait()
st = json.load(open(stats))["rtsp"]
print(json.dumps({"rss_mib_every_5s": rss, "rounds": rounds[0], "errors": len(errors), "first_error": errors[:1],
                  "watcher_pictures": len(pts), "watcher_steps": sorted(steps), "stuck_dropped": st["stuck"],
                  "connections": st["connections"]}))
PY
