//! Sources: synthetic cameras (`testsrc`); V4L2, RTSP, files and argus follow.

pub mod testsrc;
