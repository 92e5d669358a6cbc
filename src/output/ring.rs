//! The smart-record cache: the last seconds of a packet stream, in memory,
//! bounded by time and by bytes. Packets are shared ([`bytes::Bytes`]), so
//! caching one costs a pointer, not a copy; the bytes counted are the
//! payloads the cache keeps alive.

use std::collections::VecDeque;

use crate::media::Packet;

/// What a cache holds, for stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct CacheStats {
    /// Packets held.
    pub packets: u64,
    /// Payload bytes held (the memory the cache keeps alive).
    pub bytes: u64,
    /// Decode time from the oldest packet held to the newest, in seconds.
    pub span_s: f64,
}

/// A bounded cache of packets, oldest first.
#[derive(Debug)]
pub struct Ring {
    packets: VecDeque<Packet>,
    bytes: u64,
    max_ns: i64,
    max_bytes: u64,
}

impl Ring {
    /// A cache spanning at most `max_ns` of decode time and `max_bytes` of payload.
    pub fn new(max_ns: i64, max_bytes: u64) -> Ring {
        Ring {
            packets: VecDeque::new(),
            bytes: 0,
            max_ns,
            max_bytes,
        }
    }

    /// Adds a packet, dropping the oldest ones beyond the limits.
    pub fn push(&mut self, packet: Packet) {
        self.bytes += packet.data.len() as u64;
        let newest = packet.dts;
        self.packets.push_back(packet);
        while let Some(front) = self.packets.front() {
            if self.packets.len() > 1 && (newest - front.dts > self.max_ns || self.bytes > self.max_bytes) {
                self.bytes -= front.data.len() as u64;
                self.packets.pop_front();
            } else {
                break;
            }
        }
    }

    /// Drops everything (a new stream: its packets do not follow the old ones).
    pub fn clear(&mut self) {
        self.packets.clear();
        self.bytes = 0;
    }

    /// Payload bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Packets, bytes and time span held.
    pub fn stats(&self) -> CacheStats {
        let span_ns = match (self.packets.front(), self.packets.back()) {
            (Some(a), Some(b)) => b.dts - a.dts,
            _ => 0,
        };
        CacheStats {
            packets: self.packets.len() as u64,
            bytes: self.bytes,
            span_s: span_ns as f64 / 1e9,
        }
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The packets from the last keyframe presented at or before `t_ns` (or,
    /// when none is that old, from the oldest keyframe held) to the newest;
    /// empty when no keyframe is held.
    pub fn since(&self, t_ns: i64) -> impl Iterator<Item = &Packet> {
        let keyframes = || self.packets.iter().enumerate().filter(|(_, p)| p.keyframe);
        let start = keyframes()
            .filter(|(_, p)| p.pts <= t_ns)
            .last()
            .or_else(|| keyframes().next())
            .map_or(self.packets.len(), |(i, _)| i);
        self.packets.range(start..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Codec, CodecParams};
    use bytes::Bytes;
    use std::sync::Arc;

    fn packet(i: i64, keyframe: bool) -> Packet {
        Packet {
            meta: Default::default(),
            codec: Codec::H264,
            data: Bytes::from(vec![0u8; 100]),
            pts: i * 10,
            dts: i * 10,
            duration: 10,
            keyframe,
            params: Arc::new(CodecParams::new(Codec::H264, 2, 2)),
            source: "cam".into(),
            seq: i as u64,
            capture_utc: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn bounded_by_time_and_bytes_and_starting_on_keyframes() {
        let mut ring = Ring::new(95, 1 << 20);
        assert_eq!(ring.since(0).count(), 0);
        for i in 0..30 {
            ring.push(packet(i, i % 4 == 0));
        }
        // 95 ns of decode time: packets 20..=29.
        assert_eq!(ring.len(), 10);
        assert_eq!(ring.bytes(), 1000);
        let first = |t| ring.since(t).next().map(|p| p.seq);
        assert_eq!(first(255), Some(24), "the last keyframe at or before 255 is #24");
        assert_eq!(first(240), Some(24));
        assert_eq!(first(239), Some(20));
        assert_eq!(first(0), Some(20), "nothing that old: the oldest keyframe held");
        assert_eq!(ring.since(255).count(), 6);
        let mut small = Ring::new(i64::MAX, 350);
        for i in 0..10 {
            small.push(packet(i, true));
        }
        assert_eq!((small.len(), small.bytes()), (3, 300));
        small.clear();
        assert!(small.is_empty());
    }
}
