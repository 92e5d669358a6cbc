//! The FFmpeg CLI (and other independent tools) as judges.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A command for an installed tool; fails the test clearly when it is missing.
pub fn tool(name: &str) -> Command {
    let found = Command::new("which")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "`{name}` is not installed: scripts/test.sh installs it");
    Command::new(name)
}

/// A temporary directory, removed on drop.
pub struct Dir(tempfile::TempDir);

impl Dir {
    /// A fresh directory.
    pub fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }

    /// A path inside it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// Runs `ffmpeg -v error -y` with `args`, asserting success.
pub fn ffmpeg<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) {
    let out = tool("ffmpeg").args(["-v", "error", "-y"]).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One packet as ffprobe demuxes it: pts and dts in seconds (dts `None`
/// when the container has none), and the keyframe flag.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Probed {
    pub pts: f64,
    pub dts: Option<f64>,
    pub key: bool,
}

/// Every video packet of `file`, in file order.
pub fn ffprobe_packets(file: &Path) -> Vec<Probed> {
    let out = tool("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["packet=pts_time,dts_time,flags", "-of", "compact=p=0"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|line| line.contains("pts_time"))
        .map(|line| {
            let field = |k: &str| {
                line.split('|')
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                    .unwrap_or("N/A")
                    .to_string()
            };
            Probed {
                pts: field("pts_time").parse().expect("a pts"),
                dts: field("dts_time").parse().ok(),
                key: field("flags").starts_with('K'),
            }
        })
        .collect()
}

/// Decodes `file` with FFmpeg's strictest error checking: `Err` with its
/// stderr unless it exits 0 and prints nothing (see ../shared/TESTING.md).
pub fn decode_strict(file: &Path) -> Result<(), String> {
    let out = tool("ffmpeg")
        .args(["-v", "error", "-xerror", "-err_detect", "explode", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() && stderr.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {} {stderr}", file.display(), out.status))
    }
}

/// Frames FFmpeg decodes from `file` (`ffprobe -count_frames`).
pub fn count_frames(file: &Path) -> u64 {
    let out = tool("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // A TS file lists its stream under its program too: the first line counts.
    let count = text.lines().next().unwrap_or_default().trim().trim_end_matches(',');
    count.parse().unwrap_or_else(|_| {
        panic!(
            "ffprobe -count_frames {}: {text:?} {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
