//! The `tile` node: composes the inputs of the stream it listens to (by
//! `meta.input`) into a mosaic from its own pool. A mosaic leaves as soon as
//! every cell has a new frame, or two frame periods after the previous mosaic
//! with whatever cells are fresh (a stalled input keeps its last picture).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::hub::{Item, RecvError, StreamFormat, SubscribeOptions, SubscriptionControl};
use crate::media::{BufferPool, Frame};
use crate::process::tile::{TileOptions, Tiler};

use super::node::{Every, NodeCtx, NodeState};

/// Frame periods a mosaic waits for its slowest input before it leaves without it.
const STALL: i64 = 2;

pub(super) fn spawn(
    ctx: NodeCtx,
    listen_to: &str,
    options: TileOptions,
) -> Result<(JoinHandle<()>, SubscriptionControl), String> {
    let mut tiler = Tiler::new(options.clone())?;
    let info = *tiler.info();
    let pool = BufferPool::new(info.size(), options.pool);
    *ctx.shared.pool.lock().unwrap_or_else(|e| e.into_inner()) = Some(pool.clone());
    let cells = options.cells();
    let input = ctx.hub.subscribe(listen_to, SubscribeOptions::leaky(2 * cells));
    let control = input.control();
    let mut publisher = ctx.hub.publisher(&ctx.name);
    let thread = ctx.spawn("tile", move |ctx| {
        let NodeCtx { name, shared, .. } = ctx;
        let clock = Arc::clone(&shared.clock);
        let period = info.fps.frame_duration_ns() as i64;
        let mut latest: Vec<Option<Frame>> = vec![None; cells];
        let mut fresh = vec![false; cells];
        let mut last_out = clock.now_ns();
        let mut seq = 0;
        let mut last_pts = i64::MIN / 2;
        let mut exhausted = Every::second();
        publisher.publish(Item::Format(StreamFormat::Video(info)));
        loop {
            let wait = (last_out + STALL * period - clock.now_ns()).max(0) as u64;
            let ended = match input.recv_timeout(Duration::from_nanos(wait)) {
                Ok(Item::Frame(frame)) => {
                    shared.count_in();
                    let slot = frame.meta.input.unwrap_or(0) as usize;
                    if slot < cells {
                        latest[slot] = Some(frame);
                        fresh[slot] = true;
                    }
                    false
                }
                Ok(Item::Eos) | Err(RecvError::Closed) => true,
                Ok(_) | Err(_) => false,
            };
            let now = clock.now_ns();
            let due = fresh.iter().all(|&f| f) || (now - last_out >= STALL * period && fresh.iter().any(|&f| f));
            if due {
                last_out = now;
                fresh.fill(false);
                let Some(mut buffer) = pool.acquire() else {
                    shared.count_dropped();
                    if let Some(n) = exhausted.tick(now) {
                        tracing::warn!(node = %name, frames = n, "every mosaic buffer is held downstream");
                    }
                    continue;
                };
                let started = Instant::now();
                let tiles: Vec<Option<&Frame>> = latest.iter().map(Option::as_ref).collect();
                let meta = tiler.compose(&tiles, &mut buffer);
                shared.time_stage("tile", started);
                let newest = latest.iter().flatten().max_by_key(|f| f.pts).expect("a fresh tile");
                // The mosaic's own time on the pipeline clock: its tiles' times can repeat or step back.
                let pts = now.max(last_pts + 1);
                last_pts = pts;
                let mosaic = Frame {
                    info,
                    pts,
                    duration: period,
                    capture_utc: newest.capture_utc,
                    seq,
                    source: Arc::clone(&name),
                    meta: Arc::new(meta),
                    buffer: buffer.freeze(),
                };
                seq += 1;
                publisher.publish(Item::Frame(mosaic));
                shared.count_out();
            }
            if ended {
                break;
            }
        }
        publisher.publish(Item::Eos);
        shared.set_state(NodeState::Stopped, None);
    })?;
    Ok((thread, control))
}
