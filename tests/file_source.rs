//! The `file` node: a recorded file played as a camera, on a manual clock so
//! that live pacing is exact.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use eyrie::config::Config;
use eyrie::demux::{EsKind, es};
use eyrie::hub::{Hub, Item, StreamFormat, SubscribeOptions, Subscription};
use eyrie::media::{ManualClock, Packet, bytes_copied};
use eyrie::mux::Container;
use eyrie::mux::write::mux_to_vec;
use eyrie::server::{NodeState, Server};

fn config(path: &Path, extra: &str) -> Config {
    let text = format!(
        "[[node]]\nname = \"cam\"\nkind = \"file\"\npath = \"{}\"\n{extra}\n",
        path.display()
    );
    Config::parse(&text, "<test>").unwrap()
}

/// A hub with a blocking subscription to `cam` holding `capacity` packets, and a manual clock at 0.
fn setup(capacity: usize) -> (Hub, Subscription, Arc<ManualClock>) {
    let hub = Hub::new();
    let sub = hub.subscribe("cam", SubscribeOptions::blocking(capacity));
    (hub, sub, Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH)))
}

#[test]
fn a_file_plays_as_a_looping_camera_on_the_pipeline_clock() {
    let dir = tempfile::tempdir().unwrap();
    let data = Bytes::from(std::fs::read("tests/fixtures/tiny.h264").unwrap());
    let source = Arc::from("clip");
    let input: Vec<Packet> = es::read(&data, EsKind::H264, Some("25".parse().unwrap()), &source).unwrap();
    let clip = dir.path().join("clip.mp4");
    std::fs::write(&clip, mux_to_vec(Container::Mp4, &input).unwrap()).unwrap();
    // The file as the node reads it: these timestamps, moved to start at 0.
    let file = eyrie::demux::read_file(&clip, &source).unwrap();
    let (origin, lap) = (file[0].dts, 12 * 40_000_000);

    let (hub, sub, clock) = setup(8);
    let copied = bytes_copied();
    let server = Server::start_with(config(&clip, "loop = true"), hub, clock).unwrap();
    let mut got = Vec::new();
    let mut formats = 0;
    while got.len() < 3 * file.len() {
        match sub.recv_timeout(Duration::from_secs(10)).expect("packets keep coming") {
            Item::Packet(p) => got.push(p),
            Item::Format(StreamFormat::Coded(p)) => {
                assert_eq!((p.width, p.height), (64, 64));
                formats += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // A blocking subscriber that stops reading would hold the producer: leave first.
    drop(sub);
    let stats = server.shutdown();
    assert_eq!(formats, 1, "one format for a stream whose parameters never change");
    for (i, p) in got.iter().enumerate() {
        let (n, f) = (i / file.len(), &file[i % file.len()]);
        assert_eq!(p.keyframe, f.keyframe, "packet {i}");
        assert_eq!(p.data, f.data, "packet {i}");
        // Live pacing on a manual clock is exact: each lap continues the timeline.
        assert_eq!(p.dts, f.dts - origin + n as i64 * lap, "packet {i}");
        assert_eq!(p.pts - p.dts, f.pts - f.dts, "packet {i}");
        assert_eq!(p.seq, i as u64);
    }
    assert_eq!(bytes_copied(), copied);
    assert_eq!(stats.nodes[0].state, NodeState::Stopped);
}

#[test]
fn a_file_without_loop_ends_its_stream() {
    let clip = Path::new("tests/fixtures/tiny.h265");
    let (hub, sub, clock) = setup(64);
    let server = Server::start_with(config(clip, "live = false\nfps = 25"), hub, clock).unwrap();
    let mut packets = 0;
    loop {
        match sub.recv_timeout(Duration::from_secs(10)).unwrap() {
            Item::Packet(_) => packets += 1,
            Item::Eos => break,
            _ => {}
        }
    }
    assert_eq!(packets, 12);
    server.shutdown();
}

#[test]
fn a_bad_file_fails_its_node_naming_the_file_while_the_rest_runs() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("broken.mkv");
    std::fs::write(&garbage, b"\x1a\x45\xdf\xa3 not really matroska").unwrap();
    // A recording cut short in its index.
    let data = Bytes::from(std::fs::read("tests/fixtures/tiny.h264").unwrap());
    let input: Vec<Packet> = es::read(&data, EsKind::H264, Some("25".parse().unwrap()), &Arc::from("clip")).unwrap();
    let mp4 = mux_to_vec(Container::Mp4, &input).unwrap();
    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &mp4[..200]).unwrap();
    for (path, why) in [
        (garbage, "broken.mkv"),
        (truncated, "truncated.mp4"),
        (dir.path().join("missing.mp4"), "missing.mp4"),
    ] {
        let text = format!(
            "[[node]]\nname = \"synthetic\"\nkind = \"testsrc\"\nwidth = 64\nheight = 64\n\
             [[node]]\nname = \"cam\"\nkind = \"file\"\npath = \"{}\"\n",
            path.display()
        );
        let server = Server::start(Config::parse(&text, "<test>").unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let stats = server.shutdown();
        let cam = stats.nodes.iter().find(|n| n.name == "cam").unwrap();
        let error = cam.error.as_deref().unwrap_or_default();
        assert_eq!(cam.state, NodeState::Failed, "{why}");
        assert!(error.contains(why), "{why}: {error}");
        let synthetic = stats.nodes.iter().find(|n| n.name == "synthetic").unwrap();
        assert!(
            synthetic.frames_out >= 5,
            "{why}: the other camera ran on: {synthetic:?}"
        );
    }
    let err = Config::parse("[[node]]\nname = \"cam\"\nkind = \"file\"\n", "<test>").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("node.path"), "{err}");
}
