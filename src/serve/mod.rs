//! Serving streams to clients: work common to every client is done once per
//! stream and shared as [`bytes::Bytes`] (DESIGN.md, "Serving").
//!
//! - [`rtp`]: RTP packetizers for H.264 (RFC 6184), H.265 (RFC 7798) and
//!   JPEG (RFC 2435), sans-IO;
//! - [`rtcp`]: sender and receiver reports (RFC 3550 §6);
//! - [`sdp`]: session descriptions (RFC 8866);
//! - [`feed`]: one stream packetized once for all its clients;
//! - [`rtsp`]: the RTSP server (RFC 2326);
//! - [`push`]: RTP/UDP push with an SDP file;
//! - [`udp`]: datagrams sent from a head and a shared body;
//! - [`cmaf`]: one stream as CMAF chunks (fMP4), sans-IO;
//! - [`clip`]: a time range of recordings as one MP4, remuxed;
//! - [`hls`]: HLS and LL-HLS segments, parts and playlists, sans-IO;
//! - [`live`]: one stream fragmented once for every HTTP client;
//! - [`demand`]: per-stream work started on demand and ended when idle;
//! - [`http`]: the HTTP listener (page, HLS, WebSocket, MJPEG, snapshots);
//! - [`auth`]: users, roles, grants, passwords and tokens, for every listener.
//! - [`tls`]: HTTPS and RTSPS certificates, TLS clients, `eyrie cert`.

pub mod auth;
pub mod clip;
pub mod cmaf;
pub mod demand;
pub mod feed;
pub mod hls;
pub mod http;
pub mod live;
pub mod push;
pub mod rtcp;
pub mod rtp;
pub mod rtsp;
pub mod sdp;
pub mod tls;
pub mod udp;

/// Checks a listener's `listen` address (an address and port like
/// `example`): anything but loopback needs `users`, so that no stream is
/// reachable from other machines without signing in.
pub(crate) fn check_listen(listen: &str, users: &[auth::User], example: &str) -> Result<(), String> {
    let Ok(addr) = listen.parse::<std::net::SocketAddr>() else {
        return Err(format!("`{listen}` is not an address and port like {example}"));
    };
    if !addr.ip().is_loopback() && users.is_empty() {
        return Err(format!(
            "{addr} is reachable from other machines: add [[server.users]] first (or listen on 127.0.0.1)"
        ));
    }
    Ok(())
}

/// Asks for a send buffer of `bytes` on `socket` (the kernel caps it at `wmem_max`).
pub(crate) fn set_send_buffer(socket: &impl std::os::fd::AsRawFd, bytes: libc::c_int) -> std::io::Result<()> {
    // SAFETY: a valid socket and a c_int option value that lives for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
