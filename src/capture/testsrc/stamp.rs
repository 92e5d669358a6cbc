//! A machine-readable stamp: frame number and camera id as a row of black and
//! white cells across the top of every synthetic frame. The cells are large
//! (1/80 of the width) so the stamp survives lossy encoding; reading it back
//! from a decoded recording tells which camera and which frame it shows.
//!
//! Layout: 4 start cells `1 0 1 1`, 32 bits of frame number, 16 bits of camera
//! id, 4 bits of checksum (XOR of the 12 data nibbles), most significant first.

use crate::media::VideoInfo;
use crate::media::paint::{Canvas, Rgb, luma_at};

const START: [bool; 4] = [true, false, true, true];
/// Cells in a stamp.
pub const CELLS: u32 = 56;

/// What a stamp says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Frame number (wraps at 2³²).
    pub frame: u32,
    /// Camera id.
    pub camera: u16,
}

/// Side of one cell in pixels for a frame `width` wide.
pub fn cell_size(width: u32) -> u32 {
    ((width / 80) & !1).max(2)
}

fn checksum(frame: u32, camera: u16) -> u8 {
    let data = ((frame as u64) << 16) | camera as u64;
    (0..12).fold(0u8, |acc, i| acc ^ ((data >> (i * 4)) & 0xF) as u8)
}

fn bits(stamp: Stamp) -> impl Iterator<Item = bool> {
    let payload =
        ((stamp.frame as u64) << 20) | ((stamp.camera as u64) << 4) | checksum(stamp.frame, stamp.camera) as u64;
    START
        .into_iter()
        .chain((0..52).rev().map(move |i| payload >> i & 1 == 1))
}

/// Draws `stamp` at the top-left of the frame.
pub fn draw(canvas: &mut Canvas<'_>, stamp: Stamp) {
    let c = cell_size(canvas.info().width) as i32;
    for (i, on) in bits(stamp).enumerate() {
        let color = if on { Rgb(255, 255, 255) } else { Rgb(0, 0, 0) };
        canvas.fill_rect(i as i32 * c, 0, c, c, color);
    }
}

/// Reads the stamp of a frame, if it has a valid one.
pub fn read(info: &VideoInfo, data: &[u8]) -> Option<Stamp> {
    let c = cell_size(info.width);
    if c * CELLS > info.width || c > info.height {
        return None;
    }
    let cells: Vec<bool> = (0..CELLS)
        .map(|i| luma_at(info, data, i * c + c / 2, c / 2) > 125)
        .collect();
    if cells[..4] != START {
        return None;
    }
    let payload = cells[4..].iter().fold(0u64, |acc, &b| acc << 1 | b as u64);
    let frame = (payload >> 20) as u32;
    let camera = (payload >> 4 & 0xFFFF) as u16;
    (checksum(frame, camera) == (payload & 0xF) as u8).then_some(Stamp { frame, camera })
}
