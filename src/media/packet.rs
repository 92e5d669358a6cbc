//! Encoded video: packets and the codec parameters they share.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::FrameMeta;

/// A video codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Codec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
    /// VP9.
    Vp9,
    /// Motion JPEG (one JPEG image per packet).
    Mjpeg,
    /// The Linux kernel's `vicodec` test codec (Fast Walsh Hadamard Transform),
    /// which the V4L2 codec path is tested against.
    Fwht,
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::Vp9 => "vp9",
            Codec::Mjpeg => "mjpeg",
            Codec::Fwht => "fwht",
        })
    }
}

/// What a decoder or muxer must know about a coded stream, shared by all its packets.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CodecParams {
    /// The codec.
    pub codec: Codec,
    /// Coded width in pixels (0 while unknown).
    pub width: u32,
    /// Coded height in pixels (0 while unknown).
    pub height: u32,
    /// Codec-specific setup data, e.g. an `avcC`/`hvcC` record for H.264/H.265.
    pub extradata: Bytes,
}

impl CodecParams {
    /// Parameters with no setup data yet.
    pub fn new(codec: Codec, width: u32, height: u32) -> Self {
        CodecParams {
            codec,
            width,
            height,
            extradata: Bytes::new(),
        }
    }

    /// The same parameters with `extradata` set.
    pub fn with_extradata(mut self, extradata: Bytes) -> Self {
        self.extradata = extradata;
        self
    }
}

/// One encoded access unit (a whole frame), with timing.
#[derive(Clone, Debug)]
pub struct Packet {
    /// The codec of `data`.
    pub codec: Codec,
    /// The coded bytes (for H.264/H.265: Annex-B).
    pub data: Bytes,
    /// Presentation time on the pipeline clock, in ns.
    pub pts: i64,
    /// Decode time on the pipeline clock, in ns (equals `pts` without reordering).
    pub dts: i64,
    /// Nominal duration in ns (0 when unknown).
    pub duration: i64,
    /// When its picture was captured (UTC): the camera's frame time for live
    /// sources; for packets read from a file, the moment they are published
    /// (`UNIX_EPOCH` until then).
    pub capture_utc: SystemTime,
    /// True when decoding can start here (IDR / IRAP / VP9 key frame / every JPEG).
    pub keyframe: bool,
    /// Parameters shared by the stream's packets (until a format change).
    pub params: Arc<CodecParams>,
    /// Name of the node that produced the packet.
    pub source: Arc<str>,
    /// The producer's packet counter.
    pub seq: u64,
    /// What was known about the picture it encodes (detections, tracks,
    /// ground truth), carried from the frame; empty for packets that did not
    /// come from an encoder here.
    pub meta: Arc<FrameMeta>,
}
