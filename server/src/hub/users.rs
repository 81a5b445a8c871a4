//! Users of signed tokens on this node: their connections (whatever rooms they joined, if
//! any), so the server API can close them all, and the users it signed out, so the tokens
//! they held before cannot bring them back.

use super::*;

/// How long a sign-out is remembered: a token issued before it and living longer than this is
/// accepted again afterwards (issue short-lived tokens and refresh them).
pub const REVOCATION_TTL_SECS: u64 = 24 * 3600;

#[derive(Debug, Default)]
pub struct Users {
    /// `sub` → its connections on this node.
    connections: Mutex<HashMap<String, HashMap<SessionId, Kick>>>,
    /// `sub` → when it was signed out (seconds since the Unix epoch).
    revoked: Mutex<HashMap<String, u64>>,
}

/// Holds a connection in [`Users`] for its life.
#[derive(Debug)]
pub struct Tracked<'a> {
    users: &'a Users,
    sub: String,
    session: SessionId,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        let mut all = self.users.connections.lock().expect("users lock");
        if let Some(mine) = all.get_mut(&self.sub) {
            mine.remove(&self.session);
            if mine.is_empty() {
                all.remove(&self.sub);
            }
        }
    }
}

impl Users {
    /// Tracks a connection of `sub` until the guard is dropped.
    pub fn track(&self, sub: &str, session: SessionId, kick: Kick) -> Tracked<'_> {
        self.connections
            .lock()
            .expect("users lock")
            .entry(sub.to_owned())
            .or_default()
            .insert(session, kick);
        Tracked {
            users: self,
            sub: sub.to_owned(),
            session,
        }
    }

    /// Signs `sub` out at `at` (seconds since the Unix epoch): its connections here are closed
    /// with 4401 and its tokens issued until then are refused. Returns how many connections
    /// were closed.
    pub fn sign_out(&self, sub: &str, at: u64) -> usize {
        {
            let mut revoked = self.revoked.lock().expect("users lock");
            revoked.retain(|_, when| when.saturating_add(REVOCATION_TTL_SECS) > at);
            let when = revoked.entry(sub.to_owned()).or_default();
            *when = (*when).max(at);
        }
        let connections = self.connections.lock().expect("users lock");
        connections.get(sub).map_or(0, |mine| {
            mine.values()
                .filter(|kick| {
                    kick.kick(
                        shared::close_code::UNAUTHORIZED,
                        "signed out by the app",
                        true,
                    )
                })
                .count()
        })
    }

    /// The user of a verified token, unless it was signed out after the token was issued: at
    /// connect and in a `refresh` alike.
    pub fn not_signed_out(
        &self,
        user: crate::auth::User,
    ) -> Result<crate::auth::User, crate::auth::Refused> {
        if self.is_revoked(&user.sub, user.iat) {
            return Err(crate::auth::Refused {
                code: shared::ErrorCode::TokenInvalid,
                reason: "you were signed out: this token was issued before; get a new one".into(),
            });
        }
        Ok(user)
    }

    /// Whether a token of `sub` issued at `iat` was signed out since (a token without `iat`
    /// counts as issued before).
    fn is_revoked(&self, sub: &str, iat: Option<u64>) -> bool {
        let revoked = self.revoked.lock().expect("users lock");
        revoked
            .get(sub)
            .is_some_and(|at| iat.is_none_or(|iat| iat <= *at))
    }
}
