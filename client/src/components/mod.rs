//! UI components, one per file.

pub mod composer;
pub mod connection_badge;
pub mod data_panel;
pub mod diagnostics;
pub mod join_form;
pub mod live_panel;
pub mod member_list;
pub mod message_list;
pub mod room_list;
pub mod workspace;
