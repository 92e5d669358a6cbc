//! The `record` node: writes the packet stream it listens to — from an
//! encoder, or straight from an RTSP/MJPEG/H.264 camera without re-encoding —
//! into segmented files in the media root (see [`crate::output::recorder`]).
//!
//! Recording starts with the node (or with `Server::start_recording`) and
//! stops with `Server::stop_recording`, which returns once the file is
//! finalized. A lost packet (a full input queue, a gap in the source's
//! numbering) makes the recording wait for the next keyframe rather than
//! write a picture that cannot be decoded. A full disk stops the recording
//! with a `Failed` event; the file keeps what was whole and the server runs on.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::events::{Event, FileEvent};
use crate::hub::{Item, RecvError, SubscribeOptions, SubscriptionControl};
use crate::media::Packet;
use crate::output::index::Kind;
use crate::output::options::RecordOptions;
use crate::output::recorder::{Closed, RecordError, Recorder};

use super::node::{Env, Every, NodeCtx, NodeShared, NodeState};
use super::reply::Answer;

/// A request to a running record node.
pub(crate) enum Command {
    /// Start recording (no-op while recording).
    Start,
    /// Stop recording; the reply comes once the file is finalized.
    Stop(Answer<Option<Closed>>),
}

/// What the registry keeps to steer a record node.
pub(crate) type Commands = mpsc::Sender<Command>;

/// How often a node waiting for input looks at its commands.
pub(crate) const POLL: Duration = Duration::from_millis(50);

pub(super) fn spawn(
    ctx: NodeCtx,
    listen_to: &str,
    options: RecordOptions,
) -> Result<(JoinHandle<()>, SubscriptionControl, Commands), String> {
    let storage = ctx.env.storage()?.clone();
    let input = ctx.hub.subscribe(listen_to, SubscribeOptions::leaky(options.queue));
    let control = input.control();
    let (tx, commands) = mpsc::channel();
    let thread = ctx.spawn("record", move |ctx| {
        let recorder = Recorder::new(
            options.spec(),
            &ctx.name,
            Kind::Continuous,
            storage.root,
            Some(storage.index),
            std::sync::Arc::clone(&ctx.env.clock),
        );
        let mut node = RecordNode {
            name: &ctx.name,
            shared: &ctx.shared,
            env: &ctx.env,
            options: &options,
            recorder,
            recording: options.autostart,
            bad_packets: Every::second(),
        };
        loop {
            for command in commands.try_iter() {
                node.command(command);
            }
            match input.recv_timeout(POLL) {
                Ok(Item::Packet(p)) => node.packet(&p),
                Ok(Item::Gap(lost)) => node.gap(lost),
                Ok(Item::Eos) => {
                    let _ = node.close();
                }
                Ok(Item::Frame(f)) => {
                    let _ = node.close();
                    return refuse_frames(&ctx, &input.control(), &f.source, "a record node stores packets");
                }
                Ok(Item::Format(_)) | Err(RecvError::Timeout | RecvError::Empty) => {}
                Err(RecvError::Closed) => break,
            }
        }
        let _ = node.close();
        if node.shared.state().0 != NodeState::Failed {
            ctx.shared.set_state(NodeState::Stopped, None);
        }
    })?;
    Ok((thread, control, tx))
}

struct RecordNode<'a> {
    name: &'a str,
    shared: &'a NodeShared,
    env: &'a Env,
    options: &'a RecordOptions,
    recorder: Recorder,
    recording: bool,
    bad_packets: Every,
}

impl RecordNode<'_> {
    fn command(&mut self, command: Command) {
        match command {
            Command::Start if !self.recording => {
                self.recording = true;
                self.shared.set_state(NodeState::Running, None);
                tracing::info!(node = self.name, "recording started");
            }
            Command::Start => {}
            Command::Stop(reply) if reply.expired() => {}
            Command::Stop(reply) => {
                let closed = self.close();
                self.recording = false;
                self.shared.set_state(NodeState::Stopped, None);
                tracing::info!(node = self.name, "recording stopped");
                reply.send(closed);
            }
        }
    }

    /// Packets lost in our own queue leave a hole only a keyframe mends (the
    /// queue's next packet is one).
    fn gap(&mut self, lost: u64) {
        if self.recording {
            tracing::warn!(
                node = self.name,
                "{lost} packets lost in the input queue; resuming at the next keyframe"
            );
            self.recorder.resync();
        }
    }

    fn packet(&mut self, p: &Packet) {
        self.shared.count_in();
        if !self.recording {
            return;
        }
        let skipped = self.recorder.skipped;
        match self.recorder.push(p) {
            Ok(_) if self.recorder.skipped != skipped => self.shared.count_dropped(),
            Ok(closed) => {
                self.shared.count_out();
                if let Some(c) = closed {
                    self.closed(&c);
                }
            }
            Err(RecordError::Mux { error, .. }) => {
                // One bad packet does not end a recording; the next keyframe resumes it.
                self.shared.count_dropped();
                if let Some(n) = self.bad_packets.tick(self.env.clock.now_ns()) {
                    tracing::warn!(node = self.name, "{error} ({n} such packets skipped)");
                }
            }
            Err(e) => self.fail(e),
        }
    }

    /// Closes the open file, if any; returns it.
    fn close(&mut self) -> Result<Option<Closed>, String> {
        match self.recorder.finish() {
            Ok(Some(c)) => {
                self.closed(&c);
                Ok(Some(c))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                let message = e.to_string();
                self.fail(e);
                Err(message)
            }
        }
    }

    fn closed(&self, c: &Closed) {
        self.env.events.emit(Event::Closed(FileEvent::of(self.name, c)));
        self.env.retain(
            self.name,
            Some((&self.options.retention(), &c.camera, Kind::Continuous)),
        );
    }

    /// Stops recording on `error`.
    fn fail(&mut self, error: RecordError) {
        self.recording = false;
        self.shared.set_state(NodeState::Failed, Some(error.to_string()));
        self.env.events.emit(failed(self.name, &error));
    }
}

/// Fails a node that stores packets but was given raw frames (from `source`).
pub(crate) fn refuse_frames(ctx: &NodeCtx, input: &SubscriptionControl, source: &str, why: &str) {
    let error = format!(
        "`{}` carries raw frames (from {source}); {why}: put an `encode` node in between",
        input.linked_to().unwrap_or_default()
    );
    ctx.shared.set_state(NodeState::Failed, Some(error.clone()));
    ctx.env.events.emit(Event::Failed {
        node: ctx.name.to_string(),
        error,
        kept: None,
    });
}

/// The event of a recording `node` stopped by `error`; a file cut short by a
/// full disk is reported with it.
pub(crate) fn failed(node: &str, error: &RecordError) -> Event {
    Event::Failed {
        node: node.to_owned(),
        error: error.to_string(),
        kept: match error {
            RecordError::Full { kept } => Some(FileEvent::of(node, kept)),
            _ => None,
        },
    }
}
