//! The `encode` node: listens to a raw stream and publishes its packets.
//! Several encoders may listen to one source at once (H.264 for streaming,
//! JPEG for snapshots, ...): each holds leases on the same frames.
//!
//! The encoder opens on the first frame (it needs the size and format) and
//! reopens when the stream's layout changes; an end of stream flushes it and
//! is passed on. [`Change`]s sent through the server apply before the next
//! frame. An encoder that fails stops this node only (`failed`, with the
//! backend's message); everything else runs on.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use crate::encode::{Change, Encoder, EncoderSettings, open_encoder};
use crate::hub::{Item, Publisher, SubscribeOptions, SubscriptionControl};
use crate::media::{Frame, Packet, VideoInfo};

use super::node::{Announced, NodeCtx, NodeShared, NodeState};

/// Frames an encoder's input queue holds; a slower encoder drops the oldest (counted).
pub(crate) const QUEUE: usize = 8;

/// What the registry keeps to steer a running encoder.
pub(crate) type Changes = mpsc::Sender<Change>;

pub(super) fn spawn(
    ctx: NodeCtx,
    listen_to: &str,
    settings: EncoderSettings,
) -> Result<(JoinHandle<()>, SubscriptionControl, Changes), String> {
    let input = ctx.hub.subscribe(listen_to, SubscribeOptions::leaky(QUEUE));
    let control = input.control();
    let publisher = ctx.hub.publisher(&ctx.name);
    let (changes_tx, changes) = mpsc::channel();
    let thread = ctx.spawn("encode", move |ctx| {
        let mut node = EncodeNode {
            name: &ctx.name,
            shared: &ctx.shared,
            settings,
            encoder: None,
            opened: None,
            publisher,
            announced: Announced::default(),
            packets: Vec::new(),
            last: None,
        };
        let result = (|| {
            while let Some(item) = input.recv() {
                for change in changes.try_iter() {
                    node.apply(change);
                }
                match item {
                    Item::Frame(frame) => node.encode(&frame)?,
                    Item::Eos => node.end()?,
                    // The encoder follows the frames themselves; packets are not ours to encode.
                    Item::Format(_) | Item::Packet(_) | Item::Gap(_) => {}
                }
            }
            node.end()
        })();
        match result {
            Ok(()) => ctx.shared.set_state(NodeState::Stopped, None),
            Err(e) => {
                tracing::error!(node = %ctx.name, "{e}");
                ctx.shared.set_state(NodeState::Failed, Some(e));
                // Whoever listens learns that the stream stopped here.
                node.publisher.publish(Item::Eos);
            }
        }
    })?;
    Ok((thread, control, changes_tx))
}

struct EncodeNode<'a> {
    name: &'a str,
    shared: &'a NodeShared,
    settings: EncoderSettings,
    encoder: Option<Box<dyn Encoder>>,
    /// The frames the encoder was opened for.
    opened: Option<VideoInfo>,
    publisher: Publisher,
    announced: Announced,
    packets: Vec<Packet>,
    /// Pipeline time and source of the last frame encoded.
    last: Option<(i64, Arc<str>)>,
}

impl EncodeNode<'_> {
    /// Applies a run-time change now if an encoder runs, and to the settings
    /// any later encoder opens with. A change the backend refuses is logged
    /// and the encoder runs on as it was.
    fn apply(&mut self, change: Change) {
        if let Some(e) = &mut self.encoder
            && let Err(err) = e.apply(change)
        {
            tracing::warn!(node = self.name, "cannot apply {change:?}: {err}");
            return;
        }
        self.settings.apply(change);
        tracing::info!(node = self.name, "applied {change:?}");
    }

    fn encode(&mut self, frame: &Frame) -> Result<(), String> {
        self.shared.count_in();
        // After a relink the new camera's frames are out of phase with the
        // old one's: the new source's first frame, when it comes less than
        // half a period after the last one encoded (or before it), is
        // skipped, so the stream keeps its cadence across the splice (a 7 ms
        // step at 30 fps is no picture a 30 fps timeline can hold).
        if let Some((pts, source)) = &self.last
            && *source != frame.source
            && frame.pts < pts + frame.duration / 2
        {
            self.shared.count_dropped();
            return Ok(());
        }
        self.last = Some((frame.pts, Arc::clone(&frame.source)));
        let fits = self.encoder.is_some() && self.opened.is_some_and(|i| i.same_layout(&frame.info));
        if !fits {
            self.flush()?;
            let e = open_encoder(&self.settings, &frame.info).map_err(|e| format!("{}: {e}", frame.source))?;
            tracing::info!(
                node = self.name,
                backend = e.name(),
                "encoding {} {}x{} to {}",
                frame.info.format,
                frame.info.width,
                frame.info.height,
                self.settings.codec
            );
            self.encoder = Some(e);
            self.opened = Some(frame.info);
        }
        let encoder = self.encoder.as_mut().expect("opened above");
        encoder
            .encode(frame, &mut self.packets)
            .map_err(|e| format!("frame {} of {}: {e}", frame.seq, frame.source))?;
        self.publish();
        Ok(())
    }

    /// Ends the stream: drains the encoder and passes the end on, once.
    fn end(&mut self) -> Result<(), String> {
        let open = self.encoder.is_some();
        self.flush()?;
        if open {
            self.publisher.publish(Item::Eos);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if let Some(e) = &mut self.encoder {
            e.flush(&mut self.packets).map_err(|e| e.to_string())?;
            self.publish();
        }
        self.encoder = None;
        self.opened = None;
        Ok(())
    }

    fn publish(&mut self) {
        for p in self.packets.drain(..) {
            self.announced.update(&mut self.publisher, &p.params);
            self.publisher.publish(Item::Packet(p));
            self.shared.count_out();
        }
    }
}
