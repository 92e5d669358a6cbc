//! NAL unit framing: Annex-B byte streams (start codes, H.264 Annex B / H.265
//! Annex B) and length-prefixed samples (ISO/IEC 14496-15 `AVCC`/`HVCC`), and
//! conversion between the two.

use super::CodecError;

/// A NAL unit of an input, with the byte offset of its first byte (after the
/// start code or length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nal<'a> {
    /// Offset in the input.
    pub offset: usize,
    /// The NAL unit, header included, emulation prevention still in place.
    pub data: &'a [u8],
}

/// The NAL units of an Annex-B byte stream. Bytes before the first start code
/// are skipped; trailing zero bytes (of 4-byte start codes or padding) are not
/// part of a unit; empty units are skipped.
pub fn annexb(data: &[u8]) -> AnnexB<'_> {
    AnnexB {
        data,
        pos: next_start(data, 0).map_or(data.len(), |(_, end)| end),
    }
}

/// The first NAL unit of an Annex-B byte stream, from its header to the end of
/// `data`: enough to read its type without searching for where it ends.
pub fn first_unit(data: &[u8]) -> Option<&[u8]> {
    let (_, start) = next_start(data, 0)?;
    data.get(start..).filter(|rest| !rest.is_empty())
}

/// Iterator of [`annexb`].
pub struct AnnexB<'a> {
    data: &'a [u8],
    pos: usize,
}

/// The next start code (`00 00 01`) at or after `from`: (its first byte, the byte after it).
///
/// A substring search rather than a scan for the `01` byte: in coded slice data
/// `01` occurs about once in 150 bytes, while the two-byte prefilter of
/// [`memchr::memmem`] rarely stops before a real start code.
fn next_start(data: &[u8], from: usize) -> Option<(usize, usize)> {
    static START_CODE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(&[0, 0, 1]));
    let at = from + START_CODE.find(data.get(from..)?)?;
    Some((at, at + 3))
}

impl<'a> Iterator for AnnexB<'a> {
    type Item = Nal<'a>;

    fn next(&mut self) -> Option<Nal<'a>> {
        while self.pos < self.data.len() {
            let start = self.pos;
            let (end, next) = next_start(self.data, start).unwrap_or((self.data.len(), self.data.len()));
            self.pos = next;
            let mut stop = end;
            while stop > start && self.data[stop - 1] == 0 {
                stop -= 1;
            }
            if stop > start {
                return Some(Nal {
                    offset: start,
                    data: &self.data[start..stop],
                });
            }
        }
        None
    }
}

/// The NAL units of a length-prefixed sample (`length_size` of 1, 2 or 4 bytes,
/// big-endian), starting at byte `base` of the input.
pub fn length_prefixed(data: &[u8], length_size: usize, base: usize) -> Result<Vec<Nal<'_>>, CodecError> {
    if ![1, 2, 4].contains(&length_size) {
        return Err(CodecError::new(
            base,
            format!("NAL length size {length_size} (expected 1, 2 or 4)"),
        ));
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let Some(len_bytes) = data.get(pos..pos + length_size) else {
            return Err(CodecError::new(base + pos, "truncated NAL length"));
        };
        let len = len_bytes.iter().fold(0usize, |acc, &b| acc << 8 | b as usize);
        let start = pos + length_size;
        let Some(nal) = data.get(start..start + len) else {
            return Err(CodecError::new(
                base + pos,
                format!("NAL of {len} bytes overruns the sample ({} left)", data.len() - start),
            ));
        };
        out.push(Nal {
            offset: base + start,
            data: nal,
        });
        pos = start + len;
    }
    Ok(out)
}

/// Appends `nals` to `out` as a length-prefixed sample with 4-byte lengths.
pub fn write_length_prefixed<'a>(nals: impl IntoIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    for nal in nals {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
}

/// Appends `nals` to `out` as Annex-B, each after a 4-byte start code.
pub fn write_annexb<'a>(nals: impl IntoIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    for nal in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annexb_splits_on_three_and_four_byte_start_codes() {
        let data = [
            9, 9, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 0, 0, 5, 0,
        ];
        let nals: Vec<_> = annexb(&data).collect();
        assert_eq!(nals.len(), 3);
        assert_eq!(
            nals[0],
            Nal {
                offset: 6,
                data: &[0x67, 1, 2]
            }
        );
        assert_eq!(
            nals[1],
            Nal {
                offset: 12,
                data: &[0x68, 3]
            }
        );
        // `00 00 05` is not a start code; the trailing zero is padding.
        assert_eq!(
            nals[2],
            Nal {
                offset: 19,
                data: &[0x65, 0, 0, 5]
            }
        );
        assert_eq!(annexb(&[0, 0, 1]).count(), 0);
        assert_eq!(annexb(&[1, 2, 3]).count(), 0);
        assert_eq!(annexb(&[]).count(), 0);
        assert_eq!(
            first_unit(&[9, 0, 0, 1, 0x67, 0, 0, 1, 0x68]),
            Some(&[0x67, 0, 0, 1, 0x68][..])
        );
        assert_eq!(first_unit(&[0, 0, 1]), None);
    }

    #[test]
    fn length_prefixed_round_trip_and_errors() {
        let nals: [&[u8]; 2] = [&[0x65, 1, 2, 3], &[0x41, 9]];
        let mut sample = Vec::new();
        write_length_prefixed(nals, &mut sample);
        let back: Vec<&[u8]> = length_prefixed(&sample, 4, 0).unwrap().iter().map(|n| n.data).collect();
        assert_eq!(back, nals);
        let mut annexb_out = Vec::new();
        write_annexb(back, &mut annexb_out);
        assert_eq!(annexb(&annexb_out).map(|n| n.data).collect::<Vec<_>>(), nals);
        let err = length_prefixed(&sample[..sample.len() - 1], 4, 100).unwrap_err();
        assert_eq!(err.offset, 108, "points at the length of the second NAL");
        assert!(length_prefixed(&sample, 3, 0).is_err());
    }
}
