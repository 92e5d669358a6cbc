//! The RTSP server and RTP push against independent clients: ffmpeg/ffprobe
//! (TCP and UDP), GStreamer's `rtspsrc` (TCP, UDP, and multicast inside a
//! network namespace), a passthrough camera (GStreamer's RTSP server)
//! re-served byte for byte, hostile requests, wrong credentials, a client
//! that never reads among clients that come and go, a format change
//! mid-stream, and `ffmpeg` reading the SDP file of an `rtp` node.
//! scripts/test.sh installs the tools (Debian packages).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use eyrie::codec::nal;
use eyrie::config::Config;
use eyrie::hub::{Item, SubscribeOptions};
use eyrie::server::Server;

mod common;
use common::ff;
use common::gst::{GstServer, free_port};

const CAMERA: &str = "[[node]]\nname = \"cam\"\nkind = \"testsrc\"\nwidth = 320\nheight = 240\n";

fn encoder(name: &str, from: &str, codec: &str) -> String {
    let backend = if codec == "h265" { "encoder = \"ffmpeg\"\n" } else { "" };
    format!(
        "[[node]]\nname = \"{name}\"\nkind = \"encode\"\nlisten_to = \"{from}\"\ncodec = \"{codec}\"\nkeyint = 30\n{backend}"
    )
}

/// A server of `nodes` with RTSP on a free port and `rtsp` keys added.
fn serve(root: &Path, nodes: &str, rtsp: &str) -> (Server, SocketAddr) {
    let text = format!(
        "[server]\nmedia_root = \"{}\"\n[server.http]\nenabled = false\n[server.rtsp]\nlisten = \"127.0.0.1:0\"\n{rtsp}\n{nodes}",
        root.display()
    );
    let config = Config::parse(&text, "rtsp-server.toml").unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(config).unwrap();
    server.serve().unwrap();
    let addr = server.rtsp_address().unwrap();
    (server, addr)
}

fn run(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let id = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let watch = Arc::clone(&done);
    let killer = std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while !watch.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::park_timeout(Duration::from_millis(100));
        }
        if !watch.load(Ordering::Acquire) {
            let _ = Command::new("kill").arg(id.to_string()).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, Ordering::Release);
    killer.thread().unpark();
    killer.join().unwrap();
    out
}

/// `ffmpeg` decodes `frames` pictures from `input` (its options ending in
/// `-i …`) with every error fatal and writes each once, as it comes
/// (`-vsync passthrough`: no rate conversion that would repeat or drop
/// one), with the stream's own timestamps (`-copyts`: from `RTP-Info` on);
/// their timestamps and decoded sizes.
fn ffmpeg_decodes(input: &[&str], frames: usize) -> Result<Vec<(i64, usize)>, String> {
    let out = run(
        ff::tool("ffmpeg")
            .args(["-v", "error", "-xerror", "-err_detect", "explode"])
            .args(input)
            .args(["-frames:v", &frames.to_string(), "-copyts", "-vsync", "passthrough"])
            .args(["-f", "framecrc", "-"]),
        Duration::from_secs(40),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() || !stderr.is_empty() {
        return Err(format!("ffmpeg {input:?}: {:?} {stderr}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            Some((f.get(2)?.parse().ok()?, f.get(4)?.parse().ok()?))
        })
        .collect())
}

/// [`ffmpeg_decodes`] from an RTSP URL over `transport`.
fn ffmpeg_frames(url: &str, transport: &str, frames: usize) -> Result<Vec<(i64, usize)>, String> {
    ffmpeg_decodes(&["-rtsp_transport", transport, "-i", url], frames)
}

/// Every picture in the window came: timestamps one frame apart (a lost
/// picture would leave a double step).
fn assert_contiguous(frames: &[(i64, usize)], n: usize, what: &str) {
    assert_eq!(frames.len(), n, "{what}: {frames:?}");
    let steps: Vec<i64> = frames.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        steps[0] > 0 && steps.iter().all(|s| *s == steps[0]),
        "{what}: steps {steps:?}"
    );
}

fn gst_pipeline(url: &str, protocols: &str, codec: &str, frames: usize) -> Vec<String> {
    let decode = match codec {
        "h264" => "rtph264depay ! h264parse ! avdec_h264",
        "h265" => "rtph265depay ! h265parse ! avdec_h265",
        _ => "rtpjpegdepay ! jpegdec",
    };
    let text =
        format!("rtspsrc location={url} protocols={protocols} ! {decode} ! identity eos-after={frames} ! fakesink");
    text.split(' ').map(String::from).collect()
}

/// GStreamer's `rtspsrc` decodes `frames` pictures (and exits 0).
fn gst_frames(url: &str, protocols: &str, codec: &str, frames: usize) -> Result<(), String> {
    let out = run(
        Command::new("gst-launch-1.0").args(gst_pipeline(url, protocols, codec, frames)),
        Duration::from_secs(40),
    );
    // The pipeline ends (EOS) once it decoded its frames; gst-launch 1.22 can
    // still fail afterwards in its own PAUSE/TEARDOWN on a loaded machine.
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() || stdout.contains("Got EOS from element \"pipeline0\"") {
        Ok(())
    } else {
        Err(format!(
            "gst-launch {protocols} {url}: {:?} {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn ffmpeg_and_gstreamer_receive_every_codec_over_tcp_and_udp() {
    let dir = ff::Dir::new();
    let mut codecs = vec!["h264", "mjpeg"];
    if cfg!(feature = "ffmpeg") {
        codecs.push("h265");
    }
    let nodes: String = std::iter::once(CAMERA.to_owned())
        .chain(codecs.iter().map(|c| encoder(c, "cam", c)))
        .collect();
    let (server, addr) = serve(&dir.file("media"), &nodes, "");
    for codec in &codecs {
        let url = format!("rtsp://{addr}/{codec}");
        let clients: Vec<std::thread::JoinHandle<Result<(), String>>> = ["tcp", "udp"]
            .into_iter()
            .flat_map(|t| {
                let (a, b) = (url.clone(), url.clone());
                let codec = codec.to_string();
                [
                    std::thread::spawn(move || {
                        let frames = ffmpeg_frames(&a, t, 60)?;
                        assert_contiguous(&frames, 60, &format!("ffmpeg {t} {a}"));
                        Ok(())
                    }),
                    std::thread::spawn(move || gst_frames(&b, t, &codec, 60)),
                ]
            })
            .collect();
        for c in clients {
            c.join().unwrap().unwrap();
        }
    }
    let stats = server.stats().rtsp.unwrap();
    for codec in &codecs {
        let s = stats.streams.iter().find(|s| s.name == *codec).unwrap();
        assert!(s.pictures >= 60 && s.errors == 0, "{s:?}");
    }
    server.shutdown();
}

#[test]
fn multicast_reaches_gstreamer_inside_a_network_namespace() {
    let dir = ff::Dir::new();
    let config = dir.file("mcast.toml");
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            "[server]\nmedia_root = \"{}\"\n[server.http]\nenabled = false\n[server.rtsp]\nlisten = \"127.0.0.1:{port}\"\nmulticast_group = \"239.255.7.7\"\n{CAMERA}{}",
            dir.file("media").display(),
            encoder("h264", "cam", "h264")
        ),
    )
    .unwrap();
    let log = dir.file("eyrie.log");
    let gst = dir.file("gst.log");
    let pipeline = gst_pipeline(&format!("rtsp://127.0.0.1:{port}/h264"), "udp-mcast", "h264", 60).join(" ");
    let script = format!(
        "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo || exit 90
         {eyrie} run -c {config} --for 40 2> {log} & pid=$!
         until grep -q 'RTSP server listening' {log}; do kill -0 $pid || exit 91; sleep 0.1; done
         gst-launch-1.0 {pipeline} > {gst} 2>&1; grep -q 'Got EOS from element \"pipeline0\"' {gst}; rc=$?
         kill $pid; wait $pid; exit $rc",
        eyrie = env!("CARGO_BIN_EXE_eyrie"),
        config = config.display(),
        log = log.display(),
        gst = gst.display(),
    );
    let out = run(
        Command::new("unshare").args(["-rn", "sh", "-c", &script]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{:?}\n{}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default() + &std::fs::read_to_string(&gst).unwrap_or_default()
    );
}

/// NAL units of an Annex-B stream, without parameter sets and delimiters
/// (which a server may repeat and a client may add).
fn slices(data: &[u8]) -> Vec<Vec<u8>> {
    nal::annexb(data)
        .filter(|n| !matches!(n.data[0] & 0x1F, 7..=9))
        .map(|n| n.data.to_vec())
        .collect()
}

#[test]
fn a_camera_is_re_served_byte_for_byte_without_decoding_or_copying() {
    let camera = GstServer::start(free_port(), &["--gop", "30", "--size", "640x360"]);
    let dir = ff::Dir::new();
    let nodes = format!(
        "[[node]]\nname = \"cam\"\nkind = \"rtsp\"\nurl = \"{}\"\ntransport = \"tcp\"\n",
        camera.url("h264", "tcp")
    );
    let (server, addr) = serve(&dir.file("media"), &nodes, "");
    let sub = server.hub().subscribe("cam", SubscribeOptions::blocking(1000));
    let out = dir.file("client.h264");
    let client = run(
        ff::tool("ffmpeg")
            .args([
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-i",
                &format!("rtsp://{addr}/cam"),
            ])
            .args(["-c", "copy", "-frames:v", "90", "-f", "h264", "-y"])
            .arg(&out),
        Duration::from_secs(40),
    );
    assert!(client.status.success(), "{}", String::from_utf8_lossy(&client.stderr));
    let mut published = Vec::new();
    while let Ok(item) = sub.try_recv() {
        if let Item::Packet(p) = item {
            published.extend(slices(&p.data));
        }
    }
    let received = slices(&std::fs::read(&out).unwrap());
    assert!(received.len() >= 90, "{} units", received.len());
    let start = published
        .iter()
        .position(|u| *u == received[0])
        .expect("the client's first unit was published");
    assert_eq!(
        &published[start..start + received.len()],
        &received[..],
        "the units arrive as published"
    );
    let stats = server.shutdown();
    assert_eq!(stats.nodes.iter().find(|n| n.name == "cam").unwrap().bytes_copied, 0);
    assert!(
        stats.nodes.iter().all(|n| n.kind != "encode"),
        "nothing decodes or encodes"
    );
}

/// Sends `request` on `socket` and reads one response's head: its status.
fn status_of(socket: &mut TcpStream, request: &[u8]) -> Option<u16> {
    socket.write_all(request).ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).ok()? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let status = text.split(' ').nth(1)?.parse().ok();
    // Skip a body.
    if let Some(len) = text
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        let mut body = vec![0u8; len];
        socket.read_exact(&mut body).ok()?;
    }
    status
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

#[test]
fn bad_requests_get_clear_statuses_and_the_server_runs_on() {
    let dir = ff::Dir::new();
    let nodes = format!("{CAMERA}{}", encoder("h264", "cam", "h264"));
    let (server, addr) = serve(&dir.file("media"), &nodes, "");
    let url = format!("rtsp://{addr}");
    let mut s = connect(addr);
    let cases: Vec<(String, u16)> = vec![
        (format!("FOO {url}/h264 RTSP/1.0\r\nCSeq: 1\r\n\r\n"), 405),
        (format!("RECORD {url}/h264 RTSP/1.0\r\nCSeq: 2\r\n\r\n"), 405),
        (format!("DESCRIBE {url}/nope RTSP/1.0\r\nCSeq: 3\r\n\r\n"), 404),
        (format!("DESCRIBE {url}/cam RTSP/1.0\r\nCSeq: 4\r\n\r\n"), 415),
        (format!("PLAY {url}/h264 RTSP/1.0\r\nCSeq: 5\r\n\r\n"), 454),
        (
            format!("GET_PARAMETER {url}/h264 RTSP/1.0\r\nCSeq: 6\r\nSession: 1234\r\n\r\n"),
            454,
        ),
        (
            format!(
                "SETUP {url}/h264/trackID=0 RTSP/1.0\r\nCSeq: 7\r\nTransport: RTP/AVP;unicast;client_port=5000-5001;destination=10.9.8.7\r\n\r\n"
            ),
            461,
        ),
        (
            format!(
                "SETUP {url}/h264/trackID=0 RTSP/1.0\r\nCSeq: 8\r\nTransport: RTP/AVP;unicast;client_port=0-0\r\n\r\n"
            ),
            461,
        ),
        (format!("SETUP {url}/h264/trackID=0 RTSP/1.0\r\nCSeq: 9\r\n\r\n"), 461),
        (format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 10\r\n\r\n"), 200),
    ];
    for (request, want) in &cases {
        assert_eq!(status_of(&mut s, request.as_bytes()), Some(*want), "{request}");
    }
    // Interleaved data from the client is ignored; the connection goes on.
    s.write_all(b"$\x00\x00\x04abcd$\x07\x00\x00").unwrap();
    assert_eq!(
        status_of(&mut s, format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 11\r\n\r\n").as_bytes()),
        Some(200)
    );
    // Malformed requests: 400 (or 505), then the connection is closed.
    for (request, want) in [
        (&b"GARBAGE\r\n\r\n"[..], 400),
        (b"OPTIONS * HTTP/1.1\r\n\r\n", 505),
        (b"OPTIONS * RTSP/1.0\r\nContent-Length: x\r\n\r\n", 400),
    ] {
        let mut s = connect(addr);
        assert_eq!(status_of(&mut s, request), Some(want), "{request:?}");
        assert_eq!(s.read(&mut [0u8; 16]).unwrap_or(0), 0, "closed after {request:?}");
    }
    // A header of 1 MB: refused at 64 KiB, the connection closed.
    let mut s = connect(addr);
    let big = format!(
        "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let got = status_of(&mut s, big.as_bytes());
    assert!(got.is_none_or(|g| g == 400), "{got:?}");
    // The server still serves.
    let frames = ffmpeg_frames(&format!("{url}/h264"), "tcp", 30).unwrap();
    assert_contiguous(&frames, 30, "after the attacks");
    server.shutdown();
}

#[test]
fn users_sign_in_with_digest_or_basic_and_strangers_are_refused() {
    let dir = ff::Dir::new();
    let nodes = format!("{CAMERA}{}", encoder("h264", "cam", "h264"));
    let root = dir.file("media");
    let text = format!(
        "[server]\nmedia_root = \"{}\"\n[server.http]\nenabled = false\n[server.rtsp]\nlisten = \"127.0.0.1:0\"\n[[server.users]]\nname = \"admin\"\npassword = \"hunter2\"\n{nodes}",
        root.display()
    );
    let server = Server::start(Config::parse(&text, "auth.toml").unwrap()).unwrap();
    server.serve().unwrap();
    let addr = server.rtsp_address().unwrap();
    for url in [
        format!("rtsp://{addr}/h264"),
        format!("rtsp://admin:hunter3@{addr}/h264"),
        format!("rtsp://root:hunter2@{addr}/h264"),
    ] {
        let err = ffmpeg_frames(&url, "tcp", 10).unwrap_err();
        assert!(err.contains("401"), "{err}");
    }
    let frames = ffmpeg_frames(&format!("rtsp://admin:hunter2@{addr}/h264"), "tcp", 30).unwrap();
    assert_contiguous(&frames, 30, "digest");
    gst_frames(&format!("rtsp://admin:hunter2@{addr}/h264"), "tcp", "h264", 30).unwrap();
    let mut s = connect(addr);
    let basic = "YWRtaW46aHVudGVyMg=="; // admin:hunter2
    let request = format!("DESCRIBE rtsp://{addr}/h264 RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic {basic}\r\n\r\n");
    assert_eq!(status_of(&mut s, request.as_bytes()), Some(200));
    let request = format!("OPTIONS rtsp://{addr}/h264 RTSP/1.0\r\nCSeq: 2\r\n\r\n");
    assert_eq!(
        status_of(&mut s, request.as_bytes()),
        Some(401),
        "every request signs in"
    );
    let stats = server.shutdown();
    let json = serde_json::to_string(&stats).unwrap();
    assert!(!json.contains("hunter2"));
    assert!(!format!("{:?}", server.config()).contains("hunter2"));
}

/// A light RTSP client over TCP: DESCRIBE, SETUP (interleaved), PLAY.
fn play_tcp(addr: SocketAddr, stream: &str) -> TcpStream {
    let mut s = connect(addr);
    let url = format!("rtsp://{addr}/{stream}");
    assert_eq!(
        status_of(&mut s, format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes()),
        Some(200)
    );
    let setup =
        format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n");
    s.write_all(setup.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).unwrap();
    assert!(text.starts_with("RTSP/1.0 200"), "{text}");
    let session = text
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let play = format!("PLAY {url}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n");
    assert_eq!(status_of(&mut s, play.as_bytes()), Some(200));
    s
}

/// Reads interleaved frames until `pictures` RTP packets with the marker bit came.
fn read_pictures(s: &mut TcpStream, pictures: usize) -> std::io::Result<()> {
    let mut seen = 0;
    let mut head = [0u8; 4];
    while seen < pictures {
        s.read_exact(&mut head)?;
        assert_eq!(head[0], b'$');
        let mut body = vec![0u8; usize::from(u16::from_be_bytes([head[2], head[3]]))];
        s.read_exact(&mut body)?;
        if head[1] == 0 && body.len() > 12 && body[1] & 0x80 != 0 {
            seen += 1;
        }
    }
    Ok(())
}

#[test]
fn a_client_that_never_reads_is_dropped_and_slows_nobody_while_others_come_and_go() {
    let dir = ff::Dir::new();
    let nodes = format!("{CAMERA}{}", encoder("h264", "cam", "h264"));
    let (server, addr) = serve(&dir.file("media"), &nodes, "write_timeout = 2\n");
    // The stuck client: plays, then never reads a byte.
    let stuck = play_tcp(addr, "h264");
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let churn: Vec<_> = (0..10)
        .map(|_| {
            let (stop, rounds) = (Arc::clone(&stop), Arc::clone(&rounds));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    let mut s = play_tcp(addr, "h264");
                    read_pictures(&mut s, 5).unwrap();
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Meanwhile a steady viewer gets every picture of 6 s.
    let frames = ffmpeg_frames(&format!("rtsp://{addr}/h264"), "tcp", 180).unwrap();
    assert_contiguous(&frames, 180, "the steady viewer");
    stop.store(true, Ordering::Release);
    for c in churn {
        c.join().unwrap();
    }
    assert!(rounds.load(Ordering::Relaxed) >= 20, "{rounds:?}");
    // Its socket buffers fill, then it has the write timeout to read.
    let deadline = Instant::now() + Duration::from_secs(60);
    let stats = loop {
        let stats = server.stats().rtsp.unwrap();
        if stats.stuck >= 1 || Instant::now() > deadline {
            break stats;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    };
    assert!(stats.stuck >= 1, "the stuck client was dropped: {stats:?}");
    assert!(stats.clients.is_empty(), "{:?}", stats.clients);
    drop(stuck);
    server.shutdown();
}

#[test]
fn a_format_change_reaches_a_playing_client_and_new_descriptions() {
    let dir = ff::Dir::new();
    let nodes = format!(
        "{CAMERA}[[node]]\nname = \"big\"\nkind = \"testsrc\"\nwidth = 480\nheight = 360\n{}",
        encoder("h264", "cam", "h264")
    );
    let (server, addr) = serve(&dir.file("media"), &nodes, "");
    let describe = || {
        let mut s = connect(addr);
        s.write_all(format!("DESCRIBE rtsp://{addr}/h264 RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes())
            .unwrap();
        let mut text = vec![0u8; 4096];
        let n = s.read(&mut text).unwrap();
        String::from_utf8_lossy(&text[..n]).into_owned()
    };
    let before = describe();
    let url = format!("rtsp://{addr}/h264");
    // ffprobe: the size of every picture it decodes (ffmpeg would scale them to the first's).
    let client = std::thread::spawn(move || {
        run(
            ff::tool("ffprobe")
                .args(["-v", "error", "-rtsp_transport", "tcp", "-read_intervals", "%+#150"])
                .args(["-show_entries", "frame=width,height", "-of", "csv=p=0", &url]),
            Duration::from_secs(40),
        )
    });
    // Relink once the client is playing.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.stats().rtsp.unwrap().clients.iter().all(|c| c.packets == 0) {
        assert!(Instant::now() < deadline, "the client plays");
        std::thread::park_timeout(Duration::from_millis(50));
    }
    server.relink("h264", "big").unwrap();
    let out = client.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");
    let sizes: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    assert_eq!(sizes.len(), 150);
    assert_eq!(sizes.first().map(String::as_str), Some("320,240"));
    assert_eq!(sizes.last().map(String::as_str), Some("480,360"), "{sizes:?}");
    let after = describe();
    let sprop = |s: &str| s.lines().find(|l| l.contains("sprop")).map(str::to_owned);
    assert_ne!(sprop(&before), sprop(&after), "{before}\n{after}");
    server.shutdown();
}

#[test]
fn an_rtp_node_pushes_a_stream_ffmpeg_plays_from_its_sdp_file() {
    let dir = ff::Dir::new();
    let root = dir.file("media");
    // An even port nobody uses (RTCP goes to the next).
    let port = loop {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = s.local_addr().unwrap().port();
        if p.is_multiple_of(2) && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            break p;
        }
    };
    for codec in ["h264", "mjpeg"] {
        let nodes = format!(
            "{CAMERA}{}[[node]]\nname = \"push\"\nkind = \"rtp\"\nlisten_to = \"{codec}\"\ndestination = \"127.0.0.1:{port}\"\n",
            encoder(codec, "cam", codec)
        );
        let text = format!("[server]\nmedia_root = \"{}\"\n{nodes}", root.display());
        let server = Server::start(Config::parse(&text, "push.toml").unwrap()).unwrap();
        let sdp = root.join("sdp/push.sdp");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sdp.exists() {
            assert!(Instant::now() < deadline, "the SDP file is written");
            std::thread::park_timeout(Duration::from_millis(50));
        }
        let sdp_path = sdp.to_string_lossy();
        let frames = ffmpeg_decodes(&["-protocol_whitelist", "file,udp,rtp", "-i", &sdp_path], 60)
            .unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert_contiguous(&frames, 60, codec);
        server.shutdown();
        std::fs::remove_file(&sdp).unwrap();
    }
}

#[test]
fn receiver_reports_are_kept_per_client() {
    let dir = ff::Dir::new();
    let nodes = format!("{CAMERA}{}", encoder("h264", "cam", "h264"));
    let (server, addr) = serve(&dir.file("media"), &nodes, "");
    // GStreamer's RTP session answers sender reports over UDP.
    let url = format!("rtsp://{addr}/h264");
    let client = std::thread::spawn(move || gst_frames(&url, "udp", "h264", 300));
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let stats = server.stats().rtsp.unwrap();
        if let Some(r) = stats.clients.iter().find_map(|c| c.report) {
            break Some(r);
        }
        if Instant::now() > deadline || client.is_finished() {
            break None;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    };
    let report = report.expect("a receiver report arrives");
    // Nothing lost (a count below 0 means duplicates by the receiver's reckoning).
    assert!(report.cumulative_lost <= 0 && report.fraction_lost == 0, "{report:?}");
    client.join().unwrap().unwrap();
    server.shutdown();
}
