//! Work on raw frames: the geometry of fitting one picture into another
//! ([`letterbox`]), the on-screen display ([`osd`], the nvdsosd equivalent)
//! and the mosaic ([`tile`], the nvmultistreamtiler).
pub mod letterbox;
pub mod osd;
pub mod tile;
