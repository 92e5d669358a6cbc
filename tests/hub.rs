//! The stream hub under load: relinks, slow subscribers, in-band events, async.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{frame, info};
use eyrie::hub::{Hub, Item, RecvError, StreamFormat, SubscribeOptions};
use eyrie::media::BufferPool;

/// A producer thread publishing `n` frames (or until `stop`) on `name`, then EOS.
fn producer(hub: &Hub, name: &'static str, n: u64, pace: Duration, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    let mut publisher = hub.publisher(name);
    thread::spawn(move || {
        let pool = BufferPool::new(info().size(), 64);
        let source: Arc<str> = name.into();
        publisher.publish(Item::Format(StreamFormat::Video(info())));
        let mut sent = 0;
        for seq in 0..n {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if let Some(f) = frame(&pool, &source, seq) {
                publisher.publish(Item::Frame(f));
                sent += 1;
            }
            if !pace.is_zero() {
                thread::sleep(pace);
            }
        }
        publisher.publish(Item::Eos);
        sent
    })
}

#[test]
fn relink_under_load_delivers_nothing_from_the_old_stream() {
    let hub = Hub::new();
    let stop = Arc::new(AtomicBool::new(false));
    let a = producer(&hub, "a", u64::MAX, Duration::ZERO, stop.clone());
    let b = producer(&hub, "b", u64::MAX, Duration::ZERO, stop.clone());
    let sub = hub.subscribe("a", SubscribeOptions::leaky(4));
    let control = sub.control();
    // (completed relinks, stream linked by the last one). The relinker holds the
    // lock for the whole relink, so a reader never sees a relink half done.
    let linked = Arc::new(std::sync::Mutex::new((0u64, "a")));
    let consumer = {
        let linked = linked.clone();
        thread::spawn(move || {
            let (mut frames, mut checked, mut formats) = (0u64, 0u64, 0u64);
            loop {
                let (before, want) = *linked.lock().unwrap();
                let Ok(item) = sub.recv_timeout(Duration::from_secs(5)) else {
                    break;
                };
                let (after, _) = *linked.lock().unwrap();
                match item {
                    Item::Frame(f) => {
                        frames += 1;
                        // No relink ran while we received: the frame must come from
                        // the stream the last completed relink named.
                        if before == after {
                            assert_eq!(
                                &*f.source, want,
                                "frame from {} after the relink to {want} returned",
                                f.source
                            );
                            checked += 1;
                        }
                    }
                    Item::Format(_) => formats += 1,
                    Item::Eos | Item::Packet(_) | Item::Gap(_) => {}
                }
            }
            (frames, checked, formats, sub.stats())
        })
    };
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(2) {
        let mut guard = linked.lock().unwrap();
        let next = if guard.1 == "a" { "b" } else { "a" };
        control.relink(next);
        *guard = (guard.0 + 1, next);
        drop(guard);
        n += 1;
        thread::sleep(Duration::from_micros(200));
    }
    control.close();
    let (frames, checked, formats, stats) = consumer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    a.join().unwrap();
    b.join().unwrap();
    assert!(n > 100, "only {n} relinks");
    assert!(checked > 1000, "only {checked} of {frames} frames could be checked");
    assert!(
        formats >= n / 2,
        "each relink queues the new stream's format first ({formats} for {n} relinks)"
    );
    assert!(stats.flushed > 0);
}

#[test]
fn a_relinked_consumer_receives_eos_of_the_new_stream() {
    let hub = Hub::new();
    let sub = hub.subscribe("a", SubscribeOptions::blocking(2));
    let stop = Arc::new(AtomicBool::new(false));
    let a = producer(&hub, "a", u64::MAX, Duration::ZERO, stop.clone());
    // Wait until the blocking queue is full and the producer waits on it.
    thread::sleep(Duration::from_millis(50));
    let b_pub = producer(
        &hub,
        "b",
        50,
        Duration::from_millis(1),
        Arc::new(AtomicBool::new(false)),
    );
    sub.relink("b");
    // The blocked producer of `a` must not deadlock the relink, nor leak into `b`.
    let mut got_eos = false;
    let mut frames = 0;
    while let Ok(item) = sub.recv_timeout(Duration::from_secs(5)) {
        match item {
            Item::Frame(f) => {
                assert_eq!(&*f.source, "b");
                frames += 1;
            }
            Item::Eos => {
                got_eos = true;
                break;
            }
            _ => {}
        }
    }
    assert!(got_eos, "EOS of b was lost");
    assert!(frames > 0 && frames <= 50);
    assert_eq!(b_pub.join().unwrap(), 50);
    stop.store(true, Ordering::Relaxed);
    drop(sub); // unblocks nothing: `a` has no blocking subscriber any more
    a.join().unwrap();
}

#[test]
fn relinking_to_an_ended_stream_delivers_its_end() {
    let hub = Hub::new();
    let mut p = hub.publisher("done");
    p.publish(Item::Format(StreamFormat::Video(info())));
    p.publish(Item::Eos);
    let sub = hub.subscribe("other", SubscribeOptions::default());
    sub.relink("done");
    assert!(matches!(sub.try_recv(), Ok(Item::Format(_))));
    assert!(matches!(sub.try_recv(), Ok(Item::Eos)));
    assert_eq!(sub.try_recv().unwrap_err(), RecvError::Empty);
}

#[test]
fn a_slow_subscriber_slows_nobody() {
    let hub = Hub::new();
    let fast = hub.subscribe("cam", SubscribeOptions::leaky(1024));
    let slow = hub.subscribe("cam", SubscribeOptions::leaky(4));
    let n = 2_000;
    let producer = producer(
        &hub,
        "cam",
        n,
        Duration::from_micros(100),
        Arc::new(AtomicBool::new(false)),
    );
    let fast_thread = thread::spawn(move || {
        let mut seqs = Vec::new();
        while let Some(item) = fast.recv() {
            match item {
                Item::Frame(f) => seqs.push(f.seq),
                Item::Eos => break,
                _ => {}
            }
        }
        (seqs, fast.stats())
    });
    let slow_thread = thread::spawn(move || {
        let mut got = 0u64;
        let mut eos = false;
        while let Some(item) = slow.recv() {
            match item {
                Item::Frame(_) => {
                    got += 1;
                    thread::sleep(Duration::from_millis(5));
                }
                Item::Eos => {
                    eos = true;
                    break;
                }
                _ => {}
            }
        }
        (got, eos, slow.stats())
    });
    let start = Instant::now();
    assert_eq!(producer.join().unwrap(), n);
    let produce_time = start.elapsed();
    let (seqs, fast_stats) = fast_thread.join().unwrap();
    let (slow_got, slow_eos, slow_stats) = slow_thread.join().unwrap();
    // The fast consumer saw every frame, in order.
    assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "fast consumer lost frames");
    assert_eq!(fast_stats.dropped, 0);
    // The slow one dropped most, counted them, and still got the end of stream.
    assert!(slow_eos, "EOS lost on the leaky queue");
    assert!(
        slow_stats.dropped > n / 2,
        "slow consumer dropped only {}",
        slow_stats.dropped
    );
    assert_eq!(
        slow_got + slow_stats.dropped,
        n,
        "every frame was either delivered or counted as dropped"
    );
    // The producer was never held back by the 5 ms/frame consumer (which would take ≥ 10 s for all).
    assert!(produce_time < Duration::from_secs(8), "producer took {produce_time:?}");
}

#[test]
fn a_blocking_subscriber_loses_nothing() {
    let hub = Hub::new();
    let sub = hub.subscribe("file", SubscribeOptions::blocking(2));
    let producer = producer(&hub, "file", 500, Duration::ZERO, Arc::new(AtomicBool::new(false)));
    let mut seqs = Vec::new();
    while let Some(item) = sub.recv() {
        match item {
            Item::Frame(f) => {
                seqs.push(f.seq);
                if seqs.len() % 50 == 0 {
                    thread::sleep(Duration::from_millis(2));
                }
            }
            Item::Eos => break,
            _ => {}
        }
    }
    assert_eq!(producer.join().unwrap(), 500);
    assert_eq!(seqs, (0..500).collect::<Vec<_>>());
    assert_eq!(sub.stats().dropped, 0);
}

#[test]
fn events_stay_in_order_with_frames() {
    let hub = Hub::new();
    let sub = hub.subscribe("s", SubscribeOptions::leaky(2));
    let mut p = hub.publisher("s");
    let pool = BufferPool::new(info().size(), 8);
    let src: Arc<str> = "s".into();
    p.publish(Item::Format(StreamFormat::Video(info())));
    for seq in 0..5 {
        p.publish(Item::Frame(frame(&pool, &src, seq).unwrap()));
    }
    p.publish(Item::Eos);
    let kinds: Vec<String> = std::iter::from_fn(|| sub.try_recv().ok())
        .map(|i| match i {
            Item::Format(_) => "F".to_owned(),
            Item::Frame(f) => f.seq.to_string(),
            Item::Eos => "E".to_owned(),
            Item::Packet(_) => "P".to_owned(),
            Item::Gap(n) => format!("G{n}"),
        })
        .collect();
    // Capacity 2: frames 0-2 were dropped, in band where they were; the format
    // and EOS never are.
    assert_eq!(kinds, ["F", "G3", "3", "4", "E"]);
    assert_eq!(sub.stats().dropped, 3);
    // A late subscriber learns the current format and that the stream ended.
    let late = hub.subscribe("s", SubscribeOptions::default());
    assert!(matches!(late.try_recv(), Ok(Item::Format(_))));
    assert!(matches!(late.try_recv(), Ok(Item::Eos)));
}

#[test]
fn dropping_a_publisher_ends_its_stream() {
    let hub = Hub::new();
    let sub = hub.subscribe("s", SubscribeOptions::default());
    drop(hub.publisher("s"));
    assert!(matches!(sub.try_recv(), Ok(Item::Eos)));
}

#[test]
fn closing_drains_then_ends_and_wakes_a_blocked_receiver() {
    let hub = Hub::new();
    let sub = Arc::new(hub.subscribe("s", SubscribeOptions::default()));
    let control = sub.control();
    let waiter = {
        let sub = sub.clone();
        thread::spawn(move || sub.recv().is_none())
    };
    thread::sleep(Duration::from_millis(20));
    control.close();
    assert!(waiter.join().unwrap(), "recv returned an item after close");
    assert_eq!(
        sub.recv_timeout(Duration::from_millis(1)).unwrap_err(),
        RecvError::Closed
    );
}

#[test]
fn dropped_items_return_their_buffers() {
    let hub = Hub::new();
    let pool = BufferPool::new(info().size(), 4);
    let sub = hub.subscribe("s", SubscribeOptions::leaky(2));
    let mut p = hub.publisher("s");
    let src: Arc<str> = "s".into();
    let mut produced = 0;
    for seq in 0..1000 {
        if let Some(f) = frame(&pool, &src, seq) {
            p.publish(Item::Frame(f));
            produced += 1;
        }
        assert!(pool.stats().allocated <= 4);
    }
    assert_eq!(produced, 1000, "leaky drops released buffers back to the pool");
    assert_eq!(pool.stats().in_use, 2, "only the two queued frames hold buffers");
    drop(sub);
    assert_eq!(pool.stats().in_use, 0, "dropping the subscription released its queue");
    assert_eq!(pool.stats().allocated, 3);
}

#[test]
fn async_receive_from_tokio_tasks() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let hub = Hub::new();
    let subs: Vec<_> = (0..3)
        .map(|_| hub.subscribe("cam", SubscribeOptions::blocking(4)))
        .collect();
    let producer = producer(
        &hub,
        "cam",
        300,
        Duration::from_micros(50),
        Arc::new(AtomicBool::new(false)),
    );
    let counts = rt.block_on(async move {
        let tasks: Vec<_> = subs
            .into_iter()
            .map(|sub| {
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while let Some(item) = sub.recv_async().await {
                        match item {
                            Item::Frame(f) => {
                                assert_eq!(f.seq, n);
                                n += 1;
                            }
                            Item::Eos => break,
                            _ => {}
                        }
                    }
                    n
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(
                tokio::time::timeout(Duration::from_secs(10), t)
                    .await
                    .expect("async receive hung")
                    .unwrap(),
            );
        }
        out
    });
    assert_eq!(producer.join().unwrap(), 300);
    assert_eq!(counts, [300, 300, 300]);
}
