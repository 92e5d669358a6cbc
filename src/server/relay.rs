//! The `relay` node: re-publishes the stream it listens to under its own name,
//! moving leases (never pixels). Relinking its input switches sources without
//! disturbing whoever listens to the relay.

use std::thread::JoinHandle;

use crate::config::RelayOptions;
use crate::hub::{Item, SubscriptionControl};

use super::node::{NodeCtx, NodeState};

pub(super) fn spawn(
    ctx: NodeCtx,
    listen_to: &str,
    options: &RelayOptions,
) -> Result<(JoinHandle<()>, SubscriptionControl), String> {
    let input = ctx.hub.subscribe(listen_to, options.subscribe_options());
    let control = input.control();
    let mut publisher = ctx.hub.publisher(&ctx.name);
    let thread = ctx.spawn("relay", move |ctx| {
        let shared = ctx.shared;
        while let Some(item) = input.recv() {
            let media = item.is_media();
            if media {
                shared.count_in();
            }
            if matches!(item, Item::Eos) {
                tracing::debug!(node = %ctx.name, "upstream ended");
            }
            publisher.publish(item);
            if media {
                shared.count_out();
            }
        }
        shared.set_state(NodeState::Stopped, None);
    })?;
    Ok((thread, control))
}
