//! JPEG: encode for snapshots and MJPEG streams (pure Rust `jpeg-encoder`),
//! decode for MJPEG cameras (`zune-jpeg`).
//!
//! The encoder reads frames row by row as it needs them: YUV rows are lifted
//! from BT.601 limited range to JPEG's full range (JFIF) through two lookup
//! tables and RGB rows are converted by the encoder itself, so no converted
//! full frame is ever made. 4:2:0 sources are written 4:2:0, 4:2:2 sources
//! 4:2:2. The decoder returns RGB24 frames.

use std::time::Instant;

use bytes::Bytes;
use jpeg_encoder::{ImageBuffer, JpegColorType, SamplingFactor};
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::convert::ToI420;
use super::packetize::Stamp;
use super::{Change, EncodeError, Encoder, EncoderSettings, Packetizer, StageTimes, check_input};
use crate::media::{Buffer, Codec, Frame, Packet, PixelFormat, VideoInfo};

const NAME: &str = "jpeg";

/// Every raw format Eyrie has: the same ones the I420 conversion reads.
const FORMATS: &[PixelFormat] = ToI420::FORMATS;

/// JPEG's dimension limit.
const MAX_SIZE: (u32, u32) = (16384, 16384);

/// Limited-range (16–235 / 16–240) to full-range lookup tables.
struct Range {
    luma: [u8; 256],
    chroma: [u8; 256],
}

impl Range {
    fn new() -> Self {
        let expand = |v: usize, lo: f64, span: f64, center: f64| {
            (((v as f64 - lo) * 255.0 / span).round() + center).clamp(0.0, 255.0) as u8
        };
        Range {
            luma: std::array::from_fn(|v| expand(v, 16.0, 219.0, 0.0)),
            chroma: std::array::from_fn(|v| expand(v, 128.0, 224.0, 128.0)),
        }
    }
}

/// One frame, handed to the encoder row by row.
struct Rows<'a> {
    frame: &'a Frame,
    range: &'a Range,
}

impl ImageBuffer for Rows<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        match self.frame.info.format {
            PixelFormat::Gray8 => JpegColorType::Luma,
            _ => JpegColorType::Ycbcr,
        }
    }

    fn width(&self) -> u16 {
        self.frame.info.width as u16
    }

    fn height(&self) -> u16 {
        self.frame.info.height as u16
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let info = &self.frame.info;
        let planes = info.planes();
        let data = self.frame.buffer.bytes();
        let (w, y) = (info.width as usize, y as usize);
        let row = |p: usize, r: usize| &data[planes[p].offset + r * planes[p].stride..][..planes[p].row_bytes];
        let (luma, chroma) = (&self.range.luma, &self.range.chroma);
        let [by, bu, bv, _] = buffers;
        match info.format {
            PixelFormat::Gray8 => by.extend(row(0, y).iter().map(|&v| luma[v as usize])),
            PixelFormat::I420 | PixelFormat::Nv12 => {
                by.extend(row(0, y).iter().map(|&v| luma[v as usize]));
                // Each chroma sample stands for two pixels; the encoder subsamples again.
                let (u, v, step) = if info.format == PixelFormat::I420 {
                    (row(1, y / 2), row(2, y / 2), 1)
                } else {
                    let uv = row(1, y / 2);
                    (uv, &uv[1..], 2)
                };
                for x in 0..w {
                    bu.push(chroma[u[x / 2 * step] as usize]);
                    bv.push(chroma[v[x / 2 * step] as usize]);
                }
            }
            PixelFormat::Yuyv | PixelFormat::Uyvy => {
                let (yo, co) = if info.format == PixelFormat::Yuyv {
                    (0, 1)
                } else {
                    (1, 0)
                };
                for quad in row(0, y).chunks_exact(4) {
                    let (u, v) = (chroma[quad[co] as usize], chroma[quad[co + 2] as usize]);
                    by.extend([luma[quad[yo] as usize], luma[quad[yo + 2] as usize]]);
                    bu.extend([u, u]);
                    bv.extend([v, v]);
                }
            }
            format => {
                let (bpp, [r, g, b]) = match format {
                    PixelFormat::Rgb24 => (3, [0, 1, 2]),
                    PixelFormat::Rgba => (4, [0, 1, 2]),
                    _ => (4, [2, 1, 0]),
                };
                for p in row(0, y).chunks_exact(bpp) {
                    let (yy, u, v) = full_range_ycbcr(p[r], p[g], p[b]);
                    by.push(yy);
                    bu.push(u);
                    bv.push(v);
                }
            }
        }
    }
}

/// JFIF (full-range BT.601) Y, Cb, Cr of an RGB pixel.
fn full_range_ycbcr(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    let y = (19595 * r + 38470 * g + 7471 * b + 32768) >> 16;
    let u = ((-11059 * r - 21709 * g + 32768 * b + 32768) >> 16) + 128;
    let v = ((32768 * r - 27439 * g - 5329 * b + 32768) >> 16) + 128;
    (y.clamp(0, 255) as u8, u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
}

/// The JPEG encoder: one baseline JPEG per frame.
pub struct JpegEncoder {
    quality: u8,
    info: VideoInfo,
    range: Range,
    packetizer: Packetizer,
    times: StageTimes,
    /// Size of the last picture, to size the next one's buffer.
    last_len: usize,
}

impl JpegEncoder {
    /// An encoder for frames like `info`.
    pub fn new(settings: &EncoderSettings, info: &VideoInfo) -> Result<Self, EncodeError> {
        if settings.codec != Codec::Mjpeg {
            return Err(EncodeError::Unsupported {
                backend: NAME,
                what: format!("encode {}", settings.codec),
                supported: "mjpeg".into(),
            });
        }
        check_input(NAME, info, FORMATS, MAX_SIZE)?;
        Ok(JpegEncoder {
            quality: settings.quality,
            info: *info,
            range: Range::new(),
            packetizer: Packetizer::new(NAME, Codec::Mjpeg, info.width, info.height),
            times: StageTimes::default(),
            last_len: 0,
        })
    }

    /// `frame` as one JPEG image.
    pub fn picture(&mut self, frame: &Frame) -> Result<Vec<u8>, EncodeError> {
        super::check_same_layout(NAME, &self.info, frame)?;
        let mut data = Vec::with_capacity(self.last_len + self.last_len / 4);
        let mut encoder = jpeg_encoder::Encoder::new(&mut data, self.quality);
        encoder.set_sampling_factor(match frame.info.format {
            PixelFormat::Yuyv | PixelFormat::Uyvy => SamplingFactor::F_2_1,
            _ => SamplingFactor::F_2_2,
        });
        encoder
            .encode_image(Rows {
                frame,
                range: &self.range,
            })
            .map_err(|e| EncodeError::failed(NAME, e))?;
        self.last_len = data.len();
        Ok(data)
    }
}

impl Encoder for JpegEncoder {
    fn name(&self) -> &'static str {
        NAME
    }

    fn codec(&self) -> Codec {
        Codec::Mjpeg
    }

    fn accepts(&self) -> &[PixelFormat] {
        FORMATS
    }

    fn latency_frames(&self) -> u32 {
        0
    }

    fn encode(&mut self, frame: &Frame, out: &mut Vec<Packet>) -> Result<(), EncodeError> {
        let t0 = Instant::now();
        let data = self.picture(frame)?;
        let t1 = Instant::now();
        out.push(
            self.packetizer
                .packet(Bytes::from(data), &Stamp::of(frame), frame.pts, true)?,
        );
        self.times.codec += t1 - t0;
        self.times.packetize += t1.elapsed();
        Ok(())
    }

    fn flush(&mut self, _out: &mut Vec<Packet>) -> Result<(), EncodeError> {
        Ok(())
    }

    fn apply(&mut self, change: Change) -> Result<(), EncodeError> {
        match change {
            Change::Quality(q) if (1..=100).contains(&q) => self.quality = q,
            Change::Quality(q) => {
                return Err(EncodeError::failed(
                    NAME,
                    format!("quality {q} is out of range 1..=100"),
                ));
            }
            // Every JPEG is a keyframe.
            Change::ForceKeyframe => {}
            other => {
                return Err(EncodeError::Unsupported {
                    backend: NAME,
                    what: format!("apply {other:?}"),
                    supported: "quality (and forced keyframes, which every JPEG is)".into(),
                });
            }
        }
        Ok(())
    }

    fn times(&self) -> StageTimes {
        self.times
    }
}

/// The JPEG decoder: one JPEG per packet in, one RGB24 frame out.
#[derive(Default)]
pub struct JpegDecoder;

impl JpegDecoder {
    /// A decoder.
    pub fn new() -> Self {
        JpegDecoder
    }
}

impl super::Decoder for JpegDecoder {
    fn name(&self) -> &'static str {
        NAME
    }

    fn decode(&mut self, packet: &Packet, out: &mut Vec<Frame>) -> Result<(), EncodeError> {
        let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(std::io::Cursor::new(&packet.data[..]), options);
        let pixels = decoder
            .decode()
            .map_err(|e| EncodeError::failed(NAME, format!("packet {}: {e:?}", packet.seq)))?;
        let (w, h) = decoder.dimensions().unwrap_or((0, 0));
        let info = VideoInfo::new(PixelFormat::Rgb24, w as u32, h as u32, super::rate_of(packet.duration))
            .map_err(|e| EncodeError::failed(NAME, format!("packet {}: {e}", packet.seq)))?;
        if pixels.len() < info.size() {
            return Err(EncodeError::failed(
                NAME,
                format!("packet {}: short picture", packet.seq),
            ));
        }
        // The decoder wrote into memory of its own, which the frame now owns: nothing is copied.
        out.push(Stamp::of_packet(packet).frame(info, Buffer::from_bytes(Bytes::from(pixels))));
        Ok(())
    }

    fn flush(&mut self, _out: &mut Vec<Frame>) -> Result<(), EncodeError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_tables_map_limited_to_full_range() {
        let r = Range::new();
        assert_eq!((r.luma[16], r.luma[235], r.luma[0], r.luma[255]), (0, 255, 0, 255));
        assert_eq!((r.chroma[16], r.chroma[128], r.chroma[240]), (0, 128, 255));
        assert_eq!(full_range_ycbcr(255, 255, 255), (255, 128, 128));
        assert_eq!(full_range_ycbcr(0, 0, 0), (0, 128, 128));
    }
}
