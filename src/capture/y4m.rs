//! YUV4MPEG2 (`.y4m`) files: raw frames with a one-line header, the common
//! currency of codec test material (`ffmpeg -f yuv4mpegpipe`, x264, libvpx).
//!
//! Sans-IO: [`Y4m::parse`] reads the header of a file held in memory (a map)
//! and [`Y4m::frame`] lends frame `n` as a slice of it, so frames reach an
//! encoder without a copy. Layout: `YUV4MPEG2 W<w> H<h> F<n>:<d> [I…] [A…]
//! [C<colorspace>] [X…]\n`, then per frame `FRAME[ params]\n` and the planes.
//! 4:2:0 colorspaces (`420jpeg`, `420paldv`, `420mpeg2`, `420`, the default)
//! read as I420, `mono` as gray; others are refused by name.

use bytes::Bytes;

use crate::codec::CodecError;
use crate::media::{Fps, PixelFormat, VideoInfo};

const MAGIC: &[u8] = b"YUV4MPEG2 ";
const FRAME: &[u8] = b"FRAME";
/// Longest header line accepted.
const MAX_LINE: usize = 4096;

/// A parsed `.y4m` file.
#[derive(Clone, Debug)]
pub struct Y4m {
    data: Bytes,
    info: VideoInfo,
    /// Byte offset of each frame's pixels.
    frames: Vec<usize>,
}

fn line(data: &[u8], at: usize) -> Result<(&[u8], usize), CodecError> {
    let rest = &data[at..];
    let len = memchr::memchr(b'\n', &rest[..rest.len().min(MAX_LINE)])
        .ok_or_else(|| CodecError::new(at, "header line without an end (no newline)"))?;
    Ok((&rest[..len], at + len + 1))
}

impl Y4m {
    /// Parses the header and finds every frame of `data`.
    pub fn parse(data: Bytes) -> Result<Y4m, CodecError> {
        if !data.starts_with(MAGIC) {
            return Err(CodecError::new(0, "not a YUV4MPEG2 file (no `YUV4MPEG2 ` signature)"));
        }
        let (header, mut at) = line(&data, 0)?;
        let (mut width, mut height, mut fps, mut format) = (0u32, 0u32, Fps { num: 25, den: 1 }, PixelFormat::I420);
        let mut offset = MAGIC.len();
        for token in header[MAGIC.len()..].split(|&b| b == b' ') {
            let here = offset;
            offset += token.len() + 1;
            let Some((&tag, value)) = token.split_first() else {
                continue;
            };
            let text = std::str::from_utf8(value).map_err(|_| CodecError::new(here, "header is not text"))?;
            let number = |what: &str| {
                text.parse::<u32>()
                    .map_err(|_| CodecError::new(here, format!("bad {what} `{text}`")))
            };
            match tag {
                b'W' => width = number("width")?,
                b'H' => height = number("height")?,
                b'F' => {
                    let (n, d) = text
                        .split_once(':')
                        .ok_or_else(|| CodecError::new(here, format!("bad frame rate `{text}`")))?;
                    let parse = |s: &str| s.parse::<u32>().ok();
                    fps = parse(n)
                        .zip(parse(d))
                        .and_then(|(n, d)| Fps::new(n, d).ok())
                        .ok_or_else(|| CodecError::new(here, format!("bad frame rate `{text}`")))?;
                }
                b'C' => {
                    format = match text {
                        "420jpeg" | "420paldv" | "420mpeg2" | "420" => PixelFormat::I420,
                        "mono" => PixelFormat::Gray8,
                        other => {
                            return Err(CodecError::new(
                                here,
                                format!(
                                    "colorspace `{other}` is not supported (420jpeg, 420paldv, 420mpeg2, 420, mono are)"
                                ),
                            ));
                        }
                    }
                }
                b'I' if text != "p" && text != "?" => {
                    return Err(CodecError::new(
                        here,
                        format!("interlacing `{text}` is not supported (only progressive)"),
                    ));
                }
                _ => {}
            }
        }
        let info = VideoInfo::new(format, width, height, fps)
            .map_err(|e| CodecError::new(0, format!("header says {width}x{height}: {e}")))?;
        let size = info.size();
        let mut frames = Vec::new();
        while at < data.len() {
            let (frame_line, next) = line(&data, at)?;
            if !frame_line.starts_with(FRAME) {
                return Err(CodecError::new(
                    at,
                    format!("frame {} has no FRAME header", frames.len()),
                ));
            }
            if data.len() - next < size {
                return Err(CodecError::new(
                    next,
                    format!(
                        "frame {} is cut short ({} of {size} bytes)",
                        frames.len(),
                        data.len() - next
                    ),
                ));
            }
            frames.push(next);
            at = next + size;
        }
        Ok(Y4m { data, info, frames })
    }

    /// Format, size and rate of the frames.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True for a file with a header and no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The pixels of frame `n` (shared with the file, not copied).
    pub fn frame(&self, n: usize) -> Option<Bytes> {
        let at = *self.frames.get(n)?;
        Some(self.data.slice(at..at + self.info.size()))
    }
}

/// The header line of a `.y4m` file holding frames like `info` (I420 or gray).
pub fn header(info: &VideoInfo) -> String {
    let colorspace = if info.format == PixelFormat::Gray8 {
        "mono"
    } else {
        "420jpeg"
    };
    format!(
        "YUV4MPEG2 W{} H{} F{}:{} Ip A1:1 C{colorspace}\n",
        info.width, info.height, info.fps.num, info.fps.den
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, frames: usize, size: usize) -> Bytes {
        let mut v = header.as_bytes().to_vec();
        for i in 0..frames {
            v.extend_from_slice(b"FRAME\n");
            v.extend(std::iter::repeat_n(i as u8, size));
        }
        Bytes::from(v)
    }

    #[test]
    fn reads_header_and_lends_frames() {
        let y = Y4m::parse(file(
            "YUV4MPEG2 W4 H2 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG\n",
            3,
            12,
        ))
        .unwrap();
        assert_eq!(
            (y.info().width, y.info().height, y.info().fps),
            (4, 2, Fps { num: 30000, den: 1001 })
        );
        assert_eq!(y.info().format, PixelFormat::I420);
        assert_eq!(y.len(), 3);
        assert_eq!(&y.frame(2).unwrap()[..], &[2u8; 12]);
        assert!(y.frame(3).is_none());
    }

    #[test]
    fn header_round_trips() {
        let info = VideoInfo::new(PixelFormat::I420, 6, 4, Fps { num: 25, den: 1 }).unwrap();
        let y = Y4m::parse(file(&header(&info), 1, info.size())).unwrap();
        assert!(y.info().same_layout(&info) && y.info().fps == info.fps);
    }

    #[test]
    fn bad_files_say_what_and_where() {
        let cases = [
            ("YUV4MPEG W4 H2\n", "signature"),
            ("YUV4MPEG2 W4 H2 C444\nFRAME\n", "colorspace `444`"),
            ("YUV4MPEG2 W4 H2 It\n", "interlacing"),
            ("YUV4MPEG2 Wx H2\n", "bad width"),
            ("YUV4MPEG2 W4 H2 F30\n", "frame rate"),
            ("YUV4MPEG2 W0 H2\n", "0x2"),
            ("YUV4MPEG2 W4 H2", "no newline"),
            ("YUV4MPEG2 W4 H2\nFRAME\n\x01", "cut short"),
            ("YUV4MPEG2 W4 H2\nFRAMX\n", "no FRAME header"),
        ];
        for (text, want) in cases {
            let e = Y4m::parse(Bytes::from(text.as_bytes().to_vec()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
