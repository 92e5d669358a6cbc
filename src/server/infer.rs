//! The `infer` node: the frames of its `inputs` batched (leases, no copies)
//! through a [`Detector`], published as one stream with their detections and
//! the slot of the input they came from (`meta.input`). Frames an input's
//! policy skips pass through without detections, marked `meta.skipped` (a
//! `track` node fills them in from its tracks).
//!
//! Each input is read by a small forwarding thread into one channel, so the
//! node waits on all inputs at once and on the batch timeout.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::hub::{Item, Publisher, RecvError, StreamFormat, SubscribeOptions};
use crate::infer::batch::{Batcher, Pushed};
use crate::infer::detector::{Detector, InferOptions};
use crate::media::Frame;

use super::node::{Every, NodeCtx, NodeState};

/// Longest wait for input when no batch is pending (so a stop is noticed).
const IDLE: Duration = Duration::from_millis(100);

pub(super) fn spawn(ctx: NodeCtx, options: InferOptions) -> Result<JoinHandle<()>, String> {
    // Load and check the model now: a bad model fails the start, naming the file.
    let mut detector = Detector::new(&options).map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::sync_channel::<(usize, Item)>(options.batch * 2);
    let mut forwarders = Vec::new();
    for (slot, name) in options.inputs.iter().enumerate() {
        let sub = ctx.hub.subscribe(name, SubscribeOptions::leaky(options.queue));
        let tx = tx.clone();
        let shared = Arc::clone(&ctx.shared);
        let thread = std::thread::Builder::new()
            .name(format!("{}-in{slot}", ctx.name))
            .spawn(move || {
                let control = sub.control();
                // Queue drops are this node's losses, counted as they happen (stats are live).
                let mut counted = 0;
                loop {
                    let received = sub.recv_timeout(IDLE);
                    let dropped = control.dropped();
                    shared.count_dropped_n(dropped - counted);
                    counted = dropped;
                    match received {
                        Ok(item) => {
                            let eos = matches!(item, Item::Eos);
                            if tx.send((slot, item)).is_err() || eos {
                                break;
                            }
                        }
                        Err(RecvError::Timeout) if !shared.stop_requested() => {}
                        Err(_) => break,
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        forwarders.push(thread);
    }
    drop(tx);
    let mut publisher = ctx.hub.publisher(&ctx.name);
    let inputs = options.inputs.len();
    ctx.spawn("infer", move |ctx| {
        let NodeCtx { name, shared, .. } = ctx;
        let clock = Arc::clone(&shared.clock);
        let mut batcher = Batcher::new(options.batch, (options.timeout * 1e9) as i64, options.input_policies());
        let mut announced = false;
        let mut ended = vec![false; inputs];
        let mut errors = Every::second();
        let mut run = |batch: Vec<(usize, Frame)>, publisher: &mut Publisher| {
            let frames: Vec<&Frame> = batch.iter().map(|(_, f)| f).collect();
            let before = detector.times();
            let found = detector.detect(&frames);
            let after = detector.times();
            let n = after.frames - before.frames;
            shared.add_stage("preprocess", after.preprocess_ns - before.preprocess_ns, n);
            shared.add_stage("inference", after.inference_ns - before.inference_ns, n);
            shared.add_stage("decode_nms", after.decode_ns - before.decode_ns, n);
            match found {
                Ok(found) => {
                    for ((slot, mut frame), dets) in batch.into_iter().zip(found) {
                        let meta = frame.meta_mut();
                        meta.detections = dets;
                        meta.input = Some(slot as u32);
                        meta.skipped = false;
                        publisher.publish(Item::Frame(frame));
                        shared.count_out();
                    }
                }
                Err(e) => {
                    shared.count_dropped_n(batch.len() as u64);
                    if let Some(n) = errors.tick(clock.now_ns()) {
                        tracing::error!(node = %name, batches = n, "{e}");
                    }
                }
            }
        };
        loop {
            let wait = batcher
                .deadline()
                .map_or(IDLE, |d| Duration::from_nanos((d - clock.now_ns()).max(0) as u64));
            match rx.recv_timeout(wait) {
                Ok((slot, Item::Frame(frame))) => {
                    shared.count_in();
                    match batcher.push(slot, frame, clock.now_ns()) {
                        Pushed::Held(Some(batch)) => run(batch, &mut publisher),
                        Pushed::Held(None) => {}
                        Pushed::Skipped(ahead, mut frame) => {
                            if let Some(batch) = ahead {
                                run(batch, &mut publisher);
                            }
                            let meta = frame.meta_mut();
                            meta.detections.clear();
                            meta.input = Some(slot as u32);
                            meta.skipped = true;
                            publisher.publish(Item::Frame(frame));
                            shared.count_out();
                        }
                    }
                }
                Ok((_, Item::Format(f @ StreamFormat::Video(_)))) if !announced => {
                    announced = true;
                    publisher.publish(Item::Format(f));
                }
                Ok((slot, Item::Eos)) => {
                    ended[slot] = true;
                    if ended.iter().all(|&e| e) {
                        break;
                    }
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(batch) = batcher.poll(clock.now_ns()) {
                        run(batch, &mut publisher);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if let Some(batch) = batcher.flush() {
            run(batch, &mut publisher);
        }
        let t = detector.times();
        if t.frames > 0 {
            let us = |ns: u64| ns as f64 / t.frames as f64 / 1e3;
            tracing::info!(
                node = %name,
                frames = t.frames,
                batches = t.batches,
                "per frame: preprocess {:.0} µs, inference {:.0} µs, decode+NMS {:.0} µs",
                us(t.preprocess_ns),
                us(t.inference_ns),
                us(t.decode_ns)
            );
        }
        publisher.publish(Item::Eos);
        drop(rx);
        for f in forwarders {
            let _ = f.join();
        }
        shared.set_state(NodeState::Stopped, None);
    })
}
