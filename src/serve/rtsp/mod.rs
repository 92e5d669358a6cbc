//! The RTSP server (RFC 2326): every coded stream of the hub at
//! `rtsp://host:port/<stream>`, over RTP on UDP (unicast and multicast) or
//! interleaved in the RTSP connection (§10.12), with RTCP sender reports
//! (RFC 3550 §6.4.1) and receiver reports read per client.
//!
//! Pictures are packetized once per stream ([`super::feed`]); per client
//! there is a socket, its own sequence numbers, and its position in the
//! stream's ring. The sans-IO parts ([`message`], [`auth`], the packetizers
//! and SDP) are apart from the tokio adapter ([`conn`]).

mod conn;
pub mod message;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::hub::Subscription;

use super::auth::{Authenticator, User};
use super::feed::{FeedOptions, Feeds};
use super::rtcp::ReceptionReport;
use super::rtp::{DEFAULT_MTU, MIN_MTU};
use super::tls::Wire;
use tokio_rustls::TlsAcceptor;

/// Where a client joins a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinAt {
    /// At the stream's next keyframe.
    #[default]
    Next,
    /// At its last keyframe, from the GOP the server keeps: instant start.
    Last,
}

/// The `[server.rtsp]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtspServerOptions {
    /// Serve RTSP at all.
    pub enabled: bool,
    /// Address and port to listen on. Anything but a loopback address needs
    /// `[[server.users]]`.
    pub listen: String,
    /// RTSPS only (`rtsps://`, RTSP over TLS with the certificate of
    /// `[server.tls]`; the media interleaved in the TLS connection).
    pub tls: bool,
    /// The streams served (empty: every coded stream).
    pub streams: Vec<String>,
    /// Largest RTP packet, bytes (header included).
    pub mtu: usize,
    /// Where a new client starts: `next` keyframe, or `last` (instant start).
    pub join: JoinAt,
    /// Seconds without a request or RTCP report before a session ends.
    pub session_timeout: f64,
    /// Seconds a client may leave a picture unread in its socket before it is
    /// disconnected (stuck clients).
    pub write_timeout: f64,
    /// Most sessions at once (more are answered 503).
    pub max_clients: usize,
    /// UDP port of RTP (RTCP on the next); 0: any free pair.
    pub udp_port: u16,
    /// Multicast group of the first stream sent by multicast (each next
    /// stream takes the next port pair in the same group).
    pub multicast_group: Ipv4Addr,
    /// Its first RTP port.
    pub multicast_port: u16,
    /// Its time to live (router hops).
    pub multicast_ttl: u8,
}

impl Default for RtspServerOptions {
    fn default() -> Self {
        RtspServerOptions {
            enabled: true,
            listen: "127.0.0.1:8554".into(),
            tls: false,
            streams: Vec::new(),
            mtu: DEFAULT_MTU,
            join: JoinAt::Next,
            session_timeout: 60.0,
            write_timeout: 10.0,
            max_clients: 1000,
            udp_port: 0,
            multicast_group: Ipv4Addr::new(239, 255, 42, 1),
            multicast_port: 16_000,
            multicast_ttl: 1,
        }
    }
}

impl RtspServerOptions {
    /// Checks values beyond their types: (key, message).
    pub fn check(&self, users: &[User]) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_owned(), m));
        if !self.enabled {
            return Ok(());
        }
        super::check_listen(&self.listen, users, "127.0.0.1:8554").map_err(|m| ("listen".to_owned(), m))?;
        if self.mtu < MIN_MTU || self.mtu > 65_000 {
            return err("mtu", format!("{} is outside {MIN_MTU}..=65000", self.mtu));
        }
        for (key, v) in [
            ("session_timeout", self.session_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return err(key, format!("{v} is not a positive number of seconds"));
            }
        }
        if self.max_clients == 0 {
            return err("max_clients", "must be at least 1".into());
        }
        if self.udp_port % 2 == 1 || self.udp_port == u16::MAX - 1 {
            return err("udp_port", format!("{} is not an even port below 65534", self.udp_port));
        }
        if !self.multicast_group.is_multicast() || self.multicast_port % 2 == 1 {
            return err(
                "multicast_group",
                "the group must be a multicast address and multicast_port even".into(),
            );
        }
        Ok(())
    }
}

/// Why a stream is not served to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such stream (404).
    NotFound(String),
    /// The user may not read it (403).
    Forbidden(String),
}

/// The server's access to streams: the one door readers open.
pub trait Streams: Send + Sync + 'static {
    /// A reader of `stream` for `user` (`None`: anonymous).
    fn open(&self, user: Option<&str>, stream: &str) -> Result<Subscription, Refusal>;
    /// Whether `user` may read `stream` (and it is published).
    fn check(&self, user: Option<&str>, stream: &str) -> Result<(), Refusal>;
}

/// Counters of one client (session).
#[derive(Debug)]
struct ClientCounters {
    id: u64,
    peer: SocketAddr,
    user: Option<String>,
    stream: String,
    /// The SSRC its reports are about (its stream's).
    ssrc: u32,
    transport: &'static str,
    since: Instant,
    packets: AtomicU64,
    bytes: AtomicU64,
    /// Pictures skipped because the client fell behind.
    dropped: AtomicU64,
    report: Mutex<Option<ReceptionReport>>,
    /// Last request or RTCP report, ms since `since`.
    seen_ms: AtomicU64,
}

impl ClientCounters {
    fn touch(&self) {
        self.seen_ms
            .store(self.since.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        self.since
            .elapsed()
            .saturating_sub(Duration::from_millis(self.seen_ms.load(Ordering::Relaxed)))
    }
}

/// Stats of one client.
#[derive(Clone, Debug, Serialize)]
pub struct RtspClientStats {
    /// Session number (in order of arrival).
    pub id: u64,
    /// Its address.
    pub peer: String,
    /// The user it signed in as.
    pub user: Option<String>,
    /// The stream.
    pub stream: String,
    /// `udp`, `tcp` or `multicast`.
    pub transport: &'static str,
    /// Seconds connected.
    pub seconds: f64,
    /// RTP packets sent.
    pub packets: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Pictures skipped because it fell behind.
    pub dropped: u64,
    /// Its last RTCP receiver report.
    pub report: Option<ReceptionReport>,
}

/// Stats of one served stream.
#[derive(Clone, Debug, Serialize)]
pub struct RtspStreamStats {
    /// The stream.
    pub name: String,
    /// Clients attached.
    pub clients: usize,
    /// Pictures packetized (once for all clients).
    pub pictures: u64,
    /// RTP packets made.
    pub packets: u64,
    /// Bytes made.
    pub bytes: u64,
    /// Pictures that could not be packetized.
    pub errors: u64,
}

/// Stats of the RTSP server.
#[derive(Clone, Debug, Serialize)]
pub struct RtspStats {
    /// The address it listens on.
    pub address: String,
    /// Connections accepted.
    pub connections: u64,
    /// Requests refused for missing or wrong credentials.
    pub auth_failures: u64,
    /// Clients disconnected because they did not read.
    pub stuck: u64,
    /// TLS handshakes that failed or did not end in time.
    pub handshakes_failed: u64,
    /// Sessions now.
    pub clients: Vec<RtspClientStats>,
    /// Streams being served.
    pub streams: Vec<RtspStreamStats>,
}

struct Shared {
    options: RtspServerOptions,
    tls: Option<TlsAcceptor>,
    auth: Arc<Authenticator>,
    streams: Arc<dyn Streams>,
    feeds: Arc<Feeds>,
    local: SocketAddr,
    /// Server RTP and RTCP sockets for UDP unicast.
    udp: (UdpSocket, Arc<tokio::net::UdpSocket>),
    clients: Mutex<HashMap<u64, Arc<ClientCounters>>>,
    /// Clients by the address their RTCP comes from.
    rtcp_peers: Mutex<HashMap<SocketAddr, Arc<ClientCounters>>>,
    multicast_ports: Mutex<HashMap<String, u16>>,
    /// Multicast senders by stream: (sessions holding it, its task).
    multicast: Mutex<HashMap<String, (usize, Option<tokio::task::AbortHandle>)>>,
    next_id: AtomicU64,
    connections: AtomicU64,
    auth_failures: AtomicU64,
    stuck: AtomicU64,
    handshakes_failed: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn stats(&self) -> RtspStats {
        let mut clients: Vec<RtspClientStats> = lock(&self.clients)
            .values()
            .map(|c| RtspClientStats {
                id: c.id,
                peer: c.peer.to_string(),
                user: c.user.clone(),
                stream: c.stream.clone(),
                transport: c.transport,
                seconds: c.since.elapsed().as_secs_f64(),
                packets: c.packets.load(Ordering::Relaxed),
                bytes: c.bytes.load(Ordering::Relaxed),
                dropped: c.dropped.load(Ordering::Relaxed),
                report: *lock(&c.report),
            })
            .collect();
        clients.sort_by_key(|c| c.id);
        RtspStats {
            address: self.local.to_string(),
            connections: self.connections.load(Ordering::Relaxed),
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            stuck: self.stuck.load(Ordering::Relaxed),
            handshakes_failed: self.handshakes_failed.load(Ordering::Relaxed),
            clients,
            streams: self
                .feeds
                .all()
                .iter()
                .map(|f| RtspStreamStats {
                    name: f.name.clone(),
                    clients: f.clients(),
                    pictures: f.counters.pictures.load(Ordering::Relaxed),
                    packets: f.counters.packets.load(Ordering::Relaxed),
                    bytes: f.counters.bytes.load(Ordering::Relaxed),
                    errors: f.counters.errors.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }

    /// The multicast port pair of `stream` (allocated once per stream).
    fn multicast_port(&self, stream: &str) -> u16 {
        let mut ports = lock(&self.multicast_ports);
        let next = self.options.multicast_port.wrapping_add(2 * ports.len() as u16);
        *ports.entry(stream.to_owned()).or_insert(next)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running RTSP server.
pub struct RtspServer {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

/// Binds an even/odd UDP port pair on `ip` (`port` 0: any free pair).
fn bind_pair(ip: IpAddr, port: u16) -> std::io::Result<(UdpSocket, UdpSocket)> {
    if port != 0 {
        return Ok((UdpSocket::bind((ip, port))?, UdpSocket::bind((ip, port + 1))?));
    }
    for _ in 0..64 {
        let a = UdpSocket::bind((ip, 0))?;
        let p = a.local_addr()?.port();
        if p % 2 == 0
            && p < u16::MAX
            && let Ok(b) = UdpSocket::bind((ip, p + 1))
        {
            return Ok((a, b));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free even/odd UDP port pair",
    ))
}

impl RtspServer {
    /// Binds the listener and its UDP ports and starts serving on
    /// `runtime`; RTSPS through `tls`.
    pub fn start(
        options: RtspServerOptions,
        tls: Option<TlsAcceptor>,
        auth: Arc<Authenticator>,
        streams: Arc<dyn Streams>,
        runtime: &tokio::runtime::Handle,
    ) -> std::io::Result<RtspServer> {
        let addr: SocketAddr = options
            .listen
            .parse()
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad listen address"))?;
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let (rtp, rtcp) = bind_pair(local.ip(), options.udp_port)?;
        // Every UDP client shares this socket: room for a keyframe (or a
        // joining client's GOP) to many clients at once.
        let _ = super::set_send_buffer(&rtp, 8 << 20);
        rtp.set_nonblocking(true)?;
        rtcp.set_nonblocking(true)?;
        let _guard = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let rtcp = Arc::new(tokio::net::UdpSocket::from_std(rtcp)?);
        let (stop, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            feeds: Feeds::new(FeedOptions { mtu: options.mtu }),
            options,
            tls,
            auth,
            streams,
            local,
            udp: (rtp, Arc::clone(&rtcp)),
            clients: Mutex::new(HashMap::new()),
            rtcp_peers: Mutex::new(HashMap::new()),
            multicast_ports: Mutex::new(HashMap::new()),
            multicast: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            connections: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            stuck: AtomicU64::new(0),
            handshakes_failed: AtomicU64::new(0),
            shutdown,
        });
        runtime.spawn(accept(Arc::clone(&shared), listener));
        runtime.spawn(receive_rtcp(Arc::clone(&shared), rtcp));
        Ok(RtspServer { shared, stop })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// The URL of `stream` here (`rtsps://` over TLS).
    pub fn url(&self, stream: &str) -> String {
        let scheme = if self.shared.tls.is_some() { "rtsps" } else { "rtsp" };
        format!("{scheme}://{}/{stream}", self.shared.local)
    }

    /// Its stats now.
    pub fn stats(&self) -> RtspStats {
        self.shared.stats()
    }

    /// Closes every connection and stops listening.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((socket, peer)) => {
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let _ = socket.set_nodelay(true);
                tokio::spawn(open(Arc::clone(&shared), socket, peer));
            }
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!("RTSP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one accepted connection: as it is, or after its TLS handshake
/// (bounded by the session timeout).
async fn open(shared: Arc<Shared>, socket: tokio::net::TcpStream, peer: SocketAddr) {
    let Some(tls) = &shared.tls else {
        let (rd, wr) = socket.into_split();
        return conn::serve(shared, rd, wr, peer, false).await;
    };
    let timeout = Duration::from_secs_f64(shared.options.session_timeout.min(10.0));
    match Wire::accept(socket, Some(tls), timeout).await {
        Ok(wire) => {
            let (rd, wr) = tokio::io::split(wire);
            conn::serve(shared, rd, wr, peer, true).await;
        }
        Err(e) => {
            shared.handshakes_failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "RTSPS handshake failed: {e}");
        }
    }
}

/// Receiver reports of UDP clients, on the server's RTCP port.
async fn receive_rtcp(shared: Arc<Shared>, socket: Arc<tokio::net::UdpSocket>) {
    let mut shutdown = shared.shutdown.clone();
    let mut buf = vec![0u8; 2048];
    loop {
        let got = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = shutdown.changed() => return,
        };
        let Ok((n, from)) = got else { continue };
        let Some(client) = lock(&shared.rtcp_peers).get(&from).cloned() else {
            continue;
        };
        client.touch();
        if let Some(report) = super::rtcp::reception_report(&buf[..n], client.ssrc) {
            *lock(&client.report) = Some(report);
        }
    }
}
