//! Session descriptions (SDP, RFC 8866) of served streams: one video media
//! section per stream, with the payload format's parameters — RFC 6184 §8.1
//! (`profile-level-id`, `packetization-mode=1`, `sprop-parameter-sets`),
//! RFC 7798 §7.1 (`sprop-vps`, `sprop-sps`, `sprop-pps`), RFC 2435 (static
//! payload type 26) — `a=framerate`, and `a=control`/`a=range` for RTSP
//! (RFC 2326 C.1).

use std::fmt::Write;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::codec::h265;
use crate::media::{Codec, CodecParams};

use super::rtp::{CLOCK_RATE, DYNAMIC_PAYLOAD_TYPE, JPEG_PAYLOAD_TYPE, parameter_sets};

/// Where the media goes (RTP push) or `None` (RTSP: set up per client).
#[derive(Clone, Copy, Debug)]
pub struct Destination {
    /// The receiver or multicast group.
    pub address: IpAddr,
    /// RTP port (RTCP is the next).
    pub port: u16,
    /// Multicast TTL.
    pub ttl: u8,
}

/// A whole session description of one stream.
pub fn describe(
    name: &str,
    origin: IpAddr,
    version: u64,
    params: &CodecParams,
    fps: Option<f64>,
    destination: Option<Destination>,
) -> String {
    let ip = |a: IpAddr| if a.is_ipv4() { "IP4" } else { "IP6" };
    let mut s = String::new();
    let _ = write!(
        s,
        "v=0\r\no=- {version} {version} IN {} {origin}\r\ns={name}\r\n",
        ip(origin)
    );
    match destination {
        Some(d) if d.address.is_multicast() && d.address.is_ipv4() => {
            let _ = write!(s, "c=IN IP4 {}/{}\r\n", d.address, d.ttl);
        }
        Some(d) => {
            let _ = write!(s, "c=IN {} {}\r\n", ip(d.address), d.address);
        }
        None => s.push_str("c=IN IP4 0.0.0.0\r\n"),
    }
    s.push_str("t=0 0\r\na=tool:eyrie\r\n");
    if destination.is_none() {
        s.push_str("a=range:npt=now-\r\na=control:*\r\n");
    }
    let port = destination.map_or(0, |d| d.port);
    s.push_str(&media(params, fps, port));
    if destination.is_none() {
        s.push_str("a=control:trackID=0\r\n");
    }
    s
}

/// The `m=` section of a stream sent to `port`.
pub fn media(params: &CodecParams, fps: Option<f64>, port: u16) -> String {
    let mut s = String::new();
    let b64 = |n: &[u8]| STANDARD.encode(n);
    let sets = parameter_sets(params);
    match params.codec {
        Codec::H264 => {
            let pt = DYNAMIC_PAYLOAD_TYPE;
            let _ = write!(s, "m=video {port} RTP/AVP {pt}\r\na=rtpmap:{pt} H264/{CLOCK_RATE}\r\n");
            let _ = write!(s, "a=fmtp:{pt} packetization-mode=1");
            if let Some(sps) = sets
                .iter()
                .find(|n| n.first().is_some_and(|b| b & 0x1F == 7) && n.len() >= 4)
            {
                let _ = write!(s, ";profile-level-id={:02X}{:02X}{:02X}", sps[1], sps[2], sps[3]);
            }
            if !sets.is_empty() {
                let list: Vec<String> = sets.iter().map(|n| b64(n)).collect();
                let _ = write!(s, ";sprop-parameter-sets={}", list.join(","));
            }
            s.push_str("\r\n");
        }
        Codec::H265 => {
            let pt = DYNAMIC_PAYLOAD_TYPE;
            let _ = write!(s, "m=video {port} RTP/AVP {pt}\r\na=rtpmap:{pt} H265/{CLOCK_RATE}\r\n");
            let of = |t: u8| {
                let list: Vec<String> = sets
                    .iter()
                    .filter(|n| n.len() >= 2 && h265::nal_type(n) == t)
                    .map(|n| b64(n))
                    .collect();
                list.join(",")
            };
            let fields: Vec<String> = [("vps", h265::VPS), ("sps", h265::SPS), ("pps", h265::PPS)]
                .into_iter()
                .map(|(name, t)| (name, of(t)))
                .filter(|(_, v)| !v.is_empty())
                .map(|(name, v)| format!("sprop-{name}={v}"))
                .collect();
            if !fields.is_empty() {
                let _ = write!(s, "a=fmtp:{pt} {}\r\n", fields.join(";"));
            }
        }
        _ => {
            let pt = JPEG_PAYLOAD_TYPE;
            let _ = write!(s, "m=video {port} RTP/AVP {pt}\r\na=rtpmap:{pt} JPEG/{CLOCK_RATE}\r\n");
        }
    }
    if let Some(fps) = fps.filter(|f| f.is_finite() && *f > 0.0) {
        let _ = write!(s, "a=framerate:{}\r\n", (fps * 1000.0).round() / 1000.0);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::h264;

    #[test]
    fn an_h264_description_carries_profile_and_parameter_sets() {
        let sps = [0x67, 0x64, 0x00, 0x28, 0xAC];
        let pps = [0x68, 0xEE, 0x3C, 0x80];
        let mut avcc = vec![1, 0x64, 0, 0x28, 0xFF, 0xE1, 0, 5];
        avcc.extend_from_slice(&sps);
        avcc.extend_from_slice(&[1, 0, 4]);
        avcc.extend_from_slice(&pps);
        assert!(h264::parse_avcc(&avcc).is_ok());
        let params = CodecParams::new(Codec::H264, 1920, 1080).with_extradata(avcc.into());
        let sdp = describe("cam0", "127.0.0.1".parse().unwrap(), 1, &params, Some(30.0), None);
        assert!(sdp.contains("m=video 0 RTP/AVP 96\r\n"), "{sdp}");
        assert!(
            sdp.contains(
                "a=fmtp:96 packetization-mode=1;profile-level-id=640028;sprop-parameter-sets=Z2QAKKw=,aO48gA==\r\n"
            ),
            "{sdp}"
        );
        assert!(sdp.contains("a=framerate:30\r\n"));
        assert!(sdp.contains("a=range:npt=now-\r\n"));
        let pushed = describe(
            "cam0",
            "127.0.0.1".parse().unwrap(),
            1,
            &params,
            None,
            Some(Destination {
                address: "239.1.2.3".parse().unwrap(),
                port: 5004,
                ttl: 4,
            }),
        );
        assert!(pushed.contains("c=IN IP4 239.1.2.3/4\r\n") && pushed.contains("m=video 5004 RTP/AVP 96"));
        assert!(!pushed.contains("a=control"));
    }
}
