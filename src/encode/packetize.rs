//! Encoder output into [`Packet`]s: the parameter sets an H.264/H.265 encoder
//! writes in band become the packets' [`CodecParams`] (`avcC`/`hvcC`, size),
//! keyframes are read from the bitstream itself, and each packet keeps the
//! timing and identity of the frame it was encoded from.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::codec::{ParamFollower, fwht};
use crate::media::{Buffer, Codec, CodecParams, Frame, FrameMeta, Packet, VideoInfo};

use super::EncodeError;

/// What a packet inherits from the frame it encodes.
#[derive(Clone, Debug)]
pub struct Stamp {
    /// The frame's presentation time, ns.
    pub pts: i64,
    /// Its duration, ns.
    pub duration: i64,
    /// The source's frame counter.
    pub seq: u64,
    /// The camera.
    pub source: Arc<str>,
    /// When the frame was captured (UTC).
    pub capture_utc: SystemTime,
    /// Its detections, tracks and ground truth.
    pub meta: Arc<FrameMeta>,
}

impl Stamp {
    /// The stamp of `frame`.
    pub fn of(frame: &Frame) -> Self {
        Stamp {
            pts: frame.pts,
            duration: frame.duration,
            seq: frame.seq,
            source: Arc::clone(&frame.source),
            capture_utc: frame.capture_utc,
            meta: Arc::clone(&frame.meta),
        }
    }

    /// The stamp of `packet`, for the frame a decoder makes of it.
    pub fn of_packet(packet: &Packet) -> Self {
        Stamp {
            pts: packet.pts,
            duration: packet.duration,
            seq: packet.seq,
            source: Arc::clone(&packet.source),
            capture_utc: packet.capture_utc,
            meta: Arc::clone(&packet.meta),
        }
    }

    /// A decoded frame of `info` in `buffer`, with this stamp's timing and
    /// identity (its rate from the stamp's duration).
    pub fn frame(self, mut info: VideoInfo, buffer: Buffer) -> Frame {
        info.fps = super::rate_of(self.duration);
        Frame {
            info,
            pts: self.pts,
            duration: self.duration,
            capture_utc: self.capture_utc,
            seq: self.seq,
            source: self.source,
            meta: self.meta,
            buffer,
        }
    }
}

/// Turns one encoder's output into packets.
pub struct Packetizer {
    backend: &'static str,
    codec: Codec,
    follower: ParamFollower,
}

impl Packetizer {
    /// For `backend` encoding `codec` at `width`×`height`.
    pub fn new(backend: &'static str, codec: Codec, width: u32, height: u32) -> Self {
        // H.264/H.265 parameters come from the bitstream; the others are known now.
        let known = (!matches!(codec, Codec::H264 | Codec::H265)).then(|| CodecParams::new(codec, width, height));
        Packetizer {
            backend,
            codec,
            follower: ParamFollower::new(codec, known),
        }
    }

    /// A packet of `data` (one access unit, Annex-B for H.264/H.265) encoded
    /// from the frame `stamp` describes, decoded at `dts`. `keyframe` is the
    /// encoder's word for codecs whose bitstream is not read here (VP9).
    pub fn packet(&mut self, data: Bytes, stamp: &Stamp, dts: i64, keyframe: bool) -> Result<Packet, EncodeError> {
        let (params, key_in_stream) = self
            .follower
            .follow(&data, 0)
            .map_err(|e| EncodeError::failed(self.backend, format!("its output does not parse: {e}")))?;
        let keyframe = match self.codec {
            Codec::H264 | Codec::H265 => key_in_stream,
            Codec::Mjpeg => true,
            Codec::Fwht => fwht::is_keyframe(&data).map_err(|e| EncodeError::failed(self.backend, e))?,
            Codec::Vp9 => keyframe,
        };
        Ok(Packet {
            codec: self.codec,
            data,
            pts: stamp.pts,
            dts,
            duration: stamp.duration,
            keyframe,
            params,
            source: Arc::clone(&stamp.source),
            seq: stamp.seq,
            capture_utc: stamp.capture_utc,
            meta: Arc::clone(&stamp.meta),
        })
    }
}
