use leptos::prelude::*;
use shared::{RoomId, Username};

use crate::app::JoinInfo;

/// The first screen: pick a name and a room.
/// - `name`, `room`: initial values (remembered from the last visit).
/// - `on_join`: called with validated values.
#[component]
pub fn JoinForm(name: String, room: String, on_join: impl Fn(JoinInfo) + 'static) -> impl IntoView {
    let name = RwSignal::new(name);
    let room = RwSignal::new(room);
    let error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let parsed_name = Username::parse(&name.get_untracked(), Username::DEFAULT_MAX_CHARS);
        let parsed_room = RoomId::parse(&room.get_untracked());
        match (parsed_name, parsed_room) {
            (Ok(n), Ok(r)) => {
                error.set(None);
                on_join(JoinInfo {
                    name: n.to_string(),
                    room: r.to_string(),
                });
            }
            (Err(e), _) => error.set(Some(format!("Name {e}."))),
            (_, Err(e)) => error.set(Some(format!("Room {e}."))),
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
                <label for="join-room">"Room"</label>
                <input id="join-room" name="room" maxlength="48" required
                    placeholder="lobby"
                    prop:value=move || room.get()
                    on:input=move |ev| room.set(event_target_value(&ev)) />
                <p class="form-error" role="alert">{move || error.get()}</p>
                <button type="submit" class="primary">"Join room"</button>
            </form>
        </main>
    }
}
