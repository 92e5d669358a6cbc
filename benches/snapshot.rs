//! Snapshot latency: from `Server::snapshot` to the JPEG's bytes, on a live
//! 1280×720 30 fps synthetic camera — the raw stream (wait for the next
//! frame, encode it) and its H.264 stream (wait for the next keyframe, decode
//! it once, encode it; a keyframe every 15 frames). The wait for the next
//! picture is part of what a user sees, so it is measured too: half a frame
//! interval (17 ms) on average for the raw stream, half a GOP (250 ms) for the
//! coded one.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use eyrie::config::Config;
use eyrie::server::Server;

fn snapshot(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nmedia_root = {:?}\n\
         [[node]]\nname = \"cam\"\nkind = \"testsrc\"\n\
         [[node]]\nname = \"cam-h264\"\nkind = \"encode\"\nlisten_to = \"cam\"\nkeyint = 15\n",
        dir.path().display().to_string()
    );
    let server = Server::start(Config::parse(&text, "bench").unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut group = c.benchmark_group("snapshot 1280x720");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    for stream in ["cam", "cam-h264"] {
        group.bench_function(stream, |b| {
            b.iter(|| {
                server
                    .snapshot(stream, None, 85, Duration::from_secs(2))
                    .wait()
                    .unwrap()
            })
        });
    }
    group.finish();
    let stats = server.shutdown();
    println!("bytes copied: {}", stats.bytes_copied);
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
