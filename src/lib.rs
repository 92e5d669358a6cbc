//! Eyrie: a GStreamer-free, zero-copy, multi-camera AI media server.
//!
//! Everything the `eyrie` binary does is reachable from this crate, so products
//! can embed it. Layers, bottom to top (a layer never imports one above it):
//!
//! - [`media`]: pixel formats, frames, packets, the pipeline clock, bounded
//!   buffer pools with leases, and the global bytes-copied counter (pure);
//! - [`codec`]: bitstream parsing — H.264/H.265 NAL units, parameter sets and
//!   access units, `avcC`/`hvcC`, VP9 and IVF, JPEG (pure);
//! - [`mux`]: sans-IO container muxers — MPEG-TS, Matroska/WebM, MP4 and
//!   fragmented MP4 — and the writers that put their bytes in files (pure
//!   muxers; writers do the I/O);
//! - [`demux`]: elementary-stream readers with picture-order timing, and
//!   readers for every container [`mux`] writes;
//! - [`hub`]: named streams and relinkable subscriptions (the interpipe of Eyrie);
//! - [`capture`]: sources (synthetic cameras today);
//! - [`infer`]: batching, preprocessing, inference engines, detector decoding;
//! - [`encode`]: encoders and decoders (OpenH264, JPEG, FFmpeg, V4L2 M2M);
//! - [`output`]: recording, smart-record clips, snapshots, the media root
//!   and the recordings index;
//! - [`process`]: on-screen display and the mosaic tiler;
//! - [`track`]: the multi-object tracker (ByteTrack with a Kalman filter);
//! - [`events`]: the event bus and detection triggers;
//! - [`config`]: the TOML node descriptions shared with the run-time API;
//! - [`server`]: the node registry — config to running nodes, stats, shutdown.
//!
//! ```no_run
//! use eyrie::config::Config;
//! use eyrie::hub::{Item, SubscribeOptions};
//! use eyrie::server::Server;
//!
//! let server = Server::start(Config::default_demo())?;
//! let sub = server.hub().subscribe("in0", SubscribeOptions::default());
//! for _ in 0..30 {
//!     match sub.recv() {
//!         Some(Item::Frame(frame)) => println!("{} #{} {}", frame.source, frame.seq, frame.info),
//!         Some(_) => {} // a format change or the end of the stream
//!         None => break,
//!     }
//! }
//! let stats = server.shutdown();
//! println!("bytes copied: {}", stats.bytes_copied);
//! # Ok::<(), eyrie::server::ServerError>(())
//! ```
#![warn(missing_docs)]

pub mod capture;
pub mod codec;
pub mod config;
pub mod control;
pub mod demux;
pub mod encode;
pub mod events;
pub mod hub;
pub mod infer;
pub mod media;
pub mod mux;
pub mod output;
pub mod process;
pub mod serve;
pub mod server;
pub mod track;
