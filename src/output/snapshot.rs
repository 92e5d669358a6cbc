//! Snapshots: one JPEG from a stream. A raw frame is encoded as it is (the
//! JPEG encoder reads its rows in place); a coded stream gives its next
//! keyframe — an MJPEG packet as it is, H.264 (H.265 and VP9 with the
//! `ffmpeg` feature) decoded once — so nothing decodes continuously.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::Serialize;

use crate::codec::h264::parse_avcc;
use crate::codec::nal::write_annexb;
use crate::encode::{Backend, EncoderSettings, open_decoder, open_encoder};
use crate::hub::{Item, RecvError, Subscription};
use crate::media::{Codec, Frame, Packet};

/// A JPEG picture of a stream.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    /// The JPEG file's bytes.
    #[serde(skip)]
    pub jpeg: Bytes,
    /// The camera it shows.
    pub camera: String,
    /// Pipeline time of the picture, ns.
    pub pts: i64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// When it was taken.
    #[serde(skip)]
    pub utc: SystemTime,
    /// Where it was written, if it was.
    pub path: Option<std::path::PathBuf>,
}

/// Encodes `frame` as a JPEG of `quality` (1–100).
pub fn of_frame(frame: &Frame, quality: u8) -> Result<Snapshot, String> {
    let settings = EncoderSettings {
        codec: Codec::Mjpeg,
        encoder: Backend::Jpeg,
        quality,
        ..EncoderSettings::default()
    };
    let mut encoder = open_encoder(&settings, &frame.info).map_err(|e| format!("{}: {e}", frame.source))?;
    let mut out = Vec::with_capacity(1);
    encoder
        .encode(frame, &mut out)
        .map_err(|e| format!("frame {} of {}: {e}", frame.seq, frame.source))?;
    let packet = out
        .pop()
        .ok_or_else(|| format!("frame {} of {}: the JPEG encoder gave nothing", frame.seq, frame.source))?;
    Ok(Snapshot {
        jpeg: packet.data,
        camera: frame.source.to_string(),
        pts: frame.pts,
        width: frame.info.width,
        height: frame.info.height,
        utc: frame.capture_utc,
        path: None,
    })
}

/// A JPEG of the picture keyframe `packet` holds: itself for MJPEG, else decoded and encoded.
pub fn of_keyframe(packet: &Packet, quality: u8) -> Result<Snapshot, String> {
    let named = |e: &dyn std::fmt::Display| format!("packet {} of {}: {e}", packet.seq, packet.source);
    if packet.codec == Codec::Mjpeg {
        let info = crate::codec::jpeg::parse(&packet.data).map_err(|e| named(&e))?;
        return Ok(Snapshot {
            jpeg: packet.data.clone(),
            camera: packet.source.to_string(),
            pts: packet.pts,
            width: info.width.into(),
            height: info.height.into(),
            utc: SystemTime::now(),
            path: None,
        });
    }
    let mut decoder = open_decoder(packet.codec, &Backend::Auto).map_err(|e| named(&e))?;
    let mut frames = Vec::new();
    // Parameter sets carried out of band (an RTSP camera's SDP) go first, in a packet of their own.
    if packet.codec == Codec::H264 && !packet.params.extradata.is_empty() {
        let (sps, pps) = parse_avcc(&packet.params.extradata).map_err(|e| named(&e))?;
        let mut data = Vec::new();
        write_annexb(sps.into_iter().chain(pps), &mut data);
        let params = Packet {
            data: data.into(),
            keyframe: false,
            ..packet.clone()
        };
        decoder.decode(&params, &mut frames).map_err(|e| named(&e))?;
    }
    decoder.decode(packet, &mut frames).map_err(|e| named(&e))?;
    decoder.flush(&mut frames).map_err(|e| named(&e))?;
    let frame = frames
        .first()
        .ok_or_else(|| named(&"the keyframe decoded to no picture"))?;
    let mut snapshot = of_frame(frame, quality)?;
    snapshot.camera = packet.source.to_string();
    snapshot.utc = SystemTime::now();
    Ok(snapshot)
}

/// The next picture `sub` delivers within `timeout`, as a JPEG.
pub fn take(sub: &Subscription, timeout: Duration, quality: u8) -> Result<Snapshot, String> {
    let deadline = Instant::now() + timeout;
    let stream = || sub.control().linked_to().unwrap_or_default();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match sub.recv_timeout(left) {
            Ok(Item::Frame(frame)) => return of_frame(&frame, quality),
            Ok(Item::Packet(p)) if p.keyframe => return of_keyframe(&p, quality),
            Ok(Item::Eos) => return Err(format!("stream `{}` ended", stream())),
            Ok(_) => {}
            Err(RecvError::Timeout | RecvError::Empty) => {
                return Err(format!(
                    "stream `{}` gave no picture within {:.1} s",
                    stream(),
                    timeout.as_secs_f64()
                ));
            }
            Err(RecvError::Closed) => return Err(format!("stream `{}` was closed", stream())),
        }
    }
}

/// Writes `bytes` to `path` so that readers see the old file or the new, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Shares the latest snapshot of a node with the API.
pub type Latest = Arc<std::sync::Mutex<Option<Snapshot>>>;
