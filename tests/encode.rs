//! Encoders and decoders judged by FFmpeg: `eyrie encode` output decodes with
//! `-xerror` and an empty stderr, has every frame, and meets the PSNR floor
//! against the source frames (FFmpeg's `psnr` filter); run-time changes take
//! effect; bad requests say what is supported.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::ff::{Dir, count_frames, decode_strict, tool};
use common::{psnr_db, testsrc_frames};
use eyrie::capture::testsrc::TestSrcOptions;
use eyrie::capture::y4m;
use eyrie::encode::{Backend, Change, Encoder, EncoderSettings, open_decoder, open_encoder};
use eyrie::media::{Codec, Fps, Frame, Packet, PixelFormat};

const EYRIE: &str = env!("CARGO_BIN_EXE_eyrie");

/// Writes `n` 1280×720 I420 test frames as a `.y4m` file.
fn y4m_source(dir: &Dir, n: u64) -> PathBuf {
    let frames = testsrc_frames(PixelFormat::I420, 1280, 720, n);
    let mut file = y4m::header(&frames[0].info).into_bytes();
    for f in &frames {
        file.extend_from_slice(b"FRAME\n");
        file.extend_from_slice(f.data());
    }
    let path = dir.file("src.y4m");
    std::fs::write(&path, file).unwrap();
    path
}

fn eyrie_encode(args: &[&str]) -> std::process::Output {
    Command::new(EYRIE).arg("encode").args(args).output().unwrap()
}

fn encode_ok(args: &[&str]) -> serde_json::Value {
    let out = eyrie_encode(&[args, &["--json"]].concat());
    assert!(
        out.status.success(),
        "eyrie encode {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// FFmpeg's PSNR of `coded` against `reference`, frame by frame in order
/// (raw streams carry no time): `(luma, average over Y, U and V)`.
fn psnr(coded: &Path, reference: &Path) -> (f64, f64) {
    let out = tool("ffmpeg")
        .args(["-v", "info", "-nostats", "-i"])
        .arg(coded)
        .arg("-i")
        .arg(reference)
        .args([
            "-lavfi",
            &format!("[0:v]{EACH}[a];[1:v]{EACH}[b];[a][b]psnr"),
            "-f",
            "null",
            "-",
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let line = log
        .lines()
        .find(|l| l.contains("PSNR y:"))
        .unwrap_or_else(|| panic!("no PSNR: {log}"));
    let value = |key: &str| -> f64 {
        line.split(key)
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (value(" y:"), value("average:"))
}

/// Both inputs of the PSNR filter: the same pixel format, numbered frames.
const EACH: &str = "format=yuv420p,settb=1/30,setpts=N";

#[test]
fn h264_at_4_mbits_decodes_strictly_with_every_frame_above_32_db() {
    let dir = Dir::new();
    let src = y4m_source(&dir, 30);
    let out = dir.file("out.h264");
    let report = encode_ok(&[
        "--input",
        src.to_str().unwrap(),
        "--bitrate",
        "4000000",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(report["frames"], 30);
    assert_eq!(report["encoder"], "openh264");
    decode_strict(&out).unwrap();
    assert_eq!(count_frames(&out), 30);
    let (_, db) = psnr(&out, &src);
    assert!(db >= 32.0, "PSNR {db:.2} dB");
    eprintln!("h264 1280x720 4 Mbit/s: PSNR {db:.2} dB, {report}");
}

#[test]
fn jpeg_at_quality_85_decodes_strictly_above_35_db() {
    let dir = Dir::new();
    let src = y4m_source(&dir, 5);
    let out = dir.file("out.mjpeg");
    let args = ["--input", src.to_str().unwrap(), "--codec", "mjpeg", "--quality", "85"];
    let report = encode_ok(&[&args[..], &["-o", out.to_str().unwrap()]].concat());
    assert_eq!(report["encoder"], "jpeg");
    decode_strict(&out).unwrap();
    assert_eq!(count_frames(&out), 5);
    let (_, db) = psnr(&out, &src);
    assert!(db >= 35.0, "PSNR {db:.2} dB");
    eprintln!("jpeg q85 1280x720: PSNR {db:.2} dB");
}

/// Every input format the JPEG encoder takes comes out as its own picture
/// (judged against the raw source frame as FFmpeg reads it).
#[test]
fn jpeg_reads_every_format_row_by_row() {
    let dir = Dir::new();
    let settings = EncoderSettings {
        codec: Codec::Mjpeg,
        quality: 90,
        ..EncoderSettings::default()
    };
    let formats = [
        (PixelFormat::I420, "yuv420p"),
        (PixelFormat::Nv12, "nv12"),
        (PixelFormat::Yuyv, "yuyv422"),
        (PixelFormat::Uyvy, "uyvy422"),
        (PixelFormat::Gray8, "gray"),
        (PixelFormat::Rgb24, "rgb24"),
        (PixelFormat::Rgba, "rgba"),
        (PixelFormat::Bgrx, "bgr0"),
    ];
    for (format, ffmpeg_name) in formats {
        let f = &testsrc_frames(format, 320, 240, 1)[0];
        let raw = dir.file(&format!("{format}.raw"));
        std::fs::write(&raw, f.data()).unwrap();
        let reference = dir.file(&format!("{format}.y4m"));
        // FFmpeg takes `gray` as full range; Eyrie's luma-only frames are limited range like its YUV.
        let range = if format == PixelFormat::Gray8 {
            "scale=in_range=tv:out_range=tv"
        } else {
            "null"
        };
        common::ff::ffmpeg(&[
            "-f",
            "rawvideo",
            "-pix_fmt",
            ffmpeg_name,
            "-s",
            "320x240",
            "-i",
            raw.to_str().unwrap(),
            "-vf",
            range,
            "-pix_fmt",
            "yuv420p",
            reference.to_str().unwrap(),
        ]);
        let mut enc = open_encoder(&settings, &f.info).unwrap();
        let mut out = Vec::new();
        enc.encode(f, &mut out).unwrap();
        let path = dir.file(&format!("{format}.jpg"));
        std::fs::write(&path, &out[0].data).unwrap();
        decode_strict(&path).unwrap();
        let (y, avg) = psnr(&path, &reference);
        eprintln!("jpeg q90 from {format}: PSNR y {y:.2} dB, average {avg:.2} dB");
        assert!(
            y >= 35.0 && avg >= 35.0,
            "{format}: PSNR y {y:.2} dB, average {avg:.2} dB"
        );
    }
}

#[test]
fn a_camera_uri_encodes_into_a_container() {
    let dir = Dir::new();
    let out = dir.file("cam.mp4");
    let report = encode_ok(&[
        "--input",
        "testsrc://?size=640x360&fps=30&seed=7",
        "--frames",
        "45",
        "--keyint",
        "15",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(report["frames"], 45);
    assert_eq!(report["keyframes"], 3);
    decode_strict(&out).unwrap();
    assert_eq!(count_frames(&out), 45);
    let keys = common::ff::ffprobe_packets(&out).iter().filter(|p| p.key).count();
    assert_eq!(keys, 3);
}

#[test]
fn bad_requests_say_what_is_supported() {
    let dir = Dir::new();
    let out = dir.file("x.h264");
    let o = out.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--input", "testsrc://?size=3842x2160", "--frames", "1", "-o", o],
            "openh264 cannot encode 3842x2160; it supports even widths and heights up to 3840x2160",
        ),
        (
            &["--input", "testsrc://?size=64x64", "--encoder", "jpeg", "-o", o],
            "jpeg cannot encode h264; it supports mjpeg",
        ),
        (
            &["--input", "testsrc://?size=64x64", "--codec", "mjpeg", "-o", o],
            "a .h264 file holds h264, not mjpeg",
        ),
        (
            &["--input", "testsrc://?size=64x64", "--encoder", "x264", "-o", o],
            "unknown encoder `x264`",
        ),
        (
            &["--input", "testsrc://?size=64x64", "--quality", "0", "-o", o],
            "quality 0 is out of range",
        ),
    ];
    for (args, want) in cases {
        let out = eyrie_encode(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
    }
}

fn encode_all(enc: &mut dyn Encoder, frames: &[Frame]) -> Vec<Packet> {
    let mut out = Vec::new();
    for f in frames {
        enc.encode(f, &mut out).unwrap();
    }
    enc.flush(&mut out).unwrap();
    out
}

/// Bitrate, keyframe interval and forced keyframes change a running encoder.
#[test]
fn openh264_changes_take_effect_while_running() {
    let all = testsrc_frames(PixelFormat::Nv12, 640, 360, 90);
    let settings = EncoderSettings {
        bitrate: 300_000,
        keyint: 1000,
        ..EncoderSettings::default()
    };
    let mut enc = open_encoder(&settings, &all[0].info).unwrap();
    let low = encode_all(enc.as_mut(), &all[..30]);
    enc.apply(Change::Bitrate(6_000_000)).unwrap();
    let high = encode_all(enc.as_mut(), &all[30..60]);
    // Skip the first packets of each half: the IDR and the rate controller settling.
    let bytes = |p: &[Packet]| p[10..].iter().map(|p| p.data.len()).sum::<usize>();
    let kbits = |b: usize| b as f64 * 8.0 / 1000.0 / (20.0 / 30.0);
    assert!(
        (150.0..450.0).contains(&kbits(bytes(&low))),
        "300 kbit/s asked, {} kbit/s made",
        kbits(bytes(&low))
    );
    assert!(
        bytes(&high) > 3 * bytes(&low) / 2,
        "6 Mbit/s half: {} bytes, 300 kbit/s half: {} bytes",
        bytes(&high),
        bytes(&low)
    );
    enc.apply(Change::ForceKeyframe).unwrap();
    let mut forced = Vec::new();
    enc.encode(&all[60], &mut forced).unwrap();
    assert!(forced[0].keyframe, "the frame after ForceKeyframe is an IDR");
    enc.apply(Change::Keyint(10)).unwrap();
    let rest = encode_all(enc.as_mut(), &all[61..]);
    let keys: Vec<u64> = rest.iter().filter(|p| p.keyframe).map(|p| p.seq).collect();
    assert!(keys.len() >= 2, "keyframes every 10 frames after Keyint(10): {keys:?}");
    // Every packet carries the stream's parameters; keyframes their SPS/PPS in band.
    assert!(low[0].keyframe && low[0].params.width == 640 && !low[0].params.extradata.is_empty());

    let err = enc.apply(Change::Quality(50)).unwrap_err().to_string();
    assert!(err.contains("openh264 cannot set a JPEG quality"), "{err}");
}

/// Our H.264 decodes back through the OpenH264 decoder to the source picture.
#[test]
fn openh264_round_trip_keeps_the_picture() {
    let all = testsrc_frames(PixelFormat::I420, 640, 360, 20);
    let mut enc = open_encoder(&EncoderSettings::default(), &all[0].info).unwrap();
    let packets = encode_all(enc.as_mut(), &all);
    let mut dec = open_decoder(Codec::H264, &Backend::Auto).unwrap();
    let mut decoded = Vec::new();
    for p in &packets {
        dec.decode(p, &mut decoded).unwrap();
    }
    dec.flush(&mut decoded).unwrap();
    assert_same_pictures(&decoded, &all);
}

/// `decoded` are the I420 `sources` (same count, times and numbers), each within 32 dB PSNR.
fn assert_same_pictures(decoded: &[Frame], sources: &[Frame]) {
    assert_eq!(decoded.len(), sources.len());
    for (d, s) in decoded.iter().zip(sources) {
        assert_eq!(
            (d.info.format, d.info.width, d.info.height),
            (PixelFormat::I420, s.info.width, s.info.height)
        );
        assert_eq!((d.pts, d.seq), (s.pts, s.seq));
        let db = psnr_db(d.data(), s.data());
        assert!(db >= 32.0, "frame {}: {db:.2} dB", d.seq);
    }
}

#[test]
fn jpeg_decoder_reads_back_rgb() {
    let all = testsrc_frames(PixelFormat::Nv12, 320, 240, 2);
    let settings = EncoderSettings {
        codec: Codec::Mjpeg,
        ..EncoderSettings::default()
    };
    let mut enc = open_encoder(&settings, &all[0].info).unwrap();
    let packets = encode_all(enc.as_mut(), &all);
    assert!(packets.iter().all(|p| p.keyframe && p.codec == Codec::Mjpeg));
    let mut dec = open_decoder(Codec::Mjpeg, &Backend::Auto).unwrap();
    let mut decoded = Vec::new();
    dec.decode(&packets[1], &mut decoded).unwrap();
    let f = &decoded[0];
    assert_eq!(
        (f.info.format, f.info.width, f.info.height, f.seq),
        (PixelFormat::Rgb24, 320, 240, 1)
    );
    let mut garbage = packets[0].clone();
    garbage.data = bytes::Bytes::from_static(b"\xff\xd8not a jpeg");
    let err = dec.decode(&garbage, &mut decoded).unwrap_err().to_string();
    assert!(err.starts_with("jpeg: packet 0"), "{err}");
}

/// libx264, libx265 and libvpx-vp9 through FFmpeg: strict decode, every
/// frame, ≥ 32 dB at 4 Mbit/s 1280×720.
#[cfg(feature = "ffmpeg")]
#[test]
fn ffmpeg_encoders_decode_strictly_above_32_db() {
    let dir = Dir::new();
    let src = y4m_source(&dir, 30);
    for (codec, ext) in [("h264", "h264"), ("h265", "h265"), ("vp9", "ivf"), ("vp9", "webm")] {
        let out = dir.file(&format!("ff.{ext}"));
        let args = [
            "--input",
            src.to_str().unwrap(),
            "--codec",
            codec,
            "--encoder",
            "ffmpeg",
        ];
        let report = encode_ok(&[&args[..], &["--bitrate", "4000000", "-o", out.to_str().unwrap()]].concat());
        decode_strict(&out).unwrap();
        assert_eq!(count_frames(&out), 30, "{codec} in .{ext}");
        let (_, db) = psnr(&out, &src);
        assert!(db >= 32.0, "{codec}: PSNR {db:.2} dB");
        eprintln!("ffmpeg {codec} .{ext}: PSNR {db:.2} dB, {report}");
    }
}

/// FFmpeg's decoders read back what its encoders wrote; a forced keyframe is an IDR.
#[cfg(feature = "ffmpeg")]
#[test]
fn ffmpeg_round_trip_and_forced_keyframes() {
    let all = testsrc_frames(PixelFormat::Nv12, 640, 360, 20);
    let i420 = testsrc_frames(PixelFormat::I420, 640, 360, 20);
    for codec in [Codec::H264, Codec::H265, Codec::Vp9] {
        let settings = EncoderSettings {
            codec,
            encoder: Backend::Ffmpeg,
            ..EncoderSettings::default()
        };
        let mut enc = open_encoder(&settings, &all[0].info).unwrap();
        let mut packets = Vec::new();
        for (i, f) in all.iter().enumerate() {
            if i == 10 {
                enc.apply(Change::ForceKeyframe).unwrap();
            }
            enc.encode(f, &mut packets).unwrap();
        }
        enc.flush(&mut packets).unwrap();
        let keys: Vec<u64> = packets.iter().filter(|p| p.keyframe).map(|p| p.seq).collect();
        assert_eq!(keys, [0, 10], "{codec}");
        let mut dec = open_decoder(codec, &Backend::Ffmpeg).unwrap();
        let mut decoded = Vec::new();
        for p in &packets {
            dec.decode(p, &mut decoded).unwrap();
        }
        dec.flush(&mut decoded).unwrap();
        // NV12 and I420 sources render the same picture; the decoder gives I420.
        assert_same_pictures(&decoded, &i420);
    }
}

mod nodes {
    use super::*;
    use eyrie::config::{Config, NodeProps, NodeSpec, ServerConfig};
    use eyrie::hub::{Hub, Item, StreamFormat, SubscribeOptions};
    use eyrie::media::MonotonicClock;
    use eyrie::server::{NodeState, Server, ServerError};
    use std::time::{Duration, Instant};

    fn camera(name: &str, width: u32, height: u32, fps: u32) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            listen_to: None,
            props: NodeProps::Testsrc(TestSrcOptions {
                width,
                height,
                fps: Fps { num: fps, den: 1 },
                format: PixelFormat::Nv12,
                noise: 0,
                ..TestSrcOptions::default()
            }),
        }
    }

    fn encoder(name: &str, listen_to: &str, codec: Codec) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            listen_to: Some(listen_to.into()),
            props: NodeProps::Encode(EncoderSettings {
                codec,
                keyint: 1000,
                ..EncoderSettings::default()
            }),
        }
    }

    fn start(nodes: Vec<NodeSpec>, watch: &[&str]) -> (Server, Vec<eyrie::hub::Subscription>) {
        let hub = Hub::new();
        let subs = watch
            .iter()
            .map(|s| hub.subscribe(s, SubscribeOptions::blocking(64)))
            .collect();
        let config = Config {
            server: ServerConfig::default(),
            nodes,
        };
        let server = Server::start_with(config, hub, Arc::new(MonotonicClock::new())).unwrap();
        (server, subs)
    }

    fn next_packet(sub: &eyrie::hub::Subscription) -> Packet {
        loop {
            match sub.recv_timeout(Duration::from_secs(10)).expect("a packet within 10 s") {
                Item::Packet(p) => return p,
                Item::Format(StreamFormat::Coded(params)) => assert!(params.width > 0),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Two encoders listen to one camera; one takes a forced keyframe and a
    /// new bitrate while running; its packets make a strictly decodable stream.
    #[test]
    fn encoders_share_a_source_and_take_changes_while_running() {
        let (server, subs) = start(
            vec![
                camera("cam0", 320, 240, 30),
                encoder("h264", "cam0", Codec::H264),
                encoder("jpeg", "cam0", Codec::Mjpeg),
            ],
            &["h264", "jpeg"],
        );
        let first = subs[0].recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            matches!(&first, Item::Format(StreamFormat::Coded(p)) if p.codec == Codec::H264 && p.width == 320),
            "{first:?}"
        );
        let mut h264: Vec<Packet> = (0..20).map(|_| next_packet(&subs[0])).collect();
        assert!(h264[0].keyframe && h264[1..].iter().all(|p| !p.keyframe));
        server.change_encoder("h264", Change::ForceKeyframe).unwrap();
        server.change_encoder("h264", Change::Bitrate(1_000_000)).unwrap();
        // The change applies before the encoder's next frame (a few may be queued).
        let mut forced = false;
        for _ in 0..12 {
            let p = next_packet(&subs[0]);
            forced |= p.keyframe;
            h264.push(p);
        }
        assert!(forced, "a keyframe follows ForceKeyframe");
        for _ in 0..10 {
            let p = next_packet(&subs[1]);
            assert!(p.keyframe && p.codec == Codec::Mjpeg);
        }
        let err = server.change_encoder("cam0", Change::ForceKeyframe).unwrap_err();
        assert!(matches!(err, ServerError::WrongKind { .. }), "{err}");
        let err = server
            .change_encoder("jpeg", Change::Quality(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("quality 0 is out of range"), "{err}");
        match &server.config().nodes[1].props {
            NodeProps::Encode(s) => assert_eq!(s.bitrate, 1_000_000),
            _ => unreachable!(),
        }
        drop(subs);
        let stats = server.shutdown();
        assert!(stats.nodes.iter().all(|n| n.state == NodeState::Stopped), "{stats:?}");

        let dir = Dir::new();
        let file = dir.file("node.h264");
        std::fs::write(&file, h264.iter().flat_map(|p| p.data.to_vec()).collect::<Vec<u8>>()).unwrap();
        decode_strict(&file).unwrap();
        assert_eq!(count_frames(&file), h264.len() as u64);
    }

    /// A source that ends: every frame's packet, then one end of stream.
    #[test]
    fn a_finite_source_ends_the_encoded_stream_once() {
        let mut cam = camera("cam0", 320, 240, 30);
        if let NodeProps::Testsrc(o) = &mut cam.props {
            o.num_frames = Some(10);
        }
        let (server, subs) = start(vec![cam, encoder("enc", "cam0", Codec::H264)], &["enc"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !server.sources_finished() {
            assert!(Instant::now() < deadline, "the source never ended");
            std::thread::sleep(Duration::from_millis(20));
        }
        // After the shutdown too (the queue holds far more than these items).
        server.shutdown();
        let (mut packets, mut ends) = (0, 0);
        while let Ok(item) = subs[0].try_recv() {
            match item {
                Item::Packet(_) => packets += 1,
                Item::Eos => ends += 1,
                _ => {}
            }
        }
        assert_eq!((packets, ends), (10, 1));
    }

    /// An encoder that cannot go on (here: relinked to a picture too large for
    /// OpenH264) fails alone; the camera and its other listeners run on.
    #[test]
    fn a_failing_encoder_stops_only_its_node() {
        let (server, subs) = start(
            vec![
                camera("cam0", 320, 240, 30),
                camera("huge", 3842, 2160, 2),
                encoder("enc", "cam0", Codec::H264),
                encoder("jpeg", "cam0", Codec::Mjpeg),
            ],
            &["jpeg"],
        );
        next_packet(&subs[0]);
        server.relink("enc", "huge").unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let failed = loop {
            let stats = server.stats();
            let enc = stats.nodes.iter().find(|n| n.name == "enc").unwrap().clone();
            if enc.state == NodeState::Failed {
                break enc;
            }
            assert!(Instant::now() < deadline, "enc never failed: {enc:?}");
            while subs[0].try_recv().is_ok() {}
            std::thread::sleep(Duration::from_millis(50));
        };
        let error = failed.error.unwrap();
        assert!(error.contains("openh264 cannot encode 3842x2160"), "{error}");
        // The rest runs on.
        for _ in 0..5 {
            next_packet(&subs[0]);
        }
        let stats = server.stats();
        for name in ["cam0", "jpeg"] {
            let n = stats.nodes.iter().find(|n| n.name == name).unwrap();
            assert_eq!(n.state, NodeState::Running, "{name}: {n:?}");
        }
        drop(subs);
        server.shutdown();
    }
}
