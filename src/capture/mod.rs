//! Sources: synthetic cameras (`testsrc`), V4L2 devices (`v4l2`), IP
//! cameras (`rtsp`) and recorded files (`file`); argus follows.

pub mod file;
pub mod rtsp;
pub mod testsrc;
pub mod v4l2;
pub mod y4m;
