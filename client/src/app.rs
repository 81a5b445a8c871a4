//! The top level: a join screen, then the room.

use leptos::prelude::*;

use crate::components::{chat_room::ChatRoom, join_form::JoinForm};
use crate::endpoint;
use crate::identity::storage;

/// Who joins where.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinInfo {
    pub name: String,
    pub room: String,
}

const NAME_KEY: &str = "switchboard.name";
const ROOM_KEY: &str = "switchboard.room";

pub fn remembered(key: &str) -> Option<String> {
    storage()?.get_item(key).ok()?
}

fn remember(info: &JoinInfo) {
    if let Some(s) = storage() {
        let _ = s.set_item(NAME_KEY, &info.name);
        let _ = s.set_item(ROOM_KEY, &info.room);
    }
}

#[component]
pub fn App() -> impl IntoView {
    // `?name=` (and optionally `?room=`) joins at once, like the tutorial page did.
    let from_query = endpoint::query_param("name").map(|name| JoinInfo {
        name,
        room: endpoint::query_param("room").unwrap_or_else(|| shared::RoomId::DEFAULT.into()),
    });
    let joined = RwSignal::new(from_query);
    let server = endpoint::ws_base();

    let on_join = move |info: JoinInfo| {
        remember(&info);
        joined.set(Some(info));
    };
    let on_leave = move |()| joined.set(None);

    view! {
        <div class="shell">
            {move || match joined.get() {
                Some(info) => view! { <ChatRoom info=info server=server.clone() on_leave=on_leave /> }.into_any(),
                None => view! {
                    <JoinForm
                        name=remembered(NAME_KEY).unwrap_or_default()
                        room=remembered(ROOM_KEY).unwrap_or_else(|| shared::RoomId::DEFAULT.into())
                        on_join=on_join
                    />
                }.into_any(),
            }}
        </div>
    }
}
