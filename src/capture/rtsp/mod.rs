//! RTSP cameras (RFC 2326), received through `retina`: its session and RTP
//! depacketizers (RFC 6184 H.264, RFC 7798 H.265, RFC 2435 JPEG) turn a
//! camera's stream into whole coded pictures, which become [`CodedPicture`]s
//! carrying [`CodecParams`] — so a recorder stores them without re-encoding.
//!
//! This module is the camera side: options (with the credentials kept out of
//! every log line, error and serialized config), quirks as named options, one
//! session ([`Camera`]) and the mapping of RTP time onto the pipeline clock
//! ([`Timeline`]). Every byte the camera sends passes [`guard`]'s limits on
//! the way to retina, through a [`relay`], so a hostile camera holds at most
//! one bounded message and one bounded picture. The node that reconnects
//! with backoff, detects stalls and publishes to the hub lives in `server::rtsp`.

pub mod guard;
mod relay;

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use retina::client::{
    Credentials, InitialSequenceNumberPolicy, InitialTimestampPolicy, PlayOptions, SessionGroup, SessionIdPolicy,
    SessionOptions, SetupOptions, TcpTransportOptions, TeardownPolicy, Transport, UdpTransportOptions,
    UnassignedChannelDataPolicy, UnknownRtcpSsrcPolicy,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, h26x};
use serde::{Deserialize, Serialize};

use crate::codec::poc::{Poc, PocCounter};
use crate::codec::{AccessUnit, ParamFollower};
use crate::codec::{h265, nal};
use crate::media::{Codec, CodecParams};

/// A camera URL whose credentials never leave it by accident: `Debug`,
/// `Display` and `Serialize` show `rtsp://user:***@host/…`; only
/// [`CameraUrl::parse`] sees the password, to hand it to the session (and
/// [`with_secrets`] serializes it whole, to write a config file back).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct CameraUrl(String);

impl CameraUrl {
    /// Wraps a URL as written in a config or on the command line.
    pub fn new(url: impl Into<String>) -> Self {
        CameraUrl(url.into())
    }

    /// The URL without credentials, and the credentials (percent-decoded).
    pub fn parse(&self) -> Result<(url::Url, Option<Credentials>), String> {
        let mut url = url::Url::parse(&self.0).map_err(|e| format!("`{self}` is not a URL: {e}"))?;
        if url.scheme() != "rtsp" {
            return Err(format!("`{self}`: the scheme must be rtsp"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{self}` names no host"));
        }
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let creds = (!url.username().is_empty() || url.password().is_some()).then(|| Credentials {
            username: decode(url.username()),
            password: decode(url.password().unwrap_or("")),
        });
        url.set_username("")
            .and_then(|()| url.set_password(None))
            .map_err(|()| format!("`{self}`: bad credentials"))?;
        Ok((url, creds))
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

/// `text` with the password of any `scheme://user:password@` in it replaced
/// by `***`. The password runs from the first `:` to the last `@` of the URL
/// (up to white space or a quote), so one written unencoded — with `/`, `#`
/// or `@` in it — is hidden too; when in doubt, more is hidden, never less.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let url = &tail[..end];
        match (url.find(':'), url.rfind('@')) {
            // A user name holds none of `/?#@`: a `:` after one is in a path or query.
            (Some(colon), Some(at)) if colon < at && !url[..colon].contains(['/', '?', '#', '@']) => {
                out.push_str(&url[..colon]);
                out.push_str(":***");
                out.push_str(&url[at..]);
            }
            _ => out.push_str(url),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

impl fmt::Display for CameraUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for CameraUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

thread_local! {
    /// Set only inside [`with_secrets`].
    static REVEAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with camera URLs serialized whole, credentials included: for
/// writing a config file back, never for anything shown. Everywhere else
/// they serialize redacted.
pub fn with_secrets<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            REVEAL.set(false);
        }
    }
    REVEAL.set(true);
    let _reset = Reset;
    f()
}

impl Serialize for CameraUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match REVEAL.get() {
            true => s.serialize_str(&self.0),
            false => s.serialize_str(&self.redacted()),
        }
    }
}

impl<'de> Deserialize<'de> for CameraUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(CameraUrl)
    }
}

/// How RTP travels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// Interleaved on the RTSP connection (RFC 2326 §10.12): passes NAT and firewalls, never reordered.
    #[default]
    Tcp,
    /// RTP/RTCP on a pair of UDP ports (for cameras and servers that only do UDP, e.g. VLC).
    Udp,
}

/// A departure from the RTSP/RTP specs that some cameras make, tolerated only
/// when named in the node's `quirks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RtspQuirk {
    /// The `RTP-Info` header's `seq` is wrong: take the first packet's.
    IgnoreRtpInfoSeq,
    /// The `RTP-Info` header's `rtptime` is wrong: start time at the first packet.
    IgnoreRtpInfoTime,
    /// RTCP from an SSRC the camera did not announce: drop it rather than fail the session.
    DropUnknownRtcp,
    /// Interleaved data on a channel no stream was set up on: ignore it rather than fail.
    IgnoreUnassignedChannels,
    /// The session id changes between `SETUP` replies: keep the first.
    FirstSessionId,
    /// Never send `TEARDOWN` (cameras that hang on it).
    NoTeardown,
}

/// The keys of an `rtsp` node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtspOptions {
    /// The camera: `rtsp://[user:password@]host[:port]/path`. The password is
    /// shown as `***` in logs, errors and stats.
    pub url: CameraUrl,
    /// `tcp` (interleaved on the RTSP connection) or `udp`.
    pub transport: RtspTransport,
    /// Seconds without a picture after which the session counts as failed
    /// and is reconnected.
    pub stall_secs: f64,
    /// Longest wait, in seconds, between reconnection attempts; waits double
    /// from 0.5 s up to this, and start again at 0.5 s once pictures flow.
    pub retry_max_secs: f64,
    /// Camera quirks to tolerate (see [`RtspQuirk`]).
    pub quirks: Vec<RtspQuirk>,
    /// The largest coded picture accepted, in bytes of RTP payload; a camera
    /// sending a bigger one (or one that never ends) is disconnected.
    pub max_picture_bytes: usize,
    /// Once the picture size is known (from the SPS or JPEG header), the
    /// limit falls to width × height × this ÷ 8 bytes (at least
    /// [`MIN_PICTURE_LIMIT`]); raw 8-bit 4:2:0 is 12 bits per pixel, coded
    /// pictures are far smaller.
    pub max_bits_per_pixel: u32,
}

/// The picture limit never falls below this, whatever the picture size.
pub const MIN_PICTURE_LIMIT: usize = 512 * 1024;

impl Default for RtspOptions {
    fn default() -> Self {
        RtspOptions {
            url: CameraUrl::default(),
            transport: RtspTransport::Tcp,
            stall_secs: 10.0,
            retry_max_secs: 4.0,
            quirks: Vec::new(),
            max_picture_bytes: 8 << 20,
            max_bits_per_pixel: 8,
        }
    }
}

impl RtspOptions {
    /// Checks the keys; the error names the offending one.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.url.0.is_empty() {
            return Err(("url", "is required: the camera's rtsp:// URL".into()));
        }
        self.url.parse().map_err(|e| ("url", e))?;
        for (key, secs) in [("stall_secs", self.stall_secs), ("retry_max_secs", self.retry_max_secs)] {
            if !(secs > 0.0 && secs.is_finite()) {
                return Err((key, "must be a positive number of seconds".into()));
            }
        }
        if self.max_picture_bytes < MIN_PICTURE_LIMIT {
            return Err(("max_picture_bytes", format!("must be at least {MIN_PICTURE_LIMIT}")));
        }
        if self.max_bits_per_pixel == 0 {
            return Err(("max_bits_per_pixel", "must be at least 1".into()));
        }
        Ok(())
    }

    /// The picture limit in bytes for pictures of `width` × `height`.
    pub fn picture_limit(&self, width: u32, height: u32) -> usize {
        let by_size = u64::from(width) * u64::from(height) * u64::from(self.max_bits_per_pixel) / 8;
        usize::try_from(by_size)
            .unwrap_or(usize::MAX)
            .clamp(MIN_PICTURE_LIMIT, self.max_picture_bytes)
    }

    /// `with` when `quirk` is named, else `without`.
    fn pick<T>(&self, quirk: RtspQuirk, with: T, without: T) -> T {
        if self.quirks.contains(&quirk) { with } else { without }
    }
}

/// What kind of failure ended a camera's session: what a user does about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Failure {
    /// The camera refused the credentials (RTSP 401 or 403): fix the URL's user or password.
    Auth,
    /// Nothing accepts connections at its address (refused, unreachable, unknown host).
    Refused,
    /// It did not answer, or stopped sending pictures, in time.
    Timeout,
    /// It answered with something that is not valid RTSP, SDP or RTP, or offers nothing usable.
    Protocol,
    /// It broke a limit (message or picture size) and was cut off.
    Limit,
    /// It ended the session or dropped the connection.
    Closed,
}

impl Failure {
    fn words(self) -> &'static str {
        match self {
            Failure::Auth => "authentication failed",
            Failure::Refused => "cannot connect",
            Failure::Timeout => "timed out",
            Failure::Protocol => "bad answer",
            Failure::Limit => "limit broken",
            Failure::Closed => "connection closed",
        }
    }

    /// The failure an I/O error connecting to a camera is.
    pub fn of_io(e: &std::io::Error) -> Failure {
        match e.kind() {
            std::io::ErrorKind::TimedOut => Failure::Timeout,
            _ => Failure::Refused,
        }
    }

    /// The failure a retina error is: its RTSP status where it has one, else its words.
    fn of_retina(e: &retina::Error) -> Failure {
        if let Some(status) = e.status_code() {
            return if matches!(status, 401 | 403) {
                Failure::Auth
            } else {
                Failure::Protocol
            };
        }
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("timeout") || text.contains("timed out") {
            Failure::Timeout
        } else if [
            "error reading",
            "error writing",
            "eof",
            "reset",
            "broken pipe",
            "closed",
        ]
        .iter()
        .any(|w| text.contains(w))
        {
            Failure::Closed
        } else if text.contains("unable to connect") {
            Failure::Refused
        } else {
            Failure::Protocol
        }
    }
}

/// Why a session failed: its kind, then one line that never holds a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", failure.words())]
pub struct RtspError {
    failure: Failure,
    message: String,
}

impl RtspError {
    /// A failure of kind `failure`, described by `message`.
    pub fn of(failure: Failure, message: String) -> Self {
        RtspError {
            failure,
            message: redact(&message),
        }
    }

    fn new(failure: Failure, context: &str, e: impl fmt::Display) -> Self {
        // retina's messages span lines (message, then connection context).
        let text = e.to_string();
        let flat: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        Self::of(failure, format!("{context}: {}", flat.join("; ")))
    }

    /// What kind of failure it is.
    pub fn failure(&self) -> Failure {
        self.failure
    }
}

/// One coded picture off the wire.
#[derive(Debug)]
pub struct CodedPicture {
    /// Annex-B (H.264/H.265, parameter sets in front of every IDR picture) or one JPEG.
    pub data: Bytes,
    /// RTP time since the session's start, in `clock_rate` units.
    pub rtp_elapsed: i64,
    /// The RTP clock rate (90 kHz for video).
    pub clock_rate: NonZeroU32,
    /// Decoding can start here.
    pub keyframe: bool,
    /// RTP packets lost just before this picture (0 on a clean stream).
    pub loss: u16,
    /// Pictures received before this one and not passed on: those before
    /// the parameter sets and the first keyframe, when joining mid-stream.
    pub skipped: u64,
    /// The parameters in effect: a new `Arc` when they change.
    pub params: Arc<CodecParams>,
    /// Its picture order (H.264, H.265), from which its decoding time follows
    /// ([`crate::codec::poc::DecodeTimes`]); `None` for JPEG, or where the
    /// slice header does not parse.
    pub poc: Option<Poc>,
}

/// One playing RTSP session: the first video stream of the camera.
pub struct Camera {
    demuxed: retina::client::Demuxed,
    group: Arc<SessionGroup>,
    relay: relay::Relay,
    picture_limit: Arc<AtomicUsize>,
    options: RtspOptions,
    stream: usize,
    codec: Codec,
    follower: ParamFollower,
    params: Option<Arc<CodecParams>>,
    /// Picture order counts (H.264, H.265).
    pocs: Option<PocCounter>,
    /// A keyframe has been passed on.
    started: bool,
    skipped: u64,
}

impl Camera {
    /// `DESCRIBE`, `SETUP` of the first video stream, `PLAY`, in session
    /// group `group` (one per camera, kept across reconnects, so that stale
    /// sessions can be awaited before the next one).
    pub async fn connect(options: &RtspOptions, group: &Arc<SessionGroup>) -> Result<Camera, RtspError> {
        let (url, creds) = options.url.parse().map_err(|e| RtspError::of(Failure::Refused, e))?;
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => {
                return Err(RtspError::of(
                    Failure::Refused,
                    format!("`{}` names no host", options.url),
                ));
            }
        };
        let picture_limit = Arc::new(AtomicUsize::new(options.max_picture_bytes));
        let relay = relay::Relay::start(&host, url.port().unwrap_or(554), Arc::clone(&picture_limit))
            .await
            .map_err(|e| RtspError::new(Failure::of_io(&e), "connecting", e))?;
        // retina talks to the relay; the camera sees the relay's address in
        // the first requests' URL (its answers' base URL takes over after).
        let mut relayed = url.clone();
        let relay_addr = relay.addr();
        relayed
            .set_ip_host(relay_addr.ip())
            .and_then(|()| relayed.set_port(Some(relay_addr.port())))
            .map_err(|()| RtspError::of(Failure::Refused, format!("`{}`: cannot address the relay", options.url)))?;
        let failed = |stage: &str, e: retina::Error| session_error(&relay, stage, e);
        let group = Arc::clone(group);
        let session_options = SessionOptions::default()
            .creds(creds)
            .user_agent(format!("eyrie/{}", env!("CARGO_PKG_VERSION")))
            .session_group(Arc::clone(&group))
            .teardown(options.pick(RtspQuirk::NoTeardown, TeardownPolicy::Never, TeardownPolicy::Auto))
            .unassigned_channel_data(options.pick(
                RtspQuirk::IgnoreUnassignedChannels,
                UnassignedChannelDataPolicy::Ignore,
                UnassignedChannelDataPolicy::Auto,
            ))
            .session_id(options.pick(
                RtspQuirk::FirstSessionId,
                SessionIdPolicy::UseFirst,
                SessionIdPolicy::Default,
            ));
        let mut session = retina::client::Session::describe(relayed, session_options)
            .await
            .map_err(|e| failed("DESCRIBE", e))?;
        let described: Vec<String> = session
            .streams()
            .iter()
            .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
            .collect();
        let (stream, codec) = session
            .streams()
            .iter()
            .enumerate()
            .find_map(|(i, s)| {
                let codec = match (s.media(), s.encoding_name()) {
                    ("video", "h264") => Codec::H264,
                    ("video", "h265") => Codec::H265,
                    ("video" | "image", "jpeg") => Codec::Mjpeg,
                    _ => return None,
                };
                Some((i, codec))
            })
            .ok_or_else(|| {
                RtspError::of(
                    Failure::Protocol,
                    format!(
                        "the camera offers no H.264, H.265 or JPEG video (its streams: {})",
                        if described.is_empty() {
                            "none".into()
                        } else {
                            described.join(", ")
                        }
                    ),
                )
            })?;
        let transport = match options.transport {
            RtspTransport::Tcp => Transport::Tcp(TcpTransportOptions::default()),
            RtspTransport::Udp => Transport::Udp(UdpTransportOptions::default()),
        };
        let format = FrameFormat {
            h26x_framing: h26x::Framing::AnnexB,
            ..FrameFormat::SIMPLE
        };
        session
            .setup(
                stream,
                SetupOptions::default().transport(transport).frame_format(format),
            )
            .await
            .map_err(|e| failed("SETUP", e))?;
        // The SDP's parameter sets give the picture size before any picture comes.
        if let Some(ParametersRef::Video(video)) = session.streams()[stream].parameters() {
            let (width, height) = video.pixel_dimensions();
            picture_limit.store(options.picture_limit(width, height), Ordering::Relaxed);
        }
        let play = PlayOptions::default()
            .initial_seq(options.pick(
                RtspQuirk::IgnoreRtpInfoSeq,
                InitialSequenceNumberPolicy::Ignore,
                InitialSequenceNumberPolicy::Default,
            ))
            .initial_timestamp(options.pick(
                RtspQuirk::IgnoreRtpInfoTime,
                InitialTimestampPolicy::Ignore,
                InitialTimestampPolicy::Default,
            ))
            .unknown_rtcp_ssrc(options.pick(
                RtspQuirk::DropUnknownRtcp,
                UnknownRtcpSsrcPolicy::DropPackets,
                UnknownRtcpSsrcPolicy::Default,
            ));
        let playing = session.play(play).await.map_err(|e| failed("PLAY", e))?;
        let demuxed = playing.demuxed().map_err(|e| failed("PLAY", e))?;
        Ok(Camera {
            demuxed,
            group,
            relay,
            picture_limit,
            options: options.clone(),
            stream,
            codec,
            follower: ParamFollower::new(codec, None),
            params: None,
            pocs: (codec != Codec::Mjpeg).then(|| PocCounter::new(codec)),
            started: false,
            skipped: 0,
        })
    }

    /// The codec of the stream received.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The next picture, starting at a keyframe; `None` when the camera ends
    /// the session. Cancel-safe: a picture is never lost by dropping the future.
    pub async fn next(&mut self) -> Result<Option<CodedPicture>, RtspError> {
        loop {
            let item = match self.demuxed.next().await {
                // The relay closed the connection for a reason of its own.
                None => {
                    return self.relay.cause().map_or(Ok(None), |(failure, cause)| {
                        Err(RtspError::new(failure, "receiving", cause))
                    });
                }
                Some(item) => item.map_err(|e| session_error(&self.relay, "receiving", e))?,
            };
            let CodecItem::VideoFrame(frame) = item else {
                continue;
            };
            if frame.stream_id() != self.stream {
                continue;
            }
            if self.params.is_none() || frame.has_new_parameters() {
                self.update_params()?;
            }
            let Some(params) = &self.params else {
                // Joined mid-stream, before the camera sent its parameter sets.
                self.skipped += 1;
                continue;
            };
            // retina counts only IDR pictures as H.265 random access points;
            // a CRA or BLA (open-GOP encoders' keyframes) is one too.
            let keyframe = frame.is_random_access_point() || (self.codec == Codec::H265 && h265_irap(frame.data()));
            if !self.started && !keyframe {
                // Nothing before the first keyframe can be decoded.
                self.skipped += 1;
                continue;
            }
            self.started = true;
            let (timestamp, loss) = (frame.timestamp(), frame.loss());
            let data = Bytes::from(frame.into_data());
            let poc = self.pocs.as_mut().and_then(|pocs| {
                let au = AccessUnit::of(self.codec, nal::annexb(&data).collect());
                pocs.push(&au).unwrap_or_else(|e| {
                    tracing::debug!("picture order unknown: {e}");
                    None
                })
            });
            return Ok(Some(CodedPicture {
                rtp_elapsed: timestamp.elapsed(),
                clock_rate: timestamp.clock_rate(),
                keyframe,
                loss,
                skipped: std::mem::take(&mut self.skipped),
                params: Arc::clone(params),
                data,
                poc,
            }));
        }
    }

    /// Takes the stream's parameters (none yet: left unset) from the depacketizer: for H.264/H.265
    /// its Annex-B parameter sets, parsed by our own SPS reader (size, `avcC`
    /// or `hvcC`); for JPEG the picture size.
    fn update_params(&mut self) -> Result<(), RtspError> {
        let stream = &self.demuxed.streams()[self.stream];
        let Some(ParametersRef::Video(video)) = stream.parameters() else {
            return Ok(());
        };
        let params = match self.codec {
            Codec::Mjpeg => {
                let (width, height) = video.pixel_dimensions();
                Arc::new(CodecParams::new(Codec::Mjpeg, width, height))
            }
            _ => {
                let extra = video.extra_data();
                if let Some(pocs) = &mut self.pocs {
                    // The sets the first pictures' order is read with, where
                    // the camera sends them only in its SDP.
                    let _ = pocs.push(&AccessUnit::of(self.codec, nal::annexb(extra).collect()));
                }
                self.follower
                    .follow(extra, 0)
                    .map_err(|e| RtspError::new(Failure::Protocol, "the camera's parameter sets", e))?
                    .0
            }
        };
        self.picture_limit.store(
            self.options.picture_limit(params.width, params.height),
            Ordering::Relaxed,
        );
        self.params = Some(params);
        Ok(())
    }

    /// Ends the session: drops it (sending `TEARDOWN` where the policy says so)
    /// and waits up to `limit` for the teardown to finish.
    pub async fn close(self, limit: std::time::Duration) {
        let Camera {
            demuxed, group, relay, ..
        } = self;
        drop(demuxed);
        let _ = tokio::time::timeout(limit, group.await_teardown()).await;
        drop(relay);
    }
}

/// A session's failure at `stage`: the relay's reason when it cut the
/// connection (a limit broken, the camera gone), else retina's error.
fn session_error(relay: &relay::Relay, stage: &str, e: retina::Error) -> RtspError {
    match relay.cause() {
        Some((failure, cause)) => RtspError::new(failure, stage, cause),
        None => RtspError::new(Failure::of_retina(&e), stage, e),
    }
}

/// Whether an H.265 picture (Annex-B) is an IRAP: the type of its first VCL
/// NAL unit. Only the units before it are scanned, never the slice data.
fn h265_irap(data: &[u8]) -> bool {
    let mut rest = data;
    while let Some(unit) = nal::first_unit(rest) {
        let t = h265::nal_type(unit);
        if h265::is_vcl(t) {
            return h265::is_irap(t);
        }
        // Past this unit's two-byte header, on to the next start code.
        rest = unit.get(2..).unwrap_or_default();
    }
    false
}

/// Maps RTP time onto the pipeline clock for one session, and estimates
/// each picture's duration: the smallest spacing of the last pictures in
/// presentation order (pictures arrive in decoding order, so with B-frames
/// consecutive ones are not neighbours).
#[derive(Debug)]
pub struct Timeline {
    /// Pipeline time of RTP time 0 of this session.
    origin_ns: i64,
    /// Presentation times of the last pictures, in arrival order.
    recent: std::collections::VecDeque<i64>,
    duration_ns: i64,
}

/// Pictures whose spacing gives the duration.
const TIMELINE_WINDOW: usize = 16;

impl Timeline {
    /// Starts a session's timeline: its first picture (at RTP time
    /// `first_elapsed`) lands at `now_ns`, and never before `not_before_ns`
    /// (the end of the previous session), so time only goes forward.
    pub fn new(now_ns: i64, not_before_ns: i64, first_elapsed_ns: i64, default_duration_ns: i64) -> Self {
        Timeline {
            origin_ns: now_ns.max(not_before_ns) - first_elapsed_ns,
            recent: std::collections::VecDeque::with_capacity(TIMELINE_WINDOW),
            duration_ns: default_duration_ns,
        }
    }

    /// RTP ticks at `clock_rate` → ns.
    pub fn ticks_to_ns(ticks: i64, clock_rate: NonZeroU32) -> i64 {
        (i128::from(ticks) * 1_000_000_000 / i128::from(clock_rate.get())) as i64
    }

    /// The picture's pipeline time and duration (the default until there
    /// are two pictures).
    pub fn place(&mut self, elapsed_ns: i64) -> (i64, i64) {
        let pts = self.origin_ns + elapsed_ns;
        if self.recent.len() == TIMELINE_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(pts);
        let mut sorted: Vec<i64> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        if let Some(gap) = sorted.windows(2).map(|w| w[1] - w[0]).filter(|&g| g > 0).min() {
            self.duration_ns = gap;
        }
        (pts, self.duration_ns)
    }

    /// Where the next session's timeline may start.
    pub fn end_ns(&self) -> i64 {
        self.recent.iter().max().map_or(i64::MIN, |p| p + self.duration_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_taken_out_of_the_url_and_redacted_everywhere() {
        let plus = CameraUrl::new("rtsp://admin:a+b@h/").parse().unwrap().1.unwrap();
        assert_eq!(plus.password, "a+b", "`+` is a plus in a URL's user info, not a space");
        let url = CameraUrl::new("rtsp://admin:s%40cret@10.0.0.7:554/Streaming/101?transport=tcp");
        let (bare, creds) = url.parse().unwrap();
        assert_eq!(bare.as_str(), "rtsp://10.0.0.7:554/Streaming/101?transport=tcp");
        let creds = creds.unwrap();
        assert_eq!((creds.username.as_str(), creds.password.as_str()), ("admin", "s@cret"));
        for shown in [
            url.to_string(),
            format!("{url:?}"),
            serde_json::to_string(&url).unwrap(),
        ] {
            assert!(!shown.contains("cret"), "{shown}");
            assert!(shown.contains("admin:***@10.0.0.7"), "{shown}");
        }
    }

    #[test]
    fn redact_handles_several_urls_and_leaves_others_alone() {
        assert_eq!(
            redact("a rtsp://u:p@h/x and rtsp://h2/y?q=a:b@c, http://v:w@z"),
            "a rtsp://u:***@h/x and rtsp://h2/y?q=a:b@c, http://v:***@z"
        );
        assert_eq!(redact("rtsp://user@host/"), "rtsp://user@host/");
        assert_eq!(redact("rtsp://host:554/path"), "rtsp://host:554/path");
        // Passwords written without percent-encoding.
        assert_eq!(redact("rtsp://admin:ab/cd@cam/x"), "rtsp://admin:***@cam/x");
        assert_eq!(
            redact("`rtsp://admin:p#w@cam` is not a URL"),
            "`rtsp://admin:***@cam` is not a URL"
        );
        assert_eq!(redact("rtsp://admin:p@ss@cam/"), "rtsp://admin:***@cam/");
        assert_eq!(redact("no url"), "no url");
    }

    #[test]
    fn options_name_the_bad_key() {
        let check = |o: RtspOptions| o.check().unwrap_err().0;
        assert_eq!(check(RtspOptions::default()), "url");
        let url = CameraUrl::new("http://h/x");
        assert_eq!(
            check(RtspOptions {
                url,
                ..Default::default()
            }),
            "url"
        );
        let url = CameraUrl::new("rtsp://h/x");
        assert_eq!(
            check(RtspOptions {
                url,
                stall_secs: 0.0,
                ..Default::default()
            }),
            "stall_secs"
        );
        // The config names of the quirks, as a node's `quirks` key takes them.
        let names = r#"["ignore-rtp-info-seq", "ignore-rtp-info-time", "drop-unknown-rtcp",
            "ignore-unassigned-channels", "first-session-id", "no-teardown"]"#;
        let quirks: Vec<RtspQuirk> = serde_json::from_str(names).unwrap();
        assert_eq!(quirks.len(), 6);
        let bogus = serde_json::from_str::<RtspQuirk>(r#""bogus""#).unwrap_err().to_string();
        assert!(bogus.contains("no-teardown"), "{bogus}");
    }

    #[test]
    fn errors_are_one_line_without_passwords() {
        let e = RtspError::new(
            Failure::Auth,
            "DESCRIBE",
            "401 Unauthorized\n\nconn: 127.0.0.1 -> rtsp://u:pw@h/\nmsg: x",
        );
        assert_eq!(
            e.to_string(),
            "authentication failed: DESCRIBE: 401 Unauthorized; conn: 127.0.0.1 -> rtsp://u:***@h/; msg: x"
        );
    }

    #[test]
    fn h265_keyframes_are_irap_pictures_whatever_comes_before_them() {
        let unit = |t: u8, body: &[u8]| [&[0, 0, 0, 1, t << 1, 1][..], body].concat();
        let cra = [unit(35, &[0x10]), unit(39, &[5, 5]), unit(21, &[0xaf; 40])].concat();
        assert!(h265_irap(&cra), "AUD, SEI, then a CRA slice");
        assert!(h265_irap(&unit(19, &[1])), "IDR");
        assert!(
            !h265_irap(&[unit(39, &[5]), unit(1, &[0x21; 9])].concat()),
            "a trailing picture"
        );
        assert!(!h265_irap(&unit(32, &[1, 2])), "no slice at all");
        assert!(!h265_irap(&[]));
    }

    #[test]
    fn timeline_follows_rtp_time_and_never_goes_back_across_sessions() {
        let rate = NonZeroU32::new(90_000).unwrap();
        let ns = |ticks| Timeline::ticks_to_ns(ticks, rate);
        assert_eq!(ns(3000), 33_333_333);
        let mut t = Timeline::new(1_000_000_000, i64::MIN, ns(9000), 40_000_000);
        assert_eq!(
            t.place(ns(9000)),
            (1_000_000_000, 40_000_000),
            "the default until two are in"
        );
        // Decoding order I P B B: the spacing is the smallest in presentation
        // order, so the P picture's 100 ms turns to 33 ms once the B ones come.
        assert_eq!(t.place(ns(18000)), (1_100_000_000, 100_000_000));
        assert_eq!(t.place(ns(12000)), (1_033_333_333, 33_333_333));
        assert_eq!(t.place(ns(15000)).1, 33_333_333);
        let end = t.end_ns();
        // A new session whose clock says "earlier" still starts after the old one.
        let mut next = Timeline::new(end - 5_000_000, end, 0, 40_000_000);
        assert_eq!(next.place(0).0, end);
    }
}
