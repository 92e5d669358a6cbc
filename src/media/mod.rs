//! The media core: pixel formats and layouts, frames, packets, the pipeline
//! clock, bounded buffer pools with leases, painting, and the global
//! bytes-copied counter. Pure: no I/O, no threads.

pub mod buffer;
pub mod clock;
pub mod font;
pub mod format;
pub mod frame;
pub mod packet;
pub mod paint;

pub use buffer::{
    Buffer, BufferPool, Memory, MemoryKind, PoolBuffer, PoolStats, bytes_copied, copy_frame_bytes, count_copied,
    count_thread_copies_in,
};
pub use clock::{Clock, ManualClock, MonotonicClock};
pub use format::{FormatError, Fps, PixelFormat, Plane, VideoInfo};
pub use frame::{Detection, Frame, FrameMeta, ObjectClass, Rect, TruthObject};
pub use packet::{Codec, CodecParams, Packet};
