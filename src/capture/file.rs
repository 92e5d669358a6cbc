//! Options of the file source (the node lives in `server::file`): a recorded
//! file played as a camera.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::media::Fps;

/// The keys of a `file` node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileOptions {
    /// The file: `.mp4`, `.mkv`/`.webm`, `.ts`, or an elementary stream
    /// (`.h264`, `.h265`, `.ivf`).
    pub path: PathBuf,
    /// Pace packets at their timestamps like a camera (`true`), or publish
    /// them as fast as subscribers take them.
    pub live: bool,
    /// Start again from the beginning at the end, continuing the timeline.
    #[serde(rename = "loop")]
    pub looping: bool,
    /// Frame rate of an elementary stream (default: its SPS timing). Containers carry their own timestamps.
    pub fps: Option<Fps>,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            path: PathBuf::new(),
            live: true,
            looping: false,
            fps: None,
        }
    }
}

impl FileOptions {
    /// Checks the keys; the error names the offending one.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.path.as_os_str().is_empty() {
            return Err(("path", "is required: the file to play".into()));
        }
        Ok(())
    }
}
