//! Parameter sets and frame headers over arbitrary bytes.
#![no_main]

use eyrie::codec::{h264, h265, jpeg, vp9};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As NAL units: force the SPS type into the header so parsing goes deep.
    let mut nal = data.to_vec();
    if let Some(b) = nal.first_mut() {
        *b = 0x67;
    }
    let _ = h264::Sps::parse(&nal, 0);
    if nal.len() > 1 {
        nal[0] = 0x42;
        nal[1] = 0x01;
    }
    let _ = h265::Sps::parse(&nal, 0);
    if nal.len() > 1 {
        nal[0] = 0x40;
    }
    let _ = h265::vps_fps(&nal, 0);
    let _ = h264::parse_avcc(data);
    let _ = vp9::parse_frame(data, 0);
    let _ = vp9::superframe(data, 0);
    let _ = vp9::parse_ivf(data);
    let _ = jpeg::parse(data);
});
