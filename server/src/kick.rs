//! Telling a session's writer to close the connection with a given code, from anywhere.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Why and how a session is being closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KickReason {
    pub code: u16,
    pub reason: &'static str,
    /// Send what is already queued before the close frame (true for a typed error the client
    /// must see; false for a slow consumer, whose backlog is the problem).
    pub drain: bool,
}

/// Cloneable; the first kick wins.
#[derive(Debug, Clone, Default)]
pub struct Kick {
    token: CancellationToken,
    reason: Arc<Mutex<Option<KickReason>>>,
}

impl Kick {
    /// Asks the writer to close with `code`. Returns `false` if the session was already kicked.
    pub fn kick(&self, code: u16, reason: &'static str, drain: bool) -> bool {
        let mut slot = self.reason.lock().expect("kick lock");
        if slot.is_some() {
            return false;
        }
        *slot = Some(KickReason {
            code,
            reason,
            drain,
        });
        self.token.cancel();
        true
    }

    pub async fn kicked(&self) {
        self.token.cancelled().await;
    }

    pub fn reason(&self) -> Option<KickReason> {
        self.reason.lock().expect("kick lock").clone()
    }
}
