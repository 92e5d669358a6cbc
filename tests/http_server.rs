//! The HTTP listener against real clients: FFmpeg reads the LL-HLS (fMP4)
//! and MPEG-TS playlists, a WebSocket client takes the fMP4 stream with its
//! metadata, raw sockets read MJPEG and snapshots and send what an attacker
//! would (bad paths and queries, huge headers, floods, stuck readers, wrong
//! credentials).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::ff::{Dir, count_frames, decode_strict, tool};
use common::http::{Response, exchange, get, json};
use eyrie::config::Config;
use eyrie::server::Server;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const CAMERA: &str = "[[node]]\nname = \"cam\"\nkind = \"testsrc\"\nwidth = 320\nheight = 240\n";
const ENCODE: &str = "[[node]]\nname = \"h264\"\nkind = \"encode\"\nlisten_to = \"cam\"\nkeyint = 30\n";

/// A server of `nodes` with HTTP on a free port and `http` keys added.
fn serve(root: &Path, http: &str, extra: &str) -> (Server, SocketAddr) {
    let text = format!(
        "[server]\nmedia_root = \"{}\"\n{extra}\n[server.rtsp]\nenabled = false\n[server.http]\nlisten = \"127.0.0.1:0\"\n{http}\n{CAMERA}{ENCODE}",
        root.display()
    );
    let config = Config::parse(&text, "http-server.toml").unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(config).unwrap();
    server.serve().unwrap();
    let addr = server.http_address().unwrap();
    (server, addr)
}

/// Waits (up to 20 s) until `what` is true of the server's HTTP stats.
fn until(server: &Server, what: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = serde_json::to_value(server.stats()).unwrap();
        if what(&stats["http"]) {
            return stats;
        }
        assert!(Instant::now() < deadline, "stats never got there: {}", stats["http"]);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ffmpeg_reads_the_fmp4_and_ts_playlists_and_live_mp4_with_a_clean_decode_of_every_frame() {
    let dir = Dir::new();
    let (server, addr) = serve(&dir.file("media"), "[server.http.hls]\nsegment_ms = 1000\n", "");
    // The fragmenting starts with the first request; three whole segments
    // give FFmpeg's live start (three from the end) something to stand on.
    assert_eq!(get(addr, "/h264/index.m3u8").status, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(addr, "/h264/ts.m3u8").text().matches("#EXTINF").count() < 3 {
        assert!(Instant::now() < deadline, "no TS segments");
        std::thread::sleep(Duration::from_millis(100));
    }
    let multivariant = get(addr, "/h264/index.m3u8").text();
    assert!(
        multivariant.contains("CODECS=\"avc1.") && multivariant.contains("RESOLUTION=320x240"),
        "{multivariant}"
    );
    for (path, seconds) in [("index.m3u8", 3), ("ts.m3u8", 3), ("live.mp4", 2)] {
        // FFmpeg copies `seconds` of it; every picture must decode, give or
        // take the one it cuts at.
        let out = dir.file(&format!("{path}.mkv"));
        let status = tool("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(format!("http://{addr}/h264/{path}"))
            .args(["-t", &seconds.to_string(), "-c", "copy"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "{path}");
        decode_strict(&out).unwrap_or_else(|e| panic!("{path}: {e}"));
        let frames = count_frames(&out);
        let wanted = 30 * seconds;
        assert!((wanted - 2..=wanted + 2).contains(&frames), "{path}: {frames} frames");
    }
    server.shutdown();
}

#[test]
fn a_websocket_client_gets_the_init_then_each_picture_with_its_metadata_in_order() {
    let dir = Dir::new();
    let (server, addr) = serve(&dir.file("media"), "", "");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (init, fragments, metas) = runtime.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/h264/ws"))
            .await
            .unwrap();
        let first = ws.next().await.unwrap().unwrap();
        let hello: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
        assert_eq!(hello["type"], "init");
        assert!(
            hello["mime"].as_str().unwrap().starts_with("video/mp4; codecs=\"avc1."),
            "{hello}"
        );
        let Message::Binary(init) = ws.next().await.unwrap().unwrap() else {
            panic!("no init segment")
        };
        assert_eq!(&init[4..8], b"ftyp");
        let (mut fragments, mut metas) = (Vec::new(), Vec::new());
        let mut expect_meta = true;
        while fragments.len() < 60 {
            match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => {
                    assert!(expect_meta, "two metadata messages for one picture");
                    let m: Value = serde_json::from_str(&t).unwrap();
                    assert_eq!(m["type"], "meta", "{m}");
                    metas.push(m);
                    expect_meta = false;
                }
                Message::Binary(b) => {
                    assert!(!expect_meta, "a picture without its metadata before it");
                    assert_eq!(&b[4..8], b"moof");
                    fragments.push(b);
                    expect_meta = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        ws.send(Message::Close(None)).await.unwrap();
        (init, fragments, metas)
    });
    // The synthetic camera's true objects ride along, in the picture's pixels.
    assert!(metas.iter().all(|m| m["width"] == 320 && m["height"] == 240));
    assert!(metas.iter().any(|m| !m["truth"].as_array().unwrap().is_empty()));
    let pts: Vec<f64> = metas.iter().map(|m| m["pts"].as_f64().unwrap()).collect();
    // In order, on the camera's 30 fps grid (a picture the encoder had to
    // skip under load leaves a gap of whole frames, never a disorder).
    for w in pts.windows(2) {
        let frames = (w[1] - w[0]) * 30.0;
        assert!(
            frames > 0.5 && (frames - frames.round()).abs() < 0.06,
            "pts {} then {}",
            w[0],
            w[1]
        );
    }
    // What was received is a playable fMP4 with every picture.
    let file = dir.file("ws.mp4");
    let mut bytes = init.to_vec();
    for f in &fragments {
        bytes.extend_from_slice(f);
    }
    std::fs::write(&file, bytes).unwrap();
    decode_strict(&file).unwrap();
    assert_eq!(count_frames(&file), 60);
    server.shutdown();
}

/// Reads `n` parts of an MJPEG stream: their JPEGs.
fn mjpeg_parts(addr: SocketAddr, path: &str, n: usize) -> Vec<Vec<u8>> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    let find = |all: &[u8], from: usize, what: &[u8]| {
        all[from..]
            .windows(what.len())
            .position(|w| w == what)
            .map(|p| p + from)
    };
    let mut parts = Vec::new();
    let mut at = 0;
    while parts.len() < n {
        let got = s.read(&mut buf).unwrap();
        assert!(got > 0, "the stream ended");
        all.extend_from_slice(&buf[..got]);
        // Chunked framing interleaves; the JPEGs are found by their markers.
        while let Some(start) = find(&all, at, &[0xFF, 0xD8, 0xFF]) {
            let Some(end) = find(&all, start, &[0xFF, 0xD9]) else {
                break;
            };
            parts.push(all[start..end + 2].to_vec());
            at = end + 2;
        }
    }
    parts
}

#[test]
fn mjpeg_is_encoded_once_for_every_viewer_and_never_without_one() {
    let dir = Dir::new();
    let (server, addr) = serve(&dir.file("media"), "mjpeg_fps = 15\n", "");
    let stats = until(&server, |h| h.is_object());
    assert!(
        stats["http"]["mjpeg"].as_array().unwrap().is_empty(),
        "nothing encodes before a viewer"
    );
    let started = Instant::now();
    let viewers: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || mjpeg_parts(addr, "/cam/mjpeg", 20)))
        .collect();
    for v in viewers {
        let parts = v.join().unwrap();
        for p in &parts {
            let mut d = zune_jpeg::JpegDecoder::new(zune_jpeg::zune_core::bytestream::ZCursor::new(p));
            d.decode().expect("a valid JPEG");
            assert_eq!(d.dimensions(), Some((320, 240)));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let stats = serde_json::to_value(server.stats()).unwrap();
    let made = stats["http"]["mjpeg"][0]["pictures"].as_u64().unwrap() as f64;
    // Three viewers, one encoder at no more than the rate.
    assert!(made <= 15.0 * seconds + 2.0, "{made} JPEGs in {seconds:.1} s");
    assert!(made >= 20.0, "{made}");
    // A coded stream is no MJPEG source.
    let r = get(addr, "/h264/mjpeg");
    assert_eq!(r.status, 415, "{}", r.text());
    server.shutdown();
}

#[test]
fn concurrent_snapshots_of_a_coded_stream_share_one_decoded_keyframe() {
    let dir = Dir::new();
    let (server, addr) = serve(&dir.file("media"), "", "");
    let before = eyrie::encode::decoders_opened();
    let takers: Vec<_> = (0..6)
        .map(|_| std::thread::spawn(move || get(addr, "/h264/snapshot.jpg")))
        .collect();
    let shots: Vec<Response> = takers.into_iter().map(|t| t.join().unwrap()).collect();
    for s in &shots {
        assert_eq!(s.status, 200, "{}", s.text());
        assert!(s.head.to_ascii_lowercase().contains("content-type: image/jpeg"));
        assert_eq!(&s.body[..2], &[0xFF, 0xD8]);
    }
    let distinct: std::collections::HashSet<&Vec<u8>> = shots.iter().map(|s| &s.body).collect();
    let decodes = eyrie::encode::decoders_opened() - before;
    assert_eq!(distinct.len() as u64, decodes, "one picture per decode");
    assert!(decodes < 6, "{decodes} decodes for 6 concurrent requests");
    let raw = get(addr, "/cam/snapshot.jpg");
    assert_eq!(raw.status, 200);
    server.shutdown();
}

#[test]
fn bad_requests_get_clear_answers_and_never_a_file() {
    let dir = Dir::new();
    let (server, addr) = serve(&dir.file("media"), "max_header_bytes = 8192\n", "");
    assert_eq!(get(addr, "/h264/index.m3u8").status, 200);
    for (path, status) in [
        ("/../../etc/passwd", 404),
        ("/h264/seg/..%2F..%2Fetc%2Fpasswd", 404),
        ("/h264/seg/-1.ts", 404),
        ("/h264/part/1.m4s", 404),
        ("/h264/init/99.mp4", 404),
        ("/nosuch/index.m3u8", 404),
        ("/nosuch/mjpeg", 404),
        ("/h264/media.m3u8?_HLS_msn=abc", 400),
        ("/h264/media.m3u8?_HLS_part=1", 400),
        ("/h264/media.m3u8?_HLS_msn=1&_HLS_msn=2", 400),
        ("/h264/media.m3u8?_HLS_msn=99999999999999", 400),
        ("/h264/part/99999999999999.0.m4s", 400),
        ("/h264/part/1.0.m4s", 404),
        ("/h264/seg/1.m4s", 404),
        ("/cam/ws", 400),
        ("/cam/index.m3u8", 415),
        ("/api/nothing", 404),
    ] {
        let r = get(addr, path);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(!r.text().contains("root:"), "{path}");
    }
    // The answers say what is wrong.
    assert!(get(addr, "/nosuch/index.m3u8").text().contains("nosuch"));
    assert!(
        get(addr, "/h264/media.m3u8?_HLS_msn=abc")
            .text()
            .contains("_HLS_msn=abc")
    );
    let raw_ws = exchange(
        addr,
        b"GET /cam/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(raw_ws.status, 415);
    assert!(raw_ws.text().contains("raw"), "{}", raw_ws.text());
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(exchange(addr, huge.as_bytes()).status, 431);
    let post = exchange(
        addr,
        b"POST /api/v1/streams HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    assert_eq!(post.status, 405);
    let garbage = exchange(addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n");
    assert_eq!(garbage.status, 400);
    // Another site's page: its WebSocket (Origin) and its rebound name (Host) are refused.
    let foreign = exchange(
        addr,
        b"GET /h264/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(foreign.status, 403, "{}", foreign.text());
    let rebound = exchange(
        addr,
        b"GET /api/v1/streams HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(rebound.status, 403, "{}", rebound.text());
    assert_eq!(
        exchange(
            addr,
            b"GET /api/v1/streams HTTP/1.1\r\nHost: localhost:1\r\nConnection: close\r\n\r\n"
        )
        .status,
        200
    );
    server.shutdown();
}

#[test]
fn a_blocking_reload_waits_for_its_part_and_a_preload_hint_is_held_then_served() {
    let dir = Dir::new();
    let (server, addr) = serve(&dir.file("media"), "", "");
    let playlist = get(addr, "/h264/media.m3u8").text();
    let hint = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .unwrap_or_else(|| panic!("no hint in {playlist}"))
        .trim_end_matches('"')
        .to_owned();
    let (msn, part) = hint
        .strip_prefix("part/")
        .and_then(|h| h.strip_suffix(".m4s"))
        .and_then(|h| h.split_once('.'))
        .unwrap();
    let (msn, part) = (msn.to_owned(), part.to_owned());
    // Both ask for what does not exist yet: each is held until it does.
    let blocking = std::thread::spawn(move || get(addr, &format!("/h264/media.m3u8?_HLS_msn={msn}&_HLS_part={part}")));
    let held = get(addr, &format!("/h264/{hint}"));
    assert_eq!(held.status, 200, "{}", held.text());
    assert_eq!(&held.body[4..8], b"moof");
    let reloaded = blocking.join().unwrap();
    assert_eq!(reloaded.status, 200);
    assert!(
        reloaded.text().contains(&format!("URI=\"{hint}\"")),
        "{}",
        reloaded.text()
    );
    server.shutdown();
}

#[test]
fn every_route_needs_a_user_once_users_exist() {
    let dir = Dir::new();
    let users = "[[server.users]]\nname = \"admin\"\npassword = \"hunter2\"\n";
    let (server, addr) = serve(&dir.file("media"), "", users);
    for path in [
        "/",
        "/app.js",
        "/api/v1/streams",
        "/h264/ws",
        "/h264/index.m3u8",
        "/cam/mjpeg",
        "/cam/snapshot.jpg",
        "/nosuch",
    ] {
        let r = get(addr, path);
        assert_eq!(r.status, 401, "{path}");
        assert!(
            r.head.contains("WWW-Authenticate: Basic")
                || r.head.to_ascii_lowercase().contains("www-authenticate: basic")
        );
    }
    let with = |credentials: &str, path: &str| {
        let token = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, credentials);
        exchange(
            addr,
            format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {token}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    let wrong = with("admin:hunter3", "/api/v1/streams");
    assert_eq!(wrong.status, 401);
    assert!(!wrong.text().contains("hunter"));
    let right = with("admin:hunter2", "/api/v1/streams");
    assert_eq!(right.status, 200);
    assert!(
        json(&right)["streams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "h264")
    );
    server.shutdown();
}

/// A connection with a small receive buffer: a server writing to it stalls soon.
fn small_window(addr: SocketAddr) -> TcpStream {
    use std::os::fd::AsRawFd;
    let s = TcpStream::connect(addr).unwrap();
    let size: libc::c_int = 4096;
    // SAFETY: a valid socket and an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    s
}

#[test]
fn connections_over_the_limit_get_503_and_stuck_readers_are_dropped() {
    let dir = Dir::new();
    let (server, addr) = serve(&dir.file("media"), "max_connections = 6\nwrite_timeout = 1\n", "");
    // Stuck viewers: they ask and never read a byte.
    let mut stuck = Vec::new();
    for path in ["/h264/live.mp4", "/cam/mjpeg", "/h264/live.mp4"] {
        let mut s = small_window(addr);
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        stuck.push(s);
    }
    let mut ws = small_window(addr);
    write!(
        ws,
        "GET /h264/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    stuck.push(ws);
    // Two idle connections fill the six slots.
    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    until(&server, |h| h["open"] == 6);
    let over = get(addr, "/api/v1/streams");
    assert_eq!(over.status, 503, "{}", over.text());
    assert!(over.text().contains("too many connections"));
    // Within the write timeout of their send buffers filling, the stuck ones are gone.
    let stats = until(&server, |h| h["stalled"].as_u64().unwrap() >= 4);
    assert!(stats["http"]["refused"].as_u64().unwrap() >= 1);
    drop(idle);
    drop(stuck);
    until(&server, |h| h["open"] == 0);
    assert_eq!(get(addr, "/api/v1/streams").status, 200);
    server.shutdown();
}

#[test]
fn a_recorded_range_downloads_as_one_mp4_across_files_from_the_keyframe_before_it() {
    let dir = Dir::new();
    let rec = "[[node]]\nname = \"rec\"\nkind = \"record\"\nlisten_to = \"h264\"\nsegment = 2\n";
    let text = format!(
        "[server]\nmedia_root = \"{}\"\n[server.rtsp]\nenabled = false\n[server.http]\nlisten = \"127.0.0.1:0\"\n{CAMERA}{ENCODE}{rec}",
        dir.file("media").display()
    );
    let server = Server::start(Config::parse(&text, "clip.toml").unwrap()).unwrap();
    let events = server.events();
    server.serve().unwrap();
    let addr = server.http_address().unwrap();
    let mut closed = 0;
    while closed < 2 {
        if let eyrie::events::Event::Closed(_) = events.recv_timeout(Duration::from_secs(20)).expect("a file closes") {
            closed += 1;
        }
    }
    let entries = server.recordings(None).unwrap();
    let (first, second) = (&entries[0], &entries[1]);
    let secs = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    // From the middle of the first file to the middle of the second.
    let (from, to) = (secs(first.start) + 1.3, secs(second.start) + 1.0);
    let url = format!("/recordings/{}/{from:.3}/{to:.3}.mp4", first.camera);
    let r = get(addr, &url);
    assert_eq!(r.status, 200, "{url}: {}", r.text());
    let file = dir.file("range.mp4");
    std::fs::write(&file, &r.body).unwrap();
    decode_strict(&file).unwrap();
    // It starts at the keyframe at or before `from` (one a second), ends before `to`.
    let frames = count_frames(&file) as f64;
    let wanted = (to - from) * 30.0;
    assert!(
        frames >= wanted - 2.0 && frames <= wanted + 31.0,
        "{frames} frames for {wanted}"
    );
    for (path, status) in [
        (format!("/recordings/{}/946684800/946684810.mp4", first.camera), 404),
        (format!("/recordings/{}/{to:.3}/{from:.3}.mp4", first.camera), 400),
        (format!("/recordings/{}/yesterday/{to:.3}.mp4", first.camera), 400),
        (format!("/recordings/{}/0/999999.mp4", first.camera), 400),
        ("/recordings/nosuch/1/2.mp4".to_owned(), 404),
        (format!("/recordings/{}/1/2.mkv", first.camera), 404),
    ] {
        assert_eq!(get(addr, &path).status, status, "{path}");
    }
    server.shutdown();
}
