//! Validation newtypes. Untrusted strings are parsed once, at the edge, into these types;
//! everything inside the server takes the newtype and so carries the proof of validity.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a user-supplied string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    #[error("must not be empty")]
    Empty,
    #[error("is {len} characters long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("contains a forbidden character U+{0:04X} (control, bidi or zero-width)")]
    ForbiddenChar(u32),
    #[error("may only contain a-z, 0-9, '-', '_' and '.'")]
    BadRoomChar,
    #[error("is reserved for the server's own notices")]
    Reserved,
}

/// Serde for a validated string type: deserializing runs its parser (`try_from = "String"`),
/// serializing gives the string back (`into = "String"`).
macro_rules! parsed_from_string {
    ($type:ident, |$raw:ident| $parse:expr) => {
        impl TryFrom<String> for $type {
            type Error = ValidationError;

            fn try_from($raw: String) -> Result<Self, Self::Error> {
                $parse
            }
        }

        impl From<$type> for String {
            fn from(value: $type) -> Self {
                value.0
            }
        }
    };
}

/// True for characters that let a string look like something it is not: C0/C1 controls,
/// bidirectional overrides and isolates, and invisible zero-width characters.
pub fn is_deceptive_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'                 // soft hyphen
            | '\u{061C}'               // Arabic letter mark
            | '\u{180E}'               // Mongolian vowel separator
            | '\u{200B}'..='\u{200F}'  // zero-width space/joiners, LRM, RLM
            | '\u{2028}'..='\u{202E}'  // line/paragraph separators, bidi embeddings/overrides
            | '\u{2060}'..='\u{2064}'  // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'  // bidi isolates
            | '\u{FEFF}'               // zero-width no-break space
        )
}

/// A display name: trimmed, 1..=max characters, no control, bidi or zero-width characters.
///
/// It cannot be built unvalidated: deserializing one runs [`Username::parse`] with
/// [`Username::CEILING`] (the server's own, lower `--max-name-chars` applies where a name is
/// first taken).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// The default limit on a name's length, in characters (`--max-name-chars`).
    pub const DEFAULT_MAX_CHARS: usize = 32;
    /// The most `--max-name-chars` may be, and the limit when a name is deserialized.
    pub const CEILING: usize = 64;
    /// The name the server's own notices carry; nobody may take it (any case).
    pub const SERVER: &'static str = "Switchboard";

    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, ValidationError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(ValidationError::Empty);
        }
        if let Some(c) = name.chars().find(|&c| is_deceptive_char(c)) {
            return Err(ValidationError::ForbiddenChar(c as u32));
        }
        let len = name.chars().count();
        if len > max_chars {
            return Err(ValidationError::TooLong {
                len,
                max: max_chars,
            });
        }
        // Plain clients see the server's notices as messages from this name.
        if name.eq_ignore_ascii_case(Self::SERVER) {
            return Err(ValidationError::Reserved);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

parsed_from_string!(Username, |raw| Self::parse(&raw, Self::CEILING));

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A room name: 1..=48 characters of `a-z 0-9 - _ .` (case-folded), so it is safe in a URL
/// path and a database key.
///
/// It cannot be built unvalidated: deserializing one runs [`RoomId::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomId(String);

impl RoomId {
    pub const MAX_CHARS: usize = 48;
    pub const DEFAULT: &'static str = "lobby";

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let room = raw.trim().to_ascii_lowercase();
        if room.is_empty() {
            return Err(ValidationError::Empty);
        }
        let len = room.chars().count();
        if len > Self::MAX_CHARS {
            return Err(ValidationError::TooLong {
                len,
                max: Self::MAX_CHARS,
            });
        }
        if !room.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        }) {
            return Err(ValidationError::BadRoomChar);
        }
        Ok(Self(room))
    }

    pub fn lobby() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

parsed_from_string!(RoomId, |raw| Self::parse(&raw));

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The text of a chat message: not blank, at most `max_chars` characters, no control characters
/// other than newline and tab, no bidi overrides. Leading/trailing whitespace is kept as typed
/// except for a trailing newline.
///
/// It cannot be built unvalidated: deserializing one runs [`MessageText::parse`] with
/// [`MessageText::CEILING`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageText(String);

impl MessageText {
    /// The default limit on a message's length, in characters (`--max-text-chars`).
    pub const DEFAULT_MAX_CHARS: usize = 4000;
    /// The most `--max-text-chars` may be, and the limit when a text is deserialized.
    pub const CEILING: usize = 100_000;

    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, ValidationError> {
        let text = raw.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            return Err(ValidationError::Empty);
        }
        if let Some(c) = text
            .chars()
            .find(|&c| c != '\n' && c != '\t' && is_deceptive_char(c))
        {
            return Err(ValidationError::ForbiddenChar(c as u32));
        }
        let len = text.chars().count();
        if len > max_chars {
            return Err(ValidationError::TooLong {
                len,
                max: max_chars,
            });
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

parsed_from_string!(MessageText, |raw| Self::parse(&raw, Self::CEILING));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validated_types_cannot_be_deserialized_unvalidated() {
        let name: Username = serde_json::from_str(r#"" ada ""#).unwrap();
        assert_eq!(name.as_str(), "ada");
        assert!(serde_json::from_str::<Username>(r#""""#).is_err());
        assert_eq!(
            Username::parse(" SwitchBoard ", 32),
            Err(ValidationError::Reserved)
        );
        assert!(serde_json::from_str::<Username>(r#""a\u202eb""#).is_err());
        assert!(serde_json::from_str::<Username>(&format!("{:?}", "x".repeat(65))).is_err());
        let room: RoomId = serde_json::from_str(r#""Lobby""#).unwrap();
        assert_eq!(room.as_str(), "lobby");
        assert!(serde_json::from_str::<RoomId>(r#""no spaces""#).is_err());
        assert!(serde_json::from_str::<MessageText>(r#""  ""#).is_err());
        assert!(serde_json::from_str::<MessageText>(r#""a\u0000b""#).is_err());
        assert_eq!(serde_json::to_string(&room).unwrap(), r#""lobby""#);
    }

    #[test]
    fn username_is_trimmed_and_bounded() {
        assert_eq!(Username::parse("  ada  ", 32).unwrap().as_str(), "ada");
        assert_eq!(Username::parse("   ", 32), Err(ValidationError::Empty));
        assert_eq!(
            Username::parse(&"é".repeat(33), 32),
            Err(ValidationError::TooLong { len: 33, max: 32 })
        );
        assert!(Username::parse(&"é".repeat(32), 32).is_ok());
    }

    #[test]
    fn username_refuses_invisible_and_bidi_characters() {
        for bad in [
            "ad\u{202E}a",
            "a\u{200B}da",
            "ada\u{0007}",
            "\u{2066}ada",
            "a\u{FEFF}",
        ] {
            assert!(
                matches!(
                    Username::parse(bad, 32),
                    Err(ValidationError::ForbiddenChar(_))
                ),
                "{bad:?} accepted"
            );
        }
        assert!(Username::parse("Zoë 李", 32).is_ok());
    }

    #[test]
    fn room_is_case_folded_and_url_safe() {
        assert_eq!(RoomId::parse("Lobby").unwrap().as_str(), "lobby");
        assert_eq!(RoomId::parse("a/b"), Err(ValidationError::BadRoomChar));
        assert_eq!(RoomId::parse(""), Err(ValidationError::Empty));
        assert!(RoomId::parse(&"a".repeat(49)).is_err());
    }

    #[test]
    fn message_text_keeps_newlines_but_not_controls() {
        assert_eq!(MessageText::parse("a\nb\n", 10).unwrap().as_str(), "a\nb");
        assert_eq!(MessageText::parse(" \n\t", 10), Err(ValidationError::Empty));
        assert!(MessageText::parse("a\u{0000}b", 10).is_err());
        assert!(MessageText::parse("abc", 2).is_err());
    }
}
