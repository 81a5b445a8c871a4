use leptos::prelude::*;
use shared::RoomId;

use crate::room::RoomStatus;
use crate::state::Session;

/// The rooms joined on this connection: select one to show it (no reconnect), see unread
/// counts, leave one, or join another by name.
/// - `session`: the session.
#[component]
pub fn RoomList(session: Session) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let outcome = RoomId::parse(&draft.get_untracked())
            .map_err(|e| format!("Room {e}."))
            .and_then(|room| session.open_room(room));
        match outcome {
            Ok(()) => {
                draft.set(String::new());
                error.set(None);
            }
            Err(e) => error.set(Some(e)),
        }
    };
    view! {
        <nav class="panel rooms" aria-labelledby="rooms-title">
            <h2 id="rooms-title">"Rooms " <span class="count">{move || session.rooms.with(Vec::len)}</span></h2>
            <ul class="room-list">
                <For each=move || session.rooms.get() key=|r| r.id() children=move |r| {
                    let id = r.id();
                    let name = id.to_string();
                    let shown = Memo::new({
                        let id = id.clone();
                        move |_| session.active.get().as_ref() == Some(&id)
                    });
                    let status = move || match r.status.get() {
                        RoomStatus::Joining => "joining",
                        RoomStatus::Joined => "joined",
                        RoomStatus::Refused(_) => "refused",
                    };
                    let unread = move || r.unread.get();
                    let (select_id, leave_id) = (id.clone(), id);
                    view! {
                        <li class="room-item" class:active=move || shown.get() data-room=name.clone() data-status=status>
                            <button class="room-open" aria-current=move || shown.get().then_some("page")
                                on:click=move |_| session.select(select_id.clone())>
                                <span class="hash" aria-hidden="true">"#"</span>
                                <span class="room-name">{name.clone()}</span>
                                <Show when=move || { unread() > 0 }>
                                    <span class="unread" aria-label=move || format!("{} unread", unread())>{unread}</span>
                                </Show>
                            </button>
                            <button class="room-leave" title="Leave room" aria-label=format!("Leave #{name}")
                                on:click=move |_| session.leave(&leave_id)>"×"</button>
                        </li>
                    }
                } />
            </ul>
            <form class="room-add" on:submit=add>
                <label for="room-add" class="visually-hidden">"Join a room"</label>
                <input id="room-add" maxlength="48" placeholder="Add a room" autocomplete="off"
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev)) />
                <button type="submit" class="secondary">"Join"</button>
            </form>
            <p class="form-error" role="alert">{move || error.get()}</p>
        </nav>
    }
}
