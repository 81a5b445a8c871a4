use leptos::prelude::*;
use shared::Username;

use crate::state::{JoinInfo, parse_rooms};

/// The first screen: pick a name and one or more rooms.
/// - `name`, `rooms`: initial values (remembered from the last visit, or the deep link).
/// - `on_join`: called with validated values.
#[component]
pub fn JoinForm(
    name: String,
    rooms: String,
    on_join: impl Fn(JoinInfo) + 'static,
) -> impl IntoView {
    let name = RwSignal::new(name);
    let rooms = RwSignal::new(rooms);
    let error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let parsed_name = Username::parse(&name.get_untracked(), Username::DEFAULT_MAX_CHARS)
            .map_err(|e| format!("Name {e}."));
        match parsed_name.and_then(|n| Ok((n, parse_rooms(&rooms.get_untracked())?))) {
            Ok((n, list)) => {
                error.set(None);
                on_join(JoinInfo {
                    name: n.to_string(),
                    rooms: list,
                });
            }
            Err(e) => error.set(Some(e)),
        }
    };
    view! {
        <main class="join">
            <form class="card join-card" on:submit=submit>
                <div class="brand brand-large">
                    <span class="logo" aria-hidden="true"></span>
                    <span>"Switchboard"</span>
                </div>
                <p class="lede">"Real-time rooms that survive a dropped connection."</p>
                <label for="join-name">"Your name"</label>
                <input id="join-name" name="name" autocomplete="nickname" maxlength="32" required autofocus
                    placeholder="e.g. Ada"
                    prop:value=move || name.get()
                    on:input=move |ev| name.set(event_target_value(&ev)) />
                <label for="join-room">"Rooms"</label>
                <input id="join-room" name="room" required aria-describedby="join-room-hint"
                    placeholder="lobby"
                    prop:value=move || rooms.get()
                    on:input=move |ev| rooms.set(event_target_value(&ev)) />
                <p id="join-room-hint" class="hint">"Several? Separate them with commas: lobby, random"</p>
                <p class="form-error" role="alert">{move || error.get()}</p>
                <button type="submit" class="primary">"Join"</button>
            </form>
        </main>
    }
}
