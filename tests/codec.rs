//! Bitstream parsing judged by FFmpeg: streams encoded by the `ffmpeg` CLI
//! (libx264, libx265, libvpx-vp9, mjpeg) are split, parsed and compared with what
//! `ffprobe` reports for the same files.

mod common;

use std::path::Path;

use common::ff::{Dir, tool};

use eyrie::codec::{self, ParamTracker, h264, h265, jpeg, vp9};
use eyrie::media::Codec;

/// Encodes `frames` frames of FFmpeg's test pattern at `size` with `codec_args` into `out`.
fn encode(out: &Path, size: &str, frames: u32, codec_args: &[&str]) -> Vec<u8> {
    let status = tool("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=30"))
        .args(["-frames:v", &frames.to_string(), "-pix_fmt", "yuv420p"])
        .args(codec_args)
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg failed to make {}", out.display());
    std::fs::read(out).unwrap()
}

/// Keyframe flags of every packet, as ffprobe demuxes (and parses) the file.
fn ffprobe_keyframes(file: &Path) -> Vec<bool> {
    let out = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=flags",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.starts_with('K'))
        .collect()
}

fn ffprobe_size(file: &Path) -> (u32, u32) {
    let out = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (w, h) = text.trim().split_once(',').unwrap();
    (w.parse().unwrap(), h.parse().unwrap())
}

fn check_annexb(codec: Codec, file: &Path, data: &[u8], size: (u32, u32)) {
    let aus = codec::access_units(codec, data);
    let keys: Vec<bool> = aus.iter().map(|a| a.keyframe).collect();
    assert_eq!(
        keys,
        ffprobe_keyframes(file),
        "{}: access units and keyframes",
        file.display()
    );
    let mut tracker = ParamTracker::new(codec);
    let params = tracker
        .update(&aus[0])
        .unwrap()
        .expect("the first access unit carries parameter sets");
    assert_eq!((params.width, params.height), size, "{}", file.display());
    assert_eq!((params.width, params.height), ffprobe_size(file));
}

#[test]
fn h264_without_and_with_b_frames() {
    let dir = Dir::new();
    for (name, extra) in [
        ("nob.h264", &["-bf", "0"][..]),
        ("b.h264", &["-bf", "3", "-b_strategy", "0"][..]),
    ] {
        let f = dir.file(name);
        let mut args = vec!["-c:v", "libx264", "-g", "12", "-preset", "veryfast"];
        args.extend_from_slice(extra);
        let data = encode(&f, "640x360", 60, &args);
        check_annexb(Codec::H264, &f, &data, (640, 360));
        // The SPS says what x264 wrote.
        let sps = codec::nal::annexb(&data)
            .find(|n| h264::nal_type(n.data) == h264::SPS)
            .unwrap();
        let sps = h264::Sps::parse(sps.data, sps.offset).unwrap();
        assert_eq!(
            (sps.profile_idc, sps.chroma_format_idc, sps.bit_depth_luma),
            (100, 1, 8)
        );
        assert_eq!(sps.fps.map(|f| f.as_f64()), Some(30.0));
        assert!(sps.frame_mbs_only);
    }
}

#[test]
fn h264_odd_size_is_cropped() {
    let dir = Dir::new();
    let f = dir.file("odd.h264");
    let data = encode(&f, "1366x768", 10, &["-c:v", "libx264", "-preset", "ultrafast"]);
    check_annexb(Codec::H264, &f, &data, (1366, 768));
    let f = dir.file("odd2.h264");
    let data = encode(
        &f,
        "322x178",
        10,
        &["-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline"],
    );
    check_annexb(Codec::H264, &f, &data, (322, 178));
}

#[test]
fn h265_access_units_keyframes_and_size() {
    let dir = Dir::new();
    let f = dir.file("a.h265");
    let data = encode(
        &f,
        "1366x768",
        40,
        &[
            "-c:v",
            "libx265",
            "-x265-params",
            "keyint=10:min-keyint=10:log-level=error",
        ],
    );
    check_annexb(Codec::H265, &f, &data, (1366, 768));
    let sps = codec::nal::annexb(&data)
        .find(|n| h265::nal_type(n.data) == h265::SPS)
        .unwrap();
    let sps = h265::Sps::parse(sps.data, sps.offset).unwrap();
    assert_eq!(
        (sps.ptl.profile_idc, sps.chroma_format_idc, sps.bit_depth_luma),
        (1, 1, 8)
    );
}

#[test]
fn a_resolution_change_mid_stream_is_a_format_change() {
    let dir = Dir::new();
    let a = encode(
        &dir.file("a.h264"),
        "640x360",
        15,
        &["-c:v", "libx264", "-preset", "ultrafast"],
    );
    let b = encode(
        &dir.file("b.h264"),
        "320x240",
        15,
        &["-c:v", "libx264", "-preset", "ultrafast"],
    );
    let joined = [a.as_slice(), b.as_slice()].concat();
    let mut tracker = ParamTracker::new(Codec::H264);
    let mut changes = Vec::new();
    for (i, au) in codec::access_units(Codec::H264, &joined).iter().enumerate() {
        if let Some(p) = tracker.update(au).unwrap() {
            changes.push((i, p.width, p.height));
            let (sps, pps) = h264::parse_avcc(&p.extradata).unwrap();
            assert_eq!((sps.len(), pps.len()), (1, 1));
        }
    }
    assert_eq!(changes, [(0, 640, 360), (15, 320, 240)]);
}

#[test]
fn vp9_ivf_frames_keyframes_and_size() {
    let dir = Dir::new();
    let f = dir.file("a.ivf");
    let data = encode(
        &f,
        "640x360",
        40,
        &[
            "-c:v",
            "libvpx-vp9",
            "-g",
            "10",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
        ],
    );
    let vp9::Ivf { header, frames, cut } = vp9::parse_ivf(&data).unwrap();
    assert_eq!(cut, None);
    assert_eq!(&header.fourcc, b"VP90");
    assert_eq!((header.width, header.height), (640, 360));
    let keys: Vec<bool> = frames
        .iter()
        .map(|fr| {
            let first = vp9::superframe(fr.data, fr.offset).unwrap()[0];
            let h = vp9::parse_frame(first, fr.offset).unwrap();
            if h.keyframe {
                assert_eq!(h.size, Some((640, 360)));
            }
            h.keyframe
        })
        .collect();
    assert_eq!(keys, ffprobe_keyframes(&f));
    assert!(keys.iter().filter(|k| **k).count() >= 4);
}

#[test]
fn jpeg_size() {
    let dir = Dir::new();
    let f = dir.file("a.jpg");
    let data = encode(&f, "1366x768", 1, &["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"]);
    let info = jpeg::parse(&data).unwrap();
    assert_eq!((info.width, info.height, info.components), (1366, 768, 3));
}

#[test]
fn truncated_and_corrupt_streams_are_errors_not_panics() {
    let dir = Dir::new();
    let data = encode(
        &dir.file("a.h264"),
        "320x240",
        5,
        &["-c:v", "libx264", "-preset", "ultrafast"],
    );
    let sps = codec::nal::annexb(&data)
        .find(|n| h264::nal_type(n.data) == h264::SPS)
        .unwrap();
    for cut in 1..sps.data.len() {
        if let Err(e) = h264::Sps::parse(&sps.data[..cut], sps.offset) {
            assert!(e.offset >= sps.offset && e.offset <= sps.offset + cut, "{e}");
        }
    }
    // Every prefix of the stream splits without panicking.
    for cut in (0..data.len()).step_by(97) {
        let aus = codec::access_units(Codec::H264, &data[..cut]);
        let mut t = ParamTracker::new(Codec::H264);
        for au in &aus {
            let _ = t.update(au);
        }
    }
}
