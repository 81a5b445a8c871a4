use leptos::prelude::*;
use shared::{Limits, MessageText};

use crate::connection::ConnState;

/// The message box. Disabled while the connection is not open; Enter sends, Shift+Enter adds a
/// line.
/// - `state`: the connection state (sending needs `Open`).
/// - `limits`: the server's limits (from the hello).
/// - `enabled`: whether there is a room to write to.
/// - `on_send`: sends the text; returns an error message if it could not be sent.
#[component]
pub fn Composer(
    state: RwSignal<ConnState>,
    limits: RwSignal<Option<Limits>>,
    enabled: Signal<bool>,
    #[prop(into)] on_send: Callback<String, Result<(), String>>,
    #[prop(into)] on_typing: Callback<()>,
) -> impl IntoView {
    // "Typing" goes out at most once per TYPING_INTERVAL_MS.
    let last_typing = StoredValue::new(0.0_f64);
    let typed = move || {
        let now = js_sys::Date::now();
        if now - last_typing.get_value() >= shared::TYPING_INTERVAL_MS as f64 {
            last_typing.set_value(now);
            on_typing.run(());
        }
    };
    let text = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let open = move || state.get().is_open();
    // Typing is allowed while reconnecting: messages wait in the outbox.
    let usable = move || enabled.get() && !matches!(state.get(), ConnState::Closed { .. });
    let max_chars = move || {
        limits
            .get()
            .map_or(MessageText::DEFAULT_MAX_CHARS, |l| l.max_text_chars)
    };
    let send = move || {
        let draft = text.get_untracked();
        if let Err(e) = MessageText::parse(&draft, max_chars()) {
            if !draft.trim().is_empty() {
                error.set(Some(format!("Message {e}.")));
            }
            return;
        }
        // Queued whether or not the connection is open: the outbox keeps it until the server
        // acknowledges it. A refused draft stays in the box.
        match on_send.run(draft) {
            Ok(()) => {
                text.set(String::new());
                error.set(None);
            }
            Err(e) => error.set(Some(e)),
        }
    };
    view! {
        <form class="composer" on:submit=move |ev| { ev.prevent_default(); send(); }>
            <label for="composer-text" class="visually-hidden">"Message"</label>
            <textarea id="composer-text" rows="1"
                placeholder=move || if open() { "Write a message…" } else { "Offline: messages wait in the outbox…" }
                disabled=move || !usable()
                maxlength=move || max_chars().to_string()
                prop:value=move || text.get()
                on:input=move |ev| {
                    text.set(event_target_value(&ev));
                    if open() {
                        typed();
                    }
                }
                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                    if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        send();
                    }
                }
            ></textarea>
            <button type="submit" class="primary" disabled=move || !usable()>
                {move || if open() { "Send" } else { "Queue" }}
            </button>
            <p class="form-error composer-error" role="alert">{move || error.get()}</p>
        </form>
    }
}
