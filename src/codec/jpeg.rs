//! JPEG: the frame header (SOF, ITU-T T.81 §B.2.2) that gives an image's size.

use super::CodecError;

/// What a JPEG frame header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JpegInfo {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Sample precision in bits.
    pub precision: u8,
    /// Number of components (1 grey, 3 colour).
    pub components: u8,
}

/// Finds the SOF segment of a JPEG image.
pub fn parse(data: &[u8]) -> Result<JpegInfo, CodecError> {
    if data.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err(CodecError::new(0, "not a JPEG image (no SOI marker)"));
    }
    let mut pos = 2;
    loop {
        // Markers may be preceded by fill bytes 0xFF.
        while data.get(pos) == Some(&0xFF) && data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (data.get(pos), data.get(pos + 1)) else {
            return Err(CodecError::new(pos, "expected a marker"));
        };
        match marker {
            0xD8 | 0x01 | 0xD0..=0xD7 => {
                pos += 2;
                continue;
            }
            0xD9 | 0xDA => return Err(CodecError::new(pos, "no frame header (SOF) before the scan")),
            _ => {}
        }
        let len = data
            .get(pos + 2..pos + 4)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .ok_or_else(|| CodecError::new(pos + 2, "truncated segment length"))?;
        if len < 2 {
            return Err(CodecError::new(pos + 2, format!("segment length {len}")));
        }
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let s = data
                .get(pos + 4..pos + 10)
                .ok_or_else(|| CodecError::new(pos + 4, "truncated SOF"))?;
            let info = JpegInfo {
                precision: s[0],
                height: u16::from_be_bytes([s[1], s[2]]),
                width: u16::from_be_bytes([s[3], s[4]]),
                components: s[5],
            };
            if info.width == 0 || info.components == 0 {
                return Err(CodecError::new(pos + 4, "SOF with zero width or no components"));
            }
            return Ok(info);
        }
        pos += 2 + len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_size_after_other_segments() {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 1, 2];
        jpeg.extend_from_slice(&[0xFF, 0xFF, 0xC0, 0x00, 0x11, 8, 0x01, 0xE0, 0x02, 0x80, 3]);
        assert_eq!(
            parse(&jpeg).unwrap(),
            JpegInfo {
                width: 640,
                height: 480,
                precision: 8,
                components: 3
            }
        );
        assert_eq!(
            parse(&jpeg[..12]).unwrap_err().offset,
            11,
            "points at the truncated length"
        );
        assert!(parse(&[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]).is_err());
        assert!(parse(b"GIF89a").is_err());
    }
}
