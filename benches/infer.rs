//! The AI path's stages per frame: preprocessing each pixel format from
//! 1280×720 into the built-in model's 256×144 input, the detector (tract)
//! on batches of 1 and 4, the tracker, the tiler and the OSD.
//!
//! `cargo bench --bench infer`; the whole demo, side by side with its
//! stages, is `benches/compare_ai.sh`.

use criterion::{Criterion, criterion_group, criterion_main};
use eyrie::capture::testsrc::{TestSrc, TestSrcOptions};
use eyrie::infer::detector::{Detector, InferOptions};
use eyrie::infer::preprocess::{Normalize, Preprocess};
use eyrie::media::paint::Canvas;
use eyrie::media::{Frame, PixelFormat};
use eyrie::process::letterbox::Resize;
use eyrie::process::osd::{OsdOptions, draw};
use eyrie::process::tile::{TileOptions, Tiler};
use eyrie::track::{Tracker, TrackerOptions};
use std::hint::black_box;

fn frame(format: PixelFormat, seed: u64, n: u64) -> Frame {
    let options = TestSrcOptions {
        format,
        seed: Some(seed),
        ..TestSrcOptions::default()
    };
    TestSrc::new("bench", &options).unwrap().frame(n)
}

fn stages(c: &mut Criterion) {
    let mut g = c.benchmark_group("preprocess 1280x720 -> 256x144");
    for format in [
        PixelFormat::Nv12,
        PixelFormat::I420,
        PixelFormat::Yuyv,
        PixelFormat::Rgb24,
    ] {
        let f = frame(format, 1, 300);
        let pre = Preprocess::new(&f.info, (256, 144), Resize::Letterbox, Normalize::default());
        let mut out = vec![0f32; 3 * 256 * 144];
        g.bench_function(format.name(), |b| b.iter(|| pre.run(black_box(f.data()), &mut out)));
    }
    g.finish();

    let mut detector = Detector::new(&InferOptions::default()).unwrap();
    let frames: Vec<Frame> = (0..4).map(|i| frame(PixelFormat::Nv12, 1000 + i, 300)).collect();
    let refs: Vec<&Frame> = frames.iter().collect();
    let mut g = c.benchmark_group("detector (tract, built-in model)");
    g.bench_function("batch 1", |b| {
        b.iter(|| detector.detect(black_box(&refs[..1])).unwrap())
    });
    g.bench_function("batch 4", |b| b.iter(|| detector.detect(black_box(&refs)).unwrap()));
    g.finish();

    let mut found = detector.detect(&refs).unwrap();
    let mut g = c.benchmark_group("after the detector");
    let mut tracker = Tracker::new(TrackerOptions::default());
    g.bench_function("track (one frame's detections)", |b| {
        b.iter(|| tracker.update(black_box(&mut found[0])))
    });
    let tiled: Vec<Frame> = frames
        .iter()
        .zip(&found)
        .map(|(f, d)| {
            let mut f = f.clone();
            f.meta_mut().detections = d.clone();
            f
        })
        .collect();
    let mut tiler = Tiler::new(TileOptions::default()).unwrap();
    let mut mosaic = vec![0u8; tiler.info().size()];
    let tiles: Vec<Option<&Frame>> = tiled.iter().map(Some).collect();
    g.bench_function("tile 4 x 1280x720 -> 1280x720", |b| {
        b.iter(|| tiler.compose(black_box(&tiles), &mut mosaic))
    });
    let dets = tiler.compose(&tiles, &mut mosaic).detections;
    let info = *tiler.info();
    g.bench_function("osd (the mosaic's boxes and labels)", |b| {
        b.iter(|| {
            draw(
                &mut Canvas::new(info, &mut mosaic),
                black_box(&dets),
                &OsdOptions::default(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
