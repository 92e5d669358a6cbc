//! The `snapshot` node: keeps a JPEG of the stream it listens to, refreshed
//! every `interval` seconds — from a raw stream (a clean camera, the OSD
//! mosaic) the next frame; from a coded one the next keyframe, decoded once —
//! written atomically to its `path` in the media root and held for
//! `Server::latest_snapshot`. Between snapshots frames are only looked at,
//! never copied or decoded.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::hub::{Item, RecvError, SubscribeOptions, SubscriptionControl};
use crate::output::index::Kind;
use crate::output::name::{Fill, expand};
use crate::output::options::SnapshotOptions;
use crate::output::snapshot::{Latest, Snapshot, of_frame, of_keyframe, write_atomic};

use super::node::{Env, NodeCtx, NodeState};
use super::record::POLL;

pub(super) fn spawn(
    ctx: NodeCtx,
    listen_to: &str,
    options: SnapshotOptions,
) -> Result<(JoinHandle<()>, SubscriptionControl, Latest), String> {
    ctx.env.storage()?;
    let input = ctx.hub.subscribe(listen_to, SubscribeOptions::leaky(4));
    let control = input.control();
    let latest: Latest = Arc::new(Mutex::new(None));
    let keep = Arc::clone(&latest);
    let thread = ctx.spawn("snapshot", move |ctx| {
        let interval_ns = (options.interval * 1e9) as i64;
        let mut due = ctx.env.clock.now_ns();
        loop {
            let taken = match input.recv_timeout(POLL) {
                Ok(Item::Frame(f)) => {
                    ctx.shared.count_in();
                    (ctx.env.clock.now_ns() >= due).then(|| of_frame(&f, options.quality))
                }
                Ok(Item::Packet(p)) => {
                    ctx.shared.count_in();
                    (p.keyframe && ctx.env.clock.now_ns() >= due).then(|| of_keyframe(&p, options.quality))
                }
                Ok(_) | Err(RecvError::Timeout | RecvError::Empty) => None,
                Err(RecvError::Closed) => break,
            };
            let Some(taken) = taken else { continue };
            due = ctx.env.clock.now_ns() + interval_ns;
            match taken.and_then(|s| save(&ctx.env, &ctx.name, s, &options.path, None)) {
                Ok(s) => {
                    *keep.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
                    ctx.shared.count_out();
                }
                Err(e) => {
                    tracing::warn!(node = %ctx.name, "snapshot: {e}");
                    ctx.shared.count_dropped();
                }
            }
        }
        ctx.shared.set_state(NodeState::Stopped, None);
    })?;
    Ok((thread, control, latest))
}

/// Writes `snapshot` to `template` (relative to the media root) atomically;
/// listed in the index as a snapshot with `trigger` when one is given (the
/// rolling "latest" file of a snapshot node is not).
pub(crate) fn save(
    env: &Env,
    node: &str,
    mut snapshot: Snapshot,
    template: &str,
    trigger: Option<&str>,
) -> Result<Snapshot, String> {
    let storage = env.storage()?;
    let rel = expand(
        template,
        &Fill {
            camera: &snapshot.camera,
            node,
            utc: snapshot.utc,
            n: 0,
        },
    );
    let path = storage.root.create(&rel).map_err(|e| e.to_string())?;
    write_atomic(&path, &snapshot.jpeg).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(trigger) = trigger
        && let Err(e) = storage.index.add(
            &snapshot.camera,
            Kind::Snapshot,
            snapshot.utc,
            &rel,
            snapshot.jpeg.len() as u64,
            Some(trigger),
        )
    {
        tracing::warn!(node, "{e}");
    }
    snapshot.path = Some(path);
    Ok(snapshot)
}
