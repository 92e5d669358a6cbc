//! The control API over real HTTP: a pipeline built, watched (RTSP and
//! HLS through FFmpeg), relinked, re-tuned, clipped and torn down through
//! `/api/v1`; bad input refused with the key named and nothing changed;
//! every endpoint and protocol against every kind of caller (printed as a
//! table); `/metrics` judged by `promtool`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use common::ff::{Dir, decode_strict, tool};
use common::http::{Response, json, request};
use eyrie::config::Config;
use eyrie::hub::{Item, SubscribeOptions};
use eyrie::serve::auth::{Authenticator, Role, User, hash_password};
use eyrie::server::{Principal, Protocol, Server};
use serde_json::{Value, json};

const CAMERA: &str = "[[node]]\nname = \"cam\"\nkind = \"testsrc\"\nwidth = 320\nheight = 240\n";

/// A server with `extra` server keys and `nodes`, RTSP and HTTP on free ports.
fn serve(root: &Path, extra: &str, nodes: &str) -> Server {
    let text = format!(
        "[server]\nmedia_root = \"{}\"\n{extra}\n[server.rtsp]\nlisten = \"127.0.0.1:0\"\n[server.http]\nlisten = \"127.0.0.1:0\"\n[server.http.hls]\nsegment_ms = 1000\n{nodes}",
        root.display()
    );
    let config = Config::parse(&text, "control-api.toml").unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(config).unwrap();
    server.serve().unwrap();
    server
}

fn call(addr: SocketAddr, method: &str, path: &str, body: Value) -> Response {
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    request(addr, method, path, &["Content-Type: application/json"], &body)
}

/// Bytes of `packets` packets of `stream` after the next 30 (a change lands and the rate controller settles).
fn bytes_of(server: &Server, stream: &str, packets: usize) -> usize {
    let reader = server
        .open_reader(
            &Principal::Embedded,
            stream,
            Protocol::Embedded,
            SubscribeOptions::leaky(256),
        )
        .unwrap();
    let mut total = 0;
    let mut seen = 0;
    while seen < packets + 30 {
        match reader.recv_timeout(Duration::from_secs(10)) {
            Ok(Item::Packet(p)) => {
                seen += 1;
                if seen > 30 {
                    total += p.data.len();
                }
            }
            Ok(_) => {}
            Err(e) => panic!("{stream}: {e:?}"),
        }
    }
    total
}

/// Reads Server-Sent Events from `stream` until one satisfies `want`.
fn sse_until(stream: &mut TcpStream, want: impl Fn(&str, &Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "no such event in: {seen}");
        let n = stream.read(&mut buf).unwrap_or(0);
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        let mut name = "";
        for line in seen.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = n;
            } else if let Some(data) = line.strip_prefix("data: ")
                && let Ok(value) = serde_json::from_str::<Value>(data)
                && want(name, &value)
            {
                return value;
            }
        }
    }
}

fn download(addr: SocketAddr, id: &Value, to: &Path) {
    let r = call(addr, "GET", &format!("/api/v1/recordings/{id}"), Value::Null);
    assert_eq!(r.status, 200, "{}", r.text());
    std::fs::write(to, &r.body).unwrap();
}

#[test]
fn a_pipeline_is_built_watched_relinked_retuned_clipped_and_torn_down_through_the_api() {
    let dir = Dir::new();
    let root = dir.file("media");
    let config_file = dir.file("eyrie.toml");
    let server = serve(&root, "", CAMERA);
    let addr = server.http_address().unwrap();

    // Create an encoder, a recorder and a smart-record cache.
    for node in [
        json!({"name": "enc", "kind": "encode", "listen_to": "cam", "keyint": 30, "bitrate": 150_000}),
        json!({"name": "rec", "kind": "record", "listen_to": "enc", "segment": 60}),
        json!({"name": "sr", "kind": "smartrecord", "listen_to": "enc"}),
        json!({"name": "cam2", "kind": "testsrc", "width": 320, "height": 240, "seed": 9}),
    ] {
        let r = call(addr, "POST", "/api/v1/nodes", node.clone());
        assert_eq!(r.status, 201, "{node}: {}", r.text());
        assert_eq!(json(&r)["name"], node["name"]);
    }
    let nodes = json(&call(addr, "GET", "/api/v1/nodes", Value::Null));
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    let enc = json(&call(addr, "GET", "/api/v1/nodes/enc", Value::Null));
    assert_eq!(enc["properties"]["bitrate"], 150_000, "{enc}");

    // Watch it: RTSP and HLS, each read by FFmpeg and decoded strictly
    // (once its first packet has said what it is).
    bytes_of(&server, "enc", 1);
    let streams = json(&call(addr, "GET", "/api/v1/streams", Value::Null));
    let enc_stream = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "enc")
        .unwrap_or_else(|| panic!("{streams}"));
    let rtsp = enc_stream["urls"]["rtsp"]
        .as_str()
        .unwrap_or_else(|| panic!("{enc_stream}"))
        .to_owned();
    // HLS: three whole segments first (FFmpeg starts three from the live
    // end), waited for with blocking playlist reloads.
    let playlist = call(addr, "GET", "/enc/media.m3u8", Value::Null).text();
    let first: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap_or_else(|| panic!("{playlist}"))
        .parse()
        .unwrap();
    for msn in first + 1..=first + 3 {
        let r = call(addr, "GET", &format!("/enc/media.m3u8?_HLS_msn={msn}"), Value::Null);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for (url, name) in [
        (rtsp.as_str(), "rtsp.mp4"),
        (&format!("http://{addr}/enc/index.m3u8") as &str, "hls.mp4"),
    ] {
        let out = dir.file(name);
        let status = tool("ffmpeg")
            .args(["-v", "error", "-y", "-i", url, "-frames:v", "30", "-c", "copy"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "ffmpeg {url}");
        decode_strict(&out).unwrap();
    }

    // The bitrate: the bytes per second follow it.
    let low = bytes_of(&server, "enc", 60);
    let r = call(
        addr,
        "PATCH",
        "/api/v1/nodes/enc",
        json!({"bitrate": 2_000_000, "force_keyframe": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["properties"]["bitrate"], 2_000_000);
    let high = bytes_of(&server, "enc", 60);
    assert!(high > 2 * low, "2 Mbit/s gave {high} bytes, 150 kbit/s {low}");

    // Relink the encoder to the other camera.
    let r = call(addr, "PATCH", "/api/v1/nodes/enc", json!({"listen_to": "cam2"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["listen_to"], "cam2");

    // A snapshot on demand.
    let r = call(addr, "GET", "/enc/snapshot.jpg", Value::Null);
    assert_eq!((r.status, &r.body[..2]), (200, &[0xff, 0xd8][..]));

    // A clip, announced over SSE, downloaded and decoded.
    let mut events = TcpStream::connect(addr).unwrap();
    events.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    events
        .write_all(b"GET /api/v1/events?events=closed&node=sr HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let r = call(addr, "POST", "/api/v1/nodes/sr/clip", json!({"before": 1, "after": 1}));
    assert_eq!(r.status, 200, "{}", r.text());
    let closed = sse_until(&mut events, |name, v| name == "closed" && v["kind"] == "event");
    let clips = json(&call(
        addr,
        "GET",
        "/api/v1/recordings?kind=event&camera=cam2",
        Value::Null,
    ));
    let clip = clips
        .as_array()
        .unwrap()
        .iter()
        .find(|e| closed["path"].as_str().unwrap().ends_with(e["path"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("{closed} not in {clips}"));
    download(addr, &clip["id"], &dir.file("clip.mp4"));
    decode_strict(&dir.file("clip.mp4")).unwrap();
    // Deleting: a file being written is refused; a finished one goes, file and row.
    let open = json(&call(addr, "GET", "/api/v1/recordings?kind=continuous", Value::Null));
    let open = open
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["end"].is_null())
        .expect("rec writes");
    let r = call(
        addr,
        "DELETE",
        &format!("/api/v1/recordings/{}", open["id"]),
        Value::Null,
    );
    assert_eq!(r.status, 409, "{}", r.text());
    let r = call(
        addr,
        "DELETE",
        &format!("/api/v1/recordings/{}", clip["id"]),
        Value::Null,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!root.join(clip["path"].as_str().unwrap()).exists());
    assert_eq!(
        call(addr, "GET", &format!("/api/v1/recordings/{}", clip["id"]), Value::Null).status,
        404
    );
    assert_eq!(
        call(
            addr,
            "DELETE",
            &format!("/api/v1/recordings/{}", clip["id"]),
            Value::Null
        )
        .status,
        404
    );

    // Stop and play (GstD's pipeline_stop and pipeline_play): the recorder
    // closes its file playable (it spans the relink: two cameras' frames
    // meet in it, in cadence) and keeps its place; played, it records anew.
    let mut states = TcpStream::connect(addr).unwrap();
    states.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    states
        .write_all(b"GET /api/v1/events?events=node&node=rec HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    for _ in 0..2 {
        let r = call(addr, "POST", "/api/v1/nodes/rec/stop", Value::Null);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(json(&r)["state"], "stopped", "{}", r.text());
    }
    let segments = json(&call(addr, "GET", "/api/v1/recordings?kind=continuous", Value::Null));
    let segment = segments.as_array().unwrap().last().expect("the recording is listed");
    assert!(!segment["end"].is_null(), "closed: {segment}");
    download(addr, &segment["id"], &dir.file("stopped.mp4"));
    decode_strict(&dir.file("stopped.mp4")).unwrap();
    assert_eq!(call(addr, "POST", "/api/v1/nodes/rec/pause", Value::Null).status, 404);
    assert_eq!(call(addr, "POST", "/api/v1/nodes/nobody/play", Value::Null).status, 404);
    let r = call(addr, "POST", "/api/v1/nodes/rec/play", Value::Null);
    assert_eq!(r.status, 200, "{}", r.text());
    sse_until(&mut states, |name, v| name == "node" && v["state"] == "running");
    drop(states);

    // The configuration as TOML describes the same pipeline.
    let r = call(addr, "GET", "/api/v1/config", Value::Null);
    assert_eq!(r.status, 200);
    std::fs::write(&config_file, r.text()).unwrap();
    let written = Config::from_file(&config_file).unwrap_or_else(|e| panic!("{e}\n{}", r.text()));
    assert_eq!(written.nodes, server.config().nodes);

    // Deleting: a node others read is refused; the recorder closes its file playable.
    let r = call(addr, "DELETE", "/api/v1/nodes/enc", Value::Null);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(json(&r)["error"]["message"].as_str().unwrap().contains("rec"));
    for node in ["rec", "sr", "enc", "cam2"] {
        let r = call(addr, "DELETE", &format!("/api/v1/nodes/{node}"), Value::Null);
        assert_eq!(r.status, 200, "{node}: {}", r.text());
    }
    let segments = json(&call(addr, "GET", "/api/v1/recordings?kind=continuous", Value::Null));
    let segment = segments.as_array().unwrap().last().expect("the recording is listed");
    assert!(!segment["end"].is_null(), "closed: {segment}");
    download(addr, &segment["id"], &dir.file("segment.mp4"));
    decode_strict(&dir.file("segment.mp4")).unwrap();
    assert_eq!(
        json(&call(addr, "GET", "/api/v1/nodes", Value::Null))
            .as_array()
            .unwrap()
            .len(),
        1
    );
    server.shutdown();
}

#[test]
fn bad_requests_are_refused_naming_what_is_wrong_and_change_nothing() {
    let dir = Dir::new();
    let server = serve(&dir.file("media"), "", CAMERA);
    let addr = server.http_address().unwrap();
    let before = server.config();
    let raw = |method: &str, path: &str, body: &[u8]| request(addr, method, path, &[], body);
    let cases: Vec<(Response, u16, &str)> = vec![
        (
            raw("POST", "/api/v1/nodes", b"{\"name\": \"x\", "),
            400,
            "malformed JSON",
        ),
        (raw("POST", "/api/v1/nodes", b"[1, 2]"), 400, "JSON object"),
        (
            call(
                addr,
                "POST",
                "/api/v1/nodes",
                json!({"name": "e", "kind": "encode", "listen_to": "cam", "bitrat": 5}),
            ),
            400,
            "bitrat",
        ),
        (
            call(
                addr,
                "POST",
                "/api/v1/nodes",
                json!({"name": "e", "kind": "encode", "listen_to": "cam", "bitrate": "fast"}),
            ),
            400,
            "bitrate",
        ),
        (
            call(
                addr,
                "POST",
                "/api/v1/nodes",
                json!({"name": "e", "kind": "encode", "listen_to": "nothing"}),
            ),
            400,
            "nothing",
        ),
        (
            call(addr, "POST", "/api/v1/nodes", json!({"name": "a/b", "kind": "testsrc"})),
            400,
            "a/b",
        ),
        (
            call(addr, "POST", "/api/v1/nodes", json!({"name": "..", "kind": "testsrc"})),
            400,
            "..",
        ),
        (
            call(addr, "POST", "/api/v1/nodes", json!({"name": "z", "kind": "warp"})),
            400,
            "warp",
        ),
        (
            call(addr, "POST", "/api/v1/nodes", json!({"name": "cam", "kind": "testsrc"})),
            409,
            "cam",
        ),
        (
            call(
                addr,
                "POST",
                "/api/v1/nodes",
                json!({"name": "r", "kind": "record", "listen_to": "cam", "path": "../../etc/{camera}"}),
            ),
            400,
            "..",
        ),
        (raw("POST", "/api/v1/nodes", &vec![b' '; 2 << 20]), 413, ""),
        (call(addr, "GET", "/api/v1/nodes/ghost", Value::Null), 404, "ghost"),
        (call(addr, "DELETE", "/api/v1/nodes/ghost", Value::Null), 404, "ghost"),
        (
            call(addr, "PATCH", "/api/v1/nodes/cam", json!({"fps": 5})),
            409,
            "restart",
        ),
        (
            call(addr, "PATCH", "/api/v1/nodes/cam", json!({"colour": 5})),
            400,
            "colour",
        ),
        (
            call(addr, "PATCH", "/api/v1/nodes/cam", json!({"listen_to": 5})),
            400,
            "listen_to",
        ),
        (
            call(addr, "POST", "/api/v1/nodes/cam/record/start", Value::Null),
            400,
            "record node",
        ),
        (
            call(addr, "POST", "/api/v1/nodes/cam/clip", json!({"before": -1})),
            400,
            "before",
        ),
        (
            call(addr, "GET", "/api/v1/recordings/../../etc/passwd", Value::Null),
            404,
            "",
        ),
        (
            call(addr, "GET", "/api/v1/recordings/1%2F..%2Fsecret.key", Value::Null),
            400,
            "recording id",
        ),
        (
            call(addr, "GET", "/api/v1/recordings?from=yesterday", Value::Null),
            400,
            "from",
        ),
        (
            call(addr, "GET", "/api/v1/events?events=everything", Value::Null),
            400,
            "everything",
        ),
        (
            call(addr, "POST", "/api/v1/login", json!({"name": "a", "password": "b"})),
            409,
            "no [[server.users]]",
        ),
    ];
    // Another site's page: its changes are refused, whatever the body.
    let forged = request(
        addr,
        "POST",
        "/api/v1/nodes",
        &["Origin: http://evil.example"],
        br#"{"name": "x", "kind": "testsrc"}"#,
    );
    assert!(
        forged.status == 403 && forged.text().contains("another site"),
        "{}",
        forged.text()
    );
    let fetched = request(
        addr,
        "POST",
        "/api/v1/config/reload",
        &["Sec-Fetch-Site: cross-site"],
        b"",
    );
    assert_eq!(fetched.status, 403);
    let own = request(addr, "POST", "/api/v1/nodes", &["Origin: http://127.0.0.1"], b"[]");
    assert_eq!(own.status, 400, "this server's own page may: {}", own.text());
    for (i, (r, status, says)) in cases.iter().enumerate() {
        assert_eq!(r.status, *status, "case {i}: {}", r.text());
        assert!(r.text().contains(says), "case {i} should name `{says}`: {}", r.text());
        if r.status != 413 && r.status != 404 || r.text().starts_with('{') {
            let error = &json(r)["error"];
            assert_eq!(error["status"], *status, "case {i}");
        }
    }
    // The key and JSON path of a wrong value are given apart.
    let error = &json(&cases[3].0)["error"];
    assert_eq!(
        (error["key"].as_str(), error["path"].as_str()),
        (Some("node.bitrate"), Some("$.bitrate"))
    );
    assert_eq!(server.config(), before, "nothing changed");
    assert_eq!(server.stats().nodes.len(), 1);
    server.shutdown();
}

/// One caller of the matrix: its name and its `Authorization` header.
struct Caller {
    name: &'static str,
    authorization: Option<String>,
}

/// The status line of a request's answer, without waiting for its body.
fn status_of(addr: SocketAddr, raw: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed before a status line: {raw}");
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn every_endpoint_and_protocol_answers_every_kind_of_caller_as_its_role_and_grants_say() {
    let dir = Dir::new();
    let root = dir.file("media");
    let admin_hash = hash_password("admin-pw").unwrap();
    let users = format!(
        "[[server.users]]\nname = \"admin\"\npassword_hash = \"{admin_hash}\"\nrole = \"admin\"\n\
         [[server.users]]\nname = \"op\"\npassword = \"op-pw\"\nrole = \"operator\"\n\
         [[server.users]]\nname = \"viewer\"\npassword = \"viewer-pw\"\nstreams = [\"cam*\", \"h264\"]\n\
         [[server.users]]\nname = \"stranger\"\npassword = \"stranger-pw\"\nstreams = [\"other*\"]\n"
    );
    let nodes = format!(
        "{CAMERA}[[node]]\nname = \"h264\"\nkind = \"encode\"\nlisten_to = \"cam\"\nkeyint = 30\n\
         [[node]]\nname = \"rec\"\nkind = \"record\"\nlisten_to = \"h264\"\nautostart = false\n"
    );
    let server = serve(&root, &users, &nodes);
    let addr = server.http_address().unwrap();
    let rtsp = server.rtsp_address().unwrap();

    // The key file is the server's own, readable by it alone.
    let key_file = root.join("secret.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let login = call(
        addr,
        "POST",
        "/api/v1/login",
        json!({"name": "admin", "password": "admin-pw"}),
    );
    assert_eq!(login.status, 200, "{}", login.text());
    let token = json(&login)["token"].as_str().unwrap().to_owned();
    let wrong_login = call(
        addr,
        "POST",
        "/api/v1/login",
        json!({"name": "admin", "password": "nope"}),
    );
    assert_eq!(wrong_login.status, 401);
    // From another machine, by its name: signing in works there too.
    let body = r#"{"name": "op", "password": "op-pw"}"#;
    let remote = format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: eyrie.example:8080\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(status_of(addr, &remote), 200);
    // A token signed with the server's key but an hour stale.
    let key: [u8; 32] = std::fs::read(&key_file).unwrap().try_into().unwrap();
    let expired = Authenticator::new(vec![User::with_password("admin", "x", Role::Admin)], key).issue(
        "admin",
        Duration::from_secs(60),
        SystemTime::now() - Duration::from_secs(3600),
    );
    let basic = |pair: &str| {
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    };
    let callers = [
        Caller {
            name: "none",
            authorization: None,
        },
        // A different guessed name per row (one name's guesses are throttled: below).
        Caller {
            name: "wrong",
            authorization: None,
        },
        Caller {
            name: "expired",
            authorization: Some(format!("Bearer {expired}")),
        },
        Caller {
            name: "no grant",
            authorization: basic("stranger:stranger-pw"),
        },
        Caller {
            name: "viewer",
            authorization: basic("viewer:viewer-pw"),
        },
        Caller {
            name: "operator",
            authorization: basic("op:op-pw"),
        },
        Caller {
            name: "admin",
            authorization: Some(format!("Bearer {token}")),
        },
    ];
    // (protocol, what, request line and body, expected per caller)
    type Row = (&'static str, &'static str, &'static str, &'static str, [u16; 7]);
    const U: u16 = 401;
    const F: u16 = 403;
    let rows: [Row; 29] = [
        ("http", "GET", "/api/v1/nodes", "", [U, U, U, 200, 200, 200, 200]),
        ("http", "GET", "/api/v1/nodes/cam", "", [U, U, U, F, 200, 200, 200]),
        ("http", "GET", "/api/v1/streams", "", [U, U, U, 200, 200, 200, 200]),
        ("http", "GET", "/api/v1/sensor/list", "", [U, U, U, 200, 200, 200, 200]),
        (
            "http",
            "GET",
            "/api/v1/recordings?camera=h264",
            "",
            [U, U, U, F, 200, 200, 200],
        ),
        ("http", "GET", "/api/v1/nodes/ghost", "", [U, U, U, F, F, 404, 404]),
        ("http", "GET", "/api/v1/events", "", [U, U, U, 200, 200, 200, 200]),
        ("http", "GET", "/api/v1/config", "", [U, U, U, F, F, F, 200]),
        ("http", "GET", "/metrics", "", [U, U, U, F, F, 200, 200]),
        ("http", "GET", "/api/v1/audit", "", [U, U, U, F, F, F, 200]),
        ("http", "GET", "/api/v1/tokens", "", [U, U, U, F, F, F, 200]),
        (
            "http",
            "POST",
            "/api/v1/tokens",
            r#"{"name": "x"}"#,
            [U, U, U, F, F, F, 201],
        ),
        (
            "http",
            "PATCH",
            "/api/v1/nodes/h264",
            r#"{"force_keyframe": true}"#,
            [U, U, U, F, F, 200, 200],
        ),
        (
            "http",
            "POST",
            "/api/v1/nodes/rec/record/start",
            "",
            [U, U, U, F, F, 200, 200],
        ),
        (
            "http",
            "POST",
            "/api/v1/nodes/rec/record/stop",
            "",
            [U, U, U, F, F, 200, 200],
        ),
        ("http", "POST", "/api/v1/nodes/rec/stop", "", [U, U, U, F, F, 200, 200]),
        ("http", "POST", "/api/v1/nodes/rec/play", "", [U, U, U, F, F, 200, 200]),
        (
            "http",
            "POST",
            "/api/v1/nodes",
            r#"{"name": "tmp", "kind": "relay", "listen_to": "cam"}"#,
            [U, U, U, F, F, F, 201],
        ),
        ("http", "DELETE", "/api/v1/nodes/tmp", "", [U, U, U, F, F, F, 200]),
        ("http", "GET", "/", "", [U, U, U, 200, 200, 200, 200]),
        ("http", "GET", "/cam/snapshot.jpg", "", [U, U, U, F, 200, 200, 200]),
        ("http", "GET", "/h264/index.m3u8", "", [U, U, U, F, 200, 200, 200]),
        ("http", "GET", "/cam/mjpeg", "", [U, U, U, F, 200, 200, 200]),
        ("http", "GET", "/h264/live.mp4", "", [U, U, U, F, 200, 200, 200]),
        (
            "http",
            "GET",
            "/recordings/h264/2020-01-01T00:00:00Z/2020-01-01T00:01:00Z.mp4",
            "",
            [U, U, U, F, 404, 404, 404],
        ),
        ("ws", "GET", "/h264/ws", "", [U, U, U, F, 101, 101, 101]),
        ("ws", "GET", "/api/v1/events/ws", "", [U, U, U, 101, 101, 101, 101]),
        ("rtsp", "DESCRIBE", "/h264", "", [U, U, U, F, 200, 200, 200]),
        // A raw stream: RTSP serves coded ones (after the grant is checked).
        ("rtsp", "DESCRIBE", "/cam", "", [U, U, U, F, 415, 415, 415]),
    ];
    let mut table = format!("{:<6} {:<8} {:<34}", "proto", "method", "target");
    for c in &callers {
        table += &format!(" {:>9}", c.name);
    }
    let mut wrong = Vec::new();
    for (row, (protocol, method, target, body, expected)) in rows.into_iter().enumerate() {
        table += &format!("\n{protocol:<6} {method:<8} {target:<34}");
        for (caller, want) in callers.iter().zip(expected) {
            let guess = basic(&format!("guess{row}:wrong")).filter(|_| caller.name == "wrong");
            let auth = guess
                .as_ref()
                .or(caller.authorization.as_ref())
                .map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
            let got = match protocol {
                "rtsp" => status_of(
                    rtsp,
                    &format!("{method} rtsp://{rtsp}{target} RTSP/1.0\r\nCSeq: 1\r\n{auth}\r\n"),
                ),
                "ws" => status_of(
                    addr,
                    &format!(
                        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{auth}\r\n"
                    ),
                ),
                _ => status_of(
                    addr,
                    &format!(
                        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n{auth}\r\n{body}",
                        body.len()
                    ),
                ),
            };
            table += &format!(" {got:>9}");
            // Unknown names guessed from one address share one count: from
            // the eleventh on, HTTP answers 429 without checking (RTSP 401).
            let throttled = caller.name == "wrong" && want == U && got == 429 && row >= 10;
            if got != want && !throttled {
                wrong.push(format!(
                    "{protocol} {method} {target} as {}: {got}, expected {want}",
                    caller.name
                ));
            }
        }
    }
    println!("{table}");
    assert!(wrong.is_empty(), "{table}\n\n{}", wrong.join("\n"));

    // One name guessed too often from one address: refused unchecked, even
    // with the right password, while a token from that address still works.
    let as_admin = |authorization: Option<String>| {
        status_of(
            addr,
            &format!(
                "GET /api/v1/nodes HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: {}\r\n\r\n",
                authorization.unwrap()
            ),
        )
    };
    let guesses: Vec<u16> = (0..10).map(|_| as_admin(basic("op:guess"))).collect();
    assert!(guesses.iter().all(|s| *s == 401), "{guesses:?}");
    assert_eq!(as_admin(basic("op:op-pw")), 429);
    assert_eq!(as_admin(Some(format!("Bearer {token}"))), 200);

    // A long-lived API token for the operator: it signs in as the operator
    // until it is revoked.
    let admin = format!("Authorization: Bearer {token}");
    let made = request(
        addr,
        "POST",
        "/api/v1/tokens",
        &[&admin],
        br#"{"name": "prometheus", "user": "op"}"#,
    );
    assert_eq!(made.status, 201, "{}", made.text());
    let made = json(&made);
    let machine = format!("Authorization: Bearer {}", made["token"].as_str().unwrap());
    assert_eq!(request(addr, "GET", "/metrics", &[&machine], b"").status, 200);
    assert_eq!(request(addr, "GET", "/api/v1/config", &[&machine], b"").status, 403);
    let listed = json(&request(addr, "GET", "/api/v1/tokens", &[&admin], b""));
    assert!(listed.to_string().contains("prometheus") && !listed.to_string().contains(made["token"].as_str().unwrap()));
    let id = made["id"].as_str().unwrap();
    assert_eq!(
        request(addr, "DELETE", &format!("/api/v1/tokens/{id}"), &[&admin], b"").status,
        200
    );
    // Refused (429 here: this address's unreadable credentials above count too).
    let revoked = request(addr, "GET", "/metrics", &[&machine], b"").status;
    assert!(revoked == 401 || revoked == 429, "{revoked}");
    let bad = request(
        addr,
        "POST",
        "/api/v1/tokens",
        &[&admin],
        br#"{"name": "x", "user": "nobody"}"#,
    );
    assert!(bad.status == 400 && bad.text().contains("nobody"), "{}", bad.text());

    // The audit log: who changed what.
    let log = json(&request(addr, "GET", "/api/v1/audit?limit=1000", &[&admin], b""));
    let said: Vec<String> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["user"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap()
            )
        })
        .collect();
    for change in [
        "admin create tmp",
        "admin delete tmp",
        "op record start rec",
        "admin change h264",
        "admin token revoke",
    ] {
        assert!(
            said.iter().any(|s| s.starts_with(change)),
            "`{change}` not in {said:#?}"
        );
    }
    assert!(
        !log.to_string().contains(made["token"].as_str().unwrap()),
        "no token in the log"
    );

    // Secrets are in no answer: the config shows `***`.
    let config = request(
        addr,
        "GET",
        "/api/v1/config",
        &[&format!("Authorization: Bearer {token}")],
        b"",
    );
    let text = config.text();
    assert!(
        !text.contains("op-pw") && !text.contains(&admin_hash) && text.contains("***"),
        "{text}"
    );
    server.shutdown();
}

#[test]
fn metrics_pass_promtool_and_count_what_the_nodes_do() {
    let dir = Dir::new();
    let nodes = format!("{CAMERA}[[node]]\nname = \"h264\"\nkind = \"encode\"\nlisten_to = \"cam\"\n");
    let server = serve(&dir.file("media"), "", &nodes);
    let addr = server.http_address().unwrap();
    // Frames flow before the scrape.
    bytes_of(&server, "h264", 5);
    let r = call(addr, "GET", "/metrics", Value::Null);
    assert_eq!(r.status, 200);
    assert!(r.head.contains("text/plain; version=0.0.4"), "{}", r.head);
    let text = r.text();
    let frames = text
        .lines()
        .find(|l| l.starts_with("eyrie_node_frames_total{node=\"cam\",kind=\"testsrc\"}"))
        .unwrap_or_else(|| panic!("{text}"));
    let count: f64 = frames.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 5.0, "{frames}");
    assert!(text.contains("process_resident_memory_bytes "), "{text}");
    let mut check = tool("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    server.shutdown();
}

#[test]
fn eyrie_ctl_drives_the_same_steps_from_the_shell() {
    let dir = Dir::new();
    let users = "[[server.users]]\nname = \"admin\"\npassword = \"pw\"\nrole = \"admin\"\n";
    let server = serve(&dir.file("media"), users, CAMERA);
    let url = format!("http://{}", server.http_address().unwrap());
    let ok = |args: &[&str], token: &str| {
        let (success, out, err) = common::eyrie_ctl(&url, Some(token), args, "");
        assert!(success, "eyrie ctl {args:?}: {err}");
        out
    };

    // Errors as they came: no token, a wrong password.
    let (success, _, err) = common::eyrie_ctl(&url, None, &["nodes"], "");
    assert!(!success && err.contains("401 Unauthorized: sign in first"), "{err}");
    let (success, _, err) = common::eyrie_ctl(&url, None, &["login", "admin"], "wrong\n");
    assert!(!success && err.contains("401"), "{err}");
    let (success, token, err) = common::eyrie_ctl(&url, None, &["login", "admin"], "pw\n");
    assert!(success, "{err}");
    let token = token.trim();

    let file = dir.file("nodes.toml");
    std::fs::write(
        &file,
        "[[node]]\nname = \"cam2\"\nkind = \"testsrc\"\nwidth = 320\nheight = 240\nseed = 3\n\
         [[node]]\nname = \"enc\"\nkind = \"encode\"\nlisten_to = \"cam\"\nkeyint = 30\n\
         [[node]]\nname = \"sr\"\nkind = \"smartrecord\"\nlisten_to = \"enc\"\n\
         [[node]]\nname = \"rec\"\nkind = \"record\"\nlisten_to = \"enc\"\n",
    )
    .unwrap();
    assert!(ok(&["create", file.to_str().unwrap()], token).contains("created rec (record)"));
    let table = ok(&["nodes"], token);
    assert!(table.starts_with("NAME") && table.lines().count() == 6, "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("enc ") && l.contains("encode")),
        "{table}"
    );
    ok(&["set", "enc", "bitrate=300000", "force_keyframe=true"], token);
    let node: Value = serde_json::from_str(&ok(&["--json", "node", "enc"], token)).unwrap();
    assert_eq!(node["properties"]["bitrate"], 300_000);
    ok(&["relink", "enc", "cam2"], token);
    let jpeg = dir.file("enc.jpg");
    ok(&["snapshot", "enc", "-o", jpeg.to_str().unwrap()], token);
    assert_eq!(&std::fs::read(&jpeg).unwrap()[..2], &[0xff, 0xd8]);

    // A clip, seen by `events` (which says when it listens).
    let mut events = std::process::Command::new(env!("CARGO_BIN_EXE_eyrie"))
        .args([
            "ctl", "--url", &url, "--token", token, "events", "--events", "closed", "--node", "sr",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = std::io::BufReader::new(events.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut said, &mut line).unwrap();
    assert!(line.contains("waiting for events"), "{line}");
    assert!(ok(&["clip", "sr", "--before", "1", "--after", "1"], token).contains("clip started"));
    let out = events.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && printed.starts_with("closed: {"), "{printed}");
    let listed = ok(&["recordings", "--camera", "cam2", "--kind", "event"], token);
    assert_eq!(listed.lines().count(), 2, "{listed}");

    let stopped = ok(&["record", "stop", "rec"], token);
    assert!(stopped.contains("closed"), "{stopped}");
    assert_eq!(ok(&["stop", "cam2"], token).trim(), "cam2: stopped");
    assert!(ok(&["play", "cam2"], token).starts_with("cam2: "));
    let (success, _, err) = common::eyrie_ctl(&url, Some(token), &["delete", "enc"], "");
    assert!(
        !success && err.contains("409 Conflict") && err.contains("feeds"),
        "{err}"
    );
    for node in ["rec", "sr", "enc", "cam2"] {
        assert!(ok(&["delete", node], token).starts_with(&format!("deleted {node}")));
    }
    assert_eq!(ok(&["nodes"], token).lines().count(), 2);
    server.shutdown();
}

/// A webhook receiver: answers `503` to the first try of every delivery and
/// `200` to the next, and hands each request (headers, body) to the test.
/// A request a receiver took: its headers (names in lower case) and body.
type Hooked = (Vec<(String, String)>, Vec<u8>);

fn receiver() -> (SocketAddr, std::sync::mpsc::Receiver<Hooked>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = std::collections::HashSet::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((n, v)) = line.split_once(':') {
                    headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            let length: usize = header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let first_try = seen.insert(header("x-eyrie-delivery").unwrap_or_default());
            let status = if first_try { "503 Service Unavailable" } else { "200 OK" };
            let _ = stream
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
            if tx.send((headers, body)).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

#[test]
fn webhooks_are_signed_retried_and_a_dead_receiver_never_slows_the_pipeline() {
    let dir = Dir::new();
    let (live, requests) = receiver();
    // A port nobody listens on: every try is refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let hooks = format!(
        "[[server.webhooks]]\nurl = \"http://{live}/hook?src=eyrie\"\nevents = [\"node\"]\nnode = \"cam\"\nsecret = \"s3cret\"\n\
         [[server.webhooks]]\nurl = \"http://{dead}/gone\"\nretries = 2\nqueue = 4\n"
    );
    let server = serve(&dir.file("media"), &hooks, CAMERA);

    // The camera's `running`, tried twice (503, then 200) under one delivery id.
    let mut tries = Vec::new();
    while tries.len() < 2 {
        let (headers, body) = requests
            .recv_timeout(Duration::from_secs(20))
            .expect("the webhook calls");
        let event: Value = serde_json::from_slice(&body).unwrap();
        if event["state"] == "running" {
            tries.push((headers, body));
        }
    }
    let header = |h: &[(String, String)], n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(
        header(&tries[0].0, "x-eyrie-delivery"),
        header(&tries[1].0, "x-eyrie-delivery")
    );
    for (headers, body) in &tries {
        assert_eq!(header(headers, "x-eyrie-event"), "node");
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            (event["event"].as_str(), event["node"].as_str()),
            (Some("node"), Some("cam"))
        );
        // The signature, checked with HMAC-SHA256 here: t=<unix>,sha256=hex(hmac(secret, "<t>.<body>")).
        let signed = header(headers, "x-eyrie-signature");
        let (t, hex) = signed
            .strip_prefix("t=")
            .and_then(|r| r.split_once(",sha256="))
            .unwrap_or_else(|| panic!("{signed}"));
        let age = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - t.parse::<u64>().unwrap();
        assert!(age < 60, "{signed}");
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    // The dead receiver: retried, given up, its queue bounded; the camera
    // keeps its 30 fps with nothing dropped meanwhile.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (before_frames, started) = (server.stats().nodes[0].frames_out, Instant::now());
    loop {
        let stats = server.stats();
        let gone = &stats.webhooks[1];
        if gone.failed >= 1 && gone.retried >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", stats.webhooks);
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats = server.stats();
    let cam = &stats.nodes[0];
    let rate = (cam.frames_out - before_frames) as f64 / started.elapsed().as_secs_f64();
    assert!(
        cam.frames_dropped == 0 && rate > 25.0,
        "cam: {rate:.1} fps, {} dropped",
        cam.frames_dropped
    );
    assert!(
        stats.webhooks[0].delivered >= 1 && stats.webhooks[0].retried >= 1,
        "{:?}",
        stats.webhooks
    );
    let config = call(server.http_address().unwrap(), "GET", "/api/v1/config", Value::Null).text();
    assert!(
        !config.contains("s3cret") && config.contains("secret = \"***\""),
        "{config}"
    );
    let metrics = call(server.http_address().unwrap(), "GET", "/metrics", Value::Null).text();
    assert!(
        metrics.contains(&format!("eyrie_webhook_failed_total{{url=\"http://{dead}/gone\"}}")),
        "{metrics}"
    );
    server.shutdown();
}

#[test]
fn events_come_over_a_websocket_too_filtered_by_name_and_node() {
    let dir = Dir::new();
    let server = serve(&dir.file("media"), "", CAMERA);
    let addr = server.http_address().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use futures_util::StreamExt;
        let url = format!("ws://{addr}/api/v1/events/ws?events=node&node=extra*");
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let r = tokio::task::spawn_blocking(move || {
            call(
                addr,
                "POST",
                "/api/v1/nodes",
                json!({"name": "extra1", "kind": "testsrc", "width": 160, "height": 120}),
            )
        })
        .await
        .unwrap();
        assert_eq!(r.status, 201, "{}", r.text());
        let mut states = Vec::new();
        while states.last().map(String::as_str) != Some("running") {
            let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let event: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
            assert_eq!(
                (event["event"].as_str(), event["node"].as_str()),
                (Some("node"), Some("extra1")),
                "{event}"
            );
            states.push(event["state"].as_str().unwrap().to_owned());
        }
        assert_eq!(states.first().map(String::as_str), Some("running"), "{states:?}");
    });
    server.shutdown();
}

#[test]
fn changes_are_written_back_to_the_config_file_and_an_edited_file_is_applied_by_difference() {
    let dir = Dir::new();
    let file = dir.file("eyrie.toml");
    let head = format!(
        "[server]\nmedia_root = \"{}\"\n[server.rtsp]\nenabled = false\n[server.http]\nlisten = \"127.0.0.1:0\"\n",
        dir.file("media").display()
    );
    // A camera that will never answer: its credentials must survive the write-back.
    let nodes = format!(
        "{CAMERA}[[node]]\nname = \"ipcam\"\nkind = \"rtsp\"\nurl = \"rtsp://user:pa55word@127.0.0.1:1/x\"\n\
         [[node]]\nname = \"enc\"\nkind = \"encode\"\nlisten_to = \"cam\"\nbitrate = 500000\n"
    );
    std::fs::write(&file, format!("{head}{nodes}")).unwrap();
    let server = Server::start(Config::from_file(&file).unwrap()).unwrap();
    server.serve().unwrap();
    server.persist_to(Some(file.clone())).unwrap();
    let addr = server.http_address().unwrap();

    let r = call(
        addr,
        "POST",
        "/api/v1/nodes",
        json!({"name": "cam2", "kind": "testsrc", "width": 160, "height": 120}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = call(
        addr,
        "POST",
        "/api/v1/nodes",
        json!({"name": "ipcam2", "kind": "rtsp", "url": "rtsp://u:s3cr3t@127.0.0.1:1/y"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let audit = call(addr, "GET", "/api/v1/audit", Value::Null).text();
    assert!(
        audit.contains("ipcam2") && audit.contains("u:***@") && !audit.contains("s3cr3t"),
        "{audit}"
    );
    assert_eq!(call(addr, "DELETE", "/api/v1/nodes/ipcam2", Value::Null).status, 200);
    let r = call(addr, "PATCH", "/api/v1/nodes/enc", json!({"bitrate": 300_000}));
    assert_eq!(r.status, 200, "{}", r.text());
    let written = Config::from_file(&file).unwrap();
    assert_eq!(written.nodes, server.config().nodes);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("user:pa55word@") && text.contains("bitrate = 300000"),
        "{text}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let previous = Config::from_file(&dir.file("eyrie.toml.prev")).unwrap();
    assert_eq!(previous.nodes.len(), 4, "the version before the last change");
    // What the API shows hides the password the file keeps.
    let shown = call(addr, "GET", "/api/v1/config", Value::Null).text();
    assert!(shown.contains("user:***@") && !shown.contains("pa55word"), "{shown}");
    let node = call(addr, "GET", "/api/v1/nodes/ipcam", Value::Null).text();
    assert!(!node.contains("pa55word"), "{node}");

    // Edited by hand: enc's rate changes live and it is relinked, cam2 is
    // restarted at a new size, ipcam goes, a relay comes.
    let edited = format!(
        "{head}{CAMERA}[[node]]\nname = \"cam2\"\nkind = \"testsrc\"\nwidth = 320\nheight = 240\n\
         [[node]]\nname = \"enc\"\nkind = \"encode\"\nlisten_to = \"cam2\"\nbitrate = 200000\n\
         [[node]]\nname = \"r1\"\nkind = \"relay\"\nlisten_to = \"cam\"\n"
    );
    std::fs::write(&file, &edited).unwrap();
    let r = call(addr, "POST", "/api/v1/config/reload", Value::Null);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        json(&r),
        json!({"added": ["r1"], "removed": ["ipcam"], "restarted": ["cam2"], "relinked": ["enc"], "changed": ["enc"]})
    );
    assert_eq!(server.config().nodes, Config::parse(&edited, "edited").unwrap().nodes);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        edited,
        "a reload writes nothing back"
    );
    let enc = json(&call(addr, "GET", "/api/v1/nodes/enc", Value::Null));
    assert_eq!(
        (enc["listen_to"].as_str(), enc["properties"]["bitrate"].as_u64()),
        (Some("cam2"), Some(200_000))
    );

    // [server] cannot change while running: refused, naming it, nothing applied.
    std::fs::write(
        &file,
        edited.replace("[server.rtsp]\nenabled = false", "[server.rtsp]\nenabled = true"),
    )
    .unwrap();
    let r = call(addr, "POST", "/api/v1/config/reload", Value::Null);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text().contains("rtsp") && r.text().contains("restart"),
        "{}",
        r.text()
    );
    // A broken file: its line and key named.
    std::fs::write(
        &file,
        format!("{edited}[[node]]\nname = \"x\"\nkind = \"relay\"\nlisten_to = \"nowhere\"\n"),
    )
    .unwrap();
    let r = call(addr, "POST", "/api/v1/config/reload", Value::Null);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("eyrie.toml:") && r.text().contains("nowhere"),
        "{}",
        r.text()
    );
    assert_eq!(server.config().nodes.len(), 4);
    server.shutdown();
}

#[test]
fn sighup_applies_the_edited_config_file_to_a_running_eyrie() {
    let dir = Dir::new();
    let file = dir.file("eyrie.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let head = format!(
        "[server]\nmedia_root = \"{}\"\n[server.rtsp]\nenabled = false\n[server.http]\nlisten = \"127.0.0.1:{port}\"\n",
        dir.file("media").display()
    );
    std::fs::write(&file, format!("{head}{CAMERA}")).unwrap();
    let mut eyrie = std::process::Command::new(env!("CARGO_BIN_EXE_eyrie"))
        .args(["run", "-c"])
        .arg(&file)
        .args(["--for", "60"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its log says when it listens and writes back.
    let mut log = std::io::BufReader::new(eyrie.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("open http://") {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut log, &mut line).unwrap() > 0,
            "eyrie ended: {said}"
        );
        said += &line;
    }
    assert!(said.contains("written back to"), "{said}");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    std::fs::write(
        &file,
        format!("{head}{CAMERA}[[node]]\nname = \"r1\"\nkind = \"relay\"\nlisten_to = \"cam\"\n"),
    )
    .unwrap();
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(eyrie.id() as i32, libc::SIGHUP) }, 0);
    while !said.contains("SIGHUP: the config file applied") {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut log, &mut line).unwrap() > 0,
            "eyrie ended: {said}"
        );
        said += &line;
    }
    assert_eq!(call(addr, "GET", "/api/v1/nodes/r1", Value::Null).status, 200);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(eyrie.id() as i32, libc::SIGTERM) }, 0);
    assert!(eyrie.wait().unwrap().success());
}

#[test]
fn the_openapi_document_passes_a_validator_and_every_route_in_it_is_served() {
    let dir = Dir::new();
    let server = serve(&dir.file("media"), "", CAMERA);
    let addr = server.http_address().unwrap();
    let r = call(addr, "GET", "/api/v1/openapi.json", Value::Null);
    assert_eq!(r.status, 200);
    let file = dir.file("openapi.json");
    std::fs::write(&file, &r.body).unwrap();
    let validator = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/openapi-spec-validator");
    assert!(
        validator.exists(),
        "{}: scripts/test.sh installs it",
        validator.display()
    );
    let out = std::process::Command::new(&validator).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let document = json(&r);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    // Everything the other tests call is described...
    for (method, path) in [
        ("post", "/api/v1/login"),
        ("get", "/api/v1/nodes"),
        ("post", "/api/v1/nodes"),
        ("patch", "/api/v1/nodes/{name}"),
        ("delete", "/api/v1/nodes/{name}"),
        ("post", "/api/v1/nodes/{name}/clip"),
        ("get", "/api/v1/recordings/{id}"),
        ("get", "/api/v1/sensor/list"),
        ("post", "/api/v1/config/reload"),
        ("get", "/api/v1/events/ws"),
        ("get", "/metrics"),
        ("get", "/api/v1/streams"),
        ("get", "/{stream}/media.m3u8"),
        ("get", "/recordings/{camera}/{from}/{to}"),
        ("get", "/"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not described"
        );
    }
    // ...and everything described is served (not the fallback's 404, not a 405).
    let mut served = 0;
    for (path, operations) in paths {
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in operations.as_object().unwrap().keys() {
            if path.ends_with("/ws")
                || path == "/api/v1/events"
                || path.ends_with("/mjpeg")
                || path.ends_with("live.mp4")
            {
                continue; // endless answers: covered by their own tests
            }
            let r = request(addr, &method.to_ascii_uppercase(), &concrete, &[], b"");
            assert!(
                r.status != 405 && !(r.status == 404 && r.text() == "no such page\n"),
                "{method} {path} ({concrete}) is not served: {} {}",
                r.status,
                r.text()
            );
            served += 1;
        }
    }
    assert!(served >= 25, "{served}");
    server.shutdown();
}

#[test]
fn a_token_in_the_query_is_taken_only_where_enabled() {
    let dir = Dir::new();
    let root = dir.file("media");
    let text = |query_token: bool| {
        format!(
            "[server]\nmedia_root = \"{}\"\n[[server.users]]\nname = \"v\"\npassword = \"pw\"\n[server.rtsp]\nenabled = false\n\
             [server.http]\nlisten = \"127.0.0.1:0\"\nquery_token = {query_token}\n{CAMERA}",
            root.display()
        )
    };
    for enabled in [false, true] {
        let server = Server::start(Config::parse(&text(enabled), "query.toml").unwrap()).unwrap();
        server.serve().unwrap();
        let addr = server.http_address().unwrap();
        let login = call(addr, "POST", "/api/v1/login", json!({"name": "v", "password": "pw"}));
        let token = json(&login)["token"].as_str().unwrap().to_owned();
        let status = call(addr, "GET", &format!("/cam/snapshot.jpg?token={token}"), Value::Null).status;
        assert_eq!(status, if enabled { 200 } else { 401 }, "query_token = {enabled}");
        // Never for a change, and never a wrong one.
        let post = call(
            addr,
            "POST",
            &format!("/api/v1/nodes?token={token}"),
            json!({"name": "x", "kind": "testsrc"}),
        );
        assert_eq!(post.status, 401);
        assert_eq!(
            call(addr, "GET", "/cam/snapshot.jpg?token=forged.x", Value::Null).status,
            401
        );
        server.shutdown();
    }
}
