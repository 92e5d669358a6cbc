//! The `rtp` node: pushes the coded stream it listens to over RTP/UDP
//! ([`crate::serve::push`]) and keeps its SDP file in the media root up to
//! date with the stream's format.

use std::thread::JoinHandle;

use crate::hub::{Item, RecvError, StreamFormat, SubscribeOptions, SubscriptionControl};
use crate::output::name::{Fill, expand};
use crate::output::snapshot::write_atomic;
use crate::serve::push::{Pusher, RtpPushOptions};

use super::node::{NodeCtx, NodeState};
use super::record::POLL;

pub(super) fn spawn(
    ctx: NodeCtx,
    listen_to: &str,
    options: RtpPushOptions,
) -> Result<(JoinHandle<()>, SubscriptionControl), String> {
    let storage = ctx.env.storage()?.clone();
    let fill = Fill {
        camera: &ctx.name,
        node: &ctx.name,
        utc: ctx.env.clock.utc_now(),
        n: 0,
    };
    let sdp_rel = expand(&options.sdp, &fill);
    let sdp_path = storage.root.create(&sdp_rel).map_err(|e| format!("sdp: {e}"))?;
    let mut random = [0u8; 8];
    let _ = getrandom::getrandom(&mut random);
    let [a, b, c, d, e, f, g, h] = random;
    let mut pusher = Pusher::new(
        options,
        u32::from_ne_bytes([a, b, c, d]),
        u16::from_ne_bytes([e, f]),
        u32::from_ne_bytes([g, h, a, e]),
    )
    .map_err(|e| format!("destination: {e}"))?;
    let input = ctx.hub.subscribe(listen_to, SubscribeOptions::leaky(64));
    let control = input.control();
    let thread = ctx.spawn("rtp", move |ctx| {
        let mut format = None;
        loop {
            match input.recv_timeout(POLL) {
                Ok(Item::Format(StreamFormat::Coded(params))) => {
                    format = Some(params);
                }
                Ok(Item::Format(StreamFormat::Video(_))) => {
                    ctx.shared.set_state(
                        NodeState::Failed,
                        Some("the stream carries raw frames; an `rtp` node sends coded streams".into()),
                    );
                    return;
                }
                Ok(Item::Packet(p)) => {
                    ctx.shared.count_in();
                    // The SDP is written once the rate is known (from the first packet).
                    if let Some(params) = format.take() {
                        let fps = (p.duration > 0).then(|| 1e9 / p.duration as f64);
                        match pusher.set_params(&ctx.name, &params, fps) {
                            Ok(sdp) => {
                                if let Err(e) = write_atomic(&sdp_path, sdp.as_bytes()) {
                                    tracing::warn!(node = %ctx.name, "cannot write {}: {e}", sdp_path.display());
                                }
                            }
                            Err(e) => {
                                ctx.shared.set_state(NodeState::Failed, Some(e.to_string()));
                                return;
                            }
                        }
                    }
                    match pusher.push(&p) {
                        Ok(_) => ctx.shared.count_out(),
                        Err(e) => {
                            tracing::debug!(node = %ctx.name, "picture not sent: {e}");
                            ctx.shared.count_dropped();
                        }
                    }
                }
                Ok(Item::Gap(n)) => ctx.shared.count_dropped_n(n),
                Ok(_) | Err(RecvError::Timeout | RecvError::Empty) => {}
                Err(RecvError::Closed) => break,
            }
        }
        ctx.shared.set_state(NodeState::Stopped, None);
    })?;
    Ok((thread, control))
}
