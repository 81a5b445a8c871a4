//! A small JSON reader and writer for the browser client, so its WebAssembly bundle carries no
//! serde_json (whose generic deserializer, float parsing tables and error messages were the
//! largest part of the bundle after the UI framework).
//!
//! Only what the protocol needs: numbers are read exactly as unsigned integers (every number
//! the protocol carries is one); any other number (negative, fractional, with an exponent, or
//! over `u64::MAX`) is valid JSON but has no value here, and a field that needs an integer
//! refuses it, as serde does for an integer field. The writer escapes strings exactly as
//! serde_json does, so both produce the same bytes (tested against serde_json).

use crate::protocol::DecodeError;

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A non-negative integer that fits in a `u64`.
    Uint(u64),
    /// Any other number (negative, fractional, with an exponent, or too big): its literal
    /// text, which has no value here but is written back as read.
    OtherNumber(String),
    Str(String),
    Array(Vec<Value>),
    /// Members in document order.
    Object(Vec<(String, Value)>),
}

/// The deepest nesting accepted (serde_json's limit too): deeper input is an error, never a
/// stack overflow.
const MAX_DEPTH: usize = 128;

/// Parses one JSON document (surrounding whitespace allowed, nothing after it).
pub fn parse(text: &str) -> Result<Value, DecodeError> {
    let mut reader = Reader {
        bytes: text.as_bytes(),
        at: 0,
    };
    let value = reader.value(0)?;
    reader.skip_ws();
    if reader.at != reader.bytes.len() {
        return Err(malformed("trailing characters"));
    }
    Ok(value)
}

fn malformed(what: &str) -> DecodeError {
    DecodeError::Malformed(what.to_owned())
}

fn invalid(what: String) -> DecodeError {
    DecodeError::Invalid(what)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, DecodeError> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(malformed("expected a value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(malformed("nested too deeply"));
        }
        match self.peek() {
            None => Err(malformed("unexpected end of input")),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value(depth + 1)?);
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(malformed("expected `,` or `]`"));
                        }
                    }
                }
                Ok(Value::Array(items))
            }
            Some(b'{') => {
                self.at += 1;
                let mut members = Vec::new();
                if !self.eat(b'}') {
                    loop {
                        if self.peek() != Some(b'"') {
                            return Err(malformed("expected a key"));
                        }
                        let key = self.string()?;
                        if !self.eat(b':') {
                            return Err(malformed("expected `:`"));
                        }
                        members.push((key, self.value(depth + 1)?));
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(malformed("expected `,` or `}`"));
                        }
                    }
                }
                Ok(Value::Object(members))
            }
            Some(_) => Err(malformed("expected a value")),
        }
    }

    /// A number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<Value, DecodeError> {
        let number = self.at;
        let negative = self.bytes[self.at] == b'-';
        if negative {
            self.at += 1;
        }
        let start = self.at;
        let digits = |r: &mut Self| {
            let from = r.at;
            while let Some(b'0'..=b'9') = r.bytes.get(r.at) {
                r.at += 1;
            }
            r.at - from
        };
        let whole = digits(self);
        if whole == 0 || (whole > 1 && self.bytes[start] == b'0') {
            return Err(malformed("invalid number"));
        }
        let mut exact = !negative;
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return Err(malformed("invalid number"));
            }
            exact = false;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return Err(malformed("invalid number"));
            }
            exact = false;
        }
        // A number is ASCII: its bytes are its characters.
        let literal = || {
            Value::OtherNumber(
                self.bytes[number..self.at]
                    .iter()
                    .map(|&b| char::from(b))
                    .collect(),
            )
        };
        if !exact {
            return Ok(literal());
        }
        let mut n: u64 = 0;
        for &b in &self.bytes[start..start + whole] {
            match n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
            {
                Some(next) => n = next,
                None => return Ok(literal()),
            }
        }
        Ok(Value::Uint(n))
    }

    /// A string, at its opening quote.
    fn string(&mut self) -> Result<String, DecodeError> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let run = self.at;
            while let Some(&b) = self.bytes.get(self.at) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            // The input is a `str` and the run stops only at ASCII bytes: it is whole UTF-8.
            out.push_str(std::str::from_utf8(&self.bytes[run..self.at]).expect("a str's run"));
            match self.bytes.get(self.at) {
                None => return Err(malformed("unterminated string")),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let escape = self.bytes.get(self.at).copied();
                    self.at += 1;
                    out.push(match escape {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        _ => return Err(malformed("invalid escape")),
                    });
                }
                Some(_) => return Err(malformed("control character in a string")),
            }
        }
    }

    /// The rest of a `\u` escape (a surrogate pair takes two).
    fn unicode_escape(&mut self) -> Result<char, DecodeError> {
        let high = self.hex4()?;
        let code = match high {
            0xD800..=0xDBFF => {
                if !self.bytes[self.at..].starts_with(b"\\u") {
                    return Err(malformed("lone surrogate"));
                }
                self.at += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(malformed("lone surrogate"));
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(malformed("lone surrogate")),
            _ => high,
        };
        char::from_u32(code).ok_or_else(|| malformed("invalid escape"))
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let digits = self
            .bytes
            .get(self.at..self.at + 4)
            .ok_or_else(|| malformed("invalid escape"))?;
        let mut code = 0;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(malformed("invalid escape")),
            };
            code = code * 16 + u32::from(v);
        }
        self.at += 4;
        Ok(code)
    }
}

/// An object's members, read by name with serde's rules: unknown members are ignored, a
/// member given twice is an error, `null` is absent for an optional member.
pub struct Object<'a>(&'a [(String, Value)]);

impl<'a> Object<'a> {
    /// `value` as an object; `what` names it in the error.
    pub fn of(value: &'a Value, what: &str) -> Result<Self, DecodeError> {
        match value {
            Value::Object(members) => Ok(Self(members)),
            _ => Err(invalid(format!("{what} must be an object"))),
        }
    }

    /// The member `key`, absent when missing or `null`.
    pub fn get(&self, key: &str) -> Result<Option<&'a Value>, DecodeError> {
        let mut found = self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
        let first = found.next();
        if found.next().is_some() {
            return Err(invalid(format!("duplicate field `{key}`")));
        }
        Ok(first.filter(|v| !matches!(v, Value::Null)))
    }

    /// A required member, `null` included.
    pub fn raw(&self, key: &str) -> Result<&'a Value, DecodeError> {
        let mut found = self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
        match (found.next(), found.next()) {
            (Some(value), None) => Ok(value),
            (Some(_), Some(_)) => Err(invalid(format!("duplicate field `{key}`"))),
            (None, _) => Err(invalid(format!("missing field `{key}`"))),
        }
    }

    /// A required member.
    pub fn need(&self, key: &str) -> Result<&'a Value, DecodeError> {
        self.get(key)?
            .ok_or_else(|| invalid(format!("missing field `{key}`")))
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>, DecodeError> {
        self.get(key)?.map(|v| as_str(v, key)).transpose()
    }

    pub fn str(&self, key: &str) -> Result<String, DecodeError> {
        as_str(self.need(key)?, key)
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, DecodeError> {
        self.get(key)?.map(|v| as_u64(v, key)).transpose()
    }

    pub fn u64(&self, key: &str) -> Result<u64, DecodeError> {
        as_u64(self.need(key)?, key)
    }

    /// An integer member that must fit in `T` (a `u32`, or a `usize` on 32-bit wasm).
    pub fn int<T: TryFrom<u64>>(&self, key: &str) -> Result<T, DecodeError> {
        T::try_from(self.u64(key)?).map_err(|_| invalid(format!("`{key}` is out of range")))
    }

    pub fn bool(&self, key: &str) -> Result<bool, DecodeError> {
        self.opt_bool(key)?
            .ok_or_else(|| invalid(format!("missing field `{key}`")))
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, DecodeError> {
        match self.get(key)? {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(format!("`{key}` must be a boolean"))),
        }
    }

    /// A required array, each item read by `item`.
    pub fn array<T>(
        &self,
        key: &str,
        item: impl Fn(&Value) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        match self.need(key)? {
            Value::Array(items) => items.iter().map(item).collect(),
            _ => Err(invalid(format!("`{key}` must be an array"))),
        }
    }
}

pub(crate) fn as_str(value: &Value, key: &str) -> Result<String, DecodeError> {
    match value {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(invalid(format!("`{key}` must be a string"))),
    }
}

fn as_u64(value: &Value, key: &str) -> Result<u64, DecodeError> {
    match value {
        Value::Uint(n) => Ok(*n),
        _ => Err(invalid(format!("`{key}` must be a non-negative integer"))),
    }
}

/// Writes JSON objects member by member, in the order given.
pub struct Writer {
    out: String,
    empty: bool,
}

impl Writer {
    /// An object begins.
    pub fn object() -> Self {
        Self {
            out: String::from("{"),
            empty: true,
        }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        write_str(&mut self.out, key);
        self.out.push(':');
    }

    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        write_str(&mut self.out, value);
        self
    }

    pub fn opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.str(key, value),
            None => self,
        }
    }

    pub fn u64(mut self, key: &str, value: u64) -> Self {
        self.key(key);
        push_u64(&mut self.out, value);
        self
    }

    pub fn opt_u64(self, key: &str, value: Option<u64>) -> Self {
        match value {
            Some(value) => self.u64(key, value),
            None => self,
        }
    }

    pub fn bool(mut self, key: &str, value: bool) -> Self {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    /// A member whose value is JSON text already (written as is).
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        self.out.push_str(json);
        self
    }

    /// The object ends; its text.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Writes `n` in decimal (no formatting machinery).
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Writes `s` as a JSON string, escaped exactly as serde_json escapes it.
pub fn write_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                out.push_str("\\u00");
                out.push(char::from(HEX[(c as usize) >> 4]));
                out.push(char::from(HEX[(c as usize) & 0xF]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a value as compact JSON (members in their order, strings escaped as serde_json
/// does, numbers as read).
pub fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Uint(n) => push_u64(out, *n),
        Value::OtherNumber(literal) => out.push_str(literal),
        Value::Str(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// serde_json's reading of the same text, in this module's terms.
    fn from_serde(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => n
                .as_u64()
                .map_or_else(|| Value::OtherNumber(String::new()), Value::Uint),
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(a) => Value::Array(a.iter().map(from_serde).collect()),
            serde_json::Value::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), from_serde(v))).collect())
            }
        }
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"type":"chat","room":"r","seq":9,"name":"ada","msg":"hi \"there\"\n\u00e9\ud83d\ude00","ts":2}"#,
            r#" [ 1 , 0, 18446744073709551615, 18446744073709551616, -1, 1.5, 2e3, -7, true, false, null, "", {} ] "#,
            r#"{"a":{"b":[[],[{}]]},"c":"\/\b\f\r\t"}"#,
        ] {
            let serde: serde_json::Value = serde_json::from_str(text).unwrap();
            let mut ours = parse(text).unwrap();
            // serde_json's map sorts its keys; compare in the same order.
            fn sort(v: &mut Value) {
                match v {
                    Value::Object(m) => {
                        m.sort_by(|a, b| a.0.cmp(&b.0));
                        m.iter_mut().for_each(|(_, v)| sort(v));
                    }
                    Value::Array(a) => a.iter_mut().for_each(sort),
                    // serde_json writes such numbers its own way; the literal is checked by
                    // `write_value`'s round trip.
                    Value::OtherNumber(literal) => literal.clear(),
                    _ => {}
                }
            }
            let mut written = String::new();
            write_value(&mut written, &ours);
            assert_eq!(parse(&written).as_ref(), Ok(&ours), "{text} → {written}");
            sort(&mut ours);
            assert_eq!(ours, from_serde(&serde), "{text}");
        }
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        for bad in [
            "",
            " ",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "01",
            "1.",
            ".5",
            "1e",
            "-",
            "+1",
            "\"abc",
            "\"a\u{1}b\"",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"\\u12\"",
            "nul",
            "truex",
            "[1] 2",
            "NaN",
        ] {
            assert!(
                serde_json::from_str::<serde_json::Value>(bad).is_err(),
                "{bad:?}"
            );
            assert!(
                matches!(parse(bad), Err(DecodeError::Malformed(_))),
                "{bad:?}: {:?}",
                parse(bad)
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&deep).is_err());
        let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&fine).is_ok());
    }

    #[test]
    fn members_follow_serdes_rules() {
        let v = parse(r#"{"a":"x","n":null,"d":1,"d":2,"big":4294967296}"#).unwrap();
        let o = Object::of(&v, "frame").unwrap();
        assert_eq!(o.str("a").unwrap(), "x");
        assert_eq!(o.opt_str("n").unwrap(), None);
        assert_eq!(o.opt_str("missing").unwrap(), None);
        assert!(matches!(o.str("n"), Err(DecodeError::Invalid(_))));
        assert!(matches!(o.u64("d"), Err(DecodeError::Invalid(_))));
        assert!(o.int::<u32>("big").is_err());
        assert_eq!(o.int::<u64>("big").unwrap(), 1 << 32);
        assert!(matches!(o.u64("a"), Err(DecodeError::Invalid(_))));
    }

    proptest! {
        #[test]
        fn strings_are_written_as_serde_json_writes_them_and_read_back(s in any::<String>()) {
            let mut ours = String::new();
            write_str(&mut ours, &s);
            prop_assert_eq!(&ours, &serde_json::to_string(&s).unwrap());
            prop_assert_eq!(parse(&ours).unwrap(), Value::Str(s));
        }

        #[test]
        fn integers_are_written_and_read_exactly(n in any::<u64>()) {
            let mut ours = String::new();
            push_u64(&mut ours, n);
            prop_assert_eq!(&ours, &n.to_string());
            prop_assert_eq!(parse(&ours).unwrap(), Value::Uint(n));
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".*") {
            let _ = parse(&s);
        }

        #[test]
        fn json_shaped_text_is_accepted_exactly_when_serde_json_accepts_it(
            s in r#"[\{\}\[\]":,a-z0-9 \\.eE+-]{0,60}"#
        ) {
            let serde = serde_json::from_str::<serde_json::Value>(&s).is_ok();
            prop_assert_eq!(parse(&s).is_ok(), serde, "{}", s);
        }
    }
}
