//! RTCP (RFC 3550 §6), sans-IO: the sender report Eyrie sends (§6.4.1, in a
//! compound packet with an SDES CNAME, §6.5.1), and the report blocks of
//! receiver reports it reads (§6.4.2).
//!
//! A sender report maps an RTP timestamp to the UTC time its picture was
//! captured, so a client can place every picture on the wall clock (and
//! measure the delay from capture to display).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// What a sender report says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderReport {
    /// The stream's SSRC.
    pub ssrc: u32,
    /// The capture time of the picture whose timestamp is `rtp_time`.
    pub utc: SystemTime,
    /// An RTP timestamp.
    pub rtp_time: u32,
    /// Packets sent to this receiver so far.
    pub packets: u32,
    /// Payload octets sent to this receiver so far.
    pub octets: u32,
}

/// `utc` as a 64-bit NTP timestamp (RFC 3550 §4).
pub fn ntp_time(utc: SystemTime) -> u64 {
    let d = utc.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = d.as_secs() + NTP_UNIX_OFFSET;
    let fraction = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    seconds << 32 | fraction
}

impl SenderReport {
    /// The compound packet: SR (no report blocks), then SDES with `cname`.
    pub fn to_bytes(&self, cname: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(28 + 12 + cname.len());
        out.extend_from_slice(&[0x80, 200, 0, 6]);
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&ntp_time(self.utc).to_be_bytes());
        out.extend_from_slice(&self.rtp_time.to_be_bytes());
        out.extend_from_slice(&self.packets.to_be_bytes());
        out.extend_from_slice(&self.octets.to_be_bytes());
        let name = &cname.as_bytes()[..cname.len().min(255)];
        let sdes_start = out.len();
        out.extend_from_slice(&[0x81, 202, 0, 0]);
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&[1, name.len() as u8]);
        out.extend_from_slice(name);
        // The item list ends with a zero byte, padded to a 32-bit boundary.
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        let words = ((out.len() - sdes_start) / 4 - 1) as u16;
        out[sdes_start + 2..sdes_start + 4].copy_from_slice(&words.to_be_bytes());
        out
    }
}

/// What a receiver said about one of Eyrie's streams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReceptionReport {
    /// Fraction of packets lost since its previous report, /256.
    pub fraction_lost: u8,
    /// Packets lost since it started receiving (may be negative with duplicates).
    pub cumulative_lost: i32,
    /// Interarrival jitter, in RTP timestamp units.
    pub jitter: u32,
}

/// The report block about `ssrc` in a compound RTCP packet (from an RR or an
/// SR), if there is one. Malformed packets give `None`; nothing is trusted
/// beyond the bytes given.
pub fn reception_report(packet: &[u8], ssrc: u32) -> Option<ReceptionReport> {
    let mut rest = packet;
    while rest.len() >= 4 {
        let count = usize::from(rest[0] & 0x1F);
        let kind = rest[1];
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        if rest[0] >> 6 != 2 || len > rest.len() {
            return None;
        }
        let blocks_at = match kind {
            200 => 28,
            201 => 8,
            _ => len,
        };
        for i in 0..count {
            let Some(b) = rest.get(blocks_at + 24 * i..blocks_at + 24 * (i + 1)) else {
                break;
            };
            if blocks_at + 24 * (i + 1) > len {
                break;
            }
            if u32::from_be_bytes([b[0], b[1], b[2], b[3]]) == ssrc {
                let lost = i32::from_be_bytes([b[5], b[6], b[7], 0]) >> 8;
                return Some(ReceptionReport {
                    fraction_lost: b[4],
                    cumulative_lost: lost,
                    jitter: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
                });
            }
        }
        rest = &rest[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_sender_report_maps_rtp_time_to_ntp_time_in_a_compound_packet() {
        let sr = SenderReport {
            ssrc: 7,
            utc: UNIX_EPOCH + Duration::from_millis(1_500),
            rtp_time: 90_000,
            packets: 3,
            octets: 3000,
        };
        let b = sr.to_bytes("eyrie");
        assert_eq!(&b[..4], &[0x80, 200, 0, 6]);
        assert_eq!(u32::from_be_bytes([b[8], b[9], b[10], b[11]]), 2_208_988_801);
        assert_eq!(u32::from_be_bytes([b[12], b[13], b[14], b[15]]), 1 << 31);
        assert_eq!(b.len() % 4, 0);
        assert_eq!(b[29], 202);
        let sdes_words = usize::from(u16::from_be_bytes([b[30], b[31]]));
        assert_eq!(28 + (sdes_words + 1) * 4, b.len());
    }

    #[test]
    fn receiver_reports_are_read_for_our_ssrc_and_garbage_is_ignored() {
        let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0, 9];
        rr.extend_from_slice(&7u32.to_be_bytes());
        rr.extend_from_slice(&[64, 0xFF, 0xFF, 0xFE]); // 25% lost, cumulative -2
        rr.extend_from_slice(&[0, 0, 1, 0]);
        rr.extend_from_slice(&450u32.to_be_bytes());
        rr.extend_from_slice(&[0; 8]);
        let got = reception_report(&rr, 7).unwrap();
        assert_eq!(
            got,
            ReceptionReport {
                fraction_lost: 64,
                cumulative_lost: -2,
                jitter: 450
            }
        );
        assert_eq!(reception_report(&rr, 8), None);
        assert_eq!(reception_report(&rr[..20], 7), None);
        assert_eq!(reception_report(&[0x9F, 201, 0xFF, 0xFF], 7), None);
        assert_eq!(reception_report(&[0x81, 201, 0, 0], 7), None);
    }
}
