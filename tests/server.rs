//! The node registry: start, relink, lease return, ordered shutdown.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use eyrie::capture::testsrc::TestSrcOptions;
use eyrie::config::{Config, NodeProps, NodeSpec, RelayOptions, ServerConfig};
use eyrie::hub::{Hub, Item, Policy, SubscribeOptions, Subscription};
use eyrie::media::{ManualClock, MonotonicClock, PixelFormat};
use eyrie::server::{NodeState, Server};

fn camera(name: &str, live: bool, num_frames: Option<u64>, pool: usize) -> NodeSpec {
    NodeSpec {
        name: name.into(),
        listen_to: None,
        props: NodeProps::Testsrc(TestSrcOptions {
            width: 320,
            height: 240,
            format: PixelFormat::I420,
            live,
            num_frames,
            pool,
            ..TestSrcOptions::default()
        }),
    }
}

fn relay(name: &str, listen_to: &str, policy: Policy) -> NodeSpec {
    NodeSpec {
        name: name.into(),
        listen_to: Some(listen_to.into()),
        props: NodeProps::Relay(RelayOptions { queue: 4, policy }),
    }
}

fn config(nodes: Vec<NodeSpec>) -> Config {
    Config {
        server: ServerConfig::default(),
        nodes,
    }
}

#[test]
fn a_finite_source_flows_through_a_blocking_relay_without_loss() {
    let server = Server::start(config(vec![
        relay("in0", "cam0", Policy::Blocking),
        camera("cam0", false, Some(120), 4),
    ]))
    .unwrap();
    let sub = server.hub().subscribe("in0", SubscribeOptions::blocking(4));
    let mut seqs = Vec::new();
    while let Ok(item) = sub.recv_timeout(Duration::from_secs(10)) {
        match item {
            Item::Frame(f) => {
                assert_eq!(&*f.source, "cam0");
                seqs.push(f.seq);
            }
            Item::Eos => break,
            _ => {}
        }
    }
    // The subscription was made after start: it may have missed the first frames, none after.
    let first = seqs[0];
    assert_eq!(seqs, (first..120).collect::<Vec<_>>());
    let stats = server.shutdown();
    let cam = &stats.nodes[0];
    assert_eq!(
        (cam.name.as_str(), cam.frames_out, cam.frames_dropped),
        ("cam0", 120, 0)
    );
    let in0 = &stats.nodes[1];
    assert_eq!(
        (in0.frames_in, in0.frames_out, in0.frames_dropped),
        (120, 120, 0),
        "the relay started first and saw all"
    );
    assert_eq!(stats.bytes_copied, 0);
    let pool = cam.pool.unwrap();
    assert_eq!(pool.in_use, 0, "every lease came back");
    assert!(pool.allocated <= 4);
}

/// Starts `nodes` on a hub where `subscribe` has subscribed first, on a clock
/// that jumps to each deadline (a live source runs as fast as the CPU allows).
fn start_simulated(nodes: Vec<NodeSpec>, subscribe: &[(&str, SubscribeOptions)]) -> (Server, Vec<Subscription>) {
    let hub = Hub::new();
    let subs = subscribe.iter().map(|(name, o)| hub.subscribe(name, *o)).collect();
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    (Server::start_with(config(nodes), hub, clock).unwrap(), subs)
}

#[test]
fn held_buffers_make_a_live_source_drop_then_recover() {
    // A subscriber that holds every frame it gets, without reading.
    let (server, mut subs) = start_simulated(
        vec![camera("cam0", true, Some(300), 4)],
        &[("cam0", SubscribeOptions::leaky(1000))],
    );
    let hog = subs.pop().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !server.sources_finished() {
        assert!(std::time::Instant::now() < deadline, "source never finished");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = server.stats();
    let cam = &stats.nodes[0];
    let pool = cam.pool.unwrap();
    assert_eq!(pool.allocated, 4, "the pool never grows past its bound");
    assert!(cam.frames_dropped > 0, "exhaustion is counted as drops");
    assert_eq!(
        cam.frames_out + cam.frames_dropped,
        300,
        "every frame was either published or counted"
    );
    drop(hog);
    assert_eq!(server.stats().nodes[0].pool.unwrap().in_use, 0);
    server.shutdown();

    // With a reader releasing frames as it goes, nothing is dropped.
    let (server, mut subs) = start_simulated(
        vec![camera("cam0", true, Some(300), 4)],
        &[("cam0", SubscribeOptions::blocking(2))],
    );
    let reader = subs.pop().unwrap();
    let mut frames = 0;
    while let Some(item) = reader.recv() {
        match item {
            Item::Frame(_) => frames += 1,
            Item::Eos => break,
            _ => {}
        }
    }
    let stats = server.shutdown();
    assert_eq!(frames, 300);
    assert_eq!(stats.nodes[0].frames_dropped, 0);
}

#[test]
fn relinking_a_node_switches_its_source_at_run_time() {
    let server = Server::start(config(vec![
        camera("cam0", true, None, 8),
        camera("cam1", true, None, 8),
        relay("in0", "cam0", Policy::Leaky),
    ]))
    .unwrap();
    let sub = server.hub().subscribe("in0", SubscribeOptions::leaky(64));
    let source_of_next_frame = |sub: &eyrie::hub::Subscription| loop {
        match sub.recv_timeout(Duration::from_secs(5)).expect("frames keep flowing") {
            Item::Frame(f) => return f.source.to_string(),
            _ => continue,
        }
    };
    assert_eq!(source_of_next_frame(&sub), "cam0");
    server.relink("in0", "cam1").unwrap();
    // Frames the relay forwarded before its relink may still be queued here; after
    // them, only cam1.
    let sources: Vec<String> = (0..30).map(|_| source_of_next_frame(&sub)).collect();
    let switch = sources.iter().position(|s| s == "cam1").expect("cam1 frames arrive");
    assert!(sources[switch..].iter().all(|s| s == "cam1"), "{sources:?}");
    assert_eq!(server.config().nodes[2].listen_to.as_deref(), Some("cam1"));
    assert!(server.relink("cam0", "cam1").is_err(), "a source cannot be relinked");
    assert!(server.relink("nope", "cam1").is_err());
    let stats = server.shutdown();
    assert!(stats.nodes.iter().all(|n| n.state == NodeState::Stopped), "{stats:?}");
    assert_eq!(stats.nodes[2].input.as_ref().unwrap().stream, "cam1");
}

#[test]
fn shutdown_ends_every_stream_in_order() {
    let hub = Hub::new();
    let subs: Vec<_> = ["in0", "in1", "in2", "in3"]
        .iter()
        .map(|s| hub.subscribe(s, SubscribeOptions::blocking(1024)))
        .collect();
    let server = Server::start_with(Config::default_demo(), hub, Arc::new(MonotonicClock::new())).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let stats = server.shutdown();
    for (sub, name) in subs.iter().zip(["in0", "in1", "in2", "in3"]) {
        let items: Vec<Item> = std::iter::from_fn(|| sub.try_recv().ok()).collect();
        assert!(matches!(items.last(), Some(Item::Eos)), "{name} did not end with EOS");
        let frames = items.iter().filter(|i| matches!(i, Item::Frame(_))).count() as u64;
        let node = stats.nodes.iter().find(|n| n.name == name).unwrap();
        assert_eq!(
            frames, node.frames_out,
            "{name}: everything the relay published arrived"
        );
    }
    assert_eq!(stats.bytes_copied, 0);
}

#[test]
fn a_node_that_cannot_start_stops_the_others() {
    let mut bad = camera("cam1", true, None, 8);
    if let NodeProps::Testsrc(o) = &mut bad.props {
        o.width = 321;
    }
    let err = Server::start(config(vec![camera("cam0", true, None, 8), bad]))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("width"), "{err}");
}

/// Many threads and tokio tasks call one server at once while nodes are added
/// and removed: every request is answered (or refused, or timed out) with a
/// kind that fits it, and nothing deadlocks.
#[test]
fn threads_and_tasks_call_the_server_while_nodes_come_and_go() {
    use eyrie::server::{ErrorKind, Principal, Protocol};
    let server = Server::start(config(vec![
        camera("cam0", true, None, 8),
        camera("cam1", true, None, 8),
        relay("r0", "cam0", Policy::Leaky),
    ]))
    .unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    // One call, by worker `w` at step `i`; returns what it was and its outcome.
    let call = |server: &Server, w: usize, i: usize| -> (&'static str, Result<(), ErrorKind>) {
        let mine = format!("x{w}");
        let kind = |r: Result<(), eyrie::server::ServerError>| r.map_err(|e| e.kind());
        match i % 6 {
            0 => ("add", kind(server.add_node(relay(&mine, "cam1", Policy::Leaky)))),
            1 => (
                "relink",
                kind(server.relink("r0", if i % 4 == 1 { "cam1" } else { "cam0" })),
            ),
            2 => ("remove", kind(server.remove_node(&mine).map(drop))),
            3 => ("stats", {
                let stats = server.stats();
                assert!(stats.nodes.iter().any(|n| n.name == "r0"));
                Ok(())
            }),
            4 => ("reader", {
                let sub = server.open_reader(
                    &Principal::Anonymous,
                    "cam0",
                    Protocol::Rtsp,
                    SubscribeOptions::leaky(2),
                );
                kind(sub.map(drop))
            }),
            _ => ("stop_recording", kind(server.stop_recording("r0").wait().map(drop))),
        }
    };
    let check = |what: &str, outcome: Result<(), ErrorKind>| match (what, outcome) {
        (_, Ok(())) if what != "stop_recording" => {}
        ("stop_recording", Err(ErrorKind::InvalidInput)) => {} // r0 is no record node
        other => panic!("unexpected outcome {other:?}"),
    };
    let mut threads = Vec::new();
    for w in 0..4 {
        let (server, done) = (server.clone(), done_tx.clone());
        threads.push(std::thread::spawn(move || {
            for i in 0..60 {
                let (what, outcome) = call(&server, w, i);
                check(what, outcome);
            }
            done.send(()).unwrap();
        }));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for w in 4..8 {
        let (server, done) = (server.clone(), done_tx.clone());
        rt.spawn(async move {
            for i in 0..60 {
                let (what, outcome) = if i % 6 == 5 {
                    // Awaited: the same request, from a task.
                    let r = server.stop_recording("r0").await.map(drop).map_err(|e| e.kind());
                    ("stop_recording", r)
                } else {
                    call(&server, w, i)
                };
                check(what, outcome);
                tokio::task::yield_now().await;
            }
            done.send(()).unwrap();
        });
    }
    for _ in 0..8 {
        done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a worker neither finished nor failed: deadlock");
    }
    threads.into_iter().for_each(|t| t.join().unwrap());
    let stats = server.shutdown();
    let names: Vec<&str> = stats.nodes.iter().map(|n| n.name.as_str()).collect();
    assert!(
        names.starts_with(&["cam0", "cam1"]) || names.starts_with(&["cam1", "cam0"]),
        "{names:?}"
    );
    assert!(stats.nodes.iter().all(|n| n.state != NodeState::Failed), "{stats:#?}");
}

#[test]
fn nodes_are_added_and_removed_by_name_and_refused_with_kinds() {
    use eyrie::server::ErrorKind;
    let server = Server::start(config(vec![camera("cam0", true, None, 8)])).unwrap();
    server.add_node(relay("r0", "cam0", Policy::Leaky)).unwrap();
    let sub = server.hub().subscribe("r0", SubscribeOptions::leaky(4));
    assert!(matches!(sub.recv_timeout(Duration::from_secs(5)), Ok(Item::Format(_))));
    assert!(matches!(sub.recv_timeout(Duration::from_secs(5)), Ok(Item::Frame(_))));
    let kind = |r: Result<(), eyrie::server::ServerError>| r.unwrap_err().kind();
    assert_eq!(
        kind(server.add_node(relay("r0", "cam0", Policy::Leaky))),
        ErrorKind::Conflict
    );
    assert_eq!(
        kind(server.add_node(relay("r1", "ghost", Policy::Leaky))),
        ErrorKind::InvalidInput
    );
    let in_use = server.remove_node("cam0").unwrap_err();
    assert_eq!(in_use.kind(), ErrorKind::Conflict);
    assert!(in_use.to_string().contains("`r0`"), "{in_use}");
    assert_eq!(server.remove_node("ghost").unwrap_err().kind(), ErrorKind::NotFound);
    let removed = server.remove_node("r0").unwrap();
    assert_eq!(removed.state, NodeState::Stopped);
    assert!(removed.frames_out > 0);
    // Its reader gets the end of the stream; the source can go now.
    while !matches!(sub.recv_timeout(Duration::from_secs(5)), Ok(Item::Eos)) {}
    assert!(server.config().nodes.iter().all(|n| n.name != "r0"));
    server.remove_node("cam0").unwrap();
    assert!(server.stats().nodes.is_empty());
}

/// A relay whose input overflows (its output is read slowly) gets gap
/// markers, which it does not pass on: it runs on, and its output loses
/// frames only where its own readers' queues do.
#[test]
fn a_relay_whose_input_overflows_runs_on() {
    // Read from before the start, so every frame the relay passes on is seen.
    let hub = Hub::new();
    let slow = hub.subscribe("r0", SubscribeOptions::blocking(1));
    let nodes = vec![
        camera("cam0", false, Some(200), 64),
        NodeSpec {
            name: "r0".into(),
            listen_to: Some("cam0".into()),
            props: NodeProps::Relay(RelayOptions {
                queue: 1,
                policy: Policy::Leaky,
            }),
        },
    ];
    let server = Server::start_with(config(nodes), hub, Arc::new(MonotonicClock::new())).unwrap();
    let mut frames = 0;
    while let Ok(item) = slow.recv_timeout(Duration::from_secs(10)) {
        match item {
            Item::Frame(_) => {
                frames += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            Item::Eos => break,
            Item::Gap(n) => panic!("a gap of {n} came through the relay"),
            _ => {}
        }
    }
    let stats = server.shutdown();
    let relay = stats.nodes.iter().find(|n| n.name == "r0").unwrap();
    assert_ne!(relay.state, NodeState::Failed, "{relay:?}");
    assert!(relay.frames_dropped > 0, "its input never overflowed: {relay:?}");
    assert_eq!(frames, relay.frames_out, "{relay:?}");
}
