//! Passthrough recording of an RTSP camera (GStreamer's RTSP server): 30 s
//! stored without a decode or an encode (the process's codec counters stay
//! at 0; this file is its own test binary so nothing else opens a codec),
//! every packet in the files identical to what the camera sent.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ff::{Dir, count_frames, decode_strict, ffprobe_packets};
use common::gst::{GstServer, free_port};
use eyrie::config::Config;
use eyrie::encode::{decoders_opened, encoders_opened};
use eyrie::events::Event;
use eyrie::hub::{Item, SubscribeOptions, Subscription};
use eyrie::media::Packet;
use eyrie::server::Server;

/// A server recording `camera`'s `mount` as node `cam` (`segment` s files)
/// under `dir`, and a subscription to what it receives.
fn record(camera: &GstServer, mount: &str, segment: u32, dir: &Dir) -> (Server, Subscription) {
    let text = format!(
        "[server]\nmedia_root = {:?}\n\
         [[node]]\nname = \"cam\"\nkind = \"rtsp\"\nurl = \"{}\"\n\
         [[node]]\nname = \"rec\"\nkind = \"record\"\nlisten_to = \"cam\"\nsegment = {segment}\n",
        dir.file("media").display().to_string(),
        camera.url(mount, "tcp")
    );
    let server = Server::start(Config::parse(&text, "test").unwrap()).unwrap();
    let sent = server.hub().subscribe("cam", SubscribeOptions::blocking(4096));
    (server, sent)
}

/// The `n` packets `sent` gets (within 10 s).
fn packets(sent: &Subscription, n: usize) -> Vec<Packet> {
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.len() < n && Instant::now() < deadline {
        if let Ok(Item::Packet(p)) = sent.recv_timeout(Duration::from_millis(200)) {
            received.push(p);
        }
    }
    assert_eq!(received.len(), n);
    received
}

#[test]
fn an_rtsp_camera_is_recorded_for_30_s_without_decoding_or_encoding() {
    const FRAMES: usize = 900; // 30 s at 30 fps
    let camera = GstServer::start(free_port(), &["--frames", "900", "--gop", "30", "--size", "640x360"]);
    let dir = Dir::new();
    let (server, sent) = record(&camera, "h264", 10, &dir);
    let events = server.events();
    let served = camera.served();
    assert_eq!(served.mount, "/h264");
    // x264 may hold back its last frame at end of stream: what it reports sent is the reference.
    let n = served.frames;
    assert!(n + 2 >= FRAMES, "{served:?}");
    // What Eyrie received: every packet the camera sent.
    let received = packets(&sent, n);
    drop(sent);
    server.stop_recording("rec").wait().unwrap().expect("the last file");
    let files: Vec<_> = events
        .try_iter()
        .filter_map(|e| match e {
            Event::Closed(f) => Some(f),
            _ => None,
        })
        .collect();
    let stats = server.shutdown();
    assert_eq!(
        (encoders_opened(), decoders_opened()),
        (0, 0),
        "nothing decoded or encoded"
    );
    assert_eq!(stats.bytes_copied, 0);
    assert!(files.len() >= 3, "10 s segments of 30 s: {files:#?}");

    // The files hold exactly the packets received, byte for byte, keyframes where the camera put them.
    let mut stored = Vec::new();
    for f in &files {
        let path = Path::new(&f.path);
        decode_strict(path).unwrap();
        assert_eq!(count_frames(path), f.frames);
        assert!(ffprobe_packets(path)[0].key);
        stored.extend(eyrie::demux::read_file(path, &Arc::from("check")).unwrap());
    }
    assert_eq!(stored.len(), n);
    for (i, (s, r)) in stored.iter().zip(&received).enumerate() {
        assert_eq!(s.data, r.data, "packet {i}");
        assert_eq!(s.keyframe, r.keyframe, "packet {i}");
    }
    let keyframes: Vec<usize> = stored
        .iter()
        .enumerate()
        .filter(|(_, p)| p.keyframe)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(keyframes, served.keyframes);
}

/// A camera sending H.264 with two B-frames (high profile): its packets get
/// decoding times from their picture order, so the recording keeps every
/// frame and decodes cleanly (with `dts = pts`, every GOP was cut short).
#[test]
fn an_rtsp_camera_with_b_frames_is_recorded_with_every_frame() {
    let camera = GstServer::start(free_port(), &["--frames", "240", "--gop", "30", "--size", "320x240"]);
    let dir = Dir::new();
    let (server, sent) = record(&camera, "h264b", 60, &dir);
    let n = camera.served().frames;
    let received = packets(&sent, n);
    assert!(
        received.iter().any(|p| p.pts != p.dts),
        "the camera sent no B-frames (dts = pts everywhere)"
    );
    for w in received.windows(2) {
        assert!(w[1].dts > w[0].dts, "decoding times go forward");
    }
    assert!(received.iter().all(|p| p.dts <= p.pts));
    // Each packet carries the UTC time of its picture, in presentation order,
    // none after the picture arrived (give or take the scheduling of a loaded machine).
    let now = std::time::SystemTime::now() + Duration::from_millis(250);
    for p in &received {
        let age = now.duration_since(p.capture_utc).expect("captured before it arrived");
        assert!(age < Duration::from_secs(30), "{age:?}");
    }
    let mut by_pts: Vec<&Packet> = received.iter().collect();
    by_pts.sort_by_key(|p| p.pts);
    assert!(by_pts.windows(2).all(|w| w[0].capture_utc < w[1].capture_utc));
    let file = server.stop_recording("rec").wait().unwrap().expect("the file");
    let stats = server.shutdown();
    let rec = stats.nodes.iter().find(|n| n.name == "rec").unwrap();
    assert_eq!(rec.frames_dropped, 0, "{rec:?}");
    decode_strict(&file.path).unwrap();
    assert_eq!(file.frames as usize, n);
    assert_eq!(count_frames(&file.path) as usize, n);
}
