//! The `track` node: one [`Tracker`] per input of the stream it listens to
//! (by `meta.input`, so the four inputs of an `infer` stream are tracked
//! apart), setting the track ids of each frame's detections. Frames the
//! detector skipped (`meta.skipped`, an `infer` policy such as `every = 3`)
//! get the predicted boxes of the tracks seen last, so boxes drawn on every
//! frame move smoothly instead of flickering.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::hub::{Item, SubscribeOptions, SubscriptionControl};
use crate::track::{Tracker, TrackerOptions};

use super::node::{NodeCtx, NodeState};

/// Input queue, in frames.
const QUEUE: usize = 8;

pub(super) fn spawn(
    ctx: NodeCtx,
    listen_to: &str,
    options: TrackerOptions,
) -> Result<(JoinHandle<()>, SubscriptionControl), String> {
    let input = ctx.hub.subscribe(listen_to, SubscribeOptions::leaky(QUEUE));
    let control = input.control();
    let mut publisher = ctx.hub.publisher(&ctx.name);
    let thread = ctx.spawn("track", move |ctx| {
        let shared = ctx.shared;
        // One tracker per input, for the camera it last saw: an input relinked
        // to another camera starts new tracks (an object there is not one
        // here), with ids the input has not used before.
        let mut trackers: HashMap<u32, (Arc<str>, Tracker)> = HashMap::new();
        while let Some(item) = input.recv() {
            let Item::Frame(mut frame) = item else {
                publisher.publish(item);
                continue;
            };
            shared.count_in();
            let started = Instant::now();
            let slot = frame.meta.input.unwrap_or(0);
            let (source, tracker) = trackers
                .entry(slot)
                .or_insert_with(|| (Arc::clone(&frame.source), Tracker::new(options.clone())));
            if *source != frame.source {
                *source = Arc::clone(&frame.source);
                tracker.restart();
            }
            let detections = if frame.meta.skipped {
                tracker.carry()
            } else {
                let mut detections = std::mem::take(&mut frame.meta_mut().detections);
                tracker.update_frame(&frame, &mut detections);
                detections
            };
            frame.meta_mut().detections = detections;
            shared.time_stage("track", started);
            publisher.publish(Item::Frame(frame));
            shared.count_out();
        }
        shared.set_state(NodeState::Stopped, None);
    })?;
    Ok((thread, control))
}
