//! The frame header of vicodec's FWHT codec (Linux `drivers/media/
//! test-drivers/vicodec/codec-fwht.h`, `struct fwht_cframe_hdr`): two magic
//! words, then big-endian version, width, height and flags. Its encoder marks
//! intra frames only here (`V4L2_FWHT_FL_I_FRAME`), not in the buffer flags.

use super::CodecError;

/// `FWHT_MAGIC1`, `FWHT_MAGIC2` as they lie in memory.
const MAGIC: [u8; 8] = [0x4f, 0x4f, 0x4f, 0x4f, 0xff, 0xff, 0xff, 0xff];
/// `V4L2_FWHT_FL_I_FRAME`.
const I_FRAME: u32 = 1 << 10;

/// Whether the FWHT frame `data` is an intra frame (a keyframe).
pub fn is_keyframe(data: &[u8]) -> Result<bool, CodecError> {
    if data.len() < 24 || data[..8] != MAGIC {
        return Err(CodecError::new(0, "not an FWHT frame (no FWHT magic)"));
    }
    let flags = u32::from_be_bytes([data[20], data[21], data[22], data[23]]);
    Ok(flags & I_FRAME != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_intra_flag_and_refuses_other_data() {
        let mut frame = MAGIC.to_vec();
        frame.extend_from_slice(&[0; 12]);
        frame.extend_from_slice(&I_FRAME.to_be_bytes());
        assert!(is_keyframe(&frame).unwrap());
        frame[22] = 0;
        assert!(!is_keyframe(&frame).unwrap());
        assert!(is_keyframe(b"\x00\x00\x00\x01garbage-and-more-bytes!!").is_err());
        assert!(is_keyframe(&MAGIC).is_err());
    }
}
