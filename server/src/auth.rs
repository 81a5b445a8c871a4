//! Signed user tokens (JWT): who a connection is when the app runs its own users.
//!
//! Off by default (anonymous mode: a connection picks a free name). With
//! `--jwt-hs256-secret` or `--jwt-public-key` set, every connection carries a token
//! (`?access_token=`), checked before the upgrade: the algorithm is the key's and only the
//! key's (`alg: none` and HS256-signed-with-the-public-key are refused), `exp` is required,
//! `nbf` and `iat` are honoured, all within `--jwt-leeway-secs`. The token names the user
//! (`sub`), their display name (`name`, default `sub`) and optionally the rooms they may join
//! (`rooms`: names, `prefix*` patterns, or `*`).
//!
//! A session learns of its token's end from [`User::exp`]: it sends `token_expiring`
//! [`Verifier::refresh_window`] before, accepts a `refresh` with a new token for the same
//! `sub`, and otherwise closes with 4401 at `exp` (plus the leeway).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use shared::{ErrorCode, RoomId, Username};

/// Checks user tokens against the configured key.
pub struct Verifier {
    key: DecodingKey,
    algorithm: Algorithm,
    validation: Validation,
    leeway: u64,
    refresh_window: Duration,
    max_name_chars: usize,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithm", &self.algorithm)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

/// The key tokens are checked with.
#[derive(Debug, Clone)]
pub enum KeySource<'a> {
    /// A shared secret (HS256).
    Hs256(&'a [u8]),
    /// A public key in PEM: RSA (RS256), P-256 (ES256), P-384 (ES384) or Ed25519 (EdDSA).
    PublicPem(&'a [u8]),
}

/// The claims read from a token. Unknown claims are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    name: Option<String>,
    /// Absent: every room. Present, it must be a list (`null` is refused, not read as "all").
    #[serde(default, deserialize_with = "present")]
    rooms: Option<Vec<String>>,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
}

/// A claim that is present must have a value: `null` is an error, not an absence.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A verified user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's stable id: names are held by it, so a user's tabs share one name.
    pub sub: String,
    pub name: Username,
    pub rooms: Rooms,
    /// When the token expires (seconds since the Unix epoch).
    pub exp: u64,
    /// When it was issued, if it says.
    pub iat: Option<u64>,
}

/// Which rooms a user may join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rooms {
    /// No `rooms` claim, or `*` in it.
    All,
    /// Rooms named exactly, and prefixes (from `prefix*`), all case-folded as room names are.
    Only {
        exact: Vec<RoomId>,
        prefixes: Vec<String>,
    },
}

impl Rooms {
    pub fn allows(&self, room: &RoomId) -> bool {
        match self {
            Self::All => true,
            Self::Only { exact, prefixes } => {
                exact.contains(room) || prefixes.iter().any(|p| room.as_str().starts_with(p))
            }
        }
    }

    fn from_claim(claim: Option<Vec<String>>) -> Result<Self, String> {
        let Some(patterns) = claim else {
            return Ok(Self::All);
        };
        let (mut exact, mut prefixes) = (Vec::new(), Vec::new());
        for pattern in patterns {
            if pattern == "*" {
                return Ok(Self::All);
            }
            let (body, prefix) = match pattern.strip_suffix('*') {
                Some(body) => (body, true),
                None => (pattern.as_str(), false),
            };
            // A prefix is checked as the start of a room name: it must itself be one.
            let room = RoomId::parse(body).map_err(|e| {
                format!("the rooms claim {pattern:?} is not a room name or `prefix*`: {e}")
            })?;
            if prefix {
                prefixes.push(room.as_str().to_owned());
            } else {
                exact.push(room);
            }
        }
        Ok(Self::Only { exact, prefixes })
    }
}

/// Why a token was refused: the typed error (and HTTP 401 body) a client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: ErrorCode,
    pub reason: String,
}

impl Refused {
    fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Verifier {
    /// A verifier for `key`; the algorithm is the key's.
    pub fn new(
        key: KeySource<'_>,
        leeway_secs: u64,
        refresh_window: Duration,
        max_name_chars: usize,
    ) -> Result<Self, String> {
        let (key, algorithm) = match key {
            KeySource::Hs256(secret) => {
                if secret.len() < 32 {
                    return Err(format!(
                        "--jwt-hs256-secret must be at least 32 bytes (it has {}): a short HMAC \
                         secret can be guessed offline from any token",
                        secret.len()
                    ));
                }
                let key = DecodingKey::from_secret(secret).map_err(|e| e.to_string())?;
                (key, Algorithm::HS256)
            }
            KeySource::PublicPem(pem) => public_key(pem)?,
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = leeway_secs;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self {
            key,
            algorithm,
            validation,
            leeway: leeway_secs,
            refresh_window,
            max_name_chars,
        })
    }

    /// Also requires `aud` to name `audience` and `iss` to be `issuer` (`--jwt-audience`,
    /// `--jwt-issuer`): with an identity provider's key, tokens it issued for other apps are
    /// refused.
    pub fn expecting(mut self, audience: Option<&str>, issuer: Option<&str>) -> Self {
        let mut required = vec!["exp", "sub"];
        if let Some(audience) = audience {
            self.validation.set_audience(&[audience]);
            self.validation.validate_aud = true;
            required.push("aud");
        }
        if let Some(issuer) = issuer {
            self.validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        self.validation.set_required_spec_claims(&required);
        self
    }

    /// Reads the key file of `--jwt-public-key`.
    pub fn from_pem_file(
        path: &Path,
        leeway_secs: u64,
        refresh_window: Duration,
        max_name_chars: usize,
    ) -> Result<Self, String> {
        let pem = std::fs::read(path)
            .map_err(|e| format!("reading --jwt-public-key {}: {e}", path.display()))?;
        Self::new(
            KeySource::PublicPem(&pem),
            leeway_secs,
            refresh_window,
            max_name_chars,
        )
        .map_err(|e| format!("--jwt-public-key {}: {e}", path.display()))
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// How long before `exp` a session is told to refresh.
    pub fn refresh_window(&self) -> Duration {
        self.refresh_window
    }

    /// The moment a session with a token expiring at `exp` closes: `exp` plus the leeway.
    pub fn closes_at(&self, exp: u64) -> u64 {
        exp.saturating_add(self.leeway)
    }

    /// Checks a connection's token (`None`: none was given).
    pub fn verify(&self, token: Option<&str>) -> Result<User, Refused> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(Refused::new(
                ErrorCode::TokenRequired,
                "this server requires a signed user token: connect with ?access_token=<JWT>",
            ));
        };
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    Refused::new(ErrorCode::TokenExpired, "the token has expired (exp)")
                }
                ErrorKind::ImmatureSignature => Refused::new(
                    ErrorCode::TokenNotYetValid,
                    "the token is not valid yet (nbf)",
                ),
                ErrorKind::InvalidSignature => {
                    Refused::new(ErrorCode::TokenInvalid, "the token's signature is wrong")
                }
                ErrorKind::InvalidAlgorithm => Refused::new(
                    ErrorCode::TokenInvalid,
                    format!(
                        "the token is not signed with {:?}, the algorithm of this server's key",
                        self.algorithm
                    ),
                ),
                ErrorKind::InvalidAudience => Refused::new(
                    ErrorCode::TokenInvalid,
                    "the token is for another audience (aud)",
                ),
                ErrorKind::InvalidIssuer => Refused::new(
                    ErrorCode::TokenInvalid,
                    "the token is from another issuer (iss)",
                ),
                ErrorKind::MissingRequiredClaim(claim) => Refused::new(
                    ErrorCode::TokenInvalid,
                    format!("the token has no `{claim}` claim"),
                ),
                _ => Refused::new(
                    ErrorCode::TokenInvalid,
                    format!("the token is not a valid JWT for this server: {e}"),
                ),
            },
        )?;
        let claims = data.claims;
        let now = now_secs();
        if claims.iat.is_some_and(|iat| iat > now + self.leeway) {
            return Err(Refused::new(
                ErrorCode::TokenNotYetValid,
                "the token was issued in the future (iat)",
            ));
        }
        if claims.sub.is_empty() || claims.sub.len() > 256 {
            return Err(Refused::new(
                ErrorCode::TokenInvalid,
                "the token's `sub` must be 1 to 256 bytes",
            ));
        }
        let raw_name = claims.name.as_deref().unwrap_or(&claims.sub);
        let name = Username::parse(raw_name, self.max_name_chars).map_err(|e| {
            Refused::new(
                ErrorCode::TokenInvalid,
                format!(
                    "the token's name ({}) {e}",
                    if claims.name.is_some() {
                        "`name`"
                    } else {
                        "`sub`, as no `name` is given"
                    }
                ),
            )
        })?;
        let rooms = Rooms::from_claim(claims.rooms)
            .map_err(|reason| Refused::new(ErrorCode::TokenInvalid, reason))?;
        Ok(User {
            sub: claims.sub,
            name,
            rooms,
            exp: claims.exp,
            iat: claims.iat,
        })
    }

    /// Checks a `refresh`: a valid token for the same user.
    pub fn verify_refresh(&self, current: &User, token: &str) -> Result<User, Refused> {
        let user = self.verify(Some(token))?;
        if user.sub != current.sub {
            return Err(Refused::new(
                ErrorCode::TokenInvalid,
                "a refresh must carry a token for the same user (`sub`)",
            ));
        }
        Ok(user)
    }
}

/// The key and its algorithm from a public key in PEM.
fn public_key(pem: &[u8]) -> Result<(DecodingKey, Algorithm), String> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok((key, Algorithm::RS256));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok((key, Algorithm::EdDSA));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        // The key holds the curve point, uncompressed: 65 bytes on P-256, 97 on P-384.
        let algorithm = match key.try_get_as_bytes().map_or(0, <[u8]>::len) {
            65 => Algorithm::ES256,
            97 => Algorithm::ES384,
            _ => return Err("an EC key on a curve other than P-256 and P-384".into()),
        };
        return Ok((key, algorithm));
    }
    Err("not a PEM public key (RSA, P-256, P-384 or Ed25519, `BEGIN PUBLIC KEY`)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomId {
        RoomId::parse(name).unwrap()
    }

    #[test]
    fn room_patterns_are_exact_names_or_prefixes_case_folded() {
        let rooms = Rooms::from_claim(Some(vec!["Team-A".into(), "ops.*".into()])).unwrap();
        assert!(rooms.allows(&room("team-a")));
        assert!(rooms.allows(&room("TEAM-A")));
        assert!(!rooms.allows(&room("team-ab")));
        assert!(!rooms.allows(&room("team")));
        assert!(rooms.allows(&room("ops.eu")));
        assert!(!rooms.allows(&room("ops")));
        assert!(!rooms.allows(&room("xops.eu")));
        assert_eq!(Rooms::from_claim(None).unwrap(), Rooms::All);
        assert_eq!(
            Rooms::from_claim(Some(vec!["a".into(), "*".into()])).unwrap(),
            Rooms::All
        );
        assert!(
            !Rooms::from_claim(Some(vec![]))
                .unwrap()
                .allows(&room("lobby"))
        );
        for bad in ["../admin", "a*b*", "*x", "team/a*", ""] {
            assert!(Rooms::from_claim(Some(vec![bad.into()])).is_err(), "{bad}");
        }
    }
}
