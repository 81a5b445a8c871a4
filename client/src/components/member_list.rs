use leptos::prelude::*;
use shared::Member;

/// Who is online in the room, with how many connections each has; a member whose connections
/// all dropped is shown as reconnecting until the grace period ends.
/// - `members`: the room's members.
/// - `my_name`: this page's name, marked "you".
#[component]
pub fn MemberList(members: RwSignal<Vec<Member>>, my_name: String) -> impl IntoView {
    view! {
        <section class="panel members" aria-labelledby="members-title">
            <h2 id="members-title">"Online " <span class="count">{move || members.get().len()}</span></h2>
            <ul>
                <For each=move || members.get() key=|m| (m.name.clone(), m.connections) children=move |m| {
                    let mine = m.name == my_name;
                    // Upper-cased by the stylesheet (`text-transform`): Rust's case tables would cost the
                    // bundle about 14 KB.
                    let initial = m.name.chars().next().map(String::from).unwrap_or_default();
                    let detail = match m.connections {
                        0 => Some("reconnecting…".to_owned()),
                        1 => None,
                        n => Some(format!("{n} tabs")),
                    };
                    view! {
                        <li class=if m.connections == 0 { "member away" } else { "member" }>
                            <span class="avatar" aria-hidden="true">{initial}</span>
                            <span class="member-name">{m.name.clone()}</span>
                            {mine.then(|| view! { <span class="you">"you"</span> })}
                            {detail.map(|d| view! { <span class="member-detail">{d}</span> })}
                        </li>
                    }
                } />
            </ul>
        </section>
    }
}
