//! The `testsrc` node: paces a [`TestSrc`] on the pipeline clock (or runs it
//! flat out), fills frames from a bounded pool and publishes them.

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::capture::testsrc::{TestSrc, TestSrcOptions};
use crate::hub::{Item, StreamFormat};
use crate::media::{BufferPool, Frame, FrameMeta};

use super::node::{Every, NodeCtx, NodeState};

/// How long a source running as fast as possible waits for a buffer to come
/// back before it drops a frame (a live source never waits).
const NON_LIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) fn spawn(ctx: NodeCtx, options: TestSrcOptions) -> Result<JoinHandle<()>, String> {
    let src = TestSrc::new(&ctx.name, &options).map_err(|e| e.to_string())?;
    let info = *src.info();
    let pool = BufferPool::new(info.size(), options.pool);
    *ctx.shared.pool.lock().unwrap_or_else(|e| e.into_inner()) = Some(pool.clone());
    let mut publisher = ctx.hub.publisher(&ctx.name);
    ctx.spawn("testsrc", move |ctx| {
        let NodeCtx { name, shared, .. } = ctx;
        let clock = Arc::clone(&shared.clock);
        let period = info.fps.frame_duration_ns() as i64;
        let mut exhausted = Every::second();
        let mut late = Every::second();
        publisher.publish(Item::Format(StreamFormat::Video(info)));
        let start = clock.now_ns();
        let mut n: u64 = 0;
        while !shared.stop_requested() && options.num_frames.is_none_or(|max| n < max) {
            let due = start + info.fps.frame_time_ns(n) as i64;
            n += 1;
            if options.live {
                shared.sleep_until(due);
                let now = clock.now_ns();
                if now - due > 2 * period {
                    // Like a real sensor: a frame whose time has passed is gone.
                    shared.count_dropped();
                    if let Some(frames) = late.tick(now) {
                        tracing::warn!(node = %name, frames, "testsrc is running late, skipping frames");
                    }
                    continue;
                }
            }
            let buffer = if options.live {
                pool.acquire()
            } else {
                pool.acquire_timeout(NON_LIVE_WAIT)
            };
            let Some(mut buffer) = buffer else {
                shared.count_dropped();
                if let Some(frames) = exhausted.tick(clock.now_ns()) {
                    tracing::warn!(node = %name, frames, "every buffer is held downstream, dropping frames");
                }
                continue;
            };
            let ground_truth = src.render(n - 1, &mut buffer);
            let meta = FrameMeta::with_ground_truth(ground_truth);
            let frame = Frame {
                info,
                pts: due,
                duration: period,
                capture_utc: clock.utc_now(),
                seq: n - 1,
                source: Arc::clone(&name),
                meta: Arc::new(meta),
                buffer: buffer.freeze(),
            };
            publisher.publish(Item::Frame(frame));
            shared.count_out();
        }
        publisher.publish(Item::Eos);
        shared.set_state(NodeState::Stopped, None);
    })
}
