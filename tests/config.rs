//! Config parsing: every bad config names its line and key.

use eyrie::config::{Config, NodeProps};
use eyrie::hub::Policy;
use eyrie::media::PixelFormat;

const GOOD: &str = r#"
[server]
media_root = "/tmp/eyrie-test-media"

[[node]]
name = "cam0"
kind = "testsrc"
width = 640
height = 480
fps = "30000/1001"
format = "yuyv"
seed = 42

[[node]]
name = "in0"
kind = "relay"
listen_to = "cam0"
queue = 4
policy = "blocking"
"#;

#[test]
fn a_good_config_parses() {
    let c = Config::parse(GOOD, "good.toml").unwrap();
    assert_eq!(c.server.media_root.to_str(), Some("/tmp/eyrie-test-media"));
    assert_eq!(c.nodes.len(), 2);
    let NodeProps::Testsrc(cam) = &c.nodes[0].props else {
        panic!("cam0 is a testsrc")
    };
    assert_eq!(
        (cam.width, cam.height, cam.format, cam.seed),
        (640, 480, PixelFormat::Yuyv, Some(42))
    );
    assert_eq!(cam.fps.to_string(), "30000/1001");
    assert!(cam.live, "defaults fill the keys not given");
    let NodeProps::Relay(relay) = &c.nodes[1].props else {
        panic!("in0 is a relay")
    };
    assert_eq!((relay.queue, relay.policy), (4, Policy::Blocking));
    assert_eq!(c.nodes[1].listen_to.as_deref(), Some("cam0"));
    assert_eq!(c.flow_order(), [0, 1]);
}

#[test]
fn the_default_demo_is_two_cameras_each_feeding_two_inputs_of_the_ai_mosaic_encoded_recorded_and_snapshotted() {
    let c = Config::default_demo();
    let links: Vec<(&str, Option<&str>)> = c
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.listen_to.as_deref()))
        .collect();
    assert_eq!(
        links,
        [
            ("cam0", None),
            ("cam1", None),
            ("in0", Some("cam0")),
            ("in1", Some("cam0")),
            ("in2", Some("cam1")),
            ("in3", Some("cam1")),
            ("infer", None),
            ("track", Some("infer")),
            ("tile", Some("track")),
            ("deep", Some("tile")),
            ("h264", Some("deep")),
            ("h264b", Some("in2")),
            ("rec", Some("h264")),
            ("sr0", Some("h264")),
            ("sr1", Some("h264b")),
            ("snap0", Some("cam0")),
            ("snap1", Some("cam1")),
        ]
    );
}

#[test]
fn encode_nodes_take_every_encoder_key_and_name_a_bad_one() {
    let text = r#"
[[node]]
name = "cam0"
kind = "testsrc"

[[node]]
name = "enc"
kind = "encode"
listen_to = "cam0"
codec = "h264"
encoder = "v4l2m2m:/dev/video4"
bitrate = 2000000
rate_control = "vbr"
qp = 30
keyint = 30
profile = "high"
level = "4.1"
quality = 90
"#;
    let c = Config::parse(text, "enc.toml").unwrap();
    let eyrie::config::NodeProps::Encode(s) = &c.nodes[1].props else {
        panic!("{:?}", c.nodes[1])
    };
    assert_eq!(s.encoder, eyrie::encode::Backend::V4l2M2m("/dev/video4".into()));
    assert_eq!((s.bitrate, s.keyint, s.level.map(|l| l.0)), (2_000_000, 30, Some(41)));
    for (from, to, want) in [
        (
            "quality = 90",
            "quality = 0",
            "enc.toml:18:1: key `node.quality`: node `enc` (encode): quality 0 is out of range 1..=100",
        ),
        ("level = \"4.1\"", "level = \"9\"", "bad level `9`"),
        (
            "encoder = \"v4l2m2m:/dev/video4\"",
            "encoder = \"x264\"",
            "unknown encoder `x264`",
        ),
        ("codec = \"h264\"", "codec = \"av1\"", "unknown variant `av1`"),
    ] {
        let err = Config::parse(&text.replace(from, to), "enc.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{to}: {err}");
    }
}

/// Replaces `from` by `to` in the good config and returns the error text.
fn error_of(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    let text = GOOD.replacen(from, to, 1);
    Config::parse(&text, "bad.toml")
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn a_misspelled_key_is_refused_with_its_line() {
    let e = error_of("fps = ", "fsp = ");
    assert!(e.starts_with("bad.toml:10:1: key `node.fsp`"), "{e}");
    assert!(
        e.contains("unknown key") && e.contains("`fps`"),
        "the error lists the valid keys: {e}"
    );
}

#[test]
fn a_value_of_the_wrong_type_names_its_key() {
    let e = error_of("width = 640", "width = \"wide\"");
    assert!(e.starts_with("bad.toml:8:") && e.contains("key `node.width`"), "{e}");
    let e = error_of("queue = 4", "queue = -4");
    assert!(e.starts_with("bad.toml:18:") && e.contains("key `node.queue`"), "{e}");
    let e = error_of("policy = \"blocking\"", "policy = \"sometimes\"");
    assert!(
        e.starts_with("bad.toml:19:") && e.contains("key `node.policy`") && e.contains("leaky"),
        "{e}"
    );
}

#[test]
fn bad_values_name_their_key() {
    let e = error_of("format = \"yuyv\"", "format = \"h264\"");
    assert!(
        e.starts_with("bad.toml:11:") && e.contains("key `node.format`") && e.contains("nv12"),
        "{e}"
    );
    let e = error_of("width = 640", "width = 641");
    assert!(
        e.starts_with("bad.toml:8:1: key `node.width`") && e.contains("even"),
        "{e}"
    );
    let e = error_of("height = 480", "height = 0");
    assert!(e.starts_with("bad.toml:9:1: key `node.height`"), "{e}");
    let e = error_of("fps = \"30000/1001\"", "fps = \"30/0\"");
    assert!(e.starts_with("bad.toml:10:") && e.contains("key `node.fps`"), "{e}");
    let e = error_of("queue = 4", "queue = 0");
    assert!(e.starts_with("bad.toml:18:1: key `node.queue`"), "{e}");
}

#[test]
fn unknown_kinds_and_missing_names_are_refused() {
    let e = error_of("kind = \"relay\"", "kind = \"rleay\"");
    assert!(
        e.starts_with("bad.toml:16:") && e.contains("key `node.kind`") && e.contains("relay"),
        "{e}"
    );
    let e = error_of("name = \"in0\"\n", "");
    assert!(e.starts_with("bad.toml:14:1:") && e.contains("needs a `name`"), "{e}");
}

#[test]
fn links_are_checked() {
    let e = error_of("listen_to = \"cam0\"", "listen_to = \"cam9\"");
    assert!(
        e.starts_with("bad.toml:17:1: key `listen_to`") && e.contains("cam9") && e.contains("cam0"),
        "{e}"
    );
    let e = error_of("listen_to = \"cam0\"\n", "");
    assert!(
        e.starts_with("bad.toml:15:1: key `name`") && e.contains("needs `listen_to`"),
        "{e}"
    );
    let e = error_of("name = \"in0\"", "name = \"cam0\"");
    assert!(
        e.starts_with("bad.toml:15:1: key `name`") && e.contains("already exists"),
        "{e}"
    );
    let e = error_of("seed = 42", "seed = 42\nlisten_to = \"in0\"");
    assert!(e.starts_with("bad.toml:13:1: key `listen_to`"), "{e}");
    let e = error_of("listen_to = \"cam0\"", "listen_to = \"in0\"");
    assert!(e.contains("cycle"), "{e}");
}

#[test]
fn syntax_errors_and_unknown_tables_have_lines() {
    let e = error_of("width = 640", "width = = 640");
    assert!(e.starts_with("bad.toml:8:"), "{e}");
    let e = error_of("[server]", "[sever]");
    assert!(
        e.starts_with("bad.toml:2:2: key `sever`") && e.contains("unknown top-level key"),
        "{e}"
    );
    let e = error_of("media_root", "media_rot");
    assert!(
        e.starts_with("bad.toml:3:1: key `server.media_rot`") && e.contains("media_root"),
        "{e}"
    );
}

/// One schema, any format: a node described in JSON or as a TOML table is the
/// same node, and the same mistake names the same key in both.
#[test]
fn json_and_toml_node_descriptions_give_the_same_node_and_the_same_errors() {
    use eyrie::config::NodeSpec;
    let toml = "name = \"h264\"\nkind = \"encode\"\nlisten_to = \"cam0\"\nbitrate = 2000000\nkeyint = 30\n";
    let json =
        serde_json::json!({"name": "h264", "kind": "encode", "listen_to": "cam0", "bitrate": 2000000, "keyint": 30});
    let from_toml = NodeSpec::from_toml(toml, "<api>").unwrap();
    let from_json = NodeSpec::from_json(&json, "<api>").unwrap();
    assert_eq!(from_toml, from_json);
    // What the server reports of a node reads back as the same node.
    let echoed = serde_json::to_value(&from_json).unwrap();
    assert_eq!(NodeSpec::from_json(&echoed, "<api>").unwrap(), from_json, "{echoed}");

    // (TOML text, JSON, the key both name, the JSON path, words the message has)
    let cases = [
        (
            "bitrate = \"fast\"",
            serde_json::json!({"bitrate": "fast"}),
            "node.bitrate",
            "$.bitrate",
            "invalid type",
        ),
        (
            "bogus = 1",
            serde_json::json!({"bogus": 1}),
            "node.bogus",
            "$.bogus",
            "unknown key `bogus`",
        ),
        (
            "keyint = 0",
            serde_json::json!({"keyint": 0}),
            "node.keyint",
            "$.keyint",
            "node `h264` (encode)",
        ),
        (
            "kind = \"nope\"",
            serde_json::json!({"kind": "nope"}),
            "node.kind",
            "$.kind",
            "unknown kind `nope`",
        ),
        (
            "listen_to = 3",
            serde_json::json!({"listen_to": 3}),
            "node.listen_to",
            "$.listen_to",
            "expected a string",
        ),
    ];
    for (toml_change, json_change, key, path, words) in cases {
        let field = toml_change.split(' ').next().unwrap();
        let text: String = toml
            .lines()
            .filter(|l| !l.starts_with(&format!("{field} ")))
            .chain([toml_change])
            .map(|l| format!("{l}\n"))
            .collect();
        let toml_err = NodeSpec::from_toml(&text, "<api>").unwrap_err();
        let mut value = json.clone();
        for (k, v) in json_change.as_object().unwrap() {
            value[k] = v.clone();
        }
        let json_err = NodeSpec::from_json(&value, "<api>").unwrap_err();
        assert_eq!(toml_err.key.as_deref(), Some(key), "{toml_err}");
        assert_eq!(json_err.key.as_deref(), Some(key), "{json_err}");
        assert_eq!(json_err.path.as_deref(), Some(path), "{json_err}");
        assert!(toml_err.at.is_some(), "TOML errors name the line: {toml_err}");
        for e in [&toml_err, &json_err] {
            assert!(e.message.contains(words), "{e}");
        }
    }
    // A value deep inside: its path, under its top-level key.
    let infer =
        serde_json::json!({"name": "det", "kind": "infer", "inputs": ["cam0"], "policies": {"cam0": {"period": "x"}}});
    let e = NodeSpec::from_json(&infer, "<api>").unwrap_err();
    assert_eq!(
        (e.key.as_deref(), e.path.as_deref()),
        (Some("node.policies"), Some("$.policies.cam0.period")),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("<api>: key `node.policies` at `$.policies.cam0.period`: "),
        "{e}"
    );
}

#[test]
fn http_keys_are_checked_and_a_reachable_listener_needs_users() {
    let node = "[[node]]\nname = \"cam\"\nkind = \"testsrc\"\n";
    let error = |server: &str| {
        Config::parse(&format!("{server}\n{node}"), "http.toml")
            .expect_err("must be refused")
            .to_string()
    };
    for (server, key, says) in [
        (
            "[server.http]\nlisten = \"0.0.0.0:8080\"",
            "server.http.listen",
            "add [[server.users]]",
        ),
        (
            "[server.http]\nlisten = \"nope\"",
            "server.http.listen",
            "`nope` is not an address",
        ),
        (
            "[server.http]\nmax_header_bytes = 100",
            "server.http.max_header_bytes",
            "8192",
        ),
        (
            "[server.http]\nwrite_timeout = 0",
            "server.http.write_timeout",
            "seconds",
        ),
        ("[server.http]\nmjpeg_fps = 0", "server.http.mjpeg_fps", "(0, 120]"),
        ("[server.http]\njpeg_quality = 0", "server.http.jpeg_quality", "1..=100"),
        (
            "[server.http.hls]\npart_ms = 10",
            "server.http.hls.part_ms",
            "50..=2000",
        ),
        (
            "[server.http.hls]\nsegment_ms = 100",
            "server.http.hls.segment_ms",
            "at least part_ms",
        ),
        ("[server.http.hls]\nsegments = 1", "server.http.hls.segments", "3..=100"),
    ] {
        let e = error(server);
        assert!(e.contains(&format!("key `{key}`")) && e.contains(says), "{server}: {e}");
    }
    let e = error("[server.http]\nlisten_on = \"x\"");
    assert!(
        e.starts_with("http.toml:2:1: unknown key `listen_on`") && e.contains("`listen`"),
        "{e}"
    );
    let users = "[[server.users]]\nname = \"admin\"\npassword = \"x\"\n[server.http]\nlisten = \"0.0.0.0:8080\"\n[server.rtsp]\nlisten = \"0.0.0.0:8554\"";
    assert!(Config::parse(&format!("{users}\n{node}"), "http.toml").is_ok());
}
