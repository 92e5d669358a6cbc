//! Recording: the `record` and `smartrecord` nodes, snapshots, the media
//! root and the recordings index — every file judged by FFmpeg (a strict
//! decode, `ffprobe` frame counts) and, for clips, by the frame numbers the
//! synthetic cameras stamp into their pictures.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::ff::{Dir, count_frames, decode_strict, ffprobe_packets, tool};
use eyrie::capture::testsrc::stamp;
use eyrie::config::Config;
use eyrie::events::{Event, EventSubscription, FileEvent};
use eyrie::hub::{Item, SubscribeOptions};
use eyrie::media::{Fps, PixelFormat, VideoInfo};
use eyrie::output::index::Kind;
use eyrie::server::{ClipRequest, NodeState, Server};

/// A config: `[server]` with the media root `root`, then `nodes` (TOML).
fn config(root: &Path, nodes: &str) -> Config {
    let text = format!("[server]\nmedia_root = {:?}\n{nodes}", root.display().to_string());
    Config::parse(&text, "test").unwrap_or_else(|e| panic!("{e}"))
}

/// A synthetic camera `name` and an H.264 encoder `{name}-h264` on it.
fn camera(name: &str, size: (u32, u32), fps: u32, frames: Option<u64>, keyint: u32) -> String {
    let frames = frames.map_or(String::new(), |n| format!("num_frames = {n}\n"));
    format!(
        "[[node]]\nname = \"{name}\"\nkind = \"testsrc\"\nwidth = {}\nheight = {}\nfps = {fps}\nnoise = 0\n{frames}\
         [[node]]\nname = \"{name}-h264\"\nkind = \"encode\"\nlisten_to = \"{name}\"\nkeyint = {keyint}\nbitrate = 2000000\n",
        size.0, size.1
    )
}

/// Runs until every source has ended, then shuts down; returns the events.
fn run_to_end(server: Server, events: &EventSubscription) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.sources_finished() {
        assert!(Instant::now() < deadline, "the sources never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = server.shutdown();
    for n in &stats.nodes {
        assert_eq!(n.frames_dropped, 0, "{} dropped: {n:?}", n.name);
        assert_ne!(n.state, NodeState::Failed, "{}: {:?}", n.name, n.error);
    }
    events.try_iter().collect()
}

fn closed(events: &[Event]) -> Vec<FileEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Closed(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

fn assert_plays(file: &Path, frames: u64) {
    decode_strict(file).unwrap();
    assert_eq!(count_frames(file), frames, "{}", file.display());
    let packets = ffprobe_packets(file);
    assert!(packets[0].key, "{} starts on a keyframe", file.display());
}

#[test]
fn segments_start_on_keyframes_and_lose_no_frame() {
    let dir = Dir::new();
    let root = dir.file("media");
    let nodes = camera("cam", (320, 240), 60, Some(120), 15)
        + "[[node]]\nname = \"rec\"\nkind = \"record\"\nlisten_to = \"cam-h264\"\nsegment = 0.5\n\
           [[node]]\nname = \"mkv\"\nkind = \"record\"\nlisten_to = \"cam-h264\"\ncontainer = \"mkv\"\nsegment = 0\npath = \"other/{camera}-{node}\"\n\
           [[node]]\nname = \"ts\"\nkind = \"record\"\nlisten_to = \"cam-h264\"\ncontainer = \"ts\"\nsegment = 1\npath = \"other/{camera}-{node}-{n}\"\n\
           [[node]]\nname = \"fast\"\nkind = \"record\"\nlisten_to = \"cam-h264\"\nfaststart = true\nsegment = 0\npath = \"other/{camera}-{node}\"\n";
    let server = Server::start(config(&root, &nodes)).unwrap();
    let events = server.events();
    let events = run_to_end(server, &events);
    let files = closed(&events);
    let of = |node: &str| files.iter().filter(|f| f.node == node).collect::<Vec<_>>();

    // 120 frames at 60 fps, a keyframe every 15, a segment every 0.5 s: 4 files of 30.
    let segments = of("rec");
    assert_eq!(segments.len(), 4, "{segments:#?}");
    for s in &segments {
        assert_eq!(s.frames, 30);
        assert!(s.path.contains("/recordings/cam/cam-"), "{}", s.path);
        assert_plays(Path::new(&s.path), 30);
    }
    // Consecutive: each file starts right after the previous one ends.
    for w in segments.windows(2) {
        let gap = w[1].first_pts - w[0].last_pts;
        assert!((gap - 1_000_000_000 / 60).abs() <= 1, "one frame apart: {w:#?}");
    }
    for (node, ext) in [("mkv", "mkv"), ("fast", "mp4")] {
        let f = &of(node)[0];
        assert!(f.path.ends_with(&format!("other/cam-{node}.{ext}")), "{}", f.path);
        assert_plays(Path::new(&f.path), 120);
    }
    let ts = of("ts");
    assert_eq!(ts.len(), 2);
    assert!(ts[1].path.ends_with("other/cam-ts-1.ts"));
    assert_eq!(ts.iter().map(|f| count_frames(Path::new(&f.path))).sum::<u64>(), 120);
    // Faststart: `moov` before `mdat`.
    let fast = std::fs::read(&of("fast")[0].path).unwrap();
    let at = |kind: &[u8]| fast.windows(4).position(|w| w == kind).unwrap();
    assert!(at(b"moov") < at(b"mdat"));

    // The index lists every file with its size and frames.
    let server = Server::start(config(&root, "")).unwrap();
    let rows = server.recordings(Some("cam")).unwrap();
    assert_eq!(rows.len(), 4 + 1 + 2 + 1, "{rows:#?}");
    for r in &rows {
        assert_eq!(r.kind, Kind::Continuous);
        assert!(r.end.is_some());
        let file = root.join(&r.path);
        assert_eq!(std::fs::metadata(&file).unwrap().len(), r.size, "{}", r.path);
    }
    assert_eq!(
        rows.iter()
            .filter(|r| r.path.starts_with("recordings/"))
            .map(|r| r.frames)
            .sum::<u64>(),
        120
    );
}

#[test]
fn recording_starts_and_stops_at_run_time() {
    let dir = Dir::new();
    let nodes = camera("cam", (320, 240), 30, None, 10)
        + "[[node]]\nname = \"rec\"\nkind = \"record\"\nlisten_to = \"cam-h264\"\nautostart = false\n";
    let server = Server::start(config(&dir.file("media"), &nodes)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.stop_recording("rec").wait().unwrap(),
        None,
        "nothing was recording"
    );
    server.start_recording("rec").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    // Stop returns once the file is finalized: it plays at once.
    let file = server.stop_recording("rec").wait().unwrap().expect("a file");
    assert_plays(&file.path, file.frames);
    assert!(file.frames >= 20, "{file:?}");
    assert!(
        server
            .stop_recording("cam")
            .wait()
            .unwrap_err()
            .to_string()
            .contains("is not a record node")
    );
    assert!(server.stop_recording("nope").wait().is_err());
    server.shutdown();
}

/// A record node added to a running server joins at a keyframe; removed, it
/// closes its file playable, with every packet it took in.
#[test]
fn a_record_node_added_and_removed_at_run_time_leaves_a_playable_file() {
    let dir = Dir::new();
    let server = Server::start(config(&dir.file("media"), &camera("cam", (320, 240), 30, None, 10))).unwrap();
    let events = server.events();
    std::thread::sleep(Duration::from_millis(400));
    let spec =
        eyrie::config::NodeSpec::from_toml("name = \"rec\"\nkind = \"record\"\nlisten_to = \"cam-h264\"\n", "<api>")
            .unwrap();
    server.add_node(spec).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let stats = server.remove_node("rec").unwrap();
    assert_eq!(
        (stats.state, stats.frames_dropped),
        (NodeState::Stopped, 0),
        "{stats:?}"
    );
    let files = closed(&events.try_iter().collect::<Vec<_>>());
    assert_eq!(files.len(), 1, "{files:?}");
    assert_plays(Path::new(&files[0].path), files[0].frames);
    assert_eq!(
        files[0].frames, stats.frames_out,
        "every packet taken in is in the file"
    );
    assert!(files[0].frames >= 20, "{files:?}");
    server.shutdown();
}

#[test]
fn retention_keeps_the_byte_cap_and_never_the_open_file() {
    let dir = Dir::new();
    let root = dir.file("media");
    let cap = 60_000;
    let nodes = camera("cam", (320, 240), 60, Some(240), 6)
        + &format!(
            "[[node]]\nname = \"rec\"\nkind = \"record\"\nlisten_to = \"cam-h264\"\nsegment = 0.1\nmax_bytes = {cap}\n"
        );
    let server = Server::start(config(&root, &nodes)).unwrap();
    let events = server.events();
    let mut biggest = 0;
    let mut peak = 0;
    while !server.sources_finished() {
        for e in events.try_iter() {
            if let Event::Closed(f) = e {
                biggest = biggest.max(f.bytes);
            }
        }
        let on_disk: u64 = files_under(&root.join("recordings")).iter().map(|f| f.1).sum();
        peak = peak.max(on_disk);
        std::thread::sleep(Duration::from_millis(5));
    }
    server.shutdown();
    // Over the cap by at most the file being written and the one just closed.
    assert!(
        peak <= cap + 2 * biggest,
        "peak {peak} with cap {cap}, files up to {biggest}"
    );
    let left = files_under(&root.join("recordings"));
    let total: u64 = left.iter().map(|f| f.1).sum();
    assert!(total <= cap, "{total} bytes left, cap {cap}");
    let server = Server::start(config(&root, "")).unwrap();
    assert_eq!(
        server.recordings(None).unwrap().len(),
        left.len(),
        "the index matches the disk"
    );
}

fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if let Ok(m) = p.metadata() {
            out.push((p, m.len()));
        }
    }
    out
}

#[test]
fn paths_that_leave_the_media_root_are_refused() {
    let dir = Dir::new();
    let root = dir.file("media");
    for (path, why) in [
        ("../escape/{camera}", "`..` is not allowed"),
        ("/tmp/{camera}", "an absolute path is not allowed"),
        ("x/{cam}", "unknown placeholder `{cam}`"),
    ] {
        let nodes = camera("cam", (320, 240), 30, Some(1), 10)
            + &format!("[[node]]\nname = \"rec\"\nkind = \"record\"\nlisten_to = \"cam-h264\"\npath = \"{path}\"\n");
        let text = format!("[server]\nmedia_root = {:?}\n{nodes}", root.display().to_string());
        let e = Config::parse(&text, "rec.toml").unwrap_err().to_string();
        assert!(e.contains("key `node.path`") && e.contains(why), "{e}");
    }
    // A link inside the root pointing out of it.
    std::fs::create_dir_all(&root).unwrap();
    let outside = dir.file("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("recordings")).unwrap();
    let nodes = camera("cam", (320, 240), 60, Some(30), 10)
        + "[[node]]\nname = \"rec\"\nkind = \"record\"\nlisten_to = \"cam-h264\"\n";
    let server = Server::start(config(&root, &nodes)).unwrap();
    let events = server.events();
    while !server.sources_finished() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = server.shutdown();
    let rec = stats.nodes.iter().find(|n| n.name == "rec").unwrap();
    assert_eq!(rec.state, NodeState::Failed);
    assert!(
        rec.error.as_deref().unwrap().contains("outside the media root"),
        "{rec:?}"
    );
    assert!(events.try_iter().any(|e| matches!(e, Event::Failed { .. })));
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
}

/// The frame numbers stamped in the first and last pictures of `file`.
fn stamps(file: &Path, width: u32, height: u32) -> (u32, u32, usize) {
    let out = tool("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let info = VideoInfo::new(PixelFormat::Gray8, width, height, Fps { num: 30, den: 1 }).unwrap();
    let frames: Vec<u32> = out
        .stdout
        .chunks_exact(info.size())
        .map(|f| stamp::read(&info, f).expect("a readable stamp").frame)
        .collect();
    for w in frames.windows(2) {
        assert_eq!(w[1], w[0] + 1, "{}: consecutive frames", file.display());
    }
    (frames[0], *frames.last().unwrap(), frames.len())
}

/// The next `n` files closed (waiting up to 10 s).
fn closed_files(events: &EventSubscription, n: usize) -> Vec<FileEvent> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut files = Vec::new();
    while files.len() < n {
        assert!(Instant::now() < deadline, "files never closed: {files:?}");
        if let Ok(Event::Closed(f)) = events.recv_timeout(Duration::from_millis(100)) {
            files.push(f);
        }
    }
    files
}

/// What an encoder sent so far: (pts, frame number, keyframe) per packet.
fn sent_packets(sent: eyrie::hub::Subscription) -> Vec<(i64, u64, bool)> {
    let mut packets = Vec::new();
    while let Ok(item) = sent.try_recv() {
        if let Item::Packet(p) = item {
            packets.push((p.pts, p.seq, p.keyframe));
        }
    }
    packets
}

#[test]
fn smart_record_clips_start_before_their_trigger() {
    let dir = Dir::new();
    let (w, h) = (640, 360);
    let mut nodes = String::new();
    for cam in ["a", "b"] {
        nodes += &camera(cam, (w, h), 30, None, 10);
        nodes +=
            &format!("[[node]]\nname = \"sr-{cam}\"\nkind = \"smartrecord\"\nlisten_to = \"{cam}-h264\"\ncache = 3\n");
    }
    let server = Server::start(config(&dir.file("media"), &nodes)).unwrap();
    let events = server.events();
    // What the encoder sent: (pts, frame number, keyframe).
    let sent = server.hub().subscribe("a-h264", SubscribeOptions::blocking(4096));
    std::thread::sleep(Duration::from_millis(2500));
    let ask = |node: &str, before, after| {
        server
            .smart_record(
                node,
                ClipRequest {
                    before: Some(before),
                    after: Some(after),
                    trigger: "test".into(),
                },
            )
            .wait()
            .unwrap()
    };
    let t1 = ask("sr-a", 1.0, 1.0);
    let tb = ask("sr-b", 0.5, 0.5);
    assert!(!t1.extended && !tb.extended);
    std::thread::sleep(Duration::from_millis(500));
    let t2 = ask("sr-a", 1.0, 1.0);
    assert!(t2.extended, "a trigger during the clip extends it");
    let clips = closed_files(&events, 2);
    let packets = sent_packets(sent);
    let stats = server.shutdown();
    assert!(stats.nodes.iter().all(|n| n.frames_dropped == 0), "{stats:#?}");

    let clip_a = clips.iter().find(|c| c.node == "sr-a").unwrap();
    let clip_b = clips.iter().find(|c| c.node == "sr-b").unwrap();
    assert_eq!((clip_a.kind, clip_a.trigger.as_deref()), (Kind::Event, Some("test")));
    assert_eq!(clip_b.camera, "b");
    let path = Path::new(&clip_a.path);
    decode_strict(path).unwrap();
    let (first, last, n) = stamps(path, w, h);
    assert_eq!(n as u64, clip_a.frames);
    let from = t1.trigger_ns - 1_000_000_000;
    let expected_first = packets
        .iter()
        .filter(|p| p.2 && p.0 <= from)
        .map(|p| p.1)
        .max()
        .unwrap();
    let until = t2.trigger_ns + 1_000_000_000;
    let expected_last = packets.iter().filter(|p| p.0 <= until).map(|p| p.1).max().unwrap();
    assert_eq!(
        first as u64, expected_first,
        "the last keyframe at or before trigger - before"
    );
    assert!(
        (last as i64 - expected_last as i64).abs() <= 1,
        "last frame {last}, expected {expected_last} (extended to the second trigger + after)"
    );
    decode_strict(Path::new(&clip_b.path)).unwrap();
    assert!(clip_b.duration_s > 0.9 && clip_b.duration_s < 2.0, "{clip_b:?}");
}

/// `overlap = true` and Matroska clips: a second trigger during a clip starts
/// a clip of its own, each a whole `.mkv` from the last keyframe at or before
/// its own `trigger - before`; the node's stats show what its cache holds.
#[test]
fn overlapping_matroska_clips_each_start_before_their_own_trigger() {
    let dir = Dir::new();
    let (w, h) = (320, 180);
    let mut nodes = camera("a", (w, h), 30, None, 10);
    nodes += "[[node]]\nname = \"sr\"\nkind = \"smartrecord\"\nlisten_to = \"a-h264\"\ncache = 3\n\
              container = \"mkv\"\noverlap = true\n";
    let server = Server::start(config(&dir.file("media"), &nodes)).unwrap();
    let events = server.events();
    let sent = server.hub().subscribe("a-h264", SubscribeOptions::blocking(4096));
    std::thread::sleep(Duration::from_millis(2500));
    let cache = server
        .stats()
        .nodes
        .into_iter()
        .find(|n| n.name == "sr")
        .unwrap()
        .cache
        .unwrap();
    assert!(
        cache.packets > 30 && cache.bytes > 10_000 && cache.span_s > 1.0 && cache.span_s <= 3.0,
        "{cache:?}"
    );
    let ask = |before, after| {
        let request = ClipRequest {
            before: Some(before),
            after: Some(after),
            trigger: "overlap".into(),
        };
        server.smart_record("sr", request).wait().unwrap()
    };
    let t1 = ask(1.0, 1.0);
    std::thread::sleep(Duration::from_millis(600));
    let t2 = ask(0.5, 1.0);
    assert!(
        !t1.extended && !t2.extended,
        "with overlap, each trigger has its own clip"
    );
    let clips = closed_files(&events, 2);
    let packets = sent_packets(sent);
    server.shutdown();
    let mut firsts = Vec::new();
    for clip in &clips {
        let path = Path::new(&clip.path);
        assert_eq!(path.extension().unwrap(), "mkv", "{clip:?}");
        decode_strict(path).unwrap();
        assert!(tool("mkvinfo").arg(path).output().unwrap().status.success());
        let (first, _, n) = stamps(path, w, h);
        assert_eq!(n as u64, clip.frames);
        firsts.push(first as u64);
    }
    firsts.sort();
    for (first, (t, before)) in firsts.iter().zip([(t1.trigger_ns, 1.0), (t2.trigger_ns, 0.5)]) {
        let from = t - (before * 1e9) as i64;
        let expected = packets
            .iter()
            .filter(|p| p.2 && p.0 <= from)
            .map(|p| p.1)
            .max()
            .unwrap();
        assert_eq!(
            *first, expected,
            "a clip starts at the last keyframe before its trigger - before"
        );
    }
    assert!(firsts[0] < firsts[1], "two clips, two starts: {firsts:?}");
}

#[test]
fn snapshots_from_raw_and_coded_streams() {
    let dir = Dir::new();
    let root = dir.file("media");
    let nodes = camera("cam", (320, 240), 30, None, 10)
        + "[[node]]\nname = \"snap\"\nkind = \"snapshot\"\nlisten_to = \"cam\"\ninterval = 0.2\n\
           [[node]]\nname = \"snap-coded\"\nkind = \"snapshot\"\nlisten_to = \"cam-h264\"\ninterval = 0.2\n";
    let server = Server::start(config(&root, &nodes)).unwrap();
    let raw = server
        .snapshot("cam", Some("shots/{camera}-{utc}.jpg"), 90, Duration::from_secs(5))
        .wait()
        .unwrap();
    assert_eq!((raw.width, raw.height, raw.camera.as_str()), (320, 240, "cam"));
    let coded = server
        .snapshot("cam-h264", None, 80, Duration::from_secs(5))
        .wait()
        .unwrap();
    assert_eq!((coded.width, coded.height), (320, 240));
    assert!(coded.path.is_none());
    std::thread::sleep(Duration::from_millis(700));
    let latest = server.latest_snapshot("snap").unwrap().expect("a snapshot by now");
    let latest_coded = server
        .latest_snapshot("snap-coded")
        .unwrap()
        .expect("a snapshot by now");
    assert!(
        server
            .snapshot("nope", None, 80, Duration::from_millis(100))
            .wait()
            .is_err()
    );
    let rows = server.recordings(Some("cam")).unwrap();
    let stats = server.shutdown();
    assert!(stats.nodes.iter().find(|n| n.name == "snap").unwrap().frames_out >= 2);
    for s in [&raw, &coded, &latest, &latest_coded] {
        assert_eq!(&s.jpeg[..2], &[0xFF, 0xD8]);
    }
    // Files FFmpeg decodes strictly: the one asked for (indexed) and the latest of each node.
    let written = raw.path.as_ref().unwrap();
    assert_eq!(std::fs::read(written).unwrap(), raw.jpeg);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].kind, rows[0].trigger.as_deref()),
        (Kind::Snapshot, Some("api"))
    );
    for f in [written.clone(), root.join("snapshots/cam/latest.jpg")] {
        decode_strict(&f).unwrap();
    }
}

/// Runs this test binary's test `name` again as a child process, with `env`
/// set, through `wrap` (a command prefix, e.g. `unshare`); returns it.
fn rerun(name: &str, env: (&str, &Path), wrap: &[&str]) -> std::process::Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(wrap.first().copied().unwrap_or(exe.to_str().unwrap()));
    if !wrap.is_empty() {
        cmd.args(&wrap[1..]).arg(&exe);
    }
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(env.0, env.1);
    cmd
}

#[test]
fn a_full_disk_stops_the_recording_and_keeps_what_was_written() {
    const ENV: &str = "EYRIE_TEST_SMALL_DISK";
    if let Some(root) = std::env::var_os(ENV) {
        return full_disk(Path::new(&root));
    }
    // A 600 KiB tmpfs of our own, in new user and mount namespaces (root not needed).
    let dir = Dir::new();
    let small = dir.file("small");
    std::fs::create_dir(&small).unwrap();
    let out = rerun(
        "a_full_disk_stops_the_recording_and_keeps_what_was_written",
        (ENV, &small),
        &[
            "unshare",
            "-rm",
            "sh",
            "-c",
            "mount -t tmpfs -o size=600k tmpfs \"$EYRIE_TEST_SMALL_DISK\" && exec \"$@\"",
            "sh",
        ],
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
}

fn full_disk(root: &Path) {
    // Other data on the disk, which the user deletes once it is full.
    let ballast = root.join("ballast");
    std::fs::write(&ballast, vec![1u8; 100 << 10]).unwrap();
    let nodes = camera("cam", (320, 240), 60, None, 15)
        + "[[node]]\nname = \"rec\"\nkind = \"record\"\nlisten_to = \"cam-h264\"\nsegment = 0\n";
    let server = Server::start(config(root, &nodes)).unwrap();
    let events = server.events();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (error, kept) = loop {
        assert!(Instant::now() < deadline, "the disk never filled");
        if let Ok(Event::Failed { error, kept, .. }) = events.recv_timeout(Duration::from_millis(100)) {
            break (error, kept.expect("the file that was open"));
        }
    };
    assert!(error.contains("the disk is full"), "{error}");
    // The server runs on: the camera and encoder still deliver.
    let before = server
        .stats()
        .nodes
        .iter()
        .find(|n| n.name == "cam-h264")
        .unwrap()
        .frames_out;
    std::thread::sleep(Duration::from_millis(300));
    let stats = server.stats();
    assert!(stats.nodes.iter().find(|n| n.name == "cam-h264").unwrap().frames_out > before);
    let rec = stats.nodes.iter().find(|n| n.name == "rec").unwrap();
    assert_eq!(rec.state, NodeState::Failed);
    server.shutdown();
    // What was written plays, frame for frame.
    let file = Path::new(&kept.path);
    assert!(kept.frames > 30, "{kept:?}");
    decode_strict(file).unwrap();
    assert_eq!(count_frames(file), kept.frames);
    // And once there is room again, the index lists it, complete (completed
    // then, or recovered on this start when the disk was too full for the update).
    std::fs::remove_file(&ballast).unwrap();
    let server = Server::start(config(root, "")).unwrap();
    let rows = server.recordings(None).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].frames, rows[0].end.is_some()), (kept.frames, true));
}

#[test]
fn kill_9_during_a_recording_and_a_clip_loses_only_the_last_fragment() {
    const ENV: &str = "EYRIE_TEST_KILL_ROOT";
    let nodes = camera("cam", (320, 240), 30, None, 10)
        + "[[node]]\nname = \"rec\"\nkind = \"record\"\nlisten_to = \"cam-h264\"\nsegment = 1\n\
           [[node]]\nname = \"sr\"\nkind = \"smartrecord\"\nlisten_to = \"cam-h264\"\ncache = 5\n";
    if let Some(root) = std::env::var_os(ENV) {
        // The child: record, start a long clip, say so, and wait to be killed.
        let server = Server::start(config(Path::new(&root), &nodes)).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let clip = ClipRequest {
            before: Some(1.0),
            after: Some(60.0),
            trigger: "kill test".into(),
        };
        server.smart_record("sr", clip).wait().unwrap();
        println!("READY");
        std::thread::sleep(Duration::from_secs(60));
        panic!("not killed");
    }
    let dir = Dir::new();
    let root = dir.file("media");
    let mut child = rerun(
        "kill_9_during_a_recording_and_a_clip_loses_only_the_last_fragment",
        (ENV, &root),
        &[],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    assert!(lines.any(|l| l.unwrap().contains("READY")), "the child never got ready");
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // After a restart: every file is listed, complete, and plays to its last whole fragment.
    let server = Server::start(config(&root, &nodes)).unwrap();
    let events = server.events();
    let rows = server.recordings(Some("cam")).unwrap();
    assert!(
        rows.iter().any(|r| r.kind == Kind::Event),
        "the clip is listed: {rows:#?}"
    );
    assert!(
        rows.iter().filter(|r| r.kind == Kind::Continuous).count() >= 2,
        "{rows:#?}"
    );
    for r in &rows {
        assert!(r.end.is_some(), "{r:?}");
        let file = root.join(&r.path);
        decode_strict(&file).unwrap();
        assert_eq!(count_frames(&file), r.frames, "{}", r.path);
    }
    let clip = rows.iter().find(|r| r.kind == Kind::Event).unwrap();
    assert_eq!(clip.trigger.as_deref(), Some("kill test"));
    assert!(clip.frames >= 60, "a second before and 1.5 s after: {clip:?}");
    // And recording resumes.
    // (Node state events come first: the nodes starting.)
    let resumed = std::iter::from_fn(|| events.recv_timeout(Duration::from_secs(5)).ok())
        .find(|e| !matches!(e, Event::Node { .. }))
        .expect("a new segment");
    assert!(matches!(resumed, Event::Closed(f) if f.node == "rec"));
    server.shutdown();
}

#[test]
fn a_trigger_takes_a_snapshot_and_starts_a_clip_once_per_cooldown() {
    let dir = Dir::new();
    let root = dir.file("media");
    let nodes = camera("cam", (320, 240), 30, None, 10)
        + "[[node]]\nname = \"sr\"\nkind = \"smartrecord\"\nlisten_to = \"cam-h264\"\ncache = 3\n\
           [[node]]\nname = \"trig\"\nkind = \"trigger\"\nlisten_to = \"cam\"\nclass = \"person\"\nmin_confidence = 0.5\n\
           zone = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]\ncooldown = 30\n\
           snapshot = \"snapshots/{camera}/{utc}.jpg\"\nsmart_record = \"sr\"\nbefore = 0.5\nafter = 0.5\n";
    let server = Server::start(config(&root, &nodes)).unwrap();
    let events = server.events();
    // A detector of our own: the camera's frames, re-published with detections,
    // which the trigger is relinked to (config names nodes; products publish streams).
    server.relink("trig", "det").unwrap();
    let frames = server.hub().subscribe("cam", SubscribeOptions::leaky(4));
    let mut detector = server.hub().publisher("det");
    let mut published = 0;
    while published < 60 {
        let Some(Item::Frame(mut frame)) = frames.recv() else {
            continue;
        };
        let (label, x) = match published {
            0..20 => ("car", 10.0),      // another class
            20..30 => ("person", 250.0), // outside the zone
            _ => ("person", 10.0),
        };
        frame.meta_mut().detections.push(eyrie::media::Detection {
            class_id: 0,
            label: label.into(),
            confidence: 0.9,
            bbox: eyrie::media::Rect {
                x,
                y: 100.0,
                w: 40.0,
                h: 80.0,
            },
            track_id: Some(1),
        });
        detector.publish(Item::Frame(frame));
        published += 1;
    }
    drop(frames);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut fired, mut clips) = (Vec::new(), Vec::new());
    while clips.is_empty() {
        assert!(Instant::now() < deadline, "no clip: {fired:?}");
        match events.recv_timeout(Duration::from_millis(100)) {
            Ok(Event::Triggered { class, actions, .. }) => fired.push((class, actions)),
            Ok(Event::Closed(f)) => clips.push(f),
            _ => {}
        }
    }
    let rows = server.recordings(Some("cam")).unwrap();
    server.shutdown();
    assert_eq!(fired.len(), 1, "once per cooldown: {fired:?}");
    assert_eq!(fired[0].0, "person");
    assert!(
        fired[0].1[0].starts_with("snapshot ") && fired[0].1[1] == "smart record on sr",
        "{fired:?}"
    );
    assert_eq!(clips[0].trigger.as_deref(), Some("person detected by trig"));
    decode_strict(Path::new(&clips[0].path)).unwrap();
    let shot = rows
        .iter()
        .find(|r| r.kind == Kind::Snapshot)
        .expect("the snapshot is indexed");
    assert_eq!(shot.trigger.as_deref(), Some("person detected by trig"));
    decode_strict(&root.join(&shot.path)).unwrap();
    // A trigger naming no smartrecord node is refused at load time.
    let bad =
        "[[node]]\nname = \"t\"\nkind = \"trigger\"\nlisten_to = \"t\"\nclass = \"car\"\nsmart_record = \"nope\"\n";
    let e = Config::parse(bad, "t.toml").unwrap_err().to_string();
    assert!(
        e.contains("key `smart_record`") && e.contains("`nope` names no smartrecord node"),
        "{e}"
    );
}
