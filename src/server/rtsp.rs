//! The `rtsp` node: receives an IP camera ([`crate::capture::rtsp`]) and
//! publishes its pictures as packets — passthrough, never decoded — with a
//! `Format` whenever the codec parameters change. RTP time is moved onto the
//! pipeline clock. A failed session — refused, answered with garbage, ended by
//! the camera, or stalled (no picture for `stall_secs`) — is reconnected with
//! exponential backoff up to `retry_max_secs`; the node stays `reconnecting`,
//! its error naming the cause, until pictures flow again.
//!
//! Each node runs its own single-threaded tokio runtime on its own thread, so
//! a slow subscriber (publishing may block) holds up only its own camera.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use retina::client::SessionGroup;

use crate::capture::rtsp::{Camera, Failure, RtspError, RtspOptions, Timeline};
use crate::codec::poc::DecodeTimes;
use crate::hub::{Item, Publisher};
use crate::media::Packet;

use super::node::{Announced, Backoff, NodeCtx, NodeShared, NodeState};

/// How often a waiting node looks at its stop request.
const POLL: Duration = Duration::from_millis(100);
/// How long closing a session may wait for its `TEARDOWN`.
const TEARDOWN_WAIT: Duration = Duration::from_secs(2);
/// How long a reconnect waits for stale sessions to end (at most once per set of them).
const STALE_WAIT: Duration = Duration::from_secs(2);
/// Assumed picture spacing until two pictures are in.
const DEFAULT_DURATION_NS: i64 = 1_000_000_000 / 30;

pub(super) fn spawn(ctx: NodeCtx, options: RtspOptions) -> Result<JoinHandle<()>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start its runtime: {e}"))?;
    let publisher = ctx.hub.publisher(&ctx.name);
    ctx.spawn("rtsp", move |ctx| {
        let NodeCtx { name, shared, .. } = ctx;
        let mut node = Receiver {
            name,
            shared: Arc::clone(&shared),
            options,
            publisher,
            announced: Announced::default(),
            seq: 0,
            end_ns: i64::MIN,
        };
        runtime.block_on(node.run());
        node.publisher.publish(Item::Eos);
        shared.set_state(NodeState::Stopped, None);
    })
}

struct Receiver {
    name: Arc<str>,
    shared: Arc<NodeShared>,
    options: RtspOptions,
    publisher: Publisher,
    announced: Announced,
    /// The node's packet counter, continued across sessions.
    seq: u64,
    /// Where the last session's timeline ended.
    end_ns: i64,
}

impl Receiver {
    /// Sessions, one after another, until a stop request.
    async fn run(&mut self) {
        let stall = Duration::from_secs_f64(self.options.stall_secs);
        let mut backoff = Backoff::new(self.options.retry_max_secs);
        let url = self.options.url.redacted();
        // One group for every session of this camera: a session that could
        // not be torn down (the camera gone) stays in it until it expires.
        let group = Arc::new(SessionGroup::default().named(self.name.to_string()));
        let mut waited_for = None;
        while !self.shared.stop_requested() {
            // Cameras that limit their sessions refuse a new one while an old
            // one lingers: give stale sessions a while to end first, once each.
            let stale = group.stale_sessions();
            let key = (stale.num_sessions, stale.max_expires);
            if stale.num_sessions > 0 && waited_for != Some(key) {
                waited_for = Some(key);
                tracing::info!(node = %self.name, sessions = stale.num_sessions, "waiting for stale sessions to end before reconnecting");
                let ended = tokio::time::timeout(STALE_WAIT, group.await_stale_sessions(&stale));
                if self.unless_stopped(ended).await.is_none() {
                    break;
                }
            }
            // A camera that accepts the connection but never answers counts as stalled too.
            let connecting = tokio::time::timeout(stall, Camera::connect(&self.options, &group));
            let e = match self.unless_stopped(connecting).await {
                None => break,
                Some(Err(_)) => RtspError::of(Failure::Timeout, format!("no answer for {:.1} s", stall.as_secs_f64())),
                Some(Ok(Ok(mut camera))) => {
                    let (codec, transport) = (camera.codec(), self.options.transport);
                    tracing::info!(node = %self.name, url, %codec, ?transport, "receiving");
                    let frames_before = self.shared.frames_out();
                    let failed = self.receive(&mut camera).await;
                    camera.close(TEARDOWN_WAIT).await;
                    if self.shared.frames_out() > frames_before {
                        backoff.reset();
                    }
                    match failed {
                        None => break,
                        Some(e) => e,
                    }
                }
                Some(Ok(Err(e))) => e,
            };
            let wait = backoff.lost(&self.name, &self.shared, format!("{url}: {e}"));
            if self.unless_stopped(tokio::time::sleep(wait)).await.is_none() {
                break;
            }
        }
    }

    /// Runs `future` until it finishes or a stop is requested (`None`).
    async fn unless_stopped<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        let mut future = std::pin::pin!(future);
        loop {
            if self.shared.stop_requested() {
                return None;
            }
            if let Ok(done) = tokio::time::timeout(POLL, &mut future).await {
                return Some(done);
            }
        }
    }

    /// Publishes one session's pictures until it fails (the error) or a stop
    /// is requested (`None`).
    async fn receive(&mut self, camera: &mut Camera) -> Option<RtspError> {
        let clock = Arc::clone(&self.shared.clock);
        let stall = Duration::from_secs_f64(self.options.stall_secs);
        let mut timeline: Option<Timeline> = None;
        // Each session's pictures are in its own decoding order.
        let mut decode_times = DecodeTimes::new();
        let failed = loop {
            let picture = match self.unless_stopped(tokio::time::timeout(stall, camera.next())).await {
                None => break None,
                Some(Err(_)) => {
                    let secs = stall.as_secs_f64();
                    break Some(RtspError::of(
                        Failure::Timeout,
                        format!("stalled: no picture for {secs:.1} s"),
                    ));
                }
                Some(Ok(Err(e))) => break Some(e),
                Some(Ok(Ok(None))) => {
                    break Some(RtspError::of(
                        Failure::Closed,
                        "the camera ended the session".to_string(),
                    ));
                }
                Some(Ok(Ok(Some(p)))) => p,
            };
            if picture.skipped > 0 {
                self.shared.count_dropped_n(picture.skipped);
            }
            // RTP packets went missing before this picture: at least one
            // picture was lost or cut short (RTP cannot tell how many).
            if picture.loss > 0 {
                self.shared.count_dropped();
            }
            self.announced.update(&mut self.publisher, &picture.params);
            let elapsed = Timeline::ticks_to_ns(picture.rtp_elapsed, picture.clock_rate);
            let timeline = timeline.get_or_insert_with(|| {
                // The first picture is presented `reorder` pictures after it
                // arrives decoded: so it was captured that much before now,
                // and no later picture's time (or capture_utc) lies ahead of its arrival.
                let reorder = picture.poc.map_or(0, |p| i64::from(p.reorder));
                let first_ns = clock.now_ns() - reorder * DEFAULT_DURATION_NS;
                Timeline::new(first_ns, self.end_ns, elapsed, DEFAULT_DURATION_NS)
            });
            let (pts, duration) = timeline.place(elapsed);
            self.publisher.publish(Item::Packet(Packet {
                meta: Default::default(),
                codec: picture.params.codec,
                data: picture.data,
                pts,
                dts: decode_times.push(picture.poc, pts, duration),
                duration,
                keyframe: picture.keyframe,
                params: picture.params,
                source: Arc::clone(&self.name),
                seq: self.seq,
                capture_utc: clock.utc_at(pts),
            }));
            self.seq += 1;
            self.shared.count_out();
        };
        if let Some(t) = &timeline {
            self.end_ns = t.end_ns();
        }
        failed
    }
}
