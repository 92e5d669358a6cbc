//! The `osd` node: draws the detections of each frame it listens to. A frame
//! held by this node alone is drawn in place; a shared one is copied into a
//! pool buffer first (counted), so no other reader sees the drawing.

use std::thread::JoinHandle;
use std::time::Instant;

use crate::hub::{Item, SubscribeOptions, SubscriptionControl};
use crate::media::paint::Canvas;
use crate::media::{BufferPool, copy_frame_bytes};
use crate::process::osd::{OsdOptions, draw};

use super::node::{Every, NodeCtx, NodeState};

/// Input queue, in frames.
const QUEUE: usize = 4;
/// Buffers for copies of shared frames.
const POOL: usize = 4;

pub(super) fn spawn(
    ctx: NodeCtx,
    listen_to: &str,
    options: OsdOptions,
) -> Result<(JoinHandle<()>, SubscriptionControl), String> {
    let input = ctx.hub.subscribe(listen_to, SubscribeOptions::leaky(QUEUE));
    let control = input.control();
    let mut publisher = ctx.hub.publisher(&ctx.name);
    let thread = ctx.spawn("osd", move |ctx| {
        let NodeCtx { name, shared, .. } = ctx;
        let mut pool: Option<BufferPool> = None;
        let mut exhausted = Every::second();
        while let Some(item) = input.recv() {
            let Item::Frame(mut frame) = item else {
                publisher.publish(item);
                continue;
            };
            shared.count_in();
            let started = Instant::now();
            if !frame.meta.detections.is_empty() {
                let size = frame.info.size();
                if frame.buffer.get_mut().is_none() {
                    // Shared: draw on a copy from our own pool.
                    let pool = pool.get_or_insert_with(|| BufferPool::new(size, POOL)).clone();
                    let Some(mut copy) = (pool.buffer_size() >= size).then(|| pool.acquire()).flatten() else {
                        shared.count_dropped();
                        if let Some(n) = exhausted.tick(shared.clock.now_ns()) {
                            tracing::warn!(node = %name, frames = n, "no buffer for a copy of a shared frame");
                        }
                        continue;
                    };
                    copy_frame_bytes(&mut copy[..size], frame.data());
                    frame.buffer = copy.freeze();
                }
                let data = frame.buffer.get_mut().expect("held by this node alone");
                let info = frame.info;
                draw(&mut Canvas::new(info, data), &frame.meta.detections, &options);
            }
            shared.time_stage("osd", started);
            publisher.publish(Item::Frame(frame));
            shared.count_out();
        }
        shared.set_state(NodeState::Stopped, None);
    })?;
    Ok((thread, control))
}
