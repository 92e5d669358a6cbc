//! The guarded transport between retina and a camera: retina connects to a
//! relay on 127.0.0.1, and the relay passes every byte on both ways after
//! [`super::guard`]'s checks — so no camera can make retina buffer more than
//! one bounded RTSP message or one bounded picture.
//!
//! Why a relay: retina 0.4 connects its own sockets and offers no limit on
//! its message parser, and its depacketizers' `push` is crate-private, so
//! its input can only be bounded before it reaches retina's sockets. The
//! cost is one loopback hop per byte (kernel copies, not counted as pixel
//! copies; a 4 Mbit/s camera is 0.5 MB/s through it).
//!
//! TCP-interleaved RTP (RFC 2326 §10.12) is checked on the RTSP connection:
//! the channels `SETUP` answers name are guarded per picture. For UDP
//! transport (§12.39) the relay takes the RTP/RTCP port pairs in between:
//! `SETUP` asks the camera to send to the relay's own pair (bound on the
//! address the camera connection leaves from), and the answer tells retina
//! that the server sits at a relay pair on 127.0.0.1, which forwards RTP
//! (checked) and RTCP to retina's ports and retina's packets back.
//!
//! A breach, or a camera connection lost, is kept as the session's cause
//! ([`Relay::cause`]); the relay then closes both sides, so retina fails at
//! once and the cause names the limit rather than retina's "connection closed".

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::Failure;
use super::guard::{self, Deframer, GuardError, PictureGuard, Transport, Unit};

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 16 * 1024;
/// The largest UDP datagram.
const DATAGRAM: usize = 65_536;

/// What every connection of one relay shares.
struct Shared {
    camera: (String, u16),
    /// The picture limit in payload bytes (lowered once the picture size is known).
    picture_limit: Arc<AtomicUsize>,
    /// The first reason a connection was cut.
    cause: Mutex<Option<(Failure, String)>>,
}

impl Shared {
    fn fail(&self, failure: Failure, cause: String) {
        self.cause.lock().unwrap().get_or_insert((failure, cause));
    }
}

/// A relay serving one camera session; dropping it ends every connection.
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Relay {
    /// Connects to the camera at `host:port` (the error is the connection's)
    /// and starts listening for retina on 127.0.0.1. Must run inside a tokio runtime.
    pub async fn start(host: &str, port: u16, picture_limit: Arc<AtomicUsize>) -> std::io::Result<Relay> {
        let first = TcpStream::connect((host, port)).await?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            camera: (host.to_string(), port),
            picture_limit,
            cause: Mutex::new(None),
        });
        let accept = tokio::spawn(accept(listener, first, Arc::clone(&shared))).abort_handle();
        Ok(Relay { addr, shared, accept })
    }

    /// Where retina connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Why the relay cut a connection, if it did.
    pub fn cause(&self) -> Option<(Failure, String)> {
        self.shared.cause.lock().unwrap().clone()
    }
}

/// Accepts retina's connections (the session's, then any it opens to send
/// `TEARDOWN`) and relays each; the first uses the connection already made.
async fn accept(listener: TcpListener, first: TcpStream, shared: Arc<Shared>) {
    let mut first = Some(first);
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((client, _)) = listener.accept().await {
        let shared = Arc::clone(&shared);
        let camera = first.take();
        connections.spawn(async move {
            let camera = match camera {
                Some(c) => c,
                None => match TcpStream::connect((shared.camera.0.as_str(), shared.camera.1)).await {
                    Ok(c) => c,
                    Err(e) => return shared.fail(Failure::of_io(&e), format!("cannot connect to the camera: {e}")),
                },
            };
            Connection::run(client, camera, shared).await;
        });
        // Reap the finished ones so a long session holds none of them.
        while connections.try_join_next().is_some() {}
    }
}

/// One relayed RTSP connection and the UDP forwarders its `SETUP`s made.
struct Connection {
    shared: Arc<Shared>,
    /// IP of this side of the camera connection, and the camera's.
    local_ip: IpAddr,
    camera_ip: IpAddr,
    /// UDP `SETUP` requests awaiting their answer: CSeq, retina's RTP port,
    /// the relay's pair facing the camera.
    pending: Mutex<Vec<(String, u16, UdpPair)>>,
    tasks: Mutex<Vec<AbortHandle>>,
    done: Notify,
}

type UdpPair = (Arc<UdpSocket>, Arc<UdpSocket>);

impl Connection {
    async fn run(client: TcpStream, camera: TcpStream, shared: Arc<Shared>) {
        let (Ok(local), Ok(peer)) = (camera.local_addr(), camera.peer_addr()) else {
            return;
        };
        let conn = Arc::new(Connection {
            shared,
            local_ip: local.ip(),
            camera_ip: peer.ip(),
            pending: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
            done: Notify::new(),
        });
        // Either side ending, a forwarder failing, or the relay dropped (this
        // future with it) ends every task of the connection: its sockets close.
        struct AbortAll(Arc<Connection>);
        impl Drop for AbortAll {
            fn drop(&mut self) {
                for task in self.0.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
                    task.abort();
                }
            }
        }
        let _abort = AbortAll(Arc::clone(&conn));
        let (client_rx, client_tx) = client.into_split();
        let (camera_rx, camera_tx) = camera.into_split();
        conn.spawn(Arc::clone(&conn).to_camera(client_rx, camera_tx));
        conn.spawn(Arc::clone(&conn).from_camera(camera_rx, client_tx));
        conn.done.notified().await;
    }

    /// Runs `work` as a task of this connection; its error is the cause.
    fn spawn(self: &Arc<Self>, work: impl Future<Output = Result<(), Cut>> + Send + 'static) {
        let conn = Arc::clone(self);
        let handle = tokio::spawn(async move {
            if let Err((failure, cause)) = work.await {
                conn.shared.fail(failure, cause);
            }
            conn.done.notify_one();
        });
        self.tasks.lock().unwrap().push(handle.abort_handle());
    }

    /// retina → camera. UDP `SETUP`s are sent asking for the relay's ports.
    async fn to_camera(self: Arc<Self>, mut rx: OwnedReadHalf, mut tx: OwnedWriteHalf) -> Result<(), Cut> {
        let mut deframer = Deframer::default();
        loop {
            match deframer.unit() {
                Err(e) => return Err((Failure::Protocol, format!("retina's request: {e}"))),
                Ok(Some(Unit::Interleaved { frame, .. })) => write(&mut tx, &frame, "camera").await?,
                Ok(Some(Unit::Message(m))) => {
                    let m = self
                        .request(m)
                        .await
                        .map_err(|e| (Failure::Closed, format!("relaying UDP: {e}")))?;
                    write(&mut tx, &m, "camera").await?;
                }
                Ok(None) => {
                    if !read(&mut rx, &mut deframer)
                        .await
                        .map_err(|e| (Failure::Closed, format!("retina: {e}")))?
                    {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// camera → retina, under the guard's limits.
    async fn from_camera(self: Arc<Self>, mut rx: OwnedReadHalf, mut tx: OwnedWriteHalf) -> Result<(), Cut> {
        let mut deframer = Deframer::default();
        let mut channels: Vec<(u8, PictureGuard)> = Vec::new();
        loop {
            let unit = deframer.unit().map_err(cut)?;
            match unit {
                Some(Unit::Interleaved { channel, frame }) => {
                    if let Some((_, guard)) = channels.iter_mut().find(|(c, _)| *c == channel) {
                        guard
                            .packet(&frame[4..], self.shared.picture_limit.load(Ordering::Relaxed))
                            .map_err(cut)?;
                    }
                    write(&mut tx, &frame, "retina").await?;
                }
                Some(Unit::Message(m)) => {
                    let transport = guard::header(guard::head(&m), "transport").map(Transport::parse);
                    if let Some(channel) = transport.as_ref().and_then(|t| t.interleaved)
                        && !channels.iter().any(|(c, _)| *c == channel)
                    {
                        channels.push((channel, PictureGuard::default()));
                    }
                    let m = self
                        .response(m)
                        .await
                        .map_err(|e| (Failure::Closed, format!("relaying UDP: {e}")))?;
                    write(&mut tx, &m, "retina").await?;
                }
                None => {
                    let more = read(&mut rx, &mut deframer)
                        .await
                        .map_err(|e| (Failure::Closed, format!("reading from the camera: {e}")))?;
                    if !more {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// A request from retina; a UDP `SETUP` gets the relay's camera-facing ports.
    async fn request(&self, m: Bytes) -> std::io::Result<Bytes> {
        let head = guard::head(&m);
        let (Some(value), Some(cseq)) = (guard::header(head, "transport"), guard::header(head, "cseq")) else {
            return Ok(m);
        };
        let Some(retina_port) = Transport::parse(value).client_port else {
            return Ok(m);
        };
        let pair = udp_pair(self.local_ip).await?;
        let port = pair.0.local_addr()?.port();
        let rewritten = with_transport(&m, &Transport::rewrite(value, Some(port), None));
        self.pending.lock().unwrap().push((cseq.to_string(), retina_port, pair));
        Ok(rewritten)
    }

    /// A response from the camera; the answer to a UDP `SETUP` starts the
    /// forwarders and tells retina the server is the relay's retina-facing pair.
    async fn response(self: &Arc<Self>, m: Bytes) -> std::io::Result<Bytes> {
        let head = guard::head(&m);
        let Some(cseq) = guard::header(head, "cseq") else {
            return Ok(m);
        };
        let found = {
            let mut pending = self.pending.lock().unwrap();
            let i = pending.iter().position(|(c, ..)| c == cseq);
            i.map(|i| pending.swap_remove(i))
        };
        let Some((_, retina_port, (camera_rtp, camera_rtcp))) = found else {
            return Ok(m);
        };
        let Some(value) = guard::header(head, "transport") else {
            return Ok(m);
        };
        let t = Transport::parse(value);
        let Some(server_port) = t.server_port else {
            return Ok(m);
        };
        let source = t.source.unwrap_or(self.camera_ip);
        camera_rtp.connect((source, server_port)).await?;
        camera_rtcp.connect((source, server_port.wrapping_add(1))).await?;
        let (retina_rtp, retina_rtcp) = udp_pair(IpAddr::V4(Ipv4Addr::LOCALHOST)).await?;
        retina_rtp.connect((Ipv4Addr::LOCALHOST, retina_port)).await?;
        retina_rtcp
            .connect((Ipv4Addr::LOCALHOST, retina_port.wrapping_add(1)))
            .await?;
        let relay_port = retina_rtp.local_addr()?.port();
        let limit = Arc::clone(&self.shared.picture_limit);
        let mut guard = PictureGuard::default();
        let check = move |p: &[u8]| guard.packet(p, limit.load(Ordering::Relaxed)).map_err(cut);
        self.spawn_forward(Arc::clone(&camera_rtp), Arc::clone(&retina_rtp), check);
        self.spawn_forward(retina_rtp, camera_rtp, |_| Ok(()));
        self.spawn_forward(Arc::clone(&camera_rtcp), Arc::clone(&retina_rtcp), |_| Ok(()));
        self.spawn_forward(retina_rtcp, camera_rtcp, |_| Ok(()));
        Ok(with_transport(
            &m,
            &Transport::rewrite(value, Some(retina_port), Some(relay_port)),
        ))
    }

    fn spawn_forward(
        self: &Arc<Self>,
        from: Arc<UdpSocket>,
        to: Arc<UdpSocket>,
        mut check: impl FnMut(&[u8]) -> Result<(), Cut> + Send + 'static,
    ) {
        let work = async move {
            let mut buf = vec![0; DATAGRAM];
            loop {
                let n = match from.recv(&mut buf).await {
                    Ok(n) => n,
                    // An ICMP "port unreachable" for an earlier send: not this socket's end.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err((Failure::Closed, format!("UDP: {e}"))),
                };
                check(&buf[..n])?;
                if let Err(e) = to.send(&buf[..n]).await
                    && e.kind() != std::io::ErrorKind::ConnectionRefused
                {
                    return Err((Failure::Closed, format!("UDP: {e}")));
                }
            }
        };
        self.spawn(work);
    }
}

/// Reads what the socket has into the deframer's buffer; `false` at the end of the stream.
async fn read(rx: &mut OwnedReadHalf, deframer: &mut Deframer) -> std::io::Result<bool> {
    let buf = deframer.buffer();
    buf.reserve(READ_CHUNK);
    let mut limited = (&mut *rx).take(READ_CHUNK as u64);
    Ok(limited.read_buf(buf).await? > 0)
}

async fn write(tx: &mut OwnedWriteHalf, data: &[u8], to: &str) -> Result<(), Cut> {
    tx.write_all(data)
        .await
        .map_err(|e| (Failure::Closed, format!("writing to {to}: {e}")))
}

/// Why the relay cut a connection.
type Cut = (Failure, String);

/// A limit the camera broke (or a message that is not RTSP).
fn cut(e: GuardError) -> Cut {
    let failure = match e {
        GuardError::BadContentLength { .. } => Failure::Protocol,
        GuardError::MessageTooLarge { .. } | GuardError::PictureTooLarge { .. } => Failure::Limit,
    };
    (failure, e.to_string())
}

/// The message with its `Transport` header set to `value`.
fn with_transport(m: &[u8], value: &str) -> Bytes {
    guard::with_header(m, "transport", value).map_or_else(|| Bytes::copy_from_slice(m), Bytes::from)
}

/// Two UDP sockets on `ip` at an even port and the next (RTP and RTCP, RFC 3550 §11).
async fn udp_pair(ip: IpAddr) -> std::io::Result<UdpPair> {
    let mut last = None;
    for _ in 0..64 {
        let rtp = std::net::UdpSocket::bind((ip, 0))?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 {
            continue;
        }
        match std::net::UdpSocket::bind((ip, port + 1)) {
            Ok(rtcp) => {
                let wrap = |s: std::net::UdpSocket| {
                    s.set_nonblocking(true)?;
                    UdpSocket::from_std(s).map(Arc::new)
                };
                return Ok((wrap(rtp)?, wrap(rtcp)?));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("no free even/odd UDP port pair on {ip}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_pairs_are_an_even_port_and_the_next() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (rtp, rtcp) = rt.block_on(udp_pair(IpAddr::V4(Ipv4Addr::LOCALHOST))).unwrap();
        let port = rtp.local_addr().unwrap().port();
        assert_eq!(port % 2, 0);
        assert_eq!(rtcp.local_addr().unwrap().port(), port + 1);
    }
}
