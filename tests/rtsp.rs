//! The `rtsp` node against real servers: GStreamer's `GstRtspServer`
//! (tests/rtsp/server.py: H.264, H.265 and MJPEG mounts, digest auth) over TCP
//! and UDP, VLC serving over UDP, a server killed and restarted, a server
//! frozen mid-stream, and servers that answer garbage or a malformed SDP.
//! scripts/test.sh installs the servers (Debian packages).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eyrie::config::Config;
use eyrie::hub::{Hub, Item, StreamFormat, SubscribeOptions, Subscription};
use eyrie::media::{Codec, MonotonicClock, Packet, bytes_copied};
use eyrie::mux::Container;
use eyrie::mux::write::mux_to_vec;
use eyrie::server::{NodeState, NodeStats, Server};

mod common;
use common::ff;
use common::gst::{GstServer, PASSWORD, Served, free_port};

fn rtsp_node(name: &str, url: &str, transport: &str, extra: &str) -> String {
    format!("[[node]]\nname = \"{name}\"\nkind = \"rtsp\"\nurl = \"{url}\"\ntransport = \"{transport}\"\n{extra}\n")
}

fn subscribe(hub: &Hub, name: &str) -> Subscription {
    hub.subscribe(name, SubscribeOptions::blocking(1000))
}

fn node<'a>(stats: &'a [NodeStats], name: &str) -> &'a NodeStats {
    stats.iter().find(|n| n.name == name).unwrap()
}

/// Packets of `sub` until `n` have come or `limit` passes.
fn packets(sub: &Subscription, n: usize, limit: Duration) -> Vec<Packet> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match sub.recv_timeout(left) {
            Ok(Item::Packet(p)) => got.push(p),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    got
}

/// `ffmpeg` decodes `data` (a container) without a single error; returns the frame count.
fn decoded_frames(data: &[u8], ext: &str) -> usize {
    let dir = ff::Dir::new();
    let path = dir.file(&format!("in.{ext}"));
    std::fs::write(&path, data).unwrap();
    ff::decode_strict(&path).unwrap();
    let out = ff::tool("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn each_codec_arrives_as_served_over_tcp_and_udp_with_digest_credentials() {
    let server = GstServer::start(
        free_port(),
        &[
            "--frames",
            "90",
            "--gop",
            "30",
            "--user",
            "admin",
            "--password",
            PASSWORD,
        ],
    );
    let cameras = [
        ("h264", "h264", "tcp", Codec::H264),
        ("h264u", "h264", "udp", Codec::H264),
        ("h265", "h265", "tcp", Codec::H265),
        ("mjpeg", "mjpeg", "udp", Codec::Mjpeg),
    ];
    let text: String = cameras
        .iter()
        .map(|(name, mount, transport, _)| rtsp_node(name, &server.url(mount, transport), transport, ""))
        .collect();
    let config = Config::parse(&text, "<test>").unwrap();
    let shown = serde_json::to_string(&config).unwrap();
    assert!(!shown.contains("cr:t") && shown.contains("admin:***@"), "{shown}");

    let hub = Hub::new();
    let subs: Vec<Subscription> = cameras.iter().map(|(name, ..)| subscribe(&hub, name)).collect();
    let copied = bytes_copied();
    let running = Server::start_with(config, hub, Arc::new(MonotonicClock::new())).unwrap();
    let mut served: Vec<Served> = (0..cameras.len()).map(|_| server.served()).collect();
    for ((name, mount, _, codec), sub) in cameras.iter().zip(&subs) {
        let i = served.iter().position(|s| s.mount == format!("/{mount}")).unwrap();
        let served = served.remove(i);
        let mut formats = Vec::new();
        let mut got = Vec::new();
        while let Ok(item) = sub.recv_timeout(Duration::from_secs(3)) {
            match item {
                Item::Packet(p) => got.push(p),
                Item::Format(StreamFormat::Coded(p)) => formats.push(p),
                other => panic!("{name}: unexpected {other:?}"),
            }
            if got.len() == served.frames {
                break;
            }
        }
        assert!(served.frames >= 80, "{served:?}");
        assert_eq!(got.len(), served.frames, "{name}: every picture served arrives");
        let keyframes: Vec<usize> = (0..got.len()).filter(|&i| got[i].keyframe).collect();
        assert_eq!(keyframes, served.keyframes, "{name}: keyframes where they were served");
        assert_eq!(formats.len(), 1, "{name}: one format");
        let p = &formats[0];
        assert_eq!((p.codec, p.width, p.height), (*codec, 320, 240), "{name}");
        for (i, w) in got.windows(2).enumerate() {
            assert_eq!(w[1].seq, w[0].seq + 1, "{name}: packet {i}");
            let step = w[1].pts - w[0].pts;
            assert!(
                (30_000_000..37_000_000).contains(&step),
                "{name}: packet {i} is {step} ns after the last"
            );
        }
        // Passthrough: the packets as received make a file that decodes whole.
        match codec {
            Codec::H264 => assert_eq!(
                decoded_frames(&mux_to_vec(Container::Mp4, &got).unwrap(), "mp4"),
                got.len()
            ),
            Codec::H265 => assert_eq!(
                decoded_frames(&mux_to_vec(Container::Mkv, &got).unwrap(), "mkv"),
                got.len()
            ),
            _ => {
                for p in &got {
                    let info = eyrie::codec::jpeg::parse(&p.data).unwrap();
                    assert_eq!((info.width, info.height), (320, 240), "{name}");
                    assert!(p.data.ends_with(&[0xff, 0xd9]), "{name}: a whole JPEG");
                }
            }
        }
    }
    drop(subs);
    let stats = running.shutdown();
    assert_eq!(bytes_copied(), copied, "packets reach subscribers without a copy");
    for (name, ..) in &cameras {
        let n = node(&stats.nodes, name);
        assert_eq!((n.frames_dropped, n.reconnects, n.bytes_copied), (0, 0, 0), "{n:?}");
    }
}

/// Starts `config` on a fresh hub, subscribed to `cam`.
fn start(text: &str) -> (Server, Subscription) {
    let hub = Hub::new();
    let sub = subscribe(&hub, "cam");
    let config = Config::parse(text, "<test>").unwrap();
    let server = Server::start_with(config, hub, Arc::new(MonotonicClock::new())).unwrap();
    (server, sub)
}

/// Waits until `cam` is `Reconnecting`; returns its error.
fn wait_reconnecting(server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let stats = server.stats();
        let cam = node(&stats.nodes, "cam");
        if cam.state == NodeState::Reconnecting {
            return cam.error.clone().unwrap();
        }
        assert!(Instant::now() < deadline, "never reconnecting: {cam:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_and_restarted_server_streams_again_within_5_s() {
    let port = free_port();
    let server = GstServer::start(port, &[]);
    let (running, sub) = start(&rtsp_node("cam", &server.url("h264", "tcp"), "tcp", ""));
    let before = packets(&sub, 30, Duration::from_secs(20));
    assert_eq!(before.len(), 30);
    drop(server);
    let error = wait_reconnecting(&running);
    assert!(
        error.contains(&format!("127.0.0.1:{port}")) && !error.contains("cr:t"),
        "{error}"
    );
    // Down long enough for the backoff to grow.
    std::thread::sleep(Duration::from_secs(3));
    while sub.try_recv().is_ok() {}
    let server = GstServer::start(port, &[]);
    let restarted = Instant::now();
    let after = packets(&sub, 1, Duration::from_secs(5));
    let back = restarted.elapsed();
    assert_eq!(after.len(), 1, "no picture within 5 s of the restart");
    assert!(after[0].keyframe, "a new session starts at a keyframe");
    assert!(
        after[0].pts > before.last().unwrap().pts,
        "time goes on across sessions"
    );
    eprintln!("frames again {:.2} s after the restart", back.as_secs_f64());
    // The node reports Running once a frame of the new session is out; a
    // connection attempt already in flight at the restart may report its
    // refusal just after: give the state a moment to settle.
    let settle = Instant::now();
    let cam = loop {
        let stats = running.stats();
        let cam = node(&stats.nodes, "cam").clone();
        if cam.state == NodeState::Running || settle.elapsed() > Duration::from_secs(3) {
            break cam;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(cam.reconnects >= 1, "{cam:?}");
    assert_eq!((cam.state, cam.error.as_deref()), (NodeState::Running, None));
    drop(sub);
    running.shutdown();
    drop(server);
}

#[test]
fn a_frozen_server_is_a_stall_and_the_stream_resumes_when_it_thaws() {
    let server = GstServer::start(free_port(), &[]);
    let (running, sub) = start(&rtsp_node("cam", &server.url("h264", "tcp"), "tcp", "stall_secs = 1"));
    assert_eq!(packets(&sub, 10, Duration::from_secs(20)).len(), 10);
    server.signal("-STOP");
    let error = wait_reconnecting(&running);
    assert!(error.contains("stalled: no picture for 1.0 s"), "{error}");
    std::thread::sleep(Duration::from_millis(1500));
    server.signal("-CONT");
    while sub.try_recv().is_ok() {}
    assert_eq!(
        packets(&sub, 10, Duration::from_secs(10)).len(),
        10,
        "pictures again after the thaw"
    );
    drop(sub);
    let stats = running.shutdown();
    assert!(node(&stats.nodes, "cam").reconnects >= 1);
}

#[test]
fn vlc_serving_over_udp() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.ts");
    let clip_path = clip.to_str().unwrap();
    #[rustfmt::skip]
    ff::ffmpeg(&[
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "10",
        "-c:v", "libx264", "-g", "30", "-bf", "0", "-pix_fmt", "yuv420p", clip_path,
    ]);
    // VLC refuses to run as root: root runs it as nobody, who must read the clip.
    let mode = |p: &std::path::Path, m| std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m));
    mode(dir.path(), 0o755).unwrap();
    mode(&clip, 0o644).unwrap();
    let port = free_port();
    // SAFETY: geteuid has no preconditions.
    let mut vlc = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", "cvlc"]);
        c
    } else {
        Command::new("cvlc")
    };
    let mut vlc = vlc
        .args(["--quiet", "--loop"])
        .arg(&clip)
        .args([
            "--sout",
            &format!("#rtp{{sdp=rtsp://127.0.0.1:{port}/clip}}"),
            "--sout-keep",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cvlc runs (scripts/test.sh installs vlc-bin)");
    let text = rtsp_node("cam", &format!("rtsp://127.0.0.1:{port}/clip"), "udp", "");
    let (running, sub) = start(&text);
    let got = packets(&sub, 90, Duration::from_secs(30));
    drop(sub);
    let stats = running.shutdown();
    let _ = Command::new("kill").arg(vlc.id().to_string()).status();
    let _ = vlc.wait();
    assert_eq!(got.len(), 90, "{:?}", node(&stats.nodes, "cam"));
    assert!(got[0].keyframe, "joining mid-stream starts at a keyframe");
    let keyframes: Vec<u64> = got.iter().filter(|p| p.keyframe).map(|p| p.seq - got[0].seq).collect();
    assert_eq!(keyframes, [0, 30, 60], "the clip's 30-picture GOPs");
    assert_eq!(got[0].params.codec, Codec::H264);
    assert_eq!(decoded_frames(&mux_to_vec(Container::Mp4, &got).unwrap(), "mp4"), 90);
}

/// A TCP server on 127.0.0.1 that answers each request with `reply(cseq)`.
fn fake_server(reply: fn(&str) -> Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let cseq = request
                        .lines()
                        .find_map(|l| l.strip_prefix("CSeq: "))
                        .unwrap_or("1")
                        .trim()
                        .to_owned();
                    if conn.write_all(&reply(&cseq)).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A `200 OK` answer to `DESCRIBE` carrying `sdp`.
fn describe_reply(cseq: &str, sdp: &str) -> Vec<u8> {
    format!(
        "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

#[test]
fn bad_servers_fail_with_clear_errors_naming_the_camera_while_the_rest_runs() {
    let garbage = fake_server(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\x00\xff\xfe".to_vec());
    let bad_sdp = fake_server(|cseq| describe_reply(cseq, "v=0\r\nthis is not SDP\r\nm=video banana\r\n"));
    let audio_only = fake_server(|cseq| {
        describe_reply(
            cseq,
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        )
    });
    let mut text = String::from("[[node]]\nname = \"synthetic\"\nkind = \"testsrc\"\nwidth = 320\nheight = 240\n");
    for (name, port) in [("garbage", garbage), ("bad_sdp", bad_sdp), ("audio_only", audio_only)] {
        text += &rtsp_node(name, &format!("rtsp://u:hunter2@127.0.0.1:{port}/cam"), "tcp", "");
    }
    let running = Server::start_with(
        Config::parse(&text, "<test>").unwrap(),
        Hub::new(),
        Arc::new(MonotonicClock::new()),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let stats = running.stats();
    running.shutdown();
    let error = |name| {
        let n = node(&stats.nodes, name);
        assert!(n.reconnects >= 1, "{n:?}");
        let e = n.error.clone().unwrap_or_default();
        assert!(!e.contains("hunter2"), "{e}");
        e
    };
    let e = error("garbage");
    assert!(e.contains("DESCRIBE") && e.contains("u:***@127.0.0.1"), "{e}");
    let e = error("bad_sdp");
    assert!(e.contains("SDP"), "{e}");
    let e = error("audio_only");
    assert!(
        e.contains("no H.264, H.265 or JPEG video (its streams: audio/pcmu)"),
        "{e}"
    );
    let synthetic = node(&stats.nodes, "synthetic");
    assert!(
        synthetic.frames_out >= 40,
        "the other camera kept running: {synthetic:?}"
    );
}

#[test]
fn eyrie_run_takes_camera_uris_and_never_logs_a_password() {
    let server = GstServer::start(free_port(), &["--user", "admin", "--password", PASSWORD]);
    let dir = tempfile::tempdir().unwrap();
    let stats_path = dir.path().join("stats.json");
    let wrong = format!("rtsp://admin:hunter2@127.0.0.1:{}/h264", server.port);
    let out = Command::new(env!("CARGO_BIN_EXE_eyrie"))
        .args(["run", "--for", "3", "--stats"])
        .env("EYRIE_RTSP", "127.0.0.1:0")
        .env("EYRIE_HTTP", "127.0.0.1:0")
        .arg(&stats_path)
        .args(["--camera", &server.url("h264", "tcp")])
        .args(["--camera", "testsrc://?size=320x240&fps=15&seed=7"])
        .args(["--camera", &wrong])
        .env("EYRIE_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("hunter2") && !log.contains("cr:t"), "{log}");
    assert!(log.contains("admin:***@127.0.0.1") && log.contains("401"), "{log}");
    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats_path).unwrap()).unwrap();
    let nodes = stats["nodes"].as_array().unwrap();
    let get = |name: &str| nodes.iter().find(|n| n["name"] == name).unwrap();
    assert_eq!(get("cam0")["kind"], "rtsp");
    assert!(get("cam0")["frames_out"].as_u64().unwrap() >= 30, "{:?}", get("cam0"));
    assert!(
        get("in0")["frames_out"].as_u64().unwrap() >= 30,
        "the relay gets the camera's packets"
    );
    assert!(get("cam1")["frames_out"].as_u64().unwrap() >= 20, "{:?}", get("cam1"));
    assert_eq!(get("cam2")["frames_out"], 0);
    assert!(get("cam2")["reconnects"].as_u64().unwrap() >= 1);
}

/// A camera's errors say what kind of failure each is: wrong credentials, no
/// one listening, no answer.
#[test]
fn camera_errors_tell_authentication_from_refusal_from_timeout() {
    let camera = GstServer::start(free_port(), &["--user", "admin", "--password", PASSWORD]);
    let wrong = camera
        .url("h264", "tcp")
        .replace(&format!("admin:{}", "s%40cr%3At%2Fpw"), "admin:wrong");
    assert!(wrong.contains("admin:wrong@"), "{wrong}");
    let closed = free_port();
    // Accepts the connection and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let mut text = String::new();
    for (name, url) in [
        ("auth", wrong),
        ("refused", format!("rtsp://127.0.0.1:{closed}/cam")),
        ("silent", format!("rtsp://127.0.0.1:{silent_port}/cam")),
    ] {
        text += &rtsp_node(name, &url, "tcp", "stall_secs = 1.0\nretry_max_secs = 1.0");
    }
    let server = Server::start(Config::parse(&text, "<test>").unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let errors = loop {
        let stats = server.stats();
        let errors: Vec<String> = ["auth", "refused", "silent"]
            .iter()
            .map(|n| node(&stats.nodes, n).error.clone().unwrap_or_default())
            .collect();
        if errors.iter().all(|e| !e.is_empty()) || Instant::now() > deadline {
            break errors;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    server.shutdown();
    drop(silent);
    assert!(
        errors[0].contains("authentication failed") && errors[0].contains("401"),
        "{}",
        errors[0]
    );
    assert!(!errors[0].contains("wrong"), "no password in an error: {}", errors[0]);
    assert!(
        errors[1].contains("cannot connect") && errors[1].contains("refused"),
        "{}",
        errors[1]
    );
    assert!(errors[2].contains("timed out: no answer for 1.0 s"), "{}", errors[2]);
}
