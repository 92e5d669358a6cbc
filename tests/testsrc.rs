//! Synthetic cameras are deterministic: same seed, same frames and ground truth.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use eyrie::capture::testsrc::{TestSrc, TestSrcOptions, stamp};
use eyrie::config::{Config, NodeProps, NodeSpec, ServerConfig};
use eyrie::hub::{Item, SubscribeOptions};
use eyrie::media::{ObjectClass, PixelFormat};
use eyrie::server::Server;

fn options(seed: u64, format: PixelFormat) -> TestSrcOptions {
    TestSrcOptions {
        width: 640,
        height: 360,
        format,
        seed: Some(seed),
        ..TestSrcOptions::default()
    }
}

#[test]
fn same_seed_same_frames_and_truth() {
    for format in PixelFormat::ALL {
        let a = TestSrc::new("cam", &options(11, format)).unwrap();
        let b = TestSrc::new("cam", &options(11, format)).unwrap();
        let c = TestSrc::new("cam", &options(12, format)).unwrap();
        let (mut fa, mut fb, mut fc) = (
            vec![0; a.info().size()],
            vec![1; a.info().size()],
            vec![0; a.info().size()],
        );
        for n in [0u64, 1, 250, 999] {
            let ta = a.render(n, &mut fa);
            let tb = b.render(n, &mut fb);
            assert!(fa == fb, "{format} frame {n} differs between two cameras with one seed");
            assert_eq!(ta, tb);
            c.render(n, &mut fc);
            assert!(fa != fc, "{format} frame {n}: another seed gives the same picture");
        }
    }
}

#[test]
fn frames_vary_over_time_and_show_every_class() {
    let src = TestSrc::new("cam", &options(3, PixelFormat::Nv12)).unwrap();
    let mut a = vec![0; src.info().size()];
    let mut b = vec![0; src.info().size()];
    src.render(10, &mut a);
    src.render(11, &mut b);
    let changed = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert!(
        changed > a.len() / 4,
        "noise changes most bytes between frames ({changed})"
    );
    let mut classes = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    for n in (0..30 * 120).step_by(15) {
        for t in src.render(n, &mut a) {
            classes.insert(t.class);
            ids.insert(t.id);
        }
    }
    assert_eq!(classes.len(), ObjectClass::ALL.len());
    assert!(ids.len() > 40, "{} objects in two minutes", ids.len());
}

fn frame_hashes(seed: u64) -> Vec<(u64, u64)> {
    let node = NodeSpec {
        name: "cam0".into(),
        listen_to: None,
        props: NodeProps::Testsrc(TestSrcOptions {
            live: false,
            num_frames: Some(40),
            ..options(seed, PixelFormat::Yuyv)
        }),
    };
    // Subscribe before any frame exists: a hub shared with the server.
    let hub = eyrie::hub::Hub::new();
    let sub = hub.subscribe("cam0", SubscribeOptions::blocking(4));
    let config = Config {
        server: ServerConfig::default(),
        nodes: vec![node],
    };
    let server = Server::start_with(config, hub, std::sync::Arc::new(eyrie::media::MonotonicClock::new())).unwrap();
    let mut out = Vec::new();
    while let Some(item) = sub.recv() {
        match item {
            Item::Frame(f) => {
                let mut h = DefaultHasher::new();
                f.data().hash(&mut h);
                format!("{:?}", f.meta.ground_truth).hash(&mut h);
                let s = stamp::read(&f.info, f.data()).expect("every frame carries a stamp");
                assert_eq!(s.frame as u64, f.seq);
                out.push((f.seq, h.finish()));
            }
            Item::Eos => break,
            _ => {}
        }
    }
    server.shutdown();
    out
}

#[test]
fn two_runs_of_a_node_publish_identical_frames() {
    let a = frame_hashes(5);
    assert_eq!(a.len(), 40);
    assert_eq!(a, frame_hashes(5));
    assert_ne!(a, frame_hashes(6));
}
