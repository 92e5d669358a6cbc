//! Demuxers: elementary streams ([`es`]) and readers for the containers Eyrie
//! writes ([`ts`], [`mkv`], [`mp4`]), producing the same [`Packet`]s the
//! muxers take (H.264/H.265 payloads back in Annex-B).
//!
//! Readers hold the whole file ([`Bytes`]) and return packets that share it;
//! malformed input is a [`CodecError`] naming the byte offset.

pub mod es;

use crate::codec::CodecError;
use crate::media::Packet;
pub use es::EsKind;
