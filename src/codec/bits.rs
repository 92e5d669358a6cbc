//! Reading NAL unit payloads: emulation-prevention removal (H.264 §7.4.1,
//! H.265 §7.4.2) and an MSB-first bit reader with Exp-Golomb codes (H.264 §9.1).

use super::CodecError;

/// Removes emulation-prevention bytes (`00 00 03` → `00 00`), giving the RBSP.
pub fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// An MSB-first bit reader. Errors carry the byte offset of the payload
/// (`base` plus the position reached), so they point into the original input.
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    /// Reads `data`, which starts at byte `base` of the input; `what` names the
    /// structure in errors.
    pub fn new(data: &'a [u8], base: usize, what: &'static str) -> Self {
        BitReader {
            data,
            pos: 0,
            base,
            what,
        }
    }

    fn end(&self) -> CodecError {
        CodecError::new(self.base + self.pos / 8, format!("{} ends early", self.what))
    }

    /// Bits not yet read.
    pub fn remaining(&self) -> usize {
        self.data.len() * 8 - self.pos.min(self.data.len() * 8)
    }

    /// One bit.
    pub fn bit(&mut self) -> Result<bool, CodecError> {
        let byte = *self.data.get(self.pos / 8).ok_or_else(|| self.end())?;
        let bit = byte >> (7 - self.pos % 8) & 1 == 1;
        self.pos += 1;
        Ok(bit)
    }

    /// `n` ≤ 32 bits as an unsigned number.
    pub fn bits(&mut self, n: u32) -> Result<u32, CodecError> {
        debug_assert!(n <= 32);
        if self.remaining() < n as usize {
            return Err(self.end());
        }
        let mut v = 0u32;
        for _ in 0..n {
            v = v << 1 | self.bit()? as u32;
        }
        Ok(v)
    }

    /// Skips `n` bits.
    pub fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        if self.remaining() < n {
            return Err(self.end());
        }
        self.pos += n;
        Ok(())
    }

    /// An unsigned Exp-Golomb code `ue(v)` (at most 32 leading zeros).
    pub fn ue(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(CodecError::new(
                    self.base + self.pos / 8,
                    format!("{}: Exp-Golomb code too long", self.what),
                ));
            }
        }
        if zeros == 0 {
            return Ok(0);
        }
        Ok(((1u64 << zeros) - 1 + self.bits(zeros)? as u64) as u32)
    }

    /// A signed Exp-Golomb code `se(v)`.
    pub fn se(&mut self) -> Result<i32, CodecError> {
        let k = self.ue()? as i64;
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) } as i32)
    }

    /// An error at the current position.
    pub fn error(&self, message: impl std::fmt::Display) -> CodecError {
        CodecError::new(self.base + self.pos / 8, format!("{}: {message}", self.what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_drops_emulation_prevention() {
        assert_eq!(unescape(&[0, 0, 3, 1, 0, 0, 3, 0, 3]), [0, 0, 1, 0, 0, 0, 3]);
        assert_eq!(unescape(&[0, 3, 0, 0, 3]), [0, 3, 0, 0]);
    }

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 → ue 0, 1, 2, 3 and se(4) = -2
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data, 0, "test");
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 3);
        assert_eq!(r.se().unwrap(), -2);
        assert!(r.bits(8).is_err());
    }

    #[test]
    fn overlong_codes_are_errors_not_panics() {
        let zeros = [0u8; 8];
        assert!(BitReader::new(&zeros, 10, "sps").ue().unwrap_err().offset >= 10);
    }
}
