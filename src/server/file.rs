//! The `file` node: plays a recorded file — MP4, Matroska/WebM, MPEG-TS or an
//! elementary stream, read by [`crate::demux`] — as a camera. Its packets
//! go out unchanged (shared, never copied), their timestamps moved onto the
//! pipeline clock, paced like a live camera or as fast as subscribers take
//! them, and optionally looped (each lap continues the timeline). A file that
//! cannot be read fails the node (not the server), its error naming the file.

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::capture::file::FileOptions;
use crate::hub::Item;

use super::node::{Announced, NodeCtx, NodeState};

pub(super) fn spawn(ctx: NodeCtx, options: FileOptions) -> Result<JoinHandle<()>, String> {
    let mut publisher = ctx.hub.publisher(&ctx.name);
    ctx.spawn("file", move |ctx| {
        let NodeCtx { name, shared, .. } = ctx;
        // A missing, truncated or foreign file fails this node, naming it; the rest of the server runs on.
        let read = crate::demux::read_file_at(&options.path, options.fps, &name).and_then(|packets| {
            match (packets.first(), packets.last()) {
                (Some(first), Some(last)) => Ok((first.dts, last.dts + last.duration.max(1), packets)),
                _ => Err(format!("{}: no video packets", options.path.display())),
            }
        });
        let (origin, end, packets) = match read {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(node = %name, "{e}");
                publisher.publish(Item::Eos);
                shared.set_state(NodeState::Failed, Some(e));
                return;
            }
        };
        let lap = (end - origin).max(1);
        let clock = Arc::clone(&shared.clock);
        let start = clock.now_ns();
        let mut announced = Announced::default();
        let mut seq = 0u64;
        'laps: for n in 0.. {
            let shift = start + n * lap - origin;
            for p in &packets {
                if shared.stop_requested() {
                    break 'laps;
                }
                if options.live {
                    shared.sleep_until(p.dts + shift);
                }
                announced.update(&mut publisher, &p.params);
                let mut out = p.clone();
                out.pts += shift;
                out.dts += shift;
                out.seq = seq;
                out.capture_utc = clock.utc_at(out.pts);
                seq += 1;
                publisher.publish(Item::Packet(out));
                shared.count_out();
            }
            if !options.looping {
                break;
            }
        }
        publisher.publish(Item::Eos);
        shared.set_state(NodeState::Stopped, None);
    })
}
