//! Sources: synthetic cameras (`testsrc`) and V4L2 devices (`v4l2`); RTSP,
//! files and argus follow.

pub mod testsrc;
pub mod v4l2;
