use leptos::prelude::*;

use crate::connection::ConnState;
use crate::transport::Transport;

/// The connection state: connecting, open, reconnecting in N s (with "retry now"), closed.
/// Names the way when it is not a WebSocket.
/// - `state`: the connection's state.
/// - `transport`: the way the connection goes.
/// - `on_retry`: reconnect now.
#[component]
pub fn ConnectionBadge(
    state: RwSignal<ConnState>,
    transport: RwSignal<Transport>,
    #[prop(into)] on_retry: Callback<()>,
) -> impl IntoView {
    // Ticks while reconnecting so the countdown moves.
    let now = RwSignal::new(js_sys::Date::now());
    if let Ok(handle) = set_interval_with_handle(
        move || now.set(js_sys::Date::now()),
        std::time::Duration::from_millis(250),
    ) {
        on_cleanup(move || handle.clear());
    }
    let class = move || match state.get() {
        ConnState::Open => "badge badge-open",
        ConnState::Connecting => "badge badge-connecting",
        ConnState::Reconnecting { .. } => "badge badge-reconnecting",
        ConnState::Closed { .. } => "badge badge-closed",
    };
    let via = move || match transport.get() {
        Transport::WebSocket => String::new(),
        other => format!(" via {}", other.label()),
    };
    let label = move || match state.get() {
        ConnState::Open => format!("Connected{}", via()),
        ConnState::Connecting => format!("Connecting{}…", via()),
        ConnState::Reconnecting {
            attempt,
            retry_at_ms,
        } => {
            let secs = ((retry_at_ms - now.get()) / 1000.0).max(0.0).ceil() as u64;
            format!("Reconnecting in {secs} s (attempt {attempt})")
        }
        ConnState::Closed { code, reason } if reason.is_empty() => format!("Closed ({code})"),
        ConnState::Closed { reason, .. } => format!("Closed: {reason}"),
    };
    let reconnecting = move || matches!(state.get(), ConnState::Reconnecting { .. });
    view! {
        <div class="conn" role="status" aria-live="polite">
            <span class=class data-state=move || match state.get() {
                ConnState::Open => "open",
                ConnState::Connecting => "connecting",
                ConnState::Reconnecting { .. } => "reconnecting",
                ConnState::Closed { .. } => "closed",
            }>
                <span class="dot" aria-hidden="true"></span>
                {label}
            </span>
            <Show when=reconnecting>
                <button class="link" on:click=move |_| on_retry.run(())>"Retry now"</button>
            </Show>
        </div>
    }
}
