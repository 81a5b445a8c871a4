use leptos::prelude::*;
use shared::{Member, SessionId};

/// Who is online in the room.
/// - `members`: the room's members.
/// - `me`: this page's session, marked "you".
#[component]
pub fn MemberList(
    members: RwSignal<Vec<Member>>,
    me: RwSignal<Option<SessionId>>,
) -> impl IntoView {
    view! {
        <section class="panel members" aria-labelledby="members-title">
            <h2 id="members-title">"Online " <span class="count">{move || members.get().len()}</span></h2>
            <ul>
                <For each=move || members.get() key=|m| m.session children=move |m| {
                    let mine = move || me.get() == Some(m.session);
                    let initial = m.name.chars().next().map(|c| c.to_uppercase().to_string()).unwrap_or_default();
                    view! {
                        <li class="member">
                            <span class="avatar" aria-hidden="true">{initial}</span>
                            <span class="member-name">{m.name.clone()}</span>
                            <Show when=mine><span class="you">"you"</span></Show>
                        </li>
                    }
                } />
            </ul>
        </section>
    }
}
