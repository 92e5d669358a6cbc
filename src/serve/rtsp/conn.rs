//! One RTSP connection (tokio adapter): requests in, responses and (for
//! interleaved sessions) media out, in one task. A connection holds at most
//! one session, of one stream.

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;

use crate::capture::rtsp::guard::{Deframer, Unit};
use crate::serve::feed::{Attached, FeedEvent};
use crate::serve::rtcp::{SenderReport, reception_report};
use crate::serve::rtp::RtpFrame;
use crate::serve::sdp;
use crate::serve::udp::send_parts;

use super::message::{METHODS, Offer, Request, Response, Status, pick_transport, stream_of};
use super::{ClientCounters, JoinAt, Refusal, Shared, lock};

/// How long DESCRIBE and SETUP wait for a stream's format.
const FORMAT_WAIT: Duration = Duration::from_secs(5);
/// Seconds between RTCP sender reports.
const SR_INTERVAL: Duration = Duration::from_secs(5);

struct Session {
    id: String,
    attached: Attached,
    offer: Offer,
    counters: Arc<ClientCounters>,
    /// The next sequence number this client gets.
    seq: u16,
    /// The RTP time `RTP-Info` announced for the first picture PLAY sends.
    rtptime: u32,
    /// What this client's timestamps add to the stream's: set at its first
    /// picture so that it carries `rtptime`.
    ts_offset: Option<u32>,
    rx: Option<broadcast::Receiver<FeedEvent>>,
    waiting_key: bool,
    last_sr: Option<Instant>,
    /// Payload octets sent (for sender reports).
    octets: u32,
    multicast: Option<MulticastHold>,
}

/// A session's share of its stream's multicast sender: the sender runs
/// while any session holds it.
struct MulticastHold {
    shared: Arc<Shared>,
    stream: String,
}

impl MulticastHold {
    fn new(shared: &Arc<Shared>, stream: &str, user: Option<String>) -> MulticastHold {
        let mut senders = lock(&shared.multicast);
        let entry = senders.entry(stream.to_owned()).or_insert((0, None));
        // A sender that ended (its stream changed codec or went away) is started again.
        if entry.1.as_ref().is_none_or(|task| task.is_finished()) {
            let port = shared.multicast_port(stream);
            entry.1 = Some(tokio::spawn(multicast(Arc::clone(shared), stream.to_owned(), port, user)).abort_handle());
        }
        entry.0 += 1;
        MulticastHold {
            shared: Arc::clone(shared),
            stream: stream.to_owned(),
        }
    }
}

impl Drop for MulticastHold {
    fn drop(&mut self) {
        let mut senders = lock(&self.shared.multicast);
        if let Some(entry) = senders.get_mut(&self.stream) {
            entry.0 -= 1;
            if entry.0 == 0 {
                if let Some(task) = &entry.1 {
                    task.abort();
                }
                senders.remove(&self.stream);
            }
        }
    }
}

struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    session: Option<Session>,
    /// Media to send after the current response (a joined GOP).
    backlog: Vec<Arc<RtpFrame>>,
    staging: Vec<u8>,
    close: bool,
    /// Over TLS (RTSPS): media only interleaved in the connection.
    secure: bool,
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    u64::from_ne_bytes(b)
}

/// Serves one connection, read through `rd` and written through `wr`
/// (`secure`: over TLS), until it closes, times out, or the server stops.
pub(super) async fn serve<R, W>(shared: Arc<Shared>, mut rd: R, mut wr: W, peer: SocketAddr, secure: bool)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut shutdown = shared.shutdown.clone();
    let mut deframer = Deframer::default();
    let session_timeout = Duration::from_secs_f64(shared.options.session_timeout);
    let write_timeout = Duration::from_secs_f64(shared.options.write_timeout);
    let mut conn = Conn {
        shared,
        peer,
        session: None,
        backlog: Vec::new(),
        staging: Vec::new(),
        close: false,
        secure,
    };
    let mut last_read = Instant::now();
    let mut watchdog = tokio::time::interval(Duration::from_secs(1));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result: Result<(), String> = async {
        loop {
            let idle = match &conn.session {
                // A UDP session lives on RTCP reports too.
                Some(s) if !matches!(s.offer, Offer::Tcp { .. }) => s.counters.idle().min(last_read.elapsed()),
                _ => last_read.elapsed(),
            };
            if idle >= session_timeout {
                return Err("session timed out".to_owned());
            }
            deframer.buffer().reserve(4096);
            let rx = conn.session.as_mut().and_then(|s| s.rx.as_mut());
            tokio::select! {
                read = rd.read_buf(deframer.buffer()) => {
                    match read {
                        Ok(0) => return Ok(()),
                        Ok(_) => last_read = Instant::now(),
                        Err(e) => return Err(format!("read: {e}")),
                    }
                    loop {
                        let unit = match deframer.unit() {
                            Ok(Some(u)) => u,
                            Ok(None) => break,
                            Err(e) => {
                                let r = Response::error(Status::BAD_REQUEST, None, &format!("request refused: {e}"));
                                let _ = timed_write(&mut wr, &r.to_bytes(), write_timeout).await;
                                return Err(format!("bad request: {e}"));
                            }
                        };
                        match unit {
                            Unit::Message(m) => {
                                let response = conn.handle(&m).await;
                                timed_write(&mut wr, &response.to_bytes(), write_timeout).await?;
                                let backlog = std::mem::take(&mut conn.backlog);
                                for frame in backlog {
                                    conn.send(&mut wr, &frame, write_timeout).await?;
                                }
                                if conn.close {
                                    return Ok(());
                                }
                            }
                            Unit::Interleaved { channel, frame } => conn.interleaved(channel, &frame[4..]),
                        }
                    }
                }
                event = next_event(rx) => conn.event(&mut wr, event, write_timeout).await?,
                // Looks at the session's age once a second (no timer per picture).
                _ = watchdog.tick() => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(peer = %conn.peer, "RTSP connection closed: {e}");
    }
    conn.end_session();
}

async fn next_event(rx: Option<&mut broadcast::Receiver<FeedEvent>>) -> Result<FeedEvent, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn timed_write<W: AsyncWrite + Unpin>(wr: &mut W, bytes: &[u8], timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, async {
        wr.write_all(bytes).await?;
        wr.flush().await
    })
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err("the client did not read for the write timeout".into()),
    }
}

/// Writes every slice, in order (writev, resumed after short writes), and
/// flushes (TLS holds records until then).
async fn write_all_vectored<W: AsyncWrite + Unpin>(wr: &mut W, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !slices.is_empty() {
        let n = wr.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    wr.flush().await
}

/// Writes what `wr` takes of `slices` at once and flushes, without waiting:
/// whether everything went (most pictures fit the socket, and need no timer).
fn write_now<W: AsyncWrite + Unpin>(wr: &mut W, slices: &mut &mut [IoSlice<'_>]) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    while !slices.is_empty() {
        match std::pin::Pin::new(&mut *wr).poll_write_vectored(&mut cx, slices) {
            std::task::Poll::Ready(Ok(n)) if n > 0 => IoSlice::advance_slices(slices, n),
            _ => return false,
        }
    }
    matches!(
        std::pin::Pin::new(&mut *wr).poll_flush(&mut cx),
        std::task::Poll::Ready(Ok(()))
    )
}

impl Conn {
    fn url_base(&self, request: &Request) -> String {
        let (stream, _) = stream_of(request.path());
        request.base_url(stream, &self.shared.local.to_string())
    }

    /// Answers one request.
    async fn handle(&mut self, message: &[u8]) -> Response {
        let request = match Request::parse(message) {
            Ok(r) => r,
            Err(bad) => {
                self.close = true;
                return Response::error(bad.status, None, &bad.message);
            }
        };
        let cseq = request.cseq.clone();
        let cseq = cseq.as_deref();

        tracing::debug!(peer = %self.peer, method = %request.method, url = %request.url_for_log(), "RTSP request");
        if let Some(s) = &self.session {
            s.counters.touch();
        }
        let known = METHODS.split(", ").any(|m| m == request.method);
        if !known {
            return Response::error(
                Status::METHOD_NOT_ALLOWED,
                cseq,
                &format!("{} is not served here", request.method),
            )
            .header("Allow", METHODS);
        }
        let now = SystemTime::now();
        let user = if self.shared.auth.required() {
            // A password hash takes a while to check: off the serving threads.
            let auth = Arc::clone(&self.shared.auth);
            let (header, method, url) = (
                request.header("authorization").map(str::to_owned),
                request.method.clone(),
                request.url.clone(),
            );
            let peer = self.peer.ip();
            let checked =
                tokio::task::spawn_blocking(move || auth.check(header.as_deref(), &method, &url, peer, now)).await;
            match checked.unwrap_or(Err(crate::serve::auth::Refused::Wrong)) {
                Ok(who) => Some(who.name),
                Err(why) => {
                    self.shared.auth_failures.fetch_add(1, Ordering::Relaxed);
                    let mut response = Response::error(Status::UNAUTHORIZED, cseq, why.message());
                    for challenge in self.shared.auth.challenges(now, false) {
                        response = response.header("WWW-Authenticate", challenge);
                    }
                    return response;
                }
            }
        } else {
            None
        };
        // Requests naming a session must name this connection's.
        if let Some(id) = request.session()
            && self.session.as_ref().is_none_or(|s| s.id != id)
        {
            return Response::error(Status::SESSION_NOT_FOUND, cseq, "no such session on this connection");
        }
        let result = match request.method.as_str() {
            "OPTIONS" => Ok(Response::new(Status::OK, cseq).header("Public", METHODS)),
            "DESCRIBE" => self.describe(&request, user.as_deref()).await,
            "SETUP" => self.setup(&request, user).await,
            "PLAY" => self.play(&request),
            "PAUSE" => match &mut self.session {
                Some(s) => {
                    s.rx = None;
                    Ok(Response::new(Status::OK, cseq))
                }
                None => Err((Status::SESSION_NOT_FOUND, "PAUSE needs a session".to_owned())),
            },
            "TEARDOWN" => {
                self.end_session();
                Ok(Response::new(Status::OK, cseq))
            }
            // GET_PARAMETER / SET_PARAMETER: keep-alives.
            _ => Ok(Response::new(Status::OK, cseq)),
        };
        let response = match result {
            Ok(r) => r,
            Err((status, message)) => Response::error(status, cseq, &message),
        };
        match &self.session {
            Some(s) if request.method != "TEARDOWN" => response.header(
                "Session",
                format!(
                    "{};timeout={}",
                    s.id,
                    self.shared.options.session_timeout.round() as u64
                ),
            ),
            _ => response,
        }
    }

    /// Finds a served stream for `user` and attaches to its feed.
    fn attach(&self, stream: &str, user: Option<&str>) -> Result<Attached, (Status, String)> {
        let exposed = &self.shared.options.streams;
        if stream.is_empty() || (!exposed.is_empty() && !exposed.iter().any(|s| s == stream)) {
            return Err((Status::NOT_FOUND, format!("no stream `{stream}` is served")));
        }
        let refused = |r: Refusal| match r {
            Refusal::NotFound(m) => (Status::NOT_FOUND, m),
            Refusal::Forbidden(m) => (Status::FORBIDDEN, m),
        };
        self.shared.streams.check(user, stream).map_err(refused)?;
        let streams = Arc::clone(&self.shared.streams);
        self.shared
            .feeds
            .attach(stream, || streams.open(user, stream))
            .map_err(refused)
    }

    async fn describe(&mut self, request: &Request, user: Option<&str>) -> Result<Response, (Status, String)> {
        let (stream, _) = stream_of(request.path());
        let attached = self.attach(stream, user)?;
        let feed = &attached.feed;
        let Some(format) = feed.format(FORMAT_WAIT).await else {
            return Err((Status::UNAVAILABLE, format!("stream `{stream}` has no pictures yet")));
        };
        let params = format.params.map_err(|m| (Status::UNSUPPORTED_MEDIA_TYPE, m))?;
        let sdp = sdp::describe(
            stream,
            self.shared.local.ip(),
            format.version,
            &params,
            format.fps,
            None,
        );
        Ok(Response::new(Status::OK, request.cseq.as_deref())
            .header("Content-Base", self.url_base(request))
            .body("application/sdp", sdp.into_bytes()))
    }

    async fn setup(&mut self, request: &Request, user: Option<String>) -> Result<Response, (Status, String)> {
        let (stream, _) = stream_of(request.path());
        if let Some(s) = &self.session
            && s.attached.feed.name != stream
        {
            return Err((Status::AGGREGATE_NOT_ALLOWED, "one stream per session".into()));
        }
        let value = request
            .header("transport")
            .ok_or((Status::UNSUPPORTED_TRANSPORT, "no Transport header".to_owned()))?;
        let offer = pick_transport(value, self.peer.ip(), self.secure).ok_or_else(|| {
            let usable = if self.secure {
                "over RTSPS the media travel inside the TLS connection: RTP/AVP/TCP with interleaved"
            } else {
                "RTP/AVP with client_port, RTP/AVP/TCP with interleaved, or RTP/AVP;multicast (to the client's own address only)"
            };
            (Status::UNSUPPORTED_TRANSPORT, format!("no usable transport: {usable}"))
        })?;
        if self.session.is_none() && lock(&self.shared.clients).len() >= self.shared.options.max_clients {
            return Err((Status::UNAVAILABLE, "too many clients".into()));
        }
        let attached = self.attach(stream, user.as_deref())?;
        match attached.feed.format(FORMAT_WAIT).await.map(|f| f.params) {
            None => return Err((Status::UNAVAILABLE, format!("stream `{stream}` has no pictures yet"))),
            Some(Err(m)) => return Err((Status::UNSUPPORTED_MEDIA_TYPE, m)),
            Some(Ok(_)) => {}
        }
        let ssrc = attached.feed.ssrc;
        let (rtp_port, rtcp_port) = (
            self.shared.udp.0.local_addr().map_or(0, |a| a.port()),
            self.shared.udp.1.local_addr().map_or(0, |a| a.port()),
        );
        let transport = match offer {
            Offer::Udp { rtp, rtcp } => {
                format!("RTP/AVP;unicast;client_port={rtp}-{rtcp};server_port={rtp_port}-{rtcp_port};ssrc={ssrc:08X}")
            }
            Offer::Tcp { rtp, rtcp } => format!("RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp};ssrc={ssrc:08X}"),
            Offer::Multicast => {
                let port = self.shared.multicast_port(stream);
                format!(
                    "RTP/AVP;multicast;destination={};port={port}-{};ttl={}",
                    self.shared.options.multicast_group,
                    port + 1,
                    self.shared.options.multicast_ttl
                )
            }
        };
        // A repeated SETUP keeps the session's id.
        let id = self
            .session
            .as_ref()
            .map_or_else(|| format!("{:016X}", random_u64()), |s| s.id.clone());
        self.end_session();
        let counters = Arc::new(ClientCounters {
            id: self.shared.next_id.fetch_add(1, Ordering::Relaxed),
            peer: self.peer,
            user,
            stream: stream.to_owned(),
            ssrc,
            transport: match offer {
                Offer::Udp { .. } => "udp",
                Offer::Tcp { .. } => "tcp",
                Offer::Multicast => "multicast",
            },
            since: Instant::now(),
            packets: Default::default(),
            bytes: Default::default(),
            dropped: Default::default(),
            report: Default::default(),
            seen_ms: Default::default(),
        });
        {
            // Checked again with the slot taken: SETUPs waiting for a format together stay under the limit.
            let mut clients = lock(&self.shared.clients);
            if clients.len() >= self.shared.options.max_clients {
                return Err((Status::UNAVAILABLE, "too many clients".into()));
            }
            clients.insert(counters.id, Arc::clone(&counters));
        }
        if let Offer::Udp { rtcp, .. } = offer {
            lock(&self.shared.rtcp_peers).insert(SocketAddr::new(self.peer.ip(), rtcp), Arc::clone(&counters));
        }
        self.session = Some(Session {
            id,
            attached,
            offer,
            counters,
            seq: random_u64() as u16,
            rtptime: random_u64() as u32,
            ts_offset: None,
            rx: None,
            waiting_key: true,
            last_sr: None,
            octets: 0,
            multicast: None,
        });
        Ok(Response::new(Status::OK, request.cseq.as_deref()).header("Transport", transport))
    }

    fn play(&mut self, request: &Request) -> Result<Response, (Status, String)> {
        let base = self.url_base(request);
        let join_last = self.shared.options.join == JoinAt::Last;
        let shared = Arc::clone(&self.shared);
        let Some(s) = &mut self.session else {
            return Err((Status::SESSION_NOT_FOUND, "PLAY needs a session (SETUP first)".into()));
        };
        if s.attached.feed.is_closed() {
            return Err((
                Status::UNAVAILABLE,
                "the stream changed or went away: describe it again".into(),
            ));
        }
        let mut info = format!("url={base}trackID=0");
        if s.rx.is_none() {
            if s.offer == Offer::Multicast {
                if s.multicast.is_none() {
                    s.multicast = Some(MulticastHold::new(
                        &shared,
                        &s.attached.feed.name,
                        s.counters.user.clone(),
                    ));
                }
            } else {
                let (gop, rx) = s.attached.feed.join(join_last);
                s.rx = Some(rx);
                s.waiting_key = true;
                // The first picture sent (after a PAUSE too) carries exactly this.
                s.ts_offset = None;
                info.push_str(&format!(";seq={};rtptime={}", s.seq, s.rtptime));
                self.backlog = gop;
            }
        }
        Ok(Response::new(Status::OK, request.cseq.as_deref())
            .header("Range", "npt=now-")
            .header("RTP-Info", info))
    }

    /// An interleaved frame from the client: RTCP on its RTCP channel.
    fn interleaved(&mut self, channel: u8, payload: &[u8]) {
        let Some(s) = &self.session else { return };
        if let Offer::Tcp { rtcp, .. } = s.offer
            && channel == rtcp
        {
            s.counters.touch();
            if let Some(r) = reception_report(payload, s.attached.feed.ssrc) {
                *lock(&s.counters.report) = Some(r);
            }
        }
    }

    async fn event<W: AsyncWrite + Unpin>(
        &mut self,
        wr: &mut W,
        event: Result<FeedEvent, broadcast::error::RecvError>,
        timeout: Duration,
    ) -> Result<(), String> {
        let Some(s) = &mut self.session else { return Ok(()) };
        match event {
            Ok(FeedEvent::Frame(frame)) => self.send(wr, &frame, timeout).await,
            Ok(FeedEvent::Reset) | Err(broadcast::error::RecvError::Closed) => {
                Err("the stream's codec changed or it went away".into())
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                s.counters.dropped.fetch_add(n, Ordering::Relaxed);
                s.waiting_key = true;
                Ok(())
            }
        }
    }

    /// Sends one picture to the session's client (and, when due, a sender report).
    async fn send<W: AsyncWrite + Unpin>(
        &mut self,
        wr: &mut W,
        frame: &RtpFrame,
        timeout: Duration,
    ) -> Result<(), String> {
        let Some(s) = &mut self.session else { return Ok(()) };
        if s.waiting_key && !frame.keyframe {
            s.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        s.waiting_key = false;
        let offset = *s.ts_offset.get_or_insert(s.rtptime.wrapping_sub(frame.timestamp));
        let payload: usize = frame.packets.iter().map(|p| p.payload_len()).sum();
        // The sender report goes first, so a client maps even the first
        // picture's RTP time to its capture time.
        if s.last_sr.is_none_or(|t| t.elapsed() >= SR_INTERVAL) {
            s.last_sr = Some(Instant::now());
            let sr = SenderReport {
                ssrc: s.attached.feed.ssrc,
                utc: frame.capture_utc,
                rtp_time: frame.timestamp.wrapping_add(offset),
                packets: s.counters.packets.load(Ordering::Relaxed) as u32,
                octets: s.octets,
            }
            .to_bytes("eyrie");
            match s.offer {
                Offer::Tcp { rtcp, .. } => {
                    let mut b = vec![b'$', rtcp];
                    b.extend_from_slice(&(sr.len() as u16).to_be_bytes());
                    b.extend_from_slice(&sr);
                    timed_write(wr, &b, timeout).await?;
                }
                Offer::Udp { rtcp, .. } => {
                    let _ = self
                        .shared
                        .udp
                        .1
                        .try_send_to(&sr, SocketAddr::new(self.peer.ip(), rtcp));
                }
                Offer::Multicast => {}
            }
        }
        match s.offer {
            Offer::Tcp { rtp, .. } => {
                self.staging.clear();
                let mut ends = Vec::with_capacity(frame.packets.len());
                for p in &frame.packets {
                    self.staging.push(b'$');
                    self.staging.push(rtp);
                    self.staging.extend_from_slice(&(p.len() as u16).to_be_bytes());
                    p.head_for(s.seq, offset, &mut self.staging);
                    s.seq = s.seq.wrapping_add(1);
                    ends.push(self.staging.len());
                }
                let mut slices = Vec::with_capacity(2 * frame.packets.len());
                let mut start = 0;
                for (p, end) in frame.packets.iter().zip(ends) {
                    slices.push(IoSlice::new(&self.staging[start..end]));
                    if !p.body.is_empty() {
                        slices.push(IoSlice::new(&p.body));
                    }
                    start = end;
                }
                // Most pictures fit the socket at once: a timer only for those that wait.
                let mut rest = &mut slices[..];
                let written = if write_now(wr, &mut rest) {
                    Ok(Ok(()))
                } else {
                    tokio::time::timeout(timeout, write_all_vectored(wr, rest)).await
                };
                match written {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(format!("write: {e}")),
                    Err(_) => {
                        self.shared.stuck.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(peer = %self.peer, "RTSP client disconnected: it read nothing for the write timeout");
                        return Err("stuck".into());
                    }
                }
            }
            Offer::Udp { rtp, .. } => {
                let to = SocketAddr::new(self.peer.ip(), rtp);
                for p in &frame.packets {
                    self.staging.clear();
                    p.head_for(s.seq, offset, &mut self.staging);
                    s.seq = s.seq.wrapping_add(1);
                    // A full socket buffer loses the packet (as the network would): never wait.
                    let _ = send_parts(&self.shared.udp.0, &[&self.staging, &p.body], to);
                }
            }
            Offer::Multicast => return Ok(()),
        }
        s.counters
            .packets
            .fetch_add(frame.packets.len() as u64, Ordering::Relaxed);
        s.counters.bytes.fetch_add(frame.bytes() as u64, Ordering::Relaxed);
        s.octets = s.octets.wrapping_add(payload as u32);
        Ok(())
    }

    fn end_session(&mut self) {
        if let Some(s) = self.session.take() {
            lock(&self.shared.clients).remove(&s.counters.id);
            lock(&self.shared.rtcp_peers).retain(|_, c| c.id != s.counters.id);
        }
    }
}

/// Sends `stream` to its multicast group while a session plays it.
async fn multicast(shared: Arc<Shared>, stream: String, port: u16, user: Option<String>) {
    let group = IpAddr::V4(shared.options.multicast_group);
    // From the listener's own IPv4 address (its interface), else any.
    let from = match shared.local.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => ip,
        _ => std::net::Ipv4Addr::UNSPECIFIED,
    };
    let socket = match UdpSocket::bind((from, 0)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%stream, "multicast socket: {e}");
            return;
        }
    };
    let _ = socket.set_multicast_ttl_v4(u32::from(shared.options.multicast_ttl));
    let _ = socket.set_multicast_loop_v4(true);
    let _ = socket.set_nonblocking(true);
    let streams = Arc::clone(&shared.streams);
    let Ok(attached) = shared.feeds.attach(&stream, || streams.open(user.as_deref(), &stream)) else {
        return;
    };
    let (_, mut rx) = attached.feed.join(false);
    let mut waiting_key = true;
    let mut last_sr: Option<Instant> = None;
    let (mut packets, mut octets) = (0u32, 0u32);
    loop {
        let frame = match rx.recv().await {
            Ok(FeedEvent::Frame(f)) => f,
            Ok(FeedEvent::Reset) | Err(broadcast::error::RecvError::Closed) => return,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                waiting_key = true;
                continue;
            }
        };
        if waiting_key && !frame.keyframe {
            continue;
        }
        waiting_key = false;
        if last_sr.is_none_or(|t| t.elapsed() >= SR_INTERVAL) {
            last_sr = Some(Instant::now());
            let sr = SenderReport {
                ssrc: attached.feed.ssrc,
                utc: frame.capture_utc,
                rtp_time: frame.timestamp,
                packets,
                octets,
            };
            let _ = socket.send_to(&sr.to_bytes("eyrie"), SocketAddr::new(group, port + 1));
        }
        for p in &frame.packets {
            let _ = send_parts(&socket, &[&p.head, &p.body], SocketAddr::new(group, port));
            packets = packets.wrapping_add(1);
            octets = octets.wrapping_add(p.payload_len() as u32);
        }
    }
}
