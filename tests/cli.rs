//! The `eyrie` binary: run, stats, check, clean shutdown on signals.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

fn eyrie() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_eyrie"));
    c.env("EYRIE_LOG", "warn");
    // Tests run side by side: each server's RTSP and HTTP listeners take a free port.
    c.env("EYRIE_RTSP", "127.0.0.1:0");
    c.env("EYRIE_HTTP", "127.0.0.1:0");
    c
}

fn read_stats(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("stats written")).expect("stats are JSON")
}

fn node<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

#[test]
fn the_default_run_writes_stats() {
    let dir = tempfile::tempdir().unwrap();
    let stats_path = dir.path().join("s.json");
    let out = eyrie()
        .args(["run", "--for", "2", "--stats"])
        .arg(&stats_path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats = read_stats(&stats_path);
    // It records the demo output (the mosaic, named after its tiler), and keeps a
    // latest snapshot of each camera, in ./eyrie-media.
    let media = dir.path().join("eyrie-media");
    for f in [
        "snapshots/cam0/latest.jpg",
        "snapshots/cam1/latest.jpg",
        "eyrie-index.sqlite",
    ] {
        assert!(media.join(f).is_file(), "{f}");
    }
    assert_eq!(std::fs::read_dir(media.join("recordings/tile")).unwrap().count(), 1);
    assert_eq!(stats["bytes_copied"], 0, "no stage of the default run copies a frame");
    let names: Vec<&str> = stats["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "cam0", "cam1", "in0", "in1", "in2", "in3", "infer", "track", "tile", "deep", "h264", "h264b", "rec",
            "sr0", "sr1", "snap0", "snap1"
        ]
    );
    let h264 = node(&stats, "h264");
    assert_eq!(
        (&h264["kind"], &h264["listen_to"], &h264["state"]),
        (&"encode".into(), &"deep".into(), &"stopped".into())
    );
    assert!(
        h264["frames_out"].as_u64().unwrap() >= 30,
        "the demo output is encoded: {h264}"
    );
    // Every input went through the detector, and the mosaic carries its boxes.
    let infer = node(&stats, "infer");
    assert!(infer["frames_out"].as_u64().unwrap() >= 60, "{infer}");
    assert_eq!(node(&stats, "deep")["state"], "stopped");
    // Each AI stage reports its µs per frame.
    for (name, stages) in [
        ("infer", &["preprocess", "inference", "decode_nms"][..]),
        ("track", &["track"]),
        ("tile", &["tile"]),
        ("deep", &["osd"]),
    ] {
        let us = &node(&stats, name)["stages_us"];
        for stage in stages {
            assert!(
                us[stage].as_f64().is_some_and(|t| t > 0.0),
                "{name}.stages_us.{stage}: {us}"
            );
        }
    }
    for (input, cam) in [("in0", "cam0"), ("in1", "cam0"), ("in2", "cam1"), ("in3", "cam1")] {
        let (i, c) = (node(&stats, input), node(&stats, cam));
        assert_eq!(i["kind"], "relay");
        assert_eq!(i["state"], "stopped");
        assert_eq!(i["listen_to"], cam);
        for key in ["frames_in", "frames_out", "frames_dropped", "fps"] {
            assert!(i[key].is_number(), "{input}.{key}");
        }
        let published = c["frames_out"].as_u64().unwrap();
        assert!(published >= 30, "{cam} published {published} frames in 2 s");
        let seen = i["frames_in"].as_u64().unwrap() + i["frames_dropped"].as_u64().unwrap();
        assert_eq!(seen, published, "{input} accounts for every frame of {cam}");
        assert!(i["fps"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn sigint_and_sigterm_stop_every_node_cleanly() {
    for signal in ["-INT", "-TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let stats_path = dir.path().join("s.json");
        let mut child = eyrie()
            .env("EYRIE_LOG", "info")
            .args(["run", "--stats"])
            .arg(&stats_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Signal only once the server says it runs (its handlers are in place by then).
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("server started") {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "eyrie exited before starting");
        }
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        std::thread::sleep(Duration::from_millis(300));
        let killed = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "eyrie did not stop on {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{signal}: {status}");
        let stats = read_stats(&stats_path);
        for n in stats["nodes"].as_array().unwrap() {
            assert_eq!(n["state"], "stopped", "{signal}: {n}");
        }
    }
}

#[test]
fn a_finite_config_runs_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("finite.toml");
    std::fs::write(
        &config,
        r#"
[[node]]
name = "cam0"
kind = "testsrc"
width = 320
height = 240
live = false
num_frames = 90

[[node]]
name = "in0"
kind = "relay"
listen_to = "cam0"
policy = "blocking"
"#,
    )
    .unwrap();
    let stats_path = dir.path().join("s.json");
    let out = eyrie()
        .args(["run", "-c"])
        .arg(&config)
        .arg("--stats")
        .arg(&stats_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats = read_stats(&stats_path);
    assert_eq!(node(&stats, "cam0")["frames_out"], 90);
    assert_eq!(node(&stats, "in0")["frames_out"], 90);
}

#[test]
fn check_accepts_good_configs_and_locates_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[[node]]\nname = \"cam0\"\nkind = \"testsrc\"\n").unwrap();
    let out = eyrie().args(["check", "-c"]).arg(&good).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok, 1 nodes: cam0 (testsrc)"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[node]]\nname = \"cam0\"\nkind = \"testsrc\"\nfsp = 30\n").unwrap();
    let out = eyrie().args(["check", "-c"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:4:1: key `node.fsp`") && err.contains("unknown key"),
        "{err}"
    );

    let out = eyrie().args(["run", "-c"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "run refuses a bad config too");

    let out = eyrie()
        .args(["check", "-c"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn eyrie_record_stores_cameras_without_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let out = eyrie()
        .args([
            "record",
            "testsrc://?size=320x240&fps=30",
            "testsrc://?size=320x240&seed=3",
            "--dir",
        ])
        .arg(&media)
        .args(["--segment", "1", "--for", "2.5"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for cam in ["cam0", "cam1"] {
        let files: Vec<_> = std::fs::read_dir(media.join(cam))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(files.len() >= 2, "{cam}: 1 s segments of 2.5 s: {files:?}");
        for f in files {
            common::ff::decode_strict(&f).unwrap();
        }
    }
    assert!(media.join("eyrie-index.sqlite").is_file());
    let bad = eyrie()
        .args(["record", "testsrc://", "--dir"])
        .arg(&media)
        .args(["--container", "avi"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected mp4, mkv or ts"));
}
