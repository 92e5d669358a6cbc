//! Containers judged by independent implementations: streams encoded by the
//! `ffmpeg` CLI are wrapped by `eyrie mux` into every container, then
//! `ffprobe` must report the reference's frame count, keyframes and every
//! pts/dts; `ffmpeg -xerror -err_detect explode` must decode them silently;
//! `mkvinfo` and `tsinfo`/`tsreport` must accept them; and Eyrie's own
//! readers must give back the packets that went in.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use common::ff::{Dir, Probed, count_frames, decode_strict, ffmpeg, ffprobe_packets, tool};
use eyrie::codec::{h264, h265, nal};
use eyrie::demux::{self, EsKind, es};
use eyrie::media::{Codec, Packet};

/// One test input: an elementary stream and the reference timestamps.
struct Input {
    name: &'static str,
    es: PathBuf,
    /// A container FFmpeg wrote with the encoder's own timestamps, or `None`
    /// when the expectation is computed (concatenated streams).
    reference: Option<PathBuf>,
    fps: &'static str,
    containers: &'static [&'static str],
}

const H26X: &[&str] = &["ts", "mkv", "mp4", "frag.mp4"];
const VP9: &[&str] = &["mkv", "webm", "mp4", "frag.mp4"];

struct Inputs {
    _dir: Dir,
    list: Vec<Input>,
}

/// Encodes the inputs once per test binary.
fn inputs() -> &'static Inputs {
    static INPUTS: OnceLock<Inputs> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let dir = Dir::new();
        let f = |n: &str| dir.file(n).to_str().unwrap().to_string();
        let src = |size: &str, frames: u32| {
            [
                "-f".to_string(),
                "lavfi".into(),
                "-i".into(),
                format!("testsrc2=size={size}:rate=30"),
                "-frames:v".into(),
                frames.to_string(),
                "-pix_fmt".into(),
                "yuv420p".into(),
            ]
        };
        let mut list = Vec::new();
        let mut h26x = |name: &'static str, size: &str, frames: u32, enc: &[&str], bsf: &str, ext: &str| {
            let reference = f(&format!("{name}.ref.mp4"));
            let es = f(&format!("{name}.{ext}"));
            let mut args: Vec<String> = src(size, frames).to_vec();
            args.extend(enc.iter().map(|s| s.to_string()));
            args.extend(["-video_track_timescale".into(), "90000".into(), reference.clone()]);
            ffmpeg(&args);
            ffmpeg(&["-i", &reference, "-c", "copy", "-bsf:v", bsf, &es]);
            list.push(Input {
                name,
                es: es.into(),
                reference: Some(reference.into()),
                fps: "30",
                containers: H26X,
            });
        };
        let x264 = |bf: &'static str, g: &'static str| vec!["-c:v", "libx264", "-bf", bf, "-g", g];
        h26x("h264", "320x240", 45, &x264("0", "15"), "h264_mp4toannexb", "h264");
        h26x(
            "h264-bframes",
            "320x240",
            60,
            &x264("3", "30"),
            "h264_mp4toannexb",
            "h264",
        );
        h26x(
            "h264-odd-size",
            "1366x768",
            20,
            &x264("2", "10"),
            "h264_mp4toannexb",
            "h264",
        );
        let x265 = ["-c:v", "libx265", "-x265-params", "log-level=error:keyint=20"];
        h26x("h265", "320x240", 40, &x265, "hevc_mp4toannexb", "h265");

        let vp9 = f("vp9.ivf");
        let mut args: Vec<String> = src("320x240", 40).to_vec();
        args.extend(
            [
                "-c:v",
                "libvpx-vp9",
                "-g",
                "15",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                &vp9,
            ]
            .map(String::from),
        );
        ffmpeg(&args);
        list.push(Input {
            name: "vp9",
            es: vp9.clone().into(),
            reference: Some(vp9.into()),
            fps: "30",
            containers: VP9,
        });

        // A resolution change mid-stream: two encodes, concatenated.
        let (a, b, change) = (f("part1.h264"), f("part2.h264"), f("change.h264"));
        for (size, out) in [("320x240", &a), ("640x360", &b)] {
            let mut args: Vec<String> = src(size, 15).to_vec();
            args.extend(["-c:v", "libx264", "-bf", "0", "-g", "5", "-f", "h264", out].map(String::from));
            ffmpeg(&args);
        }
        let mut joined = std::fs::read(&a).unwrap();
        joined.extend(std::fs::read(&b).unwrap());
        std::fs::write(&change, joined).unwrap();
        list.push(Input {
            name: "resolution-change",
            es: change.into(),
            reference: None,
            fps: "30",
            containers: H26X,
        });
        Inputs { _dir: dir, list }
    })
}

fn eyrie() -> Command {
    Command::new(env!("CARGO_BIN_EXE_eyrie"))
}

/// `eyrie mux` of `input` into `dir`/`name`.`container`.
fn mux(input: &Input, container: &str, dir: &Dir) -> PathBuf {
    let (ext, fragmented) = match container {
        "frag.mp4" => ("mp4", true),
        c => (c, false),
    };
    let out = dir.file(&format!(
        "{}.{}{ext}",
        input.name,
        if fragmented { "frag." } else { "" }
    ));
    let mut cmd = eyrie();
    cmd.arg("mux").arg(&input.es).arg(&out).args(["--fps", input.fps]);
    if fragmented {
        cmd.arg("--fragmented");
    }
    let res = cmd.output().unwrap();
    assert!(
        res.status.success(),
        "eyrie mux {} → {container}: {}",
        input.name,
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

/// Times relative to the first presented picture, as FFmpeg sees them.
fn normalized(packets: &[Probed]) -> Vec<Probed> {
    let start = packets.iter().map(|p| p.pts).fold(f64::INFINITY, f64::min);
    packets
        .iter()
        .map(|p| Probed {
            pts: p.pts - start,
            dts: p.dts.map(|d| d - start),
            key: p.key,
        })
        .collect()
}

/// What ffprobe must report for `input`.
fn expected(input: &Input) -> Vec<Probed> {
    match &input.reference {
        Some(r) => normalized(&ffprobe_packets(r)),
        // The concatenated stream: 30 frames at 30 fps, IDR every 5, no reordering.
        None => (0..30)
            .map(|i| Probed {
                pts: i as f64 / 30.0,
                dts: Some(i as f64 / 30.0),
                key: i % 5 == 0,
            })
            .collect(),
    }
}

fn compare(what: &str, want: &[Probed], got: &[Probed], tolerance: f64) {
    assert_eq!(got.len(), want.len(), "{what}: packet count");
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(g.key, w.key, "{what}: packet {i} keyframe flag");
        assert!(
            (g.pts - w.pts).abs() <= tolerance,
            "{what}: packet {i} pts {} != {}",
            g.pts,
            w.pts
        );
        if let (Some(gd), Some(wd)) = (g.dts, w.dts) {
            assert!((gd - wd).abs() <= tolerance, "{what}: packet {i} dts {gd} != {wd}");
        }
    }
}

/// ffprobe timestamps: Matroska counts milliseconds, the others 90 kHz.
fn tolerance(container: &str) -> f64 {
    if matches!(container, "mkv" | "webm") {
        0.0011
    } else {
        0.00002
    }
}

fn judge(input: &Input) {
    let dir = Dir::new();
    let want = expected(input);
    for container in input.containers {
        let out = mux(input, container, &dir);
        let what = format!("{} in {container}", input.name);
        let got = normalized(&ffprobe_packets(&out));
        compare(&what, &want, &got, tolerance(container));
        if !matches!(*container, "mkv" | "webm") {
            assert!(got.iter().all(|p| p.dts.is_some()), "{what}: every packet has a dts");
        }
        decode_strict(&out).unwrap_or_else(|e| panic!("{what}: {e}"));
        // Players follow MP4 edit lists: every picture must be inside the edit.
        assert_eq!(count_frames(&out), want.len() as u64, "{what}: frames decoded");
        match *container {
            "mkv" | "webm" => {
                let res = tool("mkvinfo").arg(&out).output().unwrap();
                assert!(
                    res.status.success(),
                    "{what}: mkvinfo: {}",
                    String::from_utf8_lossy(&res.stdout)
                );
            }
            "ts" => {
                for args in [&["-v"][..], &["-b"][..]] {
                    let prog = if args == ["-v"] { "tsinfo" } else { "tsreport" };
                    let res = tool(prog).args(args).arg(&out).output().unwrap();
                    let text = String::from_utf8_lossy(&res.stdout).to_string() + &String::from_utf8_lossy(&res.stderr);
                    assert!(res.status.success(), "{what}: {prog}: {text}");
                    assert!(!text.contains("### "), "{what}: {prog} reports a problem: {text}");
                }
            }
            _ => {}
        }
        read_back(input, container, &out);
    }
}

/// The NAL units of an Annex-B payload, access unit delimiters left out
/// (the TS muxer adds them).
fn nal_units(codec: Codec, data: &[u8]) -> Vec<Vec<u8>> {
    nal::annexb(data)
        .filter(|n| match codec {
            Codec::H264 => h264::nal_type(n.data) != h264::AUD,
            _ => h265::nal_type(n.data) != h265::AUD,
        })
        .map(|n| n.data.to_vec())
        .collect()
}

/// Eyrie's reader gives back the packets that went in: payloads, keyframes,
/// parameters and times (relative to the first packet; Matroska to the ms,
/// and without decode times of its own).
fn read_back(input: &Input, container: &str, file: &Path) {
    let source: Arc<str> = Arc::from("test");
    let data = Bytes::from(std::fs::read(&input.es).unwrap());
    let kind = EsKind::from_extension(input.es.extension().unwrap().to_str().unwrap()).unwrap();
    let sent = es::read(&data, kind, Some(input.fps.parse().unwrap()), &source).unwrap();
    let got = demux::read_file(file, &source).unwrap();
    let what = format!("{} read back from {container}", input.name);
    assert_eq!(got.len(), sent.len(), "{what}: packet count");
    let mkv = matches!(container, "mkv" | "webm");
    let tol = if mkv { 1_000_000 } else { 12_000 };
    let (s0, g0) = (&sent[0], &got[0]);
    for (i, (s, g)) in sent.iter().zip(&got).enumerate() {
        assert_eq!(g.codec, s.codec, "{what} {i}");
        assert_eq!(g.keyframe, s.keyframe, "{what} {i}: keyframe");
        assert_eq!(
            (g.params.width, g.params.height),
            (s.params.width, s.params.height),
            "{what} {i}: size"
        );
        if s.codec == Codec::Vp9 {
            assert_eq!(g.data, s.data, "{what} {i}: payload");
        } else {
            assert_eq!(
                nal_units(g.codec, &g.data),
                nal_units(s.codec, &s.data),
                "{what} {i}: NAL units"
            );
        }
        let dpts = (g.pts - g0.pts) - (s.pts - s0.pts);
        assert!(dpts.abs() <= tol, "{what} {i}: pts off by {dpts} ns");
        if !mkv {
            let ddts = (g.dts - g0.dts) - (s.dts - s0.dts);
            assert!(ddts.abs() <= tol, "{what} {i}: dts off by {ddts} ns");
        }
        assert!(g.dts <= g.pts, "{what} {i}: dts after pts");
    }
}

fn input(name: &str) -> &'static Input {
    inputs().list.iter().find(|i| i.name == name).unwrap()
}

#[test]
fn h264_without_b_frames() {
    judge(input("h264"));
}

#[test]
fn h264_with_b_frames() {
    judge(input("h264-bframes"));
}

#[test]
fn h264_odd_size() {
    judge(input("h264-odd-size"));
}

#[test]
fn h265() {
    judge(input("h265"));
}

#[test]
fn vp9() {
    judge(input("vp9"));
}

#[test]
fn resolution_change_mid_stream() {
    let i = input("resolution-change");
    judge(i);
    // The packets carry the change: the second half has the new size.
    let data = Bytes::from(std::fs::read(&i.es).unwrap());
    let packets: Vec<Packet> = es::read(&data, EsKind::H264, Some("30".parse().unwrap()), &Arc::from("t")).unwrap();
    assert_eq!((packets[0].params.width, packets[14].params.width), (320, 320));
    assert_eq!((packets[15].params.width, packets[15].params.height), (640, 360));
}

#[test]
fn webm_refuses_h264_and_ts_refuses_vp9_naming_the_alternative() {
    let dir = Dir::new();
    for (i, container, hint) in [("h264", "webm", ".mkv"), ("vp9", "ts", "h264 and h265")] {
        let out = dir.file(&format!("x.{container}"));
        let res = eyrie()
            .arg("mux")
            .arg(&input(i).es)
            .arg(&out)
            .args(["--fps", "30"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(1), "{err}");
        assert!(err.contains(hint), "{container}: {err}");
    }
}

/// A recording killed with SIGKILL mid-stream leaves a file FFmpeg opens and
/// decodes without error, up to its last whole fragment/cluster/packet, and
/// that Eyrie reads back as a prefix of what was sent.
#[test]
fn sigkill_mid_recording_leaves_a_playable_file() {
    let dir = Dir::new();
    let es_path = dir.file("long.h264");
    let es_str = es_path.to_str().unwrap();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-frames:v",
        "150",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-bf",
        "2",
        "-g",
        "10",
        es_str,
    ]);
    let data = Bytes::from(std::fs::read(&es_path).unwrap());
    let sent = es::read(&data, EsKind::H264, Some("30".parse().unwrap()), &Arc::from("t")).unwrap();
    for (name, fragmented) in [("cut.mp4", true), ("cut.mkv", false), ("cut.ts", false)] {
        let out = dir.file(name);
        let mut cmd = eyrie();
        cmd.arg("mux")
            .arg(&es_path)
            .arg(&out)
            .args(["--fps", "30", "--realtime"]);
        if fragmented {
            cmd.arg("--fragmented");
        }
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        // SIGKILL: no chance to finish the file.
        let _ = Command::new("kill").args(["-KILL", &child.id().to_string()]).status();
        let status = child.wait().unwrap();
        assert!(!status.success(), "{name}: the writer was still running when killed");
        decode_strict(&out).unwrap_or_else(|e| panic!("{name} after SIGKILL: {e}"));
        let probed = ffprobe_packets(&out);
        let got = demux::read_file(&out, &Arc::from("t")).unwrap();
        assert!(
            got.len() >= 20 && got.len() < sent.len(),
            "{name}: {} of {} packets survive",
            got.len(),
            sent.len()
        );
        assert_eq!(
            probed.len(),
            got.len(),
            "{name}: ffprobe and Eyrie agree on what survived"
        );
        for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
            assert_eq!(
                nal_units(g.codec, &g.data),
                nal_units(s.codec, &s.data),
                "{name}: packet {i}"
            );
        }
    }
}

/// MJPEG in Matroska (`V_MJPEG`): JPEGs FFmpeg encoded, one per packet.
#[test]
fn mjpeg_in_matroska() {
    let dir = Dir::new();
    let pattern = dir.file("f%02d.jpg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-frames:v",
        "10",
        "-pix_fmt",
        "yuvj420p",
        pattern.to_str().unwrap(),
    ]);
    let source: Arc<str> = Arc::from("jpeg");
    let packets: Vec<Packet> = (1..=10)
        .map(|i| {
            let data = Bytes::from(std::fs::read(dir.file(&format!("f{i:02}.jpg"))).unwrap());
            let info = eyrie::codec::jpeg::parse(&data).unwrap();
            let params = eyrie::media::CodecParams::new(Codec::Mjpeg, info.width.into(), info.height.into());
            Packet {
                meta: Default::default(),
                codec: Codec::Mjpeg,
                data,
                pts: i as i64 * 40_000_000,
                dts: i as i64 * 40_000_000,
                duration: 40_000_000,
                keyframe: true,
                params: Arc::new(params),
                source: Arc::clone(&source),
                seq: i as u64,
                capture_utc: std::time::SystemTime::UNIX_EPOCH,
            }
        })
        .collect();
    let out = dir.file("mjpeg.mkv");
    std::fs::write(
        &out,
        eyrie::mux::write::mux_to_vec(eyrie::mux::Container::Mkv, &packets).unwrap(),
    )
    .unwrap();
    let probed = ffprobe_packets(&out);
    assert_eq!(probed.len(), 10);
    assert!(probed.iter().all(|p| p.key));
    decode_strict(&out).unwrap();
    assert!(tool("mkvinfo").arg(&out).output().unwrap().status.success());
    let back = demux::read_file(&out, &source).unwrap();
    assert!(
        back.iter()
            .zip(&packets)
            .all(|(g, s)| g.data == s.data && g.pts == s.pts - packets[0].dts)
    );
}

/// Segments: each starts on a keyframe, none loses or repeats a packet, and
/// each is a whole file FFmpeg decodes.
#[test]
fn segmenter_cuts_on_keyframes_without_loss() {
    let dir = Dir::new();
    let i = input("h264"); // 45 frames, IDR every 15 (0.5 s)
    let data = Bytes::from(std::fs::read(&i.es).unwrap());
    let packets = es::read(&data, EsKind::H264, Some("30".parse().unwrap()), &Arc::from("t")).unwrap();
    let pattern = dir.file("seg{n}.ts").to_str().unwrap().to_string();
    let mut seg = eyrie::mux::write::Segmenter::new(eyrie::mux::Container::Ts, pattern, 400_000_000);
    for p in &packets {
        seg.push(p).unwrap();
    }
    let files = seg.finish().unwrap();
    assert_eq!(files.len(), 3, "a segment per 0.5 s GOP with 0.4 s segments");
    let mut total = 0;
    for f in &files {
        decode_strict(f).unwrap();
        let back = demux::read_file(f, &Arc::from("t")).unwrap();
        assert!(back[0].keyframe, "{} starts on a keyframe", f.display());
        for (g, s) in back.iter().zip(&packets[total..]) {
            assert_eq!(nal_units(g.codec, &g.data), nal_units(s.codec, &s.data));
        }
        total += back.len();
    }
    assert_eq!(total, packets.len());
}

/// No file (whole or partial) is left in `dir` but `keep`.
fn only_files(dir: &Dir, keep: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir.file(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, keep, "files left in the output folder");
}

#[test]
fn an_input_without_pictures_is_an_error_naming_it_and_leaves_no_output() {
    let dir = Dir::new();
    let empty = dir.file("empty.h264");
    std::fs::write(&empty, b"").unwrap();
    let mut x = 0x2545_f491u32;
    let noise: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // No start codes: random bytes rarely make one, and these never do.
            (x as u8) | 1
        })
        .collect();
    let random = dir.file("random.h265");
    std::fs::write(&random, &noise).unwrap();
    for (input, out, kind) in [
        (&empty, "a.mp4", "H.264"),
        (&random, "b.mkv", "H.265"),
        (&random, "c.ts", "H.265"),
    ] {
        let res = eyrie()
            .arg("mux")
            .arg(input)
            .arg(dir.file(out))
            .args(["--fps", "25"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(1), "{out}: {err}");
        assert!(
            err.contains(input.to_str().unwrap()) && err.contains(&format!("no {kind}")),
            "{out}: {err}"
        );
    }
    only_files(&dir, &["empty.h264", "random.h265"]);
}

#[test]
fn a_failed_mux_or_encode_leaves_no_file_and_an_existing_one_untouched() {
    let dir = Dir::new();
    // An H.265 stream without timing and no --fps: refused after its first pictures.
    let es_path = dir.file("untimed.h265");
    let es = es_path.to_str().unwrap();
    #[rustfmt::skip]
    ffmpeg(&[
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", "10", "-pix_fmt", "yuv420p",
        "-c:v", "libx265", "-x265-params", "log-level=error:vui-timing-info=0:hrd=0", es,
    ]);
    let old = dir.file("old.mp4");
    std::fs::write(&old, b"the previous file").unwrap();
    for out in ["new.mp4", "old.mp4", "new.mkv"] {
        let res = eyrie().arg("mux").arg(&es_path).arg(dir.file(out)).output().unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(1), "{out}: {err}");
        assert!(err.contains("frame rate"), "{out}: {err}");
    }
    assert_eq!(std::fs::read(&old).unwrap(), b"the previous file");
    // encode: a y4m that ends mid-frame fails after writing some frames.
    let y4m = dir.file("cut.y4m");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=25",
        "-frames:v",
        "5",
        "-pix_fmt",
        "yuv420p",
        y4m.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&y4m).unwrap();
    std::fs::write(&y4m, &bytes[..bytes.len() - 100]).unwrap();
    let res = eyrie()
        .args(["encode", "--input", y4m.to_str().unwrap(), "-o"])
        .arg(dir.file("enc.mp4"))
        .output()
        .unwrap();
    assert!(!res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    only_files(&dir, &["cut.y4m", "old.mp4", "untimed.h265"]);
}

#[test]
fn h265_frame_rate_is_read_from_the_stream() {
    let dir = Dir::new();
    let es_path = dir.file("x265.h265");
    #[rustfmt::skip]
    ffmpeg(&[
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", "20", "-pix_fmt", "yuv420p",
        "-c:v", "libx265", "-x265-params", "log-level=error", es_path.to_str().unwrap(),
    ]);
    let out = dir.file("x265.mp4");
    let res = eyrie().arg("mux").arg(&es_path).arg(&out).output().unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let probed = ffprobe_packets(&out);
    assert_eq!(probed.len(), 20);
    let start = probed.iter().map(|p| p.pts).fold(f64::INFINITY, f64::min);
    let end = probed.iter().map(|p| p.pts).fold(0.0, f64::max);
    assert!((end - start - 19.0 / 25.0).abs() < 1e-4, "25 fps: {start}..{end}");
}

/// Pictures coded as several slices (H.265 slice segments, H.264 slices),
/// with B-frames: the picture order is read from each picture's first slice,
/// and every frame is muxed in order and decodes strictly.
#[test]
fn pictures_of_several_slices_keep_their_order() {
    let dir = Dir::new();
    for (name, codec, params) in [("x265", "libx265", "-x265-params"), ("x264", "libx264", "-x264-params")] {
        let es_path = dir.file(&format!("{name}.es"));
        #[rustfmt::skip]
        ffmpeg(&[
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", "30", "-pix_fmt", "yuv420p",
            "-c:v", codec, params, "log-level=error:slices=3:bframes=2", "-f",
            if name == "x265" { "hevc" } else { "h264" }, es_path.to_str().unwrap(),
        ]);
        let es = dir.file(&format!("{name}.{}", if name == "x265" { "h265" } else { "h264" }));
        std::fs::rename(&es_path, &es).unwrap();
        let out = dir.file(&format!("{name}.mp4"));
        let res = eyrie()
            .arg("mux")
            .arg(&es)
            .arg(&out)
            .args(["--fps", "25"])
            .output()
            .unwrap();
        assert!(res.status.success(), "{name}: {}", String::from_utf8_lossy(&res.stderr));
        decode_strict(&out).unwrap();
        assert_eq!(count_frames(&out), 30, "{name}");
    }
}

#[test]
fn truncated_ivf_and_annexb_inputs_keep_every_whole_frame_with_a_warning() {
    let dir = Dir::new();
    for name in ["vp9", "h264"] {
        let i = input(name);
        let bytes = std::fs::read(&i.es).unwrap();
        let end = if name == "vp9" {
            // Mid-frame: the IVF frame header says more than the file holds.
            bytes.len() * 6 / 10
        } else {
            // The last slice cut after its NAL header: the picture before it is whole.
            let last_slice = (0..bytes.len() - 4)
                .rev()
                .find(|&i| bytes[i..i + 3] == [0, 0, 1] && matches!(bytes[i + 3] & 0x1f, 1 | 5))
                .unwrap();
            last_slice + 4
        };
        let cut = dir.file(&format!("cut.{}", i.es.extension().unwrap().to_str().unwrap()));
        std::fs::write(&cut, &bytes[..end]).unwrap();
        let out = dir.file(&format!("{name}.mkv"));
        let res = eyrie()
            .arg("mux")
            .arg(&cut)
            .arg(&out)
            .args(["--fps", "30"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(res.status.success(), "{name}: {err}");
        assert!(
            err.contains("truncated") && err.contains("byte"),
            "{name}: a warning naming the offset: {err}"
        );
        decode_strict(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (full, got) = (count_frames(&i.es), count_frames(&out));
        assert!(got > full / 3 && got < full, "{name}: {got} of {full} frames");
    }
}
