//! The `infer` node: the frames of its `inputs` batched (leases, no copies)
//! through a [`Detector`], published as one stream with their detections and
//! the slot of the input they came from (`meta.input`). Frames an input's
//! policy skips pass through without detections, marked `meta.skipped` (a
//! `track` node fills them in from its tracks).
//!
//! Each input is read by a small forwarding thread into one channel, so the
//! node waits on all inputs at once and on the batch timeout. Each input can
//! be relinked to another stream at run time ([`Inputs::relink`]): its
//! frames still held or in flight are dropped, its policy starts afresh, and
//! the relink returns once no frame of the old stream can come out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::hub::{Item, Publisher, RecvError, StreamFormat, SubscribeOptions, SubscriptionControl};
use crate::infer::batch::{Batcher, PolicyOptions, Pushed};
use crate::infer::detector::{Detector, InferOptions};
use crate::media::Frame;

use super::node::{Every, NodeCtx, NodeState};

/// Longest wait for input when no batch is pending (so a stop is noticed).
const IDLE: Duration = Duration::from_millis(100);
/// Longest wait for the node to take a relink in.
const RELINK_WAIT: Duration = Duration::from_secs(5);

/// What the forwarders and [`Inputs::relink`] send the node.
enum Msg {
    /// An item of input `slot`, received while the input was at `epoch`.
    Item { slot: usize, epoch: u64, item: Item },
    /// Input `slot` now listens to a new stream, from `epoch` on.
    Relink {
        slot: usize,
        epoch: u64,
        policy: PolicyOptions,
        done: mpsc::SyncSender<()>,
    },
}

/// The inputs of a running `infer` node, for relinking.
#[derive(Clone)]
pub(super) struct Inputs {
    controls: Vec<SubscriptionControl>,
    /// Per input: bumped at each relink; items carry the value read before they were received.
    epochs: Arc<Vec<AtomicU64>>,
    tx: mpsc::SyncSender<Msg>,
}

impl Inputs {
    /// Moves input `slot` to `stream` with `policy`; returns once the node
    /// has dropped what it held of the old stream, so nothing of it comes
    /// out after (or `Err` if the node has ended or does not answer).
    pub(super) fn relink(&self, slot: usize, stream: &str, policy: PolicyOptions) -> Result<(), String> {
        self.controls[slot].relink(stream);
        let epoch = self.epochs[slot].fetch_add(1, Ordering::AcqRel) + 1;
        let (done, answered) = mpsc::sync_channel(1);
        self.tx
            .send(Msg::Relink {
                slot,
                epoch,
                policy,
                done,
            })
            .map_err(|_| "the node has ended".to_string())?;
        answered
            .recv_timeout(RELINK_WAIT)
            .map_err(|_| "the node did not take the relink in".to_string())
    }
}

pub(super) fn spawn(ctx: NodeCtx, options: InferOptions) -> Result<(JoinHandle<()>, Inputs), String> {
    // Load and check the model now: a bad model fails the start, naming the file.
    let mut detector = Detector::new(&options).map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::sync_channel::<Msg>(options.batch * 2);
    let epochs: Arc<Vec<AtomicU64>> = Arc::new(options.inputs.iter().map(|_| AtomicU64::new(0)).collect());
    let mut forwarders = Vec::new();
    let mut controls = Vec::new();
    for (slot, name) in options.inputs.iter().enumerate() {
        let sub = ctx.hub.subscribe(name, SubscribeOptions::leaky(options.queue));
        controls.push(sub.control());
        let tx = tx.clone();
        let shared = Arc::clone(&ctx.shared);
        let epochs = Arc::clone(&epochs);
        let thread = std::thread::Builder::new()
            .name(format!("{}-in{slot}", ctx.name))
            .spawn(move || {
                let control = sub.control();
                // Queue drops are this node's losses, counted as they happen (stats are live).
                let mut counted = 0;
                loop {
                    // Read before receiving: an item of the old stream always
                    // carries the epoch before its relink.
                    let epoch = epochs[slot].load(Ordering::Acquire);
                    let received = sub.recv_timeout(IDLE);
                    let dropped = control.dropped();
                    shared.count_dropped_n(dropped - counted);
                    counted = dropped;
                    match received {
                        Ok(item) => {
                            let eos = matches!(item, Item::Eos);
                            if tx.send(Msg::Item { slot, epoch, item }).is_err() || eos {
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
    let inputs_handle = Inputs {
        controls,
        epochs: Arc::clone(&epochs),
        tx,
    };
    let mut publisher = ctx.hub.publisher(&ctx.name);
    let inputs = options.inputs.len();
    let thread = ctx.spawn("infer", move |ctx| {
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
        // The epoch each input is at: items received before its last relink are dropped.
        let mut current = vec![0u64; inputs];
        loop {
            let wait = batcher
                .deadline()
                .map_or(IDLE, |d| Duration::from_nanos((d - clock.now_ns()).max(0) as u64));
            let (slot, item) = match rx.recv_timeout(wait) {
                Ok(Msg::Item { slot, epoch, item }) if epoch == current[slot] => (slot, item),
                Ok(Msg::Item { .. }) => continue, // the old stream's, or the new one's before its relink is in
                Ok(Msg::Relink {
                    slot,
                    epoch,
                    policy,
                    done,
                }) => {
                    current[slot] = epoch;
                    let dropped = batcher.reset_input(slot, policy);
                    tracing::debug!(node = %name, slot, dropped, "input relinked");
                    let _ = done.send(());
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(batch) = batcher.poll(clock.now_ns()) {
                        run(batch, &mut publisher);
                    }
                    // Stopped before the inputs ended (the relink handle keeps the channel open).
                    if shared.stop_requested() && forwarders.iter().all(JoinHandle::is_finished) {
                        break;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match item {
                Item::Frame(frame) => {
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
                Item::Format(f @ StreamFormat::Video(_)) if !announced => {
                    announced = true;
                    publisher.publish(Item::Format(f));
                }
                Item::Eos => {
                    ended[slot] = true;
                    if ended.iter().all(|&e| e) {
                        break;
                    }
                }
                _ => {}
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
    })?;
    Ok((thread, inputs_handle))
}
