pub mod capture;
pub mod config;
pub mod hub;
pub mod media;
