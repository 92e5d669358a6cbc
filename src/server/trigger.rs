//! The `trigger` node: watches the detections of the raw stream it listens
//! to and, when its rule fires (see [`crate::events::trigger`]), writes a
//! JPEG of that very frame and/or starts a clip on a `smartrecord` node
//! (from `before` seconds ahead of the frame), then emits
//! [`Event::Triggered`].

use std::thread::JoinHandle;

use crate::events::Event;
use crate::events::trigger::{Rule, TriggerOptions};
use crate::hub::{Item, SubscribeOptions, SubscriptionControl};
use crate::media::Frame;
use crate::output::snapshot::of_frame;

use super::node::{NodeCtx, NodeState};
use super::smart::{ClipRequest, Command};
use super::snapshot::save;

pub(super) fn spawn(
    ctx: NodeCtx,
    listen_to: &str,
    options: TriggerOptions,
) -> Result<(JoinHandle<()>, SubscriptionControl), String> {
    if options.snapshot.is_some() {
        ctx.env.storage()?;
    }
    let input = ctx.hub.subscribe(listen_to, SubscribeOptions::leaky(8));
    let control = input.control();
    let thread = ctx.spawn("trigger", move |ctx| {
        let mut rule = Rule::new(options);
        while let Some(item) = input.recv() {
            let Item::Frame(frame) = item else { continue };
            ctx.shared.count_in();
            let Some(hit) = rule.check(&frame.meta, frame.info.width, frame.info.height, frame.pts) else {
                continue;
            };
            let (class, confidence) = (hit.label.clone(), hit.confidence);
            let actions = fire(&ctx, rule.options(), &frame, &class);
            ctx.shared.count_out();
            ctx.env.events.emit(Event::Triggered {
                node: ctx.name.to_string(),
                camera: frame.source.to_string(),
                class,
                confidence,
                pts: frame.pts,
                actions,
            });
        }
        ctx.shared.set_state(NodeState::Stopped, None);
    })?;
    Ok((thread, control))
}

/// Does a fired rule's actions; returns what was done (or why not).
fn fire(ctx: &NodeCtx, o: &TriggerOptions, frame: &Frame, class: &str) -> Vec<String> {
    let what = format!("{} detected by {}", class, ctx.name);
    let mut actions = Vec::new();
    if let Some(template) = &o.snapshot {
        actions.push(
            match of_frame(frame, 90).and_then(|s| save(&ctx.env, &ctx.name, s, template, Some(&what))) {
                Ok(s) => format!(
                    "snapshot {}",
                    s.path.map(|p| p.display().to_string()).unwrap_or_default()
                ),
                Err(e) => format!("snapshot failed: {e}"),
            },
        );
    }
    if let Some(node) = &o.smart_record {
        let request = ClipRequest {
            before: o.before,
            after: o.after,
            trigger: what,
        };
        // The reply is not waited for: the clip's own event says how it ended.
        let (reply, _) = super::reply::request(node, super::REQUEST_TIMEOUT);
        let sent = ctx.env.smart_record(node).is_some_and(|commands| {
            commands
                .send(Command::Start {
                    request,
                    at_ns: frame.pts,
                    reply,
                })
                .is_ok()
        });
        actions.push(if sent {
            format!("smart record on {node}")
        } else {
            format!("smart record failed: node `{node}` is not running")
        });
    }
    actions
}
