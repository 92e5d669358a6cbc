pub mod capture;
pub mod hub;
pub mod media;
