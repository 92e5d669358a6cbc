//! RTSP 1.0 requests and responses as the server sees them (RFC 2326 §6,
//! §7, §12), sans-IO: a framed request ([`crate::capture::rtsp::guard::Deframer`]
//! bounds and frames the bytes) parsed into its method, URL and headers, the
//! `Transport` header a client offers (§12.39), and responses written out.

use std::fmt::Write;
use std::net::IpAddr;

/// A status and the reason phrase RFC 2326 §7.1.1 gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub u16);

impl Status {
    /// 200.
    pub const OK: Status = Status(200);
    /// 400.
    pub const BAD_REQUEST: Status = Status(400);
    /// 401.
    pub const UNAUTHORIZED: Status = Status(401);
    /// 403.
    pub const FORBIDDEN: Status = Status(403);
    /// 404.
    pub const NOT_FOUND: Status = Status(404);
    /// 405.
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    /// 415.
    pub const UNSUPPORTED_MEDIA_TYPE: Status = Status(415);
    /// 454.
    pub const SESSION_NOT_FOUND: Status = Status(454);
    /// 459.
    pub const AGGREGATE_NOT_ALLOWED: Status = Status(459);
    /// 461.
    pub const UNSUPPORTED_TRANSPORT: Status = Status(461);
    /// 500.
    pub const INTERNAL: Status = Status(500);
    /// 503.
    pub const UNAVAILABLE: Status = Status(503);
    /// 505.
    pub const VERSION_NOT_SUPPORTED: Status = Status(505);

    /// The reason phrase.
    pub fn reason(self) -> &'static str {
        match self.0 {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            415 => "Unsupported Media Type",
            454 => "Session Not Found",
            459 => "Aggregate Operation Not Allowed",
            461 => "Unsupported Transport",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            505 => "RTSP Version Not Supported",
            _ => "Error",
        }
    }
}

/// The methods the server implements.
pub const METHODS: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent.
    pub method: String,
    /// The request URL, as sent.
    pub url: String,
    /// `CSeq`, echoed in the response.
    pub cseq: Option<String>,
    /// Every header, in order (names as sent).
    pub headers: Vec<(String, String)>,
}

/// Why a request cannot be parsed; answered with its status and then the
/// connection is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRequest {
    /// 400 or 505.
    pub status: Status,
    /// What was wrong, for the response body and the log.
    pub message: String,
}

impl Request {
    /// Parses a whole message (start line, headers, optional body).
    pub fn parse(message: &[u8]) -> Result<Request, BadRequest> {
        let bad = |m: &str| BadRequest {
            status: Status::BAD_REQUEST,
            message: m.to_owned(),
        };
        let head = crate::capture::rtsp::guard::head(message);
        let text = std::str::from_utf8(head).map_err(|e| BadRequest {
            status: Status::BAD_REQUEST,
            message: format!("the request is not UTF-8 (byte {})", e.valid_up_to()),
        })?;
        let mut lines = text.lines();
        let start = lines.next().unwrap_or_default();
        let mut parts = start.split(' ');
        let (Some(method), Some(url), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("the request line is not `METHOD URL RTSP/1.0`"));
        };
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-') {
            return Err(bad("the method is not a token of capital letters"));
        }
        if version != "RTSP/1.0" {
            return Err(BadRequest {
                status: Status::VERSION_NOT_SUPPORTED,
                message: format!(
                    "version `{}` (RTSP/1.0 is served)",
                    version.chars().take(16).collect::<String>()
                ),
            });
        }
        let mut headers = Vec::new();
        for line in lines.take_while(|l| !l.is_empty()) {
            let Some((name, value)) = line.split_once(':') else {
                return Err(bad("a header line without a colon"));
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(bad("a header name with white space"));
            }
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let cseq = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("cseq"))
            .map(|(_, v)| v.clone());
        Ok(Request {
            method: method.to_owned(),
            url: url.to_owned(),
            cseq,
            headers,
        })
    }

    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The session id the request names (without `;timeout=`).
    pub fn session(&self) -> Option<&str> {
        self.header("session")
            .map(|s| s.split(';').next().unwrap_or_default().trim())
    }

    /// The URL's path without a leading `/`, query or fragment: what names
    /// the stream (and track). `*` for a request about the server.
    pub fn path(&self) -> &str {
        if self.url == "*" {
            return "*";
        }
        let path = split_url(&self.url).map_or(self.url.as_str(), |(_, _, path)| path);
        path.split(['?', '#'])
            .next()
            .unwrap_or_default()
            .trim_start_matches('/')
    }

    /// The URL for logs and responses: without user information.
    pub fn url_for_log(&self) -> String {
        match split_url(&self.url) {
            Some((scheme, host, path)) => format!("{scheme}://{host}{path}"),
            None => self.url.clone(),
        }
    }

    /// The base URL of `stream` as this request reached it
    /// (`rtsp://host:port/stream/`, without user information); `fallback`
    /// is the host when the request URL is not absolute.
    pub fn base_url(&self, stream: &str, fallback: &str) -> String {
        match split_url(&self.url) {
            Some((scheme, host, _)) => format!("{scheme}://{host}/{stream}/"),
            None => format!("rtsp://{fallback}/{stream}/"),
        }
    }
}

/// An absolute URL's scheme, host (with port) and path (from its `/`), its
/// user information left out. A password may hold an unencoded `/`, so the
/// user information ends at the last `@` that has a path after it (stream
/// names never hold `@` or `/`).
pub(crate) fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let rest = match rest.rfind('@') {
        Some(at) if rest[at + 1..].contains('/') || !rest[..at].contains('/') => &rest[at + 1..],
        _ => rest,
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    Some((scheme, &rest[..host_end], &rest[host_end..]))
}

/// The stream a path names and whether it names its track: `cam0`,
/// `cam0/`, `cam0/trackID=0`.
pub fn stream_of(path: &str) -> (&str, bool) {
    let path = path.trim_end_matches('/');
    match path.rsplit_once('/') {
        Some((stream, track)) if track.starts_with("trackID=") => (stream, true),
        _ => (path, false),
    }
}

/// How a client asks to receive a stream (RFC 2326 §12.39).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offer {
    /// RTP over UDP to the client's `client_port` pair.
    Udp {
        /// Its RTP port (RTCP is the next).
        rtp: u16,
        /// Its RTCP port.
        rtcp: u16,
    },
    /// RTP over UDP multicast to the server's group.
    Multicast,
    /// RTP interleaved in the RTSP connection on these channels.
    Tcp {
        /// The RTP channel.
        rtp: u8,
        /// The RTCP channel.
        rtcp: u8,
    },
}

/// Picks the first transport of a `Transport` header the server can give
/// `peer`; `None` when none (461). A `destination` other than the peer's own
/// address is refused (a server must not be made to send media elsewhere),
/// as are `mode=record` and odd or zero ports. With `interleaved_only`
/// (RTSPS: media stay inside the TLS connection) only RTP/AVP/TCP is taken.
pub fn pick_transport(value: &str, peer: IpAddr, interleaved_only: bool) -> Option<Offer> {
    value.split(',').find_map(|spec| {
        let mut params = spec.split(';').map(str::trim);
        let profile = params.next()?.to_ascii_uppercase();
        let tcp = match profile.as_str() {
            "RTP/AVP" | "RTP/AVP/UDP" if !interleaved_only => false,
            "RTP/AVP/TCP" => true,
            _ => return None,
        };
        let (mut multicast, mut client_port, mut interleaved, mut elsewhere) = (false, None, None, false);
        for p in params {
            let (key, v) = p.split_once('=').unwrap_or((p, ""));
            let pair = || -> Option<(u16, u16)> {
                let (a, b) = v.split_once('-').unwrap_or((v, ""));
                let a: u16 = a.trim().parse().ok()?;
                let b = if b.is_empty() {
                    a.checked_add(1)?
                } else {
                    b.trim().parse().ok()?
                };
                Some((a, b))
            };
            match key.to_ascii_lowercase().as_str() {
                "multicast" => multicast = true,
                "unicast" => multicast = false,
                "client_port" => client_port = Some(pair()?),
                "interleaved" => interleaved = Some(pair()?),
                "destination" if !v.is_empty() => elsewhere = v.trim().parse::<IpAddr>().ok() != Some(peer),
                "mode" if !v.trim_matches('"').eq_ignore_ascii_case("play") => return None,
                _ => {}
            }
        }
        match (tcp, multicast) {
            // Unicast media only ever goes to the client's own address; the
            // multicast group is the server's to choose.
            (_, false) if elsewhere => None,
            (true, _) => {
                let (rtp, rtcp) = interleaved.unwrap_or((0, 1));
                let ok = rtp <= 254 && rtp + 1 == rtcp;
                ok.then_some(Offer::Tcp {
                    rtp: rtp as u8,
                    rtcp: rtcp as u8,
                })
            }
            (false, true) => Some(Offer::Multicast),
            (false, false) => {
                let (rtp, rtcp) = client_port?;
                (rtp != 0 && rtcp != 0 && rtp != rtcp).then_some(Offer::Udp { rtp, rtcp })
            }
        }
    })
}

/// A response being written.
#[derive(Clone, Debug)]
pub struct Response {
    /// Its status.
    pub status: Status,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// A response with `status`, echoing `cseq`.
    pub fn new(status: Status, cseq: Option<&str>) -> Response {
        let mut r = Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        };
        if let Some(c) = cseq {
            r = r.header("CSeq", c);
        }
        r.header("Server", concat!("eyrie/", env!("CARGO_PKG_VERSION")))
    }

    /// An error response whose body says what went wrong.
    pub fn error(status: Status, cseq: Option<&str>, message: &str) -> Response {
        Response::new(status, cseq).body("text/plain", format!("{message}\r\n").into_bytes())
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Sets the body and its type.
    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Response {
        self.body = body;
        self.header("Content-Type", content_type)
    }

    /// The response on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("RTSP/1.0 {} {}\r\n", self.status.0, self.status.reason());
        for (n, v) in &self.headers {
            // Header values never carry line breaks (they could forge headers).
            let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            let _ = write!(s, "{n}: {v}\r\n");
        }
        if !self.body.is_empty() {
            let _ = write!(s, "Content-Length: {}\r\n", self.body.len());
        }
        s.push_str("\r\n");
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_parsed_and_bad_ones_refused_with_a_status() {
        let r = Request::parse(
            b"DESCRIBE rtsp://u:secret@127.0.0.1:8554/cam0/?x=1 RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.method, "DESCRIBE");
        assert_eq!(r.cseq.as_deref(), Some("2"));
        assert_eq!(r.path(), "cam0/");
        assert_eq!(stream_of(r.path()), ("cam0", false));
        assert_eq!(stream_of("cam0/trackID=0"), ("cam0", true));
        assert_eq!(r.url_for_log(), "rtsp://127.0.0.1:8554/cam0/?x=1");
        assert_eq!(r.base_url("cam0", "h:1"), "rtsp://127.0.0.1:8554/cam0/");
        assert_eq!(r.header("accept"), Some("application/sdp"));
        // The name of the stream in the host, a slash in the password, no host at all.
        let r = Request::parse(b"DESCRIBE rtsp://1.2.3.1:8554/1 RTSP/1.0\r\n\r\n").unwrap();
        assert_eq!((r.path(), r.base_url("1", "h")), ("1", "rtsp://1.2.3.1:8554/1/".into()));
        let r = Request::parse(b"DESCRIBE rtsp://u:a/b@host:1/cam RTSP/1.0\r\n\r\n").unwrap();
        assert_eq!((r.path(), r.url_for_log()), ("cam", "rtsp://host:1/cam".into()));
        let r = Request::parse(b"DESCRIBE /cam RTSP/1.0\r\n\r\n").unwrap();
        assert_eq!((r.path(), r.base_url("cam", "h:2")), ("cam", "rtsp://h:2/cam/".into()));
        for (bad, status) in [
            (&b"DESCRIBE rtsp://x/a\r\n\r\n"[..], 400),
            (b"describe rtsp://x/a RTSP/1.0\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 505),
            (b"OPTIONS * RTSP/1.0\r\nno colon\r\n\r\n", 400),
            (b"OPTIONS * RTSP/1.0\r\n\xFF: x\r\n\r\n", 400),
            (b"", 400),
        ] {
            assert_eq!(Request::parse(bad).unwrap_err().status.0, status, "{bad:?}");
        }
    }

    #[test]
    fn transports_are_picked_and_lies_refused() {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let pick = |v: &str| pick_transport(v, peer, false);
        assert_eq!(
            pick("RTP/AVP;unicast;client_port=5000-5001"),
            Some(Offer::Udp { rtp: 5000, rtcp: 5001 })
        );
        assert_eq!(
            pick("RTP/AVP/TCP;unicast;interleaved=2-3"),
            Some(Offer::Tcp { rtp: 2, rtcp: 3 })
        );
        assert_eq!(pick("RTP/AVP;multicast"), Some(Offer::Multicast));
        assert_eq!(pick("RTP/AVP;multicast;destination=239.1.1.1"), Some(Offer::Multicast));
        assert_eq!(
            pick("RTP/SAVP;unicast;client_port=1-2,RTP/AVP/TCP;interleaved=0-1"),
            Some(Offer::Tcp { rtp: 0, rtcp: 1 })
        );
        for bad in [
            "RTP/AVP;unicast",
            "RTP/AVP;unicast;client_port=0-1",
            "RTP/AVP;unicast;client_port=70000-70001",
            "RTP/AVP;unicast;client_port=5000-5001;destination=10.0.0.1",
            "RTP/AVP;unicast;client_port=5000-5001;mode=record",
            "RTP/AVP/TCP;interleaved=255-256",
            "RTP/AVP/TCP;interleaved=4-9",
            "garbage",
            "",
        ] {
            assert_eq!(pick(bad), None, "{bad}");
        }
        // Over RTSPS only the interleaved alternative is taken.
        let both = "RTP/AVP;unicast;client_port=5000-5001,RTP/AVP/TCP;interleaved=0-1";
        assert_eq!(pick_transport(both, peer, true), Some(Offer::Tcp { rtp: 0, rtcp: 1 }));
        assert_eq!(pick_transport("RTP/AVP;multicast", peer, true), None);
    }

    #[test]
    fn responses_never_carry_line_breaks_from_values() {
        let r = Response::new(Status::OK, Some("1\r\nX-Evil: 1")).to_bytes();
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("RTSP/1.0 200 OK\r\nCSeq: 1X-Evil: 1\r\n"), "{text}");
    }
}
