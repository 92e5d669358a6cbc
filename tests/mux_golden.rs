//! Muxer output pinned byte for byte: golden hashes per container and mode
//! (tied to `mux::FORMAT_VERSION`), field-level checks of the critical boxes
//! and elements, and the round-trip property `read(write(x)) == x`.
//!
//! After a deliberate change of output bytes: bump `FORMAT_VERSION`, then
//! re-bless with `EYRIE_BLESS=1 cargo test --test mux_golden`.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use eyrie::demux::{self, EsKind, es};
use eyrie::media::{Codec, Packet};
use eyrie::mux::write::mux_to_vec;
use eyrie::mux::{Container, FORMAT_VERSION, ts};

const GOLDEN: &str = "tests/golden/mux.txt";

fn fixture(name: &str) -> Vec<Packet> {
    let path = Path::new("tests/fixtures").join(name);
    let data = Bytes::from(std::fs::read(&path).unwrap());
    let kind = EsKind::from_extension(path.extension().unwrap().to_str().unwrap()).unwrap();
    es::read(&data, kind, Some("25".parse().unwrap()), &Arc::from("golden")).unwrap()
}

/// FNV-1a, 64-bit: stable across platforms and toolchains.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

const SCENARIOS: [(&str, &str, Container); 12] = [
    ("tiny.h264", "ts", Container::Ts),
    ("tiny.h264", "mkv", Container::Mkv),
    ("tiny.h264", "mp4", Container::Mp4),
    ("tiny.h264", "fmp4", Container::Fmp4),
    ("tiny.h265", "ts", Container::Ts),
    ("tiny.h265", "mkv", Container::Mkv),
    ("tiny.h265", "mp4", Container::Mp4),
    ("tiny.h265", "fmp4", Container::Fmp4),
    ("tiny.ivf", "mkv", Container::Mkv),
    ("tiny.ivf", "webm", Container::Webm),
    ("tiny.ivf", "mp4", Container::Mp4),
    ("tiny.ivf", "fmp4", Container::Fmp4),
];

#[test]
fn output_matches_the_golden_hashes() {
    let mut lines = vec![format!("# FORMAT_VERSION {FORMAT_VERSION}: hash size scenario")];
    for (input, name, container) in SCENARIOS {
        let bytes = mux_to_vec(container, &fixture(input)).unwrap();
        lines.push(format!("{:016x} {} {input}.{name}", fnv(&bytes), bytes.len()));
    }
    let text = lines.join("\n") + "\n";
    if std::env::var_os("EYRIE_BLESS").is_some() {
        std::fs::create_dir_all("tests/golden").unwrap();
        std::fs::write(GOLDEN, &text).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(GOLDEN).unwrap();
    assert!(
        golden.starts_with(&format!("# FORMAT_VERSION {FORMAT_VERSION}:")),
        "FORMAT_VERSION was bumped: re-bless with EYRIE_BLESS=1 cargo test --test mux_golden"
    );
    assert_eq!(
        text, golden,
        "muxer output changed: bump eyrie::mux::FORMAT_VERSION, then re-bless with EYRIE_BLESS=1"
    );
}

/// The children of an MP4 box body: (type, body).
fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        out.push((data[pos + 4..pos + 8].try_into().unwrap(), &data[pos + 8..pos + size]));
        pos += size;
    }
    out
}

fn child<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> &'a [u8] {
    path.iter().fold(data, |d, kind| {
        boxes(d)
            .into_iter()
            .find(|(k, _)| k == *kind)
            .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(*kind)))
            .1
    })
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn mp4_stsd_avcc_and_faststart_fields() {
    let packets = fixture("tiny.h264");
    let file = mux_to_vec(Container::Mp4, &packets).unwrap();
    let top: Vec<[u8; 4]> = boxes(&file).iter().map(|b| b.0).collect();
    assert_eq!(top, [*b"ftyp", *b"moov", *b"mdat"], "faststart: moov before mdat");
    let stbl = child(&file, &[b"moov", b"trak", b"mdia", b"minf", b"stbl"]);
    let stsd = child(stbl, &[b"stsd"]);
    assert_eq!(u32_at(stsd, 4), 1, "one sample entry");
    let entry = &stsd[8..];
    assert_eq!(&entry[4..8], b"avc1");
    assert_eq!(u16::from_be_bytes([entry[32], entry[33]]), 64, "width");
    assert_eq!(u16::from_be_bytes([entry[34], entry[35]]), 64, "height");
    let avcc = child(&entry[8 + 78..u32_at(entry, 0) as usize], &[b"avcC"]);
    assert_eq!(avcc, &packets[0].params.extradata[..], "avcC is the stream's record");
    assert_eq!(avcc[0], 1, "configurationVersion");
    assert_eq!(avcc[4], 0xFF, "4-byte NAL lengths");
    assert_eq!(avcc[5], 0xE1, "one SPS");
    // 12 samples, composition offsets for the B-frames, two sync samples.
    assert_eq!(u32_at(child(stbl, &[b"stsz"]), 8), 12);
    assert_eq!(u32_at(child(stbl, &[b"stss"]), 4), 2);
    assert!(boxes(stbl).iter().any(|b| &b.0 == b"ctts"));
    // The single chunk starts right after the mdat header.
    let mdat_at = file.len() - boxes(&file)[2].1.len();
    assert_eq!(u32_at(child(stbl, &[b"stco"]), 8) as usize, mdat_at);
}

#[test]
fn fmp4_moof_tfdt_trun_fields() {
    let packets = fixture("tiny.h264");
    let file = mux_to_vec(Container::Fmp4, &packets).unwrap();
    let top = boxes(&file);
    let kinds: Vec<&[u8; 4]> = top.iter().map(|b| &b.0).collect();
    assert_eq!(
        kinds,
        [b"ftyp", b"moov", b"moof", b"mdat", b"moof", b"mdat"],
        "a fragment per GOP"
    );
    assert!(boxes(top[1].1).iter().any(|b| &b.0 == b"mvex"), "init segment has mvex");
    let mut next_dts = 0;
    for (n, moof) in [top[2].1, top[4].1].into_iter().enumerate() {
        assert_eq!(u32_at(child(moof, &[b"mfhd"]), 4), n as u32 + 1, "sequence number");
        let tfdt = child(moof, &[b"traf", b"tfdt"]);
        assert_eq!(tfdt[0], 1, "tfdt version 1");
        assert_eq!(u64::from_be_bytes(tfdt[4..12].try_into().unwrap()), next_dts, "tfdt");
        let trun = child(moof, &[b"traf", b"trun"]);
        assert_eq!(
            u32_at(trun, 0),
            0x0100_0F01,
            "version 1, offset+duration+size+flags+cto"
        );
        let count = u32_at(trun, 4);
        assert_eq!(count, 6);
        assert_eq!(
            u32_at(trun, 8) as usize,
            moof.len() + 8 + 8,
            "data offset past moof and mdat header"
        );
        assert_eq!(u32_at(trun, 12 + 8), 0x0200_0000, "first sample is sync");
        assert_eq!(u32_at(trun, 12 + 16 + 8), 0x0101_0000, "second is not");
        next_dts += (0..count as usize)
            .map(|i| u32_at(trun, 12 + 16 * i) as u64)
            .sum::<u64>();
    }
    assert_eq!(next_dts, 12 * 3600, "12 frames at 25 fps in 90 kHz");
}

#[test]
fn ebml_header_fields() {
    for (container, doc_type, input) in [
        (Container::Mkv, "matroska", "tiny.h264"),
        (Container::Webm, "webm", "tiny.ivf"),
    ] {
        let file = mux_to_vec(container, &fixture(input)).unwrap();
        assert_eq!(file[..4], [0x1A, 0x45, 0xDF, 0xA3], "EBML magic");
        let header_len = 5 + file[4] as usize - 0x80;
        let header = &file[5..header_len];
        let needle = [&[0x42, 0x82, 0x80 | doc_type.len() as u8][..], doc_type.as_bytes()].concat();
        assert!(header.windows(needle.len()).any(|w| w == needle), "DocType {doc_type}");
        assert!(
            header.windows(4).any(|w| w == [0x42, 0x87, 0x81, 4]),
            "DocTypeVersion 4"
        );
        assert_eq!(
            file[header_len..header_len + 4],
            [0x18, 0x53, 0x80, 0x67],
            "Segment follows"
        );
    }
}

#[test]
fn ts_pat_pmt_and_packet_fields() {
    for (input, stream_type) in [("tiny.h264", 0x1B), ("tiny.h265", 0x24)] {
        let file = mux_to_vec(Container::Ts, &fixture(input)).unwrap();
        assert_eq!(file.len() % 188, 0);
        assert!(file.chunks(188).all(|p| p[0] == 0x47), "sync bytes");
        let pmt = &file[188..376];
        assert_eq!((pmt[1] & 0x1F) as u16 * 256 + pmt[2] as u16, ts::PMT_PID);
        let section = &pmt[5..];
        let len = ((section[1] & 0x0F) as usize) << 8 | section[2] as usize;
        assert_eq!(section[0], 2, "table_id");
        assert_eq!(
            ts::crc32_mpeg(&section[..3 + len]),
            0,
            "CRC over the section including its CRC"
        );
        assert_eq!(section[12], stream_type, "stream_type");
        assert_eq!((section[13] & 0x1F) as u16 * 256 + section[14] as u16, ts::VIDEO_PID);
        let first = &file[376..];
        assert_eq!(first[1] & 0x40, 0x40, "payload unit start");
        assert_eq!(first[5] & 0x50, 0x50, "random access + PCR on the keyframe");
    }
}

/// A small seeded generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// read(write(x)) == x: random prefixes of the fixtures at random frame
/// rates, in every container, come back with the same payloads, keyframes,
/// sizes and times.
#[test]
fn read_of_write_is_identity() {
    let mut rng = Rng(0x5EED);
    for round in 0..60 {
        let (input, name, container) = SCENARIOS[rng.below(SCENARIOS.len() as u64) as usize];
        let mut packets = fixture(input);
        // Frame durations every container represents exactly (ms and 90 kHz).
        let frame_ns = [40_000_000i64, 20_000_000, 100_000_000][rng.below(3) as usize];
        let scale = |t: i64| t / 40_000_000 * frame_ns;
        let keep = 1 + rng.below(packets.len() as u64) as usize;
        packets.truncate(keep);
        for p in &mut packets {
            (p.pts, p.dts, p.duration) = (scale(p.pts), scale(p.dts), frame_ns);
        }
        let file = mux_to_vec(container, &packets).unwrap();
        let ext = match container {
            Container::Fmp4 => "mp4",
            _ => name,
        };
        let path = std::env::temp_dir().join(format!("eyrie-prop-{}-{round}.{ext}", std::process::id()));
        std::fs::write(&path, &file).unwrap();
        let got = demux::read_file(&path, &Arc::from("golden")).unwrap();
        std::fs::remove_file(&path).unwrap();
        let what = format!("round {round}: {keep} packets of {input} in {name}");
        assert_eq!(got.len(), packets.len(), "{what}");
        let base = packets[0].dts;
        let shift = match container {
            // MP4 keeps presentation at 0 through its edit list; the others count from the first dts.
            Container::Mp4 | Container::Fmp4 => 0,
            _ => base,
        };
        for (i, (g, s)) in got.iter().zip(&packets).enumerate() {
            let strip_aud = |p: &Packet| -> Vec<u8> {
                eyrie::codec::nal::annexb(&p.data)
                    .filter(|n| !matches!((p.codec, n.data[0]), (Codec::H264, 0x09) | (Codec::H265, 0x46)))
                    .flat_map(|n| n.data.to_vec())
                    .collect()
            };
            assert_eq!(strip_aud(g), strip_aud(s), "{what}: packet {i} payload");
            assert_eq!(g.keyframe, s.keyframe, "{what}: packet {i} keyframe");
            assert_eq!(g.params.width, s.params.width, "{what}: packet {i} width");
            assert_eq!(g.pts, s.pts - shift, "{what}: packet {i} pts");
            // Matroska stores no decode times; only MP4 stores durations.
            if !matches!(container, Container::Mkv | Container::Webm) {
                assert_eq!(g.dts, s.dts - shift, "{what}: packet {i} dts");
            }
            if matches!(container, Container::Mp4 | Container::Fmp4) {
                assert_eq!(g.duration, s.duration, "{what}: packet {i} duration");
            }
        }
    }
}

/// Fragmented MP4 with `fragment_ms`: fragments also cut between keyframes.
#[test]
fn fmp4_fragments_every_n_ms() {
    use eyrie::mux::mp4::{Mp4Muxer, Mp4Options};
    use eyrie::mux::{Muxer, Output};
    let packets = fixture("tiny.h264"); // 40 ms frames, IDR every 6
    let mut m = Mp4Muxer::new(Mp4Options {
        fragmented: true,
        fragment_ms: 100,
    });
    let mut out = Output::new();
    for p in &packets {
        m.push(p, &mut out).unwrap();
    }
    m.finish(&mut out).unwrap();
    let file = out.to_vec();
    let counts: Vec<u32> = boxes(&file)
        .iter()
        .filter(|b| &b.0 == b"moof")
        .map(|b| u32_at(child(b.1, &[b"traf", b"trun"]), 4))
        .collect();
    // A cut once a fragment spans 100 ms (3 frames), and at each keyframe.
    assert_eq!(counts, [3, 3, 3, 3]);
}

#[test]
fn file_writer_writes_what_memory_gets_at_every_gather() {
    use eyrie::mux::Output;
    use eyrie::mux::write::FileWriter;
    let dir = tempfile::tempdir().unwrap();
    let packets = fixture("tiny.h264");
    for container in [Container::Mp4, Container::Fmp4, Container::Mkv, Container::Ts] {
        let expected = mux_to_vec(container, &packets).unwrap();
        // Write-through; a little gathered at a time (so a progressive MP4's
        // index is prepended by rewriting the file); everything held.
        for gather in [0, 1000, u64::MAX] {
            let path = dir.path().join(format!("out-{gather}"));
            let mut writer = FileWriter::create(&path).unwrap().gather(gather);
            let mut muxer = container.muxer();
            let mut out = Output::new();
            for p in &packets {
                muxer.push(p, &mut out).unwrap();
                writer.write(&mut out).unwrap();
            }
            let trailer = muxer.finish(&mut out).unwrap();
            writer.write(&mut out).unwrap();
            let size = writer.finish(trailer).unwrap();
            let written = std::fs::read(&path).unwrap();
            assert_eq!(size, written.len() as u64, "{container:?}, gather {gather}");
            assert!(written == expected, "{container:?}, gather {gather}: bytes differ");
        }
    }
}
