//! The `smartrecord` node (DeepStream's Smart Record, done right): keeps the
//! last `cache` seconds of the packet stream it listens to in memory (shared
//! packets, bounded by time and bytes) and, on a trigger, writes a clip from
//! the last keyframe at or before `trigger − before` until `trigger + after`,
//! an explicit stop, or `max_duration`.
//!
//! A trigger during a clip extends it, or — with `overlap` — starts a second
//! clip of its own. Each smartrecord node has its own thread, so clips of
//! different sources run at once. A finished clip is announced with an
//! [`Event::Closed`] carrying its path, UTC start and end, duration and trigger.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use crate::events::{Event, FileEvent};
use crate::hub::{Item, RecvError, SubscribeOptions, SubscriptionControl};
use crate::media::Packet;
use crate::output::index::Kind;
use crate::output::options::SmartRecordOptions;
use crate::output::recorder::{Closed, RecordError, Recorder};
use crate::output::ring::Ring;

use super::node::{Env, NodeCtx, NodeShared, NodeState, Storage};
use super::record::{POLL, failed, refuse_frames};
use super::reply::Answer;

/// What a clip request asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipRequest {
    /// Seconds before the trigger the clip starts (default: the node's `default_before`).
    pub before: Option<f64>,
    /// Seconds after the trigger the clip runs (default: the node's `default_duration`).
    pub after: Option<f64>,
    /// What triggered it (kept in the index and the event).
    pub trigger: String,
}

/// What a clip request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClipStarted {
    /// Pipeline time of the trigger, ns.
    pub trigger_ns: i64,
    /// True when it extended a running clip rather than starting one.
    pub extended: bool,
}

/// A request to a running smartrecord node.
pub(crate) enum Command {
    Start {
        request: ClipRequest,
        at_ns: i64,
        reply: Answer<ClipStarted>,
    },
    /// Ends every running clip; the reply lists them, finalized.
    Stop(Answer<Vec<Closed>>),
}

/// What the registry keeps to steer a smartrecord node.
pub(crate) type Commands = mpsc::Sender<Command>;

/// How long a clip waits past its end for a packet to show the end was
/// reached, when its stream has stalled.
const STALL_NS: i64 = 2_000_000_000;

pub(super) fn spawn(
    ctx: NodeCtx,
    listen_to: &str,
    options: SmartRecordOptions,
) -> Result<(JoinHandle<()>, SubscriptionControl, Commands), String> {
    let storage = ctx.env.storage()?.clone();
    let input = ctx.hub.subscribe(listen_to, SubscribeOptions::leaky(options.queue));
    let control = input.control();
    let (tx, commands) = mpsc::channel();
    let thread = ctx.spawn("smartrecord", move |ctx| {
        let mut node = SmartNode {
            name: &ctx.name,
            shared: &ctx.shared,
            env: &ctx.env,
            storage,
            ring: Ring::new((options.cache * 1e9) as i64, options.cache_bytes),
            options,
            clips: Vec::new(),
            source: None,
        };
        loop {
            for command in commands.try_iter() {
                node.command(command);
            }
            match input.recv_timeout(POLL) {
                Ok(Item::Packet(p)) => node.packet(p),
                Ok(Item::Gap(_)) => node.gap(),
                Ok(Item::Eos) => {
                    node.end_all();
                }
                Ok(Item::Frame(f)) => {
                    return refuse_frames(&ctx, &input.control(), &f.source, "smart record caches packets");
                }
                // Nothing came: a clip past its end may wait for no packet to end it.
                Err(RecvError::Timeout | RecvError::Empty) => node.end_stalled(),
                Ok(Item::Format(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
        node.end_all();
        ctx.shared.set_state(NodeState::Stopped, None);
    })?;
    Ok((thread, control, tx))
}

struct Clip {
    recorder: Recorder,
    /// Pipeline time the clip ends at (inclusive), ns.
    end_ns: i64,
    /// The latest it may end, however often extended.
    limit_ns: i64,
}

struct SmartNode<'a> {
    name: &'a str,
    shared: &'a NodeShared,
    env: &'a Env,
    storage: Storage,
    options: SmartRecordOptions,
    ring: Ring,
    clips: Vec<Clip>,
    source: Option<Arc<str>>,
}

impl SmartNode<'_> {
    fn command(&mut self, command: Command) {
        match command {
            Command::Start { reply, .. } if reply.expired() => {}
            Command::Stop(reply) if reply.expired() => {}
            Command::Start { request, at_ns, reply } => {
                reply.send(self.start(request, at_ns));
            }
            Command::Stop(reply) => {
                let closed = self.end_all();
                reply.send(Ok(closed));
            }
        }
    }

    fn start(&mut self, request: ClipRequest, at_ns: i64) -> Result<ClipStarted, String> {
        let after = request.after.unwrap_or(self.options.default_duration);
        let before = request.before.unwrap_or_else(|| self.options.before());
        if !(after >= 0.0 && after.is_finite() && before >= 0.0 && before.is_finite()) {
            return Err(format!("before {before} s and after {after} s must be seconds >= 0"));
        }
        if before > self.options.cache {
            return Err(format!(
                "before {before} s reaches past the cache of {} s (key `cache`)",
                self.options.cache
            ));
        }
        let end_ns = at_ns + (after * 1e9) as i64;
        if !self.options.overlap
            && let Some(clip) = self.clips.last_mut()
        {
            clip.end_ns = clip.end_ns.max(end_ns).min(clip.limit_ns);
            tracing::info!(node = self.name, trigger = %request.trigger, "clip extended");
            return Ok(ClipStarted {
                trigger_ns: at_ns,
                extended: true,
            });
        }
        let recorder = Recorder::new(
            self.options.spec(),
            self.name,
            Kind::Event,
            self.storage.root.clone(),
            Some(self.storage.index.clone()),
            Arc::clone(&self.env.clock),
        )
        .with_trigger(Some(request.trigger.clone()));
        let from_ns = at_ns - (before * 1e9) as i64;
        let mut clip = Clip {
            recorder,
            end_ns,
            limit_ns: from_ns + (self.options.max_duration * 1e9) as i64,
        };
        tracing::info!(
            node = self.name,
            trigger = %request.trigger,
            "clip from {:.1} s before to {after:.1} s after ({} packets cached, {} bytes)",
            before,
            self.ring.len(),
            self.ring.bytes()
        );
        for p in self.ring.since(from_ns) {
            if p.pts > clip.end_ns {
                break;
            }
            clip.recorder.push(p).map_err(|e| e.to_string())?;
        }
        self.clips.push(clip);
        Ok(ClipStarted {
            trigger_ns: at_ns,
            extended: false,
        })
    }

    /// A new camera (a relink), or packets lost in our own queue: what is
    /// cached no longer leads up to the next packet, and clips skip to the
    /// next keyframe.
    fn gap(&mut self) {
        self.ring.clear();
        for clip in &mut self.clips {
            clip.recorder.resync();
        }
    }

    fn packet(&mut self, p: Packet) {
        self.shared.count_in();
        if self.source.as_ref().is_some_and(|s| *s != p.source) {
            self.gap();
        }
        self.source = Some(Arc::clone(&p.source));
        let mut i = 0;
        while i < self.clips.len() {
            if p.pts > self.clips[i].end_ns {
                let clip = self.clips.remove(i);
                self.end(clip);
                continue;
            }
            match self.clips[i].recorder.push(&p) {
                // A bad packet is skipped; the clip goes on from the next keyframe.
                Ok(_) | Err(RecordError::Mux { .. }) => i += 1,
                Err(e) => {
                    self.clips.remove(i);
                    self.env.events.emit(failed(self.name, &e));
                }
            }
        }
        self.ring.push(p);
        self.shared.set_cache(self.ring.stats());
        self.shared.count_out();
    }

    /// Ends clips whose stream stopped delivering past their end.
    fn end_stalled(&mut self) {
        let now = self.env.clock.now_ns();
        let (stalled, running): (Vec<Clip>, Vec<Clip>) = self.clips.drain(..).partition(|c| now > c.end_ns + STALL_NS);
        self.clips = running;
        for clip in stalled {
            self.end(clip);
        }
    }

    /// Ends every running clip; returns those written.
    fn end_all(&mut self) -> Vec<Closed> {
        std::mem::take(&mut self.clips)
            .into_iter()
            .filter_map(|clip| self.end(clip))
            .collect()
    }

    fn end(&mut self, mut clip: Clip) -> Option<Closed> {
        match clip.recorder.finish() {
            Ok(Some(closed)) => {
                self.env.events.emit(Event::Closed(FileEvent::of(self.name, &closed)));
                self.env.retain(self.name, None);
                Some(closed)
            }
            Ok(None) => {
                tracing::warn!(
                    node = self.name,
                    "a clip ended before any keyframe arrived; nothing written"
                );
                None
            }
            Err(e) => {
                self.env.events.emit(failed(self.name, &e));
                None
            }
        }
    }
}
