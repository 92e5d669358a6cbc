//! Arbitrary pictures through the RTP packetizers (H.264, H.265, JPEG with
//! its RFC 2435 header reader) and arbitrary parameter-set records: never a
//! panic, every packet within the MTU, the marker on the last one only.
#![no_main]

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use eyrie::media::{Codec, CodecParams, Packet};
use eyrie::serve::rtp::{Packetizer, RtpOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else { return };
    let codec = [Codec::H264, Codec::H265, Codec::Mjpeg][usize::from(head % 3)];
    let mtu = 200 + usize::from(head) * 8;
    let (extradata, picture) = rest.split_at(rest.len().min(usize::from(head >> 2)));
    let params = Arc::new(CodecParams::new(codec, 64, 64).with_extradata(Bytes::copy_from_slice(extradata)));
    let options = RtpOptions { mtu, ssrc: 1, first_seq: 65_535, timestamp_base: 0 };
    let Ok(mut p) = Packetizer::new(&params, options) else { return };
    let packet = Packet {
        meta: Default::default(),
        codec,
        data: Bytes::copy_from_slice(picture),
        pts: i64::from(head) * 1_000_000,
        dts: 0,
        duration: 0,
        capture_utc: SystemTime::UNIX_EPOCH,
        keyframe: head & 1 == 1,
        params,
        source: "fuzz".into(),
        seq: 0,
    };
    if let Ok(frame) = p.push(&packet) {
        for (i, rtp) in frame.packets.iter().enumerate() {
            assert!(rtp.len() <= mtu, "{} > {mtu}", rtp.len());
            assert_eq!(rtp.head[1] & 0x80 != 0, i + 1 == frame.packets.len());
        }
    }
});
