//! Sources: synthetic cameras (`testsrc`), V4L2 devices (`v4l2`) and
//! recorded files (`file`); RTSP and argus follow.

pub mod file;
pub mod testsrc;
pub mod v4l2;
