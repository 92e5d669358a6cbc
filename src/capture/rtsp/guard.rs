//! Limits on what a camera may make Eyrie hold (sans-IO): the framing of an
//! RTSP connection's bytes into whole messages (RFC 2326 §4, §15: start line,
//! headers, `Content-Length` body) and interleaved frames (§10.12: `$`,
//! channel, 16-bit length), each bounded, and a per-stream count of the RTP
//! payload bytes of the picture in progress (RFC 3550 §5.1: a picture ends at
//! the marker bit or when the timestamp moves on), bounded too.
//!
//! retina's own parser and depacketizers buffer whatever a server sends: an
//! endless header line, or FU-A fragments that never end a picture, grow
//! without limit. [`super::relay`] runs every byte of a camera through these
//! checks before retina sees it, and cuts the connection at the first breach.

use bytes::{Bytes, BytesMut};

/// The largest RTSP message (start line, headers and body) a camera may send.
/// Real answers are a few kB (an SDP with many streams stays well under this).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A limit a camera broke. The text names the limit and what crossed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// A message (head and body) longer than the limit.
    #[error("the camera sent an RTSP message over {limit} bytes (the limit) without ending it")]
    MessageTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A `Content-Length` that is not a number.
    #[error("the camera sent an RTSP message whose Content-Length `{value}` is not a number")]
    BadContentLength {
        /// What it said (at most 32 characters).
        value: String,
    },
    /// A picture whose RTP payload outgrew the limit before it ended.
    #[error(
        "the camera sent a picture of more than {limit} bytes (RTP timestamp {timestamp}) without ending it: \
         over the limit set by max_picture_bytes and max_bits_per_pixel"
    )]
    PictureTooLarge {
        /// The limit, in RTP payload bytes.
        limit: usize,
        /// The RTP timestamp of the picture.
        timestamp: u32,
    },
}

/// One unit of an RTSP connection's byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// A whole request or response: start line, headers, blank line, body.
    Message(Bytes),
    /// An interleaved frame, whole (its 4-byte header included).
    Interleaved {
        /// Its channel.
        channel: u8,
        /// The frame, header included.
        frame: Bytes,
    },
}

/// Splits a byte stream into [`Unit`]s; never holds more than one unit
/// (at most [`MAX_MESSAGE_BYTES`] or an interleaved frame of 65 539 bytes)
/// plus what the last read brought.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: BytesMut,
    /// How far a message head has been searched for its end (so a head
    /// trickled in small reads is scanned once, not once per read).
    scanned: usize,
}

impl Deframer {
    /// Where the next read goes: read into it, then call [`Deframer::unit`]
    /// until it gives `None`.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The next whole unit, `None` when more bytes are needed.
    pub fn unit(&mut self) -> Result<Option<Unit>, GuardError> {
        if self.buf.first() == Some(&b'$') {
            if self.buf.len() < 4 {
                return Ok(None);
            }
            let len = 4 + usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
            if self.buf.len() < len {
                return Ok(None);
            }
            let channel = self.buf[1];
            return Ok(Some(Unit::Interleaved {
                channel,
                frame: self.buf.split_to(len).freeze(),
            }));
        }
        let limit = MAX_MESSAGE_BYTES;
        let Some(head_len) = head_end_from(&self.buf, self.scanned) else {
            if self.buf.len() > limit {
                return Err(GuardError::MessageTooLarge { limit });
            }
            // The end may straddle this read and the next: look again from 3 bytes back.
            self.scanned = self.buf.len().saturating_sub(3);
            return Ok(None);
        };
        let body = match header(&self.buf[..head_len], "content-length") {
            None => 0,
            Some(v) => v.trim().parse::<usize>().map_err(|_| GuardError::BadContentLength {
                value: v.chars().take(32).collect(),
            })?,
        };
        let total = head_len.checked_add(body).filter(|&t| t <= limit);
        let Some(total) = total else {
            return Err(GuardError::MessageTooLarge { limit });
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        self.scanned = 0;
        Ok(Some(Unit::Message(self.buf.split_to(total).freeze())))
    }
}

/// The length of a message's head (through its blank line), if all of it is
/// in `buf`. Lines end in CRLF; a bare LF is accepted as servers send it.
fn head_end(buf: &[u8]) -> Option<usize> {
    head_end_from(buf, 0)
}

/// [`head_end`], searching from byte `from` (at a line start or before the end).
fn head_end_from(buf: &[u8], mut from: usize) -> Option<usize> {
    while let Some(i) = memchr::memchr(b'\n', &buf[from..]) {
        let end = from + i + 1;
        let rest = &buf[end..];
        if rest.starts_with(b"\n") {
            return Some(end + 1);
        }
        if rest.starts_with(b"\r\n") {
            return Some(end + 2);
        }
        from = end;
    }
    None
}

/// The value of the first header called `name` (ASCII, any case) in a
/// message head, without the white space around it.
pub fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(head).ok()?;
    text.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The head of a message (its start line and headers), or all of it if it has no blank line.
pub fn head(message: &[u8]) -> &[u8] {
    &message[..head_end(message).unwrap_or(message.len())]
}

/// A message with the value of its first header `name` replaced by `value`
/// (everything else byte for byte).
pub fn with_header(message: &[u8], name: &str, value: &str) -> Option<Vec<u8>> {
    let head_len = head_end(message)?;
    let mut out = Vec::with_capacity(message.len() + value.len());
    let mut replaced = false;
    for line in message[..head_len].split_inclusive(|&b| b == b'\n') {
        let key = line.split(|&b| b == b':').next().unwrap_or_default();
        if !replaced && line.contains(&b':') && key.trim_ascii().eq_ignore_ascii_case(name.as_bytes()) {
            out.extend_from_slice(key);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
            replaced = true;
        } else {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&message[head_len..]);
    replaced.then_some(out)
}

/// The parameters of a `Transport` header (RFC 2326 §12.39) Eyrie reads or
/// rewrites: `client_port`, `server_port`, `interleaved` (first of each pair), `source`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transport {
    /// The client's RTP port (RTCP is the next).
    pub client_port: Option<u16>,
    /// The server's RTP port (RTCP is the next).
    pub server_port: Option<u16>,
    /// The interleaved RTP channel (RTCP is the next).
    pub interleaved: Option<u8>,
    /// Where the server sends from, when not the RTSP peer's address.
    pub source: Option<std::net::IpAddr>,
}

impl Transport {
    /// Reads the parameters from a `Transport` header's value (unknown ones are ignored).
    pub fn parse(value: &str) -> Transport {
        let mut t = Transport::default();
        for param in value.split(';') {
            let (key, v) = param.split_once('=').unwrap_or((param, ""));
            let first = v.split('-').next().unwrap_or_default().trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "client_port" => t.client_port = first.parse().ok(),
                "server_port" => t.server_port = first.parse().ok(),
                "interleaved" => t.interleaved = first.parse().ok(),
                "source" => t.source = v.trim().parse().ok(),
                _ => {}
            }
        }
        t
    }

    /// `value` with its port pairs moved to `client` / `server` (where
    /// given; `n-(n+1)`), and without `source`.
    pub fn rewrite(value: &str, client: Option<u16>, server: Option<u16>) -> String {
        let pair = |p: u16| format!("{p}-{}", p.wrapping_add(1));
        value
            .split(';')
            .filter_map(|param| {
                let key = param.split('=').next().unwrap_or_default().trim().to_ascii_lowercase();
                match (key.as_str(), client, server) {
                    ("client_port", Some(p), _) => Some(format!("client_port={}", pair(p))),
                    ("server_port", _, Some(p)) => Some(format!("server_port={}", pair(p))),
                    ("source", ..) => None,
                    _ => Some(param.to_string()),
                }
            })
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// Counts the RTP payload bytes of one stream's picture in progress.
#[derive(Debug, Default)]
pub struct PictureGuard {
    timestamp: Option<u32>,
    bytes: usize,
}

impl PictureGuard {
    /// Takes one RTP packet; fails when the picture it belongs to has grown
    /// past `limit` payload bytes. Packets too short to be RTP are left to
    /// the depacketizer to refuse.
    pub fn packet(&mut self, packet: &[u8], limit: usize) -> Result<(), GuardError> {
        let Some((timestamp, marker, payload)) = rtp_payload_len(packet) else {
            return Ok(());
        };
        if self.timestamp != Some(timestamp) {
            self.timestamp = Some(timestamp);
            self.bytes = 0;
        }
        self.bytes += payload;
        if self.bytes > limit {
            return Err(GuardError::PictureTooLarge { limit, timestamp });
        }
        if marker {
            self.timestamp = None;
            self.bytes = 0;
        }
        Ok(())
    }
}

/// An RTP packet's timestamp, marker bit and payload length (RFC 3550 §5.1:
/// fixed header, CSRCs, extension), or `None` if it is not RTP.
fn rtp_payload_len(p: &[u8]) -> Option<(u32, bool, usize)> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    let mut header = 12 + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let ext = p.get(header + 2..header + 4)?;
        header += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let timestamp = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    Some((timestamp, p[1] & 0x80 != 0, p.len().checked_sub(header)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(d: &mut Deframer, data: &[u8]) -> Vec<Result<Unit, GuardError>> {
        d.buffer().extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            match d.unit() {
                Ok(Some(u)) => out.push(Ok(u)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn messages_and_interleaved_frames_come_out_whole_at_any_split() {
        let first = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 5\r\n\r\nhello";
        let stream: Vec<u8> = [
            &first[..],
            &[b'$', 0, 0, 3, 9, 8, 7],
            b"RTSP/1.0 200 OK\nCSeq: 2\n\n",
            &[b'$', 1, 0, 0],
        ]
        .concat();
        for split in 0..stream.len() {
            let mut d = Deframer::default();
            let mut units = feed(&mut d, &stream[..split]);
            units.extend(feed(&mut d, &stream[split..]));
            let units: Vec<Unit> = units.into_iter().map(Result::unwrap).collect();
            assert_eq!(units.len(), 4, "split at {split}: {units:?}");
            assert_eq!(units[0], Unit::Message(Bytes::from_static(first)));
            assert_eq!(
                units[1],
                Unit::Interleaved {
                    channel: 0,
                    frame: Bytes::from_static(&[b'$', 0, 0, 3, 9, 8, 7])
                }
            );
            assert!(matches!(&units[2], Unit::Message(m) if m.ends_with(b"CSeq: 2\n\n")));
            assert!(matches!(&units[3], Unit::Interleaved { channel: 1, frame } if frame.len() == 4));
            assert!(d.buffer().is_empty());
        }
        // A byte at a time (where the search resumes from the previous read).
        let mut d = Deframer::default();
        let units: Vec<Unit> = stream
            .chunks(1)
            .flat_map(|b| feed(&mut d, b))
            .map(Result::unwrap)
            .collect();
        assert_eq!(units.len(), 4, "{units:?}");
    }

    #[test]
    fn an_endless_header_or_a_huge_body_is_refused_once_past_the_limit() {
        let mut d = Deframer::default();
        assert!(feed(&mut d, b"RTSP/1.0 200 OK\r\nX-Junk: ").is_empty());
        let chunk = vec![b'a'; 16 * 1024];
        let mut fed = 0;
        let err = loop {
            fed += chunk.len();
            if let Some(Err(e)) = feed(&mut d, &chunk).pop() {
                break e;
            }
            assert!(fed <= MAX_MESSAGE_BYTES, "still taking bytes after {fed}");
        };
        assert_eq!(
            err,
            GuardError::MessageTooLarge {
                limit: MAX_MESSAGE_BYTES
            }
        );
        let mut d = Deframer::default();
        let big = feed(&mut d, b"RTSP/1.0 200 OK\r\nContent-length: 99999999999\r\n\r\n");
        assert_eq!(
            big,
            [Err(GuardError::MessageTooLarge {
                limit: MAX_MESSAGE_BYTES
            })]
        );
        let overflow = feed(
            &mut d,
            b"RTSP/1.0 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
        );
        assert_eq!(
            overflow,
            [Err(GuardError::MessageTooLarge {
                limit: MAX_MESSAGE_BYTES
            })]
        );
        let mut d = Deframer::default();
        let bad = feed(&mut d, b"RTSP/1.0 200 OK\r\nContent-Length: -5\r\n\r\n");
        assert_eq!(bad, [Err(GuardError::BadContentLength { value: "-5".into() })]);
    }

    #[test]
    fn headers_are_found_and_replaced_in_any_case() {
        let m = b"RTSP/1.0 200 OK\r\nCSeq: 3\r\ntransport:  RTP/AVP;unicast;client_port=5000-5001 \r\n\r\nbody";
        assert_eq!(
            header(head(m), "Transport"),
            Some("RTP/AVP;unicast;client_port=5000-5001")
        );
        assert_eq!(header(head(m), "cseq"), Some("3"));
        assert_eq!(header(head(m), "Session"), None);
        let out = with_header(m, "Transport", "x").unwrap();
        assert_eq!(out, b"RTSP/1.0 200 OK\r\nCSeq: 3\r\ntransport: x\r\n\r\nbody");
        assert_eq!(with_header(m, "Session", "x"), None);
    }

    #[test]
    fn transport_ports_are_read_and_rewritten() {
        let v = "RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;source=10.0.0.7;ssrc=1234";
        let t = Transport::parse(v);
        assert_eq!(
            (t.client_port, t.server_port, t.source),
            (Some(5000), Some(6970), Some("10.0.0.7".parse().unwrap()))
        );
        assert_eq!(
            Transport::rewrite(v, Some(4000), Some(7000)),
            "RTP/AVP;unicast;client_port=4000-4001;server_port=7000-7001;ssrc=1234"
        );
        assert_eq!(
            Transport::parse("RTP/AVP/TCP;unicast;interleaved=2-3").interleaved,
            Some(2)
        );
    }

    fn rtp(timestamp: u32, marker: bool, payload: usize) -> Vec<u8> {
        let mut p = vec![0x80, if marker { 0xe0 } else { 0x60 }, 0, 1];
        p.extend_from_slice(&timestamp.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        p.resize(12 + payload, 0x5c);
        p
    }

    #[test]
    fn a_picture_ends_at_its_marker_or_a_new_timestamp_and_may_not_outgrow_the_limit() {
        let mut g = PictureGuard::default();
        for _ in 0..3 {
            g.packet(&rtp(1, false, 400), 1000).unwrap();
            g.packet(&rtp(1, true, 600), 1000).unwrap();
        }
        g.packet(&rtp(2, false, 900), 1000).unwrap();
        // A camera that never sets the marker: each new timestamp starts afresh.
        g.packet(&rtp(3, false, 900), 1000).unwrap();
        let err = g.packet(&rtp(3, false, 101), 1000).unwrap_err();
        assert_eq!(
            err,
            GuardError::PictureTooLarge {
                limit: 1000,
                timestamp: 3
            }
        );
        // An extension header is not payload; garbage is not RTP.
        let mut ext = rtp(9, true, 8);
        ext[0] |= 0x10;
        ext[14..16].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(rtp_payload_len(&ext), Some((9, true, 0)));
        assert_eq!(rtp_payload_len(&[0x40; 20]), None);
        assert_eq!(rtp_payload_len(&[0x90; 12]), None);
        g.packet(&[0xff; 3], 1).unwrap();
    }
}
