//! Server integration tests: each starts its own server on an ephemeral port.

mod advisories;
mod battery;
mod chat;
mod cluster;
mod data;
mod data_safety;
mod durability;
mod echo_and_feed;
mod handshake;
mod history;
mod hostile;
mod legacy;
mod lifecycle;
mod limits;
mod metrics;
mod options;
mod plain;
mod presence;
mod proxies;
mod server_api;
mod static_files;
mod tokens;
mod transports;
mod v3;
