//! Switchboard's browser client (Leptos, client-side rendered, built by trunk).
//!
//! - [`connection`]: the connection (four events, reconnect with backoff and jitter) over a
//!   WebSocket, or down the [`transport`] ladder (SSE with POSTs, long-polling).
//! - [`endpoint`]: where the server is (page host, `?server=` or a `<meta>`).
//! - [`echo_probe`]: round-trip measurement against `/echo`.
//! - [`history`]: older messages over HTTP.
//! - [`identity`]: the browser's token and the outbox, in `localStorage`.
//! - [`state`]: the session (one connection, protocol v3) and its reactive state, fed by
//!   connection events; [`room`]: one joined room's state.
//! - [`app`] and [`components`]: the UI.

pub mod app;
pub mod components;
pub mod connection;
pub mod echo_probe;
pub mod endpoint;
pub mod history;
pub mod identity;
mod later;
pub mod numbers;
pub mod room;
pub mod state;
pub mod token;
pub mod transport;

/// The allocator (see client/Cargo.toml): talc, single-threaded (no `atomics` in this build).
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// Mounts the app on `<body>`.
pub fn run() {
    leptos::mount::mount_to_body(app::App);
}
