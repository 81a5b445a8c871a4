//! Switchboard's browser client (Leptos, client-side rendered, built by trunk).
//!
//! - [`connection`]: the WebSocket (four events, reconnect with backoff and jitter).
//! - [`endpoint`]: where the server is (page host, `?server=` or a `<meta>`).
//! - [`echo_probe`]: round-trip measurement against `/echo`.
//! - [`history`]: older messages over HTTP.
//! - [`identity`]: the browser's token and the outbox, in `localStorage`.
//! - [`state`]: the room's reactive state, fed by connection events.
//! - [`app`] and [`components`]: the UI.

pub mod app;
pub mod components;
pub mod connection;
pub mod echo_probe;
pub mod endpoint;
pub mod history;
pub mod identity;
pub mod state;

/// Mounts the app on `<body>`.
pub fn run() {
    leptos::mount::mount_to_body(app::App);
}
