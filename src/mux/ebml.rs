//! EBML (RFC 8794), the binary format under Matroska: variable-length
//! integers, element IDs and sizes, and element writers and readers.

/// The reserved "unknown size" (8-byte form), for elements still being written.
pub const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// Appends an element ID (IDs keep their length marker: `0x1A45DFA3` is 4 bytes).
pub fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = (id.leading_zeros() / 8) as usize;
    out.extend_from_slice(&bytes[skip.min(3)..]);
}

/// Appends `size` as the shortest EBML variable-length integer (RFC 8794 §4).
pub fn put_size(out: &mut Vec<u8>, size: u64) {
    let len = (1..=8).find(|&l| size < (1u64 << (7 * l)) - 1).unwrap_or(8);
    put_size_len(out, size, len);
}

/// Appends `size` as a variable-length integer of exactly `len` bytes.
pub fn put_size_len(out: &mut Vec<u8>, size: u64, len: usize) {
    let v = size | 1u64 << (7 * len);
    out.extend_from_slice(&v.to_be_bytes()[8 - len..]);
}

/// Appends an element with raw contents.
pub fn put_bytes(out: &mut Vec<u8>, id: u32, data: &[u8]) {
    put_id(out, id);
    put_size(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// Appends an unsigned integer element, in as few bytes as it needs.
pub fn put_uint(out: &mut Vec<u8>, id: u32, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = ((v.leading_zeros() / 8) as usize).min(7);
    put_bytes(out, id, &bytes[skip..]);
}

/// Appends an 8-byte float element.
pub fn put_float(out: &mut Vec<u8>, id: u32, v: f64) {
    put_bytes(out, id, &v.to_be_bytes());
}

/// Appends a master element built by `body`.
pub fn put_master(out: &mut Vec<u8>, id: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    put_bytes(out, id, &inner);
}

/// A Void element of exactly `total` bytes (`total` ≥ 2), header included.
pub fn void(total: usize) -> Vec<u8> {
    assert!(total >= 2, "a Void element takes at least 2 bytes");
    let mut out = vec![0xEC];
    // One size byte up to 127 payload bytes, else an 8-byte size.
    if total - 2 < 127 {
        put_size_len(&mut out, (total - 2) as u64, 1);
    } else {
        put_size_len(&mut out, (total - 9) as u64, 8);
    }
    out.resize(total, 0);
    out
}

/// An element header read from input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Element ID, marker bits kept.
    pub id: u32,
    /// Payload size; `None` for the unknown size.
    pub size: Option<u64>,
    /// Bytes of ID and size.
    pub len: usize,
}

/// Reads an element header at the start of `data`; `None` when `data` is too
/// short or the header is malformed.
pub fn read_header(data: &[u8]) -> Option<Header> {
    let first = *data.first()?;
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 {
        return None;
    }
    let id = data.get(..id_len)?.iter().fold(0u32, |a, &b| a << 8 | b as u32);
    let (size, size_len) = read_vint(data.get(id_len..)?)?;
    let unknown = size == (1u64 << (7 * size_len)) - 1;
    Some(Header {
        id,
        size: (!unknown).then_some(size),
        len: id_len + size_len,
    })
}

/// Reads a variable-length integer: (value without marker, length).
pub fn read_vint(data: &[u8]) -> Option<(u64, usize)> {
    let first = *data.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = data.get(..len)?;
    let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let v = bytes[1..].iter().fold((first & mask) as u64, |a, &b| a << 8 | b as u64);
    Some((v, len))
}

/// An unsigned integer payload (0 to 8 bytes).
pub fn read_uint(data: &[u8]) -> Option<u64> {
    (data.len() <= 8).then(|| data.iter().fold(0u64, |a, &b| a << 8 | b as u64))
}

/// A float payload (4 or 8 bytes; 0 bytes is 0.0).
pub fn read_float(data: &[u8]) -> Option<f64> {
    match data.len() {
        0 => Some(0.0),
        4 => Some(f32::from_be_bytes(data.try_into().ok()?) as f64),
        8 => Some(f64::from_be_bytes(data.try_into().ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_the_shortest_form_and_read_back() {
        for (v, len) in [(0u64, 1), (126, 1), (127, 2), (16382, 2), (16383, 3), (1 << 40, 6)] {
            let mut out = Vec::new();
            put_size(&mut out, v);
            assert_eq!(out.len(), len, "{v}");
            assert_eq!(read_vint(&out), Some((v, len)));
        }
    }

    #[test]
    fn headers_read_back_with_unknown_size() {
        let mut out = Vec::new();
        put_id(&mut out, 0x1853_8067);
        out.extend_from_slice(&UNKNOWN_SIZE);
        assert_eq!(
            read_header(&out),
            Some(Header {
                id: 0x1853_8067,
                size: None,
                len: 12
            })
        );
        let mut e = Vec::new();
        put_uint(&mut e, 0xD7, 1);
        assert_eq!(e, [0xD7, 0x81, 0x01]);
    }

    #[test]
    fn void_has_the_exact_length() {
        for total in [2, 9, 128, 129, 300] {
            let v = void(total);
            assert_eq!(v.len(), total);
            let h = read_header(&v).unwrap();
            assert_eq!(h.len as u64 + h.size.unwrap(), total as u64);
        }
    }
}
