//! Parsers never panic: thousands of mutations of a valid config, and arbitrary
//! bytes where frames are read back. (The machine's toolchain is stable-only,
//! so this deterministic mutation loop stands in for a coverage-guided fuzzer.)

use eyrie::capture::testsrc::stamp;
use eyrie::config::Config;
use eyrie::media::{Fps, PixelFormat, VideoInfo};

const SEED_CONFIG: &str = r#"[server]
media_root = "m"

[[node]]
name = "cam0"
kind = "testsrc"
width = 640
height = 480
fps = "30000/1001"
format = "nv12"
seed = 7
live = false
num_frames = 10

[[node]]
name = "in0"
kind = "relay"
listen_to = "cam0"
queue = 4
policy = "leaky"
"#;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// `seed` with 1 to `most` bytes replaced, removed or inserted.
    fn mutate(&mut self, seed: &str, most: usize) -> Vec<u8> {
        let mut bytes = seed.as_bytes().to_vec();
        for _ in 0..1 + self.below(most) {
            let at = self.below(bytes.len());
            match self.below(3) {
                0 => bytes[at] = ALPHABET[self.below(ALPHABET.len())],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, ALPHABET[self.below(ALPHABET.len())]),
            }
        }
        bytes
    }
}

const ALPHABET: &[u8] = b" \n=[]\"'.,#0123456789-+_abcdefghijklmnopqrstuvwxyz{}\\\t\xc3\xa9";

#[test]
fn mutated_configs_never_panic_and_errors_point_inside_the_file() {
    let mut rng = Rng(0x5eed);
    let lines = SEED_CONFIG.lines().count() + 8;
    let mut refused = 0;
    for _ in 0..20_000 {
        let bytes = rng.mutate(SEED_CONFIG, 4);
        let Ok(text) = String::from_utf8(bytes) else { continue };
        if let Err(e) = Config::parse(&text, "fuzz.toml") {
            refused += 1;
            if let Some((line, col)) = e.at {
                assert!(line >= 1 && line <= lines && col >= 1, "{e} for:\n{text}");
            }
            assert!(!e.message.is_empty());
        }
    }
    assert!(refused > 5_000, "mutations should mostly break the config ({refused})");
}

/// Node descriptions as the API receives them (JSON): mutations never panic,
/// every refusal names a JSON path, and what is accepted reads back the same
/// from its own JSON.
#[test]
fn mutated_json_node_descriptions_never_panic_and_round_trip() {
    use eyrie::config::NodeSpec;
    const SEED: &str = r#"{"name": "h264", "kind": "encode", "listen_to": "cam0", "bitrate": 2000000,
        "keyint": 30, "codec": "h264", "rate_control": "cbr"}"#;
    let mut rng = Rng(0x150);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let bytes = rng.mutate(SEED, 3);
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        match NodeSpec::from_json(&value, "<api>") {
            Ok(spec) => {
                accepted += 1;
                let echoed = serde_json::to_value(&spec).unwrap();
                assert_eq!(NodeSpec::from_json(&echoed, "<api>").unwrap(), spec, "{echoed}");
            }
            Err(e) => {
                refused += 1;
                assert!(e.path.as_deref().is_some_and(|p| p.starts_with('$')), "{e}");
            }
        }
    }
    assert!(
        accepted > 100 && refused > 100,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn value_parsers_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let len = rng.below(12);
        let s: String = (0..len)
            .map(|_| ALPHABET[rng.below(ALPHABET.len() - 2)] as char)
            .collect();
        let _ = s.parse::<Fps>();
        let _ = s.parse::<PixelFormat>();
    }
    for s in [
        "4294967295/1",
        "99999999999",
        "1/4294967295",
        "-1",
        "0/0",
        "/",
        "30/",
        " 30 / 1 ",
    ] {
        let _ = s.parse::<Fps>();
    }
}

#[test]
fn stamps_read_from_arbitrary_pixels_never_panic() {
    let mut rng = Rng(9);
    for format in PixelFormat::ALL {
        for (w, h) in [(2, 2), (64, 2), (320, 240), (1280, 8)] {
            let Ok(info) = VideoInfo::new(format, w, h, Fps::new(30, 1).unwrap()) else {
                continue;
            };
            let data: Vec<u8> = (0..info.size()).map(|_| rng.next() as u8).collect();
            let _ = stamp::read(&info, &data);
        }
    }
}

/// Random and mutated bytes through every bitstream parser: errors, never panics.
#[test]
fn bitstream_parsers_never_panic() {
    use eyrie::codec::{self, ParamTracker, h264, h265, jpeg, vp9};
    use eyrie::media::Codec;
    let mut rng = Rng(77);
    // A valid-looking H.264 SPS/PPS/IDR prefix to mutate, and pure noise.
    let seed: Vec<u8> = [
        &[
            0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x6a,
        ][..],
        &[0, 0, 0, 1, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0][..],
        &[0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x33, 0xff][..],
        &[0, 0, 1, 0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60][..],
        &[0, 0, 1, 0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90][..],
    ]
    .concat();
    for round in 0..20_000 {
        let mut data = if round % 2 == 0 {
            seed.clone()
        } else {
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        };
        for _ in 0..rng.below(6) {
            if !data.is_empty() {
                let at = rng.below(data.len());
                data[at] = rng.next() as u8;
            }
        }
        for codec in [Codec::H264, Codec::H265] {
            let mut tracker = ParamTracker::new(codec);
            for au in codec::access_units(codec, &data) {
                let _ = tracker.update(&au);
            }
        }
        for nal in codec::nal::annexb(&data) {
            let _ = h264::Sps::parse(nal.data, nal.offset);
            let _ = h265::Sps::parse(nal.data, nal.offset);
            let _ = h265::vps_fps(nal.data, nal.offset);
            let _ = h264::parse_avcc(nal.data);
        }
        let _ = codec::nal::length_prefixed(&data, 4, 0);
        let _ = vp9::parse_frame(&data, 0);
        let _ = vp9::superframe(&data, 0);
        let _ = jpeg::parse(&data);
        let mut ivf = b"DKIF\0\0\x20\0VP90\x80\x02\x68\x01\x1e\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0".to_vec();
        ivf.extend_from_slice(&data);
        let _ = vp9::parse_ivf(&ivf);
    }
}

/// What a hostile camera sends, mutated, through the RTSP guard at random
/// splits: never a panic, never more buffered than one unit and one read.
#[test]
fn the_rtsp_guard_never_panics_and_stays_bounded() {
    use eyrie::capture::rtsp::guard::{self, Deframer, MAX_MESSAGE_BYTES, PictureGuard, Transport, Unit};
    let mut rng = Rng(99);
    let seed: Vec<u8> = [
        &b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971\r\n"[..],
        b"Content-Length: 4\r\n\r\nabcd",
        &[b'$', 0, 0, 16, 0x80, 0x60, 0, 1, 0, 0, 0x0b, 0xb8, 0, 0, 0, 1, 0x7c, 0x85, 1, 2],
        b"RTSP/1.0 200 OK\nTransport: RTP/AVP/TCP;interleaved=0-1\n\n",
    ]
    .concat();
    for _ in 0..5_000 {
        let mut data = seed.clone();
        for _ in 0..rng.below(8) {
            let at = rng.below(data.len());
            data[at] = rng.next() as u8;
        }
        let split = 1 + rng.below(64);
        let (mut d, mut pictures) = (Deframer::default(), PictureGuard::default());
        'feed: for chunk in data.chunks(split) {
            d.buffer().extend_from_slice(chunk);
            loop {
                match d.unit() {
                    Ok(Some(Unit::Message(m))) => {
                        if let Some(t) = guard::header(guard::head(&m), "transport") {
                            let _ = Transport::parse(t);
                            let _ = guard::with_header(&m, "transport", &Transport::rewrite(t, Some(1), Some(2)));
                        }
                    }
                    Ok(Some(Unit::Interleaved { frame, .. })) => {
                        let _ = pictures.packet(&frame[4..], 64);
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
            assert!(d.buffer().len() <= MAX_MESSAGE_BYTES.max(65_539) + split);
        }
    }
}

/// Crashers found by `fuzz/run.sh`, minimized: each must be an error, not a panic.
#[test]
fn fuzz_crashers_are_errors() {
    // sps: an SPS whose log2_max_frame_num_minus4 is a 31-zero Exp-Golomb code
    // (the +4 overflowed u32).
    let mut sps = vec![0x67, 0x00, 0x00, 0x00, 0x0D, 0x00, 0x00, 0x00, 0x00];
    sps.extend([0xFF; 91]);
    assert!(eyrie::codec::h264::Sps::parse(&sps, 0).is_err());
    // sps: a scaling list whose delta_scale overflowed i32 (must be -128..=127).
    let sps = [
        0x67, 0x7A, 0x7A, 0x26, 0x7A, 0x7A, 0xC7, 0xC7, 0xC7, 0xC7, 0xC7, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF,
        0x46, 0xFE, 0x6E, 0x00, 0x16, 0x00, 0x00, 0xC7, 0x00, 0x00, 0x2A, 0x00, 0x00, 0x00, 0xC7, 0xC7, 0xFF, 0xFF,
        0xC7, 0xC7, 0xC7, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF,
        0xFF, 0x46, 0xFE, 0x6E, 0x00, 0x16, 0x00, 0x00, 0xC7, 0x00, 0x00, 0x2A, 0x00, 0x00, 0x00, 0x00, 0xC7, 0xC7,
        0xC7,
    ];
    assert!(eyrie::codec::h264::Sps::parse(&sps, 0).is_err());
    // sps: an H.265 SPS whose reference picture sets, predicted one from
    // another, summed delta POCs past i32 (found by the sps target).
    let mut crash = [
        0x00, 0x80, 0x00, 0x89, 0xef, 0xff, 0xfe, 0xff, 0xc8, 0xc8, 0xc8, 0xc8, 0xc8, 0xc8, 0xc8, 0xc8, 0xc8, 0xc8,
        0xc8, 0xc8, 0x5d, 0xc8, 0xc8, 0xc8, 0xc8, 0xc8, 0xc8, 0xff, 0xff, 0xff, 0x2a, 0x00, 0x00, 0x00, 0x80, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x89, 0xef, 0xff, 0xfe, 0xff, 0xc8, 0xc8, 0xc8, 0xc8, 0xc8, 0xc8,
        0xc8, 0xc8, 0xc8, 0xc8, 0xc8, 0xc8, 0x5d, 0xc8, 0xc8, 0xc8, 0xc8, 0xc8, 0xc8, 0xff, 0xff, 0xff, 0x2a, 0x00,
        0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0xff, 0x4d,
    ];
    // As the target does: an SPS header forced onto the bytes.
    crash[0] = 0x42;
    crash[1] = 0x01;
    let _ = eyrie::codec::h265::Sps::parse(&crash, 0);
    // demux: a 64-bit box size whose end overflowed u64.
    static MP4: [u8; 44] = [
        0x00, 0x00, 0x00, 0x1C, 0x66, 0x74, 0x79, 0x70, 0x69, 0x73, 0x6F, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0xFF,
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x3C, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ];
    assert!(eyrie::demux::mp4::read(&bytes::Bytes::from_static(&MP4), &std::sync::Arc::from("crasher")).is_err());
    // demux: minimized findings kept as files (tests/fixtures/README.md); any result but a panic.
    for entry in std::fs::read_dir("tests/fixtures").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Some(rest) = name.strip_prefix("fuzz-") {
            let data = bytes::Bytes::from(std::fs::read(&path).unwrap());
            let source = std::sync::Arc::from(name.as_str());
            let _ = match rest.rsplit_once('.').map(|(_, ext)| ext) {
                Some("mp4") => eyrie::demux::mp4::read(&data, &source),
                Some("mkv") => eyrie::demux::mkv::read(&data, &source),
                Some("ts") => eyrie::demux::ts::read(&data, &source),
                _ => panic!("{name}: no reader for it"),
            };
        }
    }
}

/// Sample counts of 2³²−1 in an MP4's tables (a fuzzer's timeout: the reader
/// looped over every count) are bounded by the samples the file can hold.
#[test]
fn mp4_sample_counts_are_bounded_by_the_file() {
    use eyrie::mux::{Container, write::mux_to_vec};
    let data = bytes::Bytes::from(std::fs::read("tests/fixtures/tiny.h264").unwrap());
    let source = std::sync::Arc::from("tiny");
    let packets =
        eyrie::demux::es::read(&data, eyrie::demux::EsKind::H264, Some("25".parse().unwrap()), &source).unwrap();
    let file = mux_to_vec(Container::Mp4, &packets).unwrap();
    let at = |kind: &[u8; 4]| file.windows(4).position(|w| w == kind).unwrap() + 4;
    // stts and ctts: the first run's sample count (after version/flags and entry count).
    for table in [b"stts", b"ctts"] {
        let mut f = file.clone();
        let run = at(table) + 8;
        f[run..run + 4].copy_from_slice(&[0xFF; 4]);
        let read = eyrie::demux::mp4::read(&bytes::Bytes::from(f), &source);
        assert!(
            read.is_ok_and(|p| p.len() == packets.len()),
            "{}",
            String::from_utf8_lossy(table)
        );
    }
    // stsz: one size for all, and 2³²−1 samples of it.
    let mut f = file.clone();
    let stsz = at(b"stsz");
    f[stsz + 4..stsz + 12].copy_from_slice(&[0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]);
    let err = eyrie::demux::mp4::read(&bytes::Bytes::from(f), &source).unwrap_err();
    assert!(err.to_string().contains("more than the input holds"), "{err}");
}
