//! Muxer throughput in MB/s per container: H.264 access units the size of a
//! 1080p, 8 Mbit/s stream's (33 kB: the committed fixture's pictures padded
//! with filler-data NAL units) pushed through each muxer with a writer that
//! only counts bytes — the cost of muxing itself, no file system.
//!
//! Whole-process figures against `ffmpeg -c copy` and `cp` on a real file
//! come from `benches/compare_mux.sh`.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eyrie::demux::{EsKind, es};
use eyrie::media::Packet;
use eyrie::mux::{Container, Output};

/// 8 Mbit/s at 30 fps.
const FRAME_BYTES: usize = 8_000_000 / 8 / 30;

fn packets() -> Vec<Packet> {
    let data = Bytes::from(std::fs::read("tests/fixtures/tiny.h264").expect("fixture"));
    let mut packets = es::read(&data, EsKind::H264, Some("30".parse().unwrap()), &Arc::from("bench")).unwrap();
    for p in &mut packets {
        // A filler-data NAL unit (type 12) brings the picture to FRAME_BYTES.
        let mut d = p.data.to_vec();
        let pad = FRAME_BYTES.saturating_sub(d.len() + 5);
        d.extend_from_slice(&[0, 0, 0, 1, 12]);
        d.extend(std::iter::repeat_n(0xFF, pad));
        d.push(0x80);
        p.data = Bytes::from(d);
    }
    packets
}

fn mux(c: &mut Criterion) {
    let packets = packets();
    let bytes: usize = packets.iter().map(|p| p.data.len()).sum();
    let mut group = c.benchmark_group("mux");
    group.throughput(Throughput::Bytes(bytes as u64));
    for (name, container) in [
        ("ts", Container::Ts),
        ("mkv", Container::Mkv),
        ("mp4", Container::Mp4),
        ("fmp4", Container::Fmp4),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut muxer = container.muxer();
                let mut out = Output::new();
                let mut written = 0;
                for p in &packets {
                    muxer.push(p, &mut out).unwrap();
                    written += black_box(out.slices().count()) as u64 + out.len();
                    out.clear();
                }
                muxer.finish(&mut out).unwrap();
                written + out.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, mux);
criterion_main!(benches);
