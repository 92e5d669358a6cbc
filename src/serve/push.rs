//! RTP/UDP push (the `rtp` node's options and sender, no RTSP): a stream's
//! packets sent to one unicast or multicast address, a sender report every
//! few seconds to the next port (RFC 3550 §6.4.1), and an SDP file that
//! players open (`ffplay -protocol_whitelist file,udp,rtp stream.sdp`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::media::{CodecParams, Packet};

use super::rtcp::SenderReport;
use super::rtp::{DEFAULT_MTU, MIN_MTU, PacketizeError, Packetizer, RtpOptions};
use super::sdp::{self, Destination};
use super::udp::send_parts;

/// Seconds between sender reports.
pub const SR_INTERVAL: Duration = Duration::from_secs(5);

/// The keys of an `rtp` node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtpPushOptions {
    /// Where RTP goes, `address:port` (an even port; RTCP goes to the next);
    /// a multicast group sends to everyone joined to it.
    pub destination: String,
    /// Multicast time to live (router hops).
    pub ttl: u8,
    /// Largest RTP packet, bytes (header included).
    pub mtu: usize,
    /// The SDP file written for players, relative to the media root
    /// (`{node}` is the node's name).
    pub sdp: String,
}

impl Default for RtpPushOptions {
    fn default() -> Self {
        RtpPushOptions {
            destination: "127.0.0.1:5004".into(),
            ttl: 1,
            mtu: DEFAULT_MTU,
            sdp: "sdp/{node}.sdp".into(),
        }
    }
}

impl RtpPushOptions {
    /// Checks values beyond their types: (key, message).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let addr = self.address().map_err(|m| ("destination", m))?;
        if addr.port() % 2 == 1 || addr.port() == 0 || addr.port() == u16::MAX - 1 {
            return Err((
                "destination",
                format!("port {} is not an even port (RTCP takes the next)", addr.port()),
            ));
        }
        if self.mtu < MIN_MTU || self.mtu > 65_000 {
            return Err(("mtu", format!("{} is outside {MIN_MTU}..=65000", self.mtu)));
        }
        if !self.sdp.ends_with(".sdp") {
            return Err(("sdp", format!("`{}` does not end in .sdp", self.sdp)));
        }
        crate::output::name::check_template(&self.sdp).map_err(|m| ("sdp", m))?;
        crate::output::root::check_relative(&self.sdp).map_err(|why| {
            (
                "sdp",
                format!("`{}`: {why}; paths are relative to the media root", self.sdp),
            )
        })
    }

    /// The destination, parsed.
    pub fn address(&self) -> Result<SocketAddr, String> {
        self.destination
            .parse()
            .map_err(|_| format!("`{}` is not an address and port like 239.1.1.1:5004", self.destination))
    }
}

/// Sends one stream to its destination.
pub struct Pusher {
    socket: UdpSocket,
    to: SocketAddr,
    options: RtpPushOptions,
    packetizer: Option<Packetizer>,
    ssrc: u32,
    first_seq: u16,
    timestamp_base: u32,
    last_sr: Option<Instant>,
    packets: u32,
    octets: u32,
}

impl Pusher {
    /// A sender bound to any local port (of the destination's family).
    pub fn new(options: RtpPushOptions, ssrc: u32, first_seq: u16, timestamp_base: u32) -> std::io::Result<Pusher> {
        let to = options
            .address()
            .map_err(|m| std::io::Error::new(std::io::ErrorKind::InvalidInput, m))?;
        let any: IpAddr = if to.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let socket = UdpSocket::bind((any, 0))?;
        if to.ip().is_multicast() && to.is_ipv4() {
            socket.set_multicast_ttl_v4(u32::from(options.ttl))?;
            socket.set_multicast_loop_v4(true)?;
        }
        Ok(Pusher {
            socket,
            to,
            options,
            packetizer: None,
            ssrc,
            first_seq,
            timestamp_base,
            last_sr: None,
            packets: 0,
            octets: 0,
        })
    }

    /// Takes the stream's (new) format; returns the SDP that describes it.
    pub fn set_params(&mut self, name: &str, params: &CodecParams, fps: Option<f64>) -> Result<String, PacketizeError> {
        let kept = self.packetizer.as_mut().is_some_and(|p| p.set_params(params).is_ok());
        if !kept {
            let first_seq = self.packetizer.as_ref().map_or(self.first_seq, |p| p.next_seq());
            self.packetizer = Some(Packetizer::new(
                params,
                RtpOptions {
                    mtu: self.options.mtu,
                    ssrc: self.ssrc,
                    first_seq,
                    timestamp_base: self.timestamp_base,
                },
            )?);
        }
        let origin = self.socket.local_addr().map_or(self.to.ip(), |a| a.ip());
        let destination = Destination {
            address: self.to.ip(),
            port: self.to.port(),
            ttl: self.options.ttl,
        };
        Ok(sdp::describe(name, origin, 1, params, fps, Some(destination)))
    }

    /// Sends one picture (after a sender report, when one is due). Returns the packets sent.
    pub fn push(&mut self, packet: &Packet) -> Result<usize, PacketizeError> {
        let Some(p) = &mut self.packetizer else { return Ok(0) };
        let frame = p.push(packet)?;
        if self.last_sr.is_none_or(|t| t.elapsed() >= SR_INTERVAL) {
            self.last_sr = Some(Instant::now());
            let sr = SenderReport {
                ssrc: self.ssrc,
                utc: frame.capture_utc,
                rtp_time: frame.timestamp,
                packets: self.packets,
                octets: self.octets,
            };
            let rtcp = SocketAddr::new(self.to.ip(), self.to.port() + 1);
            let _ = self.socket.send_to(&sr.to_bytes("eyrie"), rtcp);
        }
        for rtp in &frame.packets {
            // Unreachable receivers (ICMP errors) and full buffers lose packets, as the network would.
            let _ = send_parts(&self.socket, &[&rtp.head, &rtp.body], self.to);
            self.packets = self.packets.wrapping_add(1);
            self.octets = self.octets.wrapping_add(rtp.payload_len() as u32);
        }
        Ok(frame.packets.len())
    }
}
