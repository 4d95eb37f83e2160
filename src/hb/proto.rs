//! Heartbeat 3's wire format: netstring-framed messages with an HMAC trailer.
//!
//! A message on the wire is
//!
//! ```text
//! ###\n
//! <len>:(<type>)<name>=<value>,      one netstring per field, type 0 = text, 1 = binary
//! ...
//! <len>:(0)auth=<key> <hex hmac>,    HMAC over the "classic" text of the other fields
//! %%%\n
//! <len>:<key> <hex hmac>,            HMAC over everything from "###\n" to "%%%\n"
//! ```
//!
//! as captured from Debian's heartbeat 3.0.6 (see the project's notes): the classic text is
//! each other field as `name=value\n`, binary fields as `(1)name=<base64>\n`. The key index
//! names a line of `authkeys`; SHA-1 and MD5 are Heartbeat's methods, SHA-256 is ours.
//!
//! Decoding is strict and bounded: anything malformed, oversized, unsigned, signed with an
//! unknown key or with a wrong HMAC is an error, never a panic, and never half-read.
//! Replay and freshness (`hg`, `seq`, `ts`) are the membership layer's business.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};

use super::config::{AuthKeys, AuthMethod};

/// The largest datagram hb-monitor accepts or sends (Heartbeat's messages are ~300 bytes).
pub const MAX_MESSAGE: usize = 8192;

const START: &[u8] = b"###\n";
const END: &[u8] = b"%%%\n";

/// A field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Type 0: text (no NUL).
    Text(String),
    /// Type 1: raw bytes (e.g. `srcuuid`).
    Binary(Vec<u8>),
}

/// A message: named fields in wire order, without the authentication.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Fields in order.
    pub fields: Vec<(String, Value)>,
}

impl Message {
    /// A message with these text fields.
    pub fn new(fields: &[(&str, &str)]) -> Message {
        Message {
            fields: fields
                .iter()
                .map(|(n, v)| (n.to_string(), Value::Text(v.to_string())))
                .collect(),
        }
    }

    /// The text value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find_map(|(n, v)| match v {
            Value::Text(t) if n == name => Some(t.as_str()),
            _ => None,
        })
    }

    /// The value of `name` as the hex number Heartbeat writes generations and sequence
    /// numbers in (`hg`, `seq`, `firstseq`).
    pub fn get_hex(&self, name: &str) -> Option<u64> {
        parse_hex(self.get(name)?)
    }

    /// The binary value of `name`.
    pub fn get_binary(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find_map(|(n, v)| match v {
            Value::Binary(b) if n == name => Some(b.as_slice()),
            _ => None,
        })
    }

    /// Appends a text field.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.fields
            .push((name.to_string(), Value::Text(value.into())));
    }

    /// Appends a binary field.
    pub fn push_binary(&mut self, name: &str, value: &[u8]) {
        self.fields
            .push((name.to_string(), Value::Binary(value.to_vec())));
    }

    /// The text Heartbeat's classic signature covers.
    fn classic_text(&self) -> Vec<u8> {
        // Built piece by piece, not with format!: this runs twice for every heartbeat.
        let mut text = Vec::with_capacity(256);
        for (name, value) in &self.fields {
            match value {
                Value::Text(t) => {
                    text.extend_from_slice(name.as_bytes());
                    text.push(b'=');
                    text.extend_from_slice(t.as_bytes());
                }
                Value::Binary(b) => {
                    text.extend_from_slice(b"(1)");
                    text.extend_from_slice(name.as_bytes());
                    text.push(b'=');
                    text.extend_from_slice(
                        base64::engine::general_purpose::STANDARD
                            .encode(b)
                            .as_bytes(),
                    );
                }
            }
            text.push(b'\n');
        }
        text
    }
}

/// Why a datagram was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// Larger than [`MAX_MESSAGE`].
    TooLarge(usize),
    /// Not framed as a message (what is wrong).
    Malformed(&'static str),
    /// No trailer signature.
    Unsigned,
    /// Signed with a key index this node does not have.
    UnknownKey(u8),
    /// The HMAC does not match (forged, corrupted, or another cluster's key).
    BadSignature,
    /// A field name or value that cannot be sent.
    Unencodable(String),
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::TooLarge(n) => write!(f, "message of {n} bytes exceeds {MAX_MESSAGE}"),
            ProtoError::Malformed(why) => write!(f, "malformed message: {why}"),
            ProtoError::Unsigned => write!(f, "unsigned message"),
            ProtoError::UnknownKey(k) => write!(f, "signed with unknown key {k}"),
            ProtoError::BadSignature => write!(f, "bad signature"),
            ProtoError::Unencodable(why) => write!(f, "cannot encode: {why}"),
        }
    }
}

/// Lowercase hex HMAC of `data` with `method` and `secret`.
/// A hex number as Heartbeat writes them (no prefix; either case).
pub fn parse_hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text, 16).ok()
}

pub fn hmac_hex(method: AuthMethod, secret: &[u8], data: &[u8]) -> String {
    let mut text = Vec::with_capacity(64);
    push_hmac_hex(&mut text, method, secret, data);
    // Only ASCII hex digits were pushed.
    String::from_utf8(text).unwrap_or_default()
}

/// Appends the lowercase hex HMAC of `data` to `out`, without allocating.
fn push_hmac_hex(out: &mut Vec<u8>, method: AuthMethod, secret: &[u8], data: &[u8]) {
    fn run<M: Mac + KeyInit>(out: &mut Vec<u8>, secret: &[u8], data: &[u8]) {
        // HMAC accepts keys of any length (longer ones are hashed first, RFC 2104), so this
        // never fails; an empty result would simply never verify.
        if let Ok(mut mac) = <M as KeyInit>::new_from_slice(secret) {
            mac.update(data);
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for b in mac.finalize().into_bytes() {
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0x0f)]);
            }
        }
    }
    match method {
        AuthMethod::Sha256 => run::<Hmac<sha2::Sha256>>(out, secret, data),
        AuthMethod::Sha1 => run::<Hmac<sha1::Sha1>>(out, secret, data),
        AuthMethod::Md5 => run::<Hmac<md5::Md5>>(out, secret, data),
    }
}

/// Appends `<len>:` for a netstring body of `len` bytes.
fn push_len(out: &mut Vec<u8>, len: usize) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{len}:");
}

/// Appends a netstring whose body is the concatenation of `parts`.
fn push_netstring(out: &mut Vec<u8>, parts: &[&[u8]]) {
    push_len(out, parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.extend_from_slice(part);
    }
    out.push(b',');
}

/// Encodes and signs `msg` with the active key of `keys`.
pub fn encode(msg: &Message, keys: &AuthKeys) -> Result<Vec<u8>, ProtoError> {
    let (method, secret) = keys
        .keys
        .get(&keys.active)
        .ok_or(ProtoError::UnknownKey(keys.active))?;
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(START);
    for (name, value) in &msg.fields {
        if name.is_empty() || name == "auth" || name.contains(['=', '\0', '\n']) {
            return Err(ProtoError::Unencodable(format!("field name {name:?}")));
        }
        match value {
            Value::Text(t) => {
                if t.contains(['\0', '\n']) {
                    return Err(ProtoError::Unencodable(format!("value of {name}")));
                }
                push_netstring(&mut out, &[b"(0)", name.as_bytes(), b"=", t.as_bytes()]);
            }
            Value::Binary(b) => {
                push_netstring(&mut out, &[b"(1)", name.as_bytes(), b"=", b]);
            }
        }
    }
    let key = [
        b'0' + keys.active / 100,
        b'0' + keys.active / 10 % 10,
        b'0' + keys.active % 10,
    ];
    let key = &key[key.iter().position(|&d| d != b'0').unwrap_or(2)..];
    let mut classic = Vec::with_capacity(64);
    push_hmac_hex(&mut classic, *method, secret, &msg.classic_text());
    push_netstring(&mut out, &[b"(0)auth=", key, b" ", &classic]);
    out.extend_from_slice(END);
    let mut trailer = Vec::with_capacity(64);
    push_hmac_hex(&mut trailer, *method, secret, &out);
    push_netstring(&mut out, &[key, b" ", &trailer]);
    if out.len() > MAX_MESSAGE {
        return Err(ProtoError::TooLarge(out.len()));
    }
    Ok(out)
}

/// Where one whole message ends in a byte stream (the serial medium): `Ok(Some(len))` when
/// `data` starts with a complete message of `len` bytes, `Ok(None)` when it starts with the
/// beginning of one (more bytes needed), `Err` when it does not start with a message at all
/// (the reader skips to the next `###\n`). Only the framing is checked here; [`decode`]
/// verifies the message.
pub fn framed_len(data: &[u8]) -> Result<Option<usize>, ProtoError> {
    if data.len() < START.len() {
        return if START.starts_with(data) {
            Ok(None)
        } else {
            Err(ProtoError::Malformed("no ### start marker"))
        };
    }
    let mut rest = data
        .strip_prefix(START)
        .ok_or(ProtoError::Malformed("no ### start marker"))?;
    // Netstrings until the end marker, then the trailer netstring.
    let mut trailer = false;
    loop {
        if !trailer {
            if rest.len() < END.len() && END.starts_with(rest) {
                return Ok(None);
            }
            if let Some(after) = rest.strip_prefix(END) {
                rest = after;
                trailer = true;
                continue;
            }
        }
        match take_netstring(rest) {
            Ok((_, after)) => {
                rest = after;
                if trailer {
                    let len = data.len() - rest.len();
                    return if len > MAX_MESSAGE {
                        Err(ProtoError::TooLarge(len))
                    } else {
                        Ok(Some(len))
                    };
                }
            }
            // A netstring cut short by the end of what has arrived: wait for more.
            Err(_) if incomplete_netstring(rest) => {
                return if data.len() > MAX_MESSAGE {
                    Err(ProtoError::TooLarge(data.len()))
                } else {
                    Ok(None)
                };
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether `data` is the beginning of a netstring that has not fully arrived.
fn incomplete_netstring(data: &[u8]) -> bool {
    let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == data.len() {
        return digits <= 5; // only digits so far
    }
    // take_netstring reads at most five length digits; a longer length is never a netstring
    // (and its value must not be added to anything: the fuzzer found that overflow).
    if digits == 0 || digits > 5 || data[digits] != b':' {
        return false;
    }
    let len: usize = std::str::from_utf8(&data[..digits])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    data.len() <= digits + 1 + len
}

/// Reads one netstring at the start of `data`: (body, rest).
fn take_netstring(data: &[u8]) -> Result<(&[u8], &[u8]), ProtoError> {
    let colon = data
        .iter()
        .take(6)
        .position(|&b| b == b':')
        .ok_or(ProtoError::Malformed("netstring without length"))?;
    let len: usize = std::str::from_utf8(&data[..colon])
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or(ProtoError::Malformed("netstring length is not a number"))?;
    let body_start = colon + 1;
    let body_end = body_start
        .checked_add(len)
        .filter(|&e| e < data.len())
        .ok_or(ProtoError::Malformed("netstring runs past the end"))?;
    if data[body_end] != b',' {
        return Err(ProtoError::Malformed("netstring not closed by a comma"));
    }
    Ok((&data[body_start..body_end], &data[body_end + 1..]))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies and decodes a datagram with `keys` (any key index this node knows).
pub fn decode(data: &[u8], keys: &AuthKeys) -> Result<Message, ProtoError> {
    if data.len() > MAX_MESSAGE {
        return Err(ProtoError::TooLarge(data.len()));
    }
    let mut rest = data
        .strip_prefix(START)
        .ok_or(ProtoError::Malformed("no ### start marker"))?;
    let mut msg = Message::default();
    let mut classic_auth = None;
    loop {
        if let Some(after) = rest.strip_prefix(END) {
            rest = after;
            break;
        }
        let (body, after) = take_netstring(rest)?;
        rest = after;
        let (kind, field) = match body {
            [b'(', k, b')', field @ ..] => (*k, field),
            _ => return Err(ProtoError::Malformed("field without (type)")),
        };
        let eq = field
            .iter()
            .position(|&b| b == b'=')
            .ok_or(ProtoError::Malformed("field without ="))?;
        let name = std::str::from_utf8(&field[..eq])
            .map_err(|_| ProtoError::Malformed("field name is not text"))?
            .to_string();
        let value = &field[eq + 1..];
        let value = match kind {
            b'0' => Value::Text(
                String::from_utf8(value.to_vec())
                    .map_err(|_| ProtoError::Malformed("text field is not UTF-8"))?,
            ),
            b'1' => Value::Binary(value.to_vec()),
            _ => return Err(ProtoError::Malformed("unsupported field type")),
        };
        if name == "auth" {
            classic_auth = Some(value);
        } else {
            msg.fields.push((name, value));
        }
    }
    let signed_len = data.len() - rest.len();
    let (trailer, tail) = take_netstring(rest).map_err(|_| ProtoError::Unsigned)?;
    if !tail.is_empty() {
        return Err(ProtoError::Malformed("bytes after the signature"));
    }
    let (key, hex) = parse_signature(trailer)?;
    let (method, secret) = keys.keys.get(&key).ok_or(ProtoError::UnknownKey(key))?;
    let expected = hmac_hex(*method, secret, &data[..signed_len]);
    if !constant_time_eq(expected.as_bytes(), hex) {
        return Err(ProtoError::BadSignature);
    }
    // The classic field is covered by the trailer; still insist it is right, as Heartbeat
    // itself would when reading the classic format.
    if let Some(Value::Text(field)) = classic_auth {
        let (ckey, chex) = parse_signature(field.as_bytes())?;
        let (cmethod, csecret) = keys.keys.get(&ckey).ok_or(ProtoError::UnknownKey(ckey))?;
        let cexpected = hmac_hex(*cmethod, csecret, &msg.classic_text());
        if !constant_time_eq(cexpected.as_bytes(), chex) {
            return Err(ProtoError::BadSignature);
        }
    }
    Ok(msg)
}

/// `<key> <hex>` of a signature.
fn parse_signature(text: &[u8]) -> Result<(u8, &[u8]), ProtoError> {
    let space = text
        .iter()
        .position(|&b| b == b' ')
        .ok_or(ProtoError::Malformed("signature without key index"))?;
    let key = std::str::from_utf8(&text[..space])
        .ok()
        .and_then(|k| k.parse::<u8>().ok())
        .ok_or(ProtoError::Malformed("signature key index is not a number"))?;
    Ok((key, &text[space + 1..]))
}

#[cfg(test)]
mod tests;
