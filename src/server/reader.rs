//! Who reads a stream, and over what: the arguments of
//! [`Server::open_reader`](super::Server::open_reader), the one door every
//! serving layer opens readers through.

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Principal {
    /// A client that has not signed in.
    Anonymous,
    /// A signed-in user.
    User(String),
    /// The server itself (snapshots on request, its own nodes).
    Internal,
    /// The product that embeds the crate.
    Embedded,
}

/// The protocol a reader serves a stream over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// RTSP, and RTP pushed over UDP.
    Rtsp,
    /// HLS and LL-HLS.
    Hls,
    /// fMP4 over WebSocket.
    WebSocket,
    /// MJPEG over HTTP.
    Mjpeg,
    /// WebRTC.
    WebRtc,
    /// The control API (snapshots, downloads).
    Api,
    /// The embedding product's own code.
    Embedded,
}

impl Protocol {
    /// Its name in events and stats.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Rtsp => "rtsp",
            Protocol::Hls => "hls",
            Protocol::WebSocket => "websocket",
            Protocol::Mjpeg => "mjpeg",
            Protocol::WebRtc => "webrtc",
            Protocol::Api => "api",
            Protocol::Embedded => "embedded",
        }
    }
}
