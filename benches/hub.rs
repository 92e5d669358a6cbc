//! Frames through the hub: publish + receive cost with 1, 4 and 16 subscribers
//! (handles, never pixels), the same across threads, and relink latency;
//! packets (which also go into the stream's GOP cache) with 1 and 4
//! subscribers, and a join that replays a 30-packet GOP.
//!
//! `cargo bench --bench hub`. Frames per second = 1e9 / (ns per frame).
//! The bytes-copied counter is printed at the end and must be 0.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use eyrie::hub::{Hub, Item, Join, StreamFormat, SubscribeOptions};
use eyrie::media::{
    BufferPool, Codec, CodecParams, Fps, Frame, FrameMeta, Packet, PixelFormat, VideoInfo, bytes_copied,
};

fn frame() -> (Frame, BufferPool) {
    let info = VideoInfo::new(PixelFormat::Nv12, 1280, 720, Fps::new(30, 1).unwrap()).unwrap();
    let pool = BufferPool::new(info.size(), 1);
    let buffer = pool.acquire().unwrap().freeze();
    let frame = Frame {
        info,
        pts: 0,
        duration: 33_333_333,
        capture_utc: SystemTime::now(),
        seq: 0,
        source: "cam0".into(),
        meta: Arc::new(FrameMeta::default()),
        buffer,
    };
    (frame, pool)
}

fn publish_and_receive(c: &mut Criterion) {
    let mut group = c.benchmark_group("hub/publish+recv");
    group.throughput(Throughput::Elements(1));
    let (frame, _pool) = frame();
    for subscribers in [1usize, 4, 16] {
        let hub = Hub::new();
        let subs: Vec<_> = (0..subscribers)
            .map(|_| hub.subscribe("cam0", SubscribeOptions::leaky(8)))
            .collect();
        let mut publisher = hub.publisher("cam0");
        group.bench_with_input(BenchmarkId::from_parameter(subscribers), &subscribers, |b, _| {
            b.iter(|| {
                publisher.publish(Item::Frame(frame.clone()));
                for s in &subs {
                    black_box(s.try_recv().unwrap());
                }
            })
        });
    }
    group.finish();
}

/// A producer thread publishing to consumer threads (blocking queues, so every
/// frame crosses): the cost of the real hand-off, wake-ups included.
fn across_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("hub/threads");
    group.throughput(Throughput::Elements(1));
    let (frame, _pool) = frame();
    for subscribers in [1usize, 4] {
        group.bench_with_input(BenchmarkId::from_parameter(subscribers), &subscribers, |b, &n| {
            b.iter_custom(|iters| {
                let hub = Hub::new();
                let consumers: Vec<_> = (0..n)
                    .map(|_| {
                        let sub = hub.subscribe("cam0", SubscribeOptions::blocking(64));
                        std::thread::spawn(move || while !matches!(sub.recv(), Some(Item::Eos) | None) {})
                    })
                    .collect();
                let mut publisher = hub.publisher("cam0");
                let start = Instant::now();
                for _ in 0..iters {
                    publisher.publish(Item::Frame(frame.clone()));
                }
                publisher.publish(Item::Eos);
                for c in consumers {
                    c.join().unwrap();
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// Packet `seq` of a stream with 30-packet GOPs (50 kB each, shared bytes).
fn packet(seq: u64, data: &bytes::Bytes, params: &Arc<CodecParams>) -> Packet {
    Packet {
        meta: Default::default(),
        codec: Codec::H264,
        data: data.clone(),
        pts: seq as i64 * 33_333_333,
        dts: seq as i64 * 33_333_333,
        duration: 33_333_333,
        capture_utc: SystemTime::UNIX_EPOCH,
        keyframe: seq.is_multiple_of(30),
        params: Arc::clone(params),
        source: "cam0".into(),
        seq,
    }
}

fn packets(c: &mut Criterion) {
    let mut group = c.benchmark_group("hub/packets");
    group.throughput(Throughput::Elements(1));
    let data = bytes::Bytes::from(vec![0u8; 50_000]);
    let params = Arc::new(CodecParams::new(Codec::H264, 1280, 720));
    for subscribers in [1usize, 4] {
        let hub = Hub::new();
        let subs: Vec<_> = (0..subscribers)
            .map(|_| hub.subscribe("cam0", SubscribeOptions::leaky(8)))
            .collect();
        let mut publisher = hub.publisher("cam0");
        let mut seq = 0;
        group.bench_with_input(BenchmarkId::from_parameter(subscribers), &subscribers, |b, _| {
            b.iter(|| {
                publisher.publish(Item::Packet(packet(seq, &data, &params)));
                seq += 1;
                for s in &subs {
                    black_box(s.try_recv().ok());
                }
            })
        });
    }
    // A reader joining at the last keyframe: the GOP (30 packets) is replayed.
    let hub = Hub::new();
    let mut publisher = hub.publisher("cam0");
    (0..30).for_each(|seq| publisher.publish(Item::Packet(packet(seq, &data, &params))));
    group.bench_function("join-last-keyframe", |b| {
        b.iter(|| black_box(hub.subscribe("cam0", SubscribeOptions::leaky(8).join(Join::LastKeyframe))))
    });
    group.finish();
}

fn relink(c: &mut Criterion) {
    let hub = Hub::new();
    let (frame, _pool) = frame();
    let mut a = hub.publisher("a");
    let mut b = hub.publisher("b");
    for p in [&mut a, &mut b] {
        p.publish(Item::Format(StreamFormat::Video(frame.info)));
    }
    let sub = hub.subscribe("a", SubscribeOptions::leaky(8));
    let mut to_b = true;
    c.bench_function("hub/relink", |bench| {
        bench.iter(|| {
            sub.relink(if to_b { "b" } else { "a" });
            to_b = !to_b;
            // Take the new stream's format so the queue does not fill up.
            black_box(sub.try_recv().unwrap());
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = publish_and_receive, across_threads, packets, relink
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    println!("bytes copied: {}", bytes_copied());
    assert_eq!(bytes_copied(), 0, "the hub moved pixels");
}
