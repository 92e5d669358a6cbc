//! Run-time control, the parts that need no running server: the Prometheus
//! text writer ([`metrics`]), the HTTP client `eyrie ctl` speaks
//! ([`client`]), and the audit log and API tokens in the media root
//! ([`store`]). The
//! HTTP API's handlers adapt [`crate::server::Server`]'s methods and live
//! beside them (`server::api`); users, roles and tokens serve every
//! listener and live in [`crate::serve::auth`].

pub mod client;
pub mod metrics;
pub mod store;
