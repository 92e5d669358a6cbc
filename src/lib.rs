pub mod hub;
pub mod media;
