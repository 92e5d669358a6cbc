//! Elementary-stream files, written like containers: Annex-B H.264/H.265 and
//! concatenated JPEG carry the packets exactly as they are (shared, not
//! copied); VP9 goes into IVF (32-byte file header, 12-byte frame headers,
//! time base 1/90000), whose frame count is patched in at the end.

use super::{MuxError, Muxer, Output, Patch, Trailer, to_units};
use crate::codec::vp9::IvfHeader;
use crate::media::{Codec, Packet};

/// The codec an elementary-stream file extension holds.
pub fn codec_of_extension(ext: &str) -> Option<Codec> {
    Some(match ext.to_ascii_lowercase().as_str() {
        "h264" | "264" | "avc" | "h26l" => Codec::H264,
        "h265" | "265" | "hevc" => Codec::H265,
        "ivf" => Codec::Vp9,
        "mjpeg" | "mjpg" | "jpg" | "jpeg" => Codec::Mjpeg,
        _ => return None,
    })
}

/// IVF's time base: 90 kHz.
const IVF_TIMESCALE: u32 = 90_000;

/// Writes one codec's packets as its elementary-stream file.
pub struct EsMuxer {
    codec: Codec,
    frames: u32,
    first_pts: i64,
}

impl EsMuxer {
    /// A writer for `codec` packets.
    pub fn new(codec: Codec) -> Self {
        EsMuxer {
            codec,
            frames: 0,
            first_pts: 0,
        }
    }
}

impl Muxer for EsMuxer {
    fn push(&mut self, packet: &Packet, out: &mut Output) -> Result<(), MuxError> {
        if packet.codec != self.codec {
            return Err(MuxError::bad(
                packet,
                format!("a {} elementary stream cannot hold it", self.codec),
            ));
        }
        if self.codec == Codec::Vp9 {
            if self.frames == 0 {
                self.first_pts = packet.pts;
                let header = IvfHeader {
                    fourcc: *b"VP90",
                    width: packet.params.width as u16,
                    height: packet.params.height as u16,
                    timebase_num: 1,
                    timebase_den: IVF_TIMESCALE,
                };
                out.put(&header.to_bytes(0));
            }
            let pts = to_units(packet.pts - self.first_pts, IVF_TIMESCALE) as u64;
            let mut frame = [0u8; 12];
            frame[..4].copy_from_slice(&(packet.data.len() as u32).to_le_bytes());
            frame[4..].copy_from_slice(&pts.to_le_bytes());
            out.put(&frame);
        }
        out.share(packet.data.clone());
        self.frames += 1;
        Ok(())
    }

    fn finish(&mut self, _out: &mut Output) -> Result<Trailer, MuxError> {
        let mut trailer = Trailer::default();
        if self.codec == Codec::Vp9 && self.frames > 0 {
            trailer.patches.push(Patch {
                offset: 24,
                bytes: self.frames.to_le_bytes().to_vec(),
            });
        }
        Ok(trailer)
    }
}
