//! The secret value type: wiped when dropped, never shown by `Debug`.

use once_cell::sync::Lazy;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use zeroize::Zeroize;

/// A secret string. Its bytes are overwritten when it is dropped, and neither `Debug` nor
/// any other formatting shows them. There is deliberately no `Display` and no `Clone`:
/// a copy has to be asked for with `expose`.
pub struct SecretString(Box<str>);

impl SecretString {
    pub fn new(mut value: String) -> Self {
        // Exactly sized (a cache holds many), and without leaving an unwiped copy behind:
        // shrinking in place could move the bytes and free the old buffer as it was.
        if value.capacity() == value.len() {
            return SecretString(value.into_boxed_str());
        }
        let exact = Box::from(value.as_str());
        value.zeroize();
        SecretString(exact)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// Credentials that may be echoed back now (bearer tokens, identity headers, client secrets,
/// the Azure Arc key, client assertions), so that an upstream that echoes one in its error text
/// cannot put it into a message: every `SecretError` message is scrubbed against them
/// (`error.rs`). Not a bounded "most recent" list (which lost a token still in use after 64
/// others): a credential is scrubbed for as long as a `Scrubbed` handle for it is held, that is
/// for as long as it can be sent. Its holders: the provider (what was given at construction,
/// for the manager's life), the token (while the token cache or a request holds it), the
/// request (a client assertion, a federated token). Dead entries are dropped as they are found.
static SENT: Lazy<Mutex<Vec<Weak<SecretString>>>> = Lazy::new(|| Mutex::new(Vec::new()));
/// Shorter strings are not credentials, and scrubbing them would mangle ordinary words.
const MIN_CREDENTIAL_LEN: usize = 8;
const REDACTED: &str = "[redacted]";

/// While this is held, its credential is scrubbed from every error message, in every form it
/// may be sent or echoed in. Its copy is wiped when the last handle for it goes.
pub struct Scrubbed {
    _held: Option<Arc<SecretString>>,
}

impl Scrubbed {
    pub fn new(credential: &str) -> Scrubbed {
        if credential.len() < MIN_CREDENTIAL_LEN {
            return Scrubbed { _held: None };
        }
        let mut sent = SENT.lock().unwrap_or_else(|p| p.into_inner());
        sent.retain(|w| w.strong_count() > 0);
        if let Some(held) = sent
            .iter()
            .filter_map(Weak::upgrade)
            .find(|c| c.expose() == credential)
        {
            return Scrubbed { _held: Some(held) };
        }
        let c = Arc::new(SecretString::new(credential.to_owned()));
        sent.push(Arc::downgrade(&c));
        Scrubbed { _held: Some(c) }
    }
}

impl fmt::Debug for Scrubbed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scrubbed(<redacted>)")
    }
}

/// The forms a credential may be echoed in: as is, form/percent-encoded, JSON-escaped.
fn forms(credential: &str) -> Vec<String> {
    let mut out = vec![credential.to_owned()];
    let encoded: String = url::form_urlencoded::byte_serialize(credential.as_bytes()).collect();
    let percent = encoded.replace('+', "%20");
    for f in [encoded, percent] {
        if !out.contains(&f) {
            out.push(f);
        }
    }
    if let Ok(json) = serde_json::to_string(credential) {
        let inner = json.trim_matches('"').to_owned();
        // Some serializers also escape '/' (as .NET's and PHP's may).
        let slashed = inner.replace('/', "\\/");
        for f in [inner, slashed] {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

/// `scheme://user:password@host` loses its user info, wherever it is in `text`.
fn strip_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| {
                c == '/'
                    || c == '?'
                    || c == '#'
                    || c.is_whitespace()
                    || c == '\''
                    || c == '"'
                    || c == '>'
            })
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => rest = &tail[at + 1..],
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// `text` without any credential this process sent and without user info in urls.
pub fn scrub(text: String) -> String {
    let mut text = if text.contains("://") {
        strip_userinfo(&text)
    } else {
        text
    };
    let live: Vec<Arc<SecretString>> = {
        let mut sent = SENT.lock().unwrap_or_else(|p| p.into_inner());
        sent.retain(|w| w.strong_count() > 0);
        sent.iter().filter_map(Weak::upgrade).collect()
    };
    for c in live.iter() {
        for form in forms(c.expose()) {
            if text.contains(&form) {
                let mut replaced = text.replace(&form, REDACTED);
                std::mem::swap(&mut text, &mut replaced);
                replaced.zeroize();
            }
        }
    }
    text
}

/// A parsed JSON reply that may hold a secret (a value, a token): its strings are wiped when
/// it is dropped.
pub struct WipedJson(pub serde_json::Value);

impl WipedJson {
    pub fn parse(bytes: &[u8]) -> Result<WipedJson, serde_json::Error> {
        serde_json::from_slice(bytes).map(WipedJson)
    }
}

fn wipe_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => s.zeroize(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(wipe_json),
        serde_json::Value::Object(m) => m.values_mut().for_each(wipe_json),
        _ => {}
    }
}

impl Drop for WipedJson {
    fn drop(&mut self) {
        wipe_json(&mut self.0);
    }
}

impl std::ops::Deref for WipedJson {
    type Target = serde_json::Value;
    fn deref(&self) -> &serde_json::Value {
        &self.0
    }
}

/// What a source hands back for one key.
#[derive(Debug)]
pub struct Secret {
    pub value: SecretString,
    /// The store's identifier of the secret (for Key Vault, its full id URL).
    pub id: Option<Box<str>>,
    /// The store's own expiry (unix seconds), e.g. Key Vault's `attributes.exp`.
    pub expires_at: Option<f64>,
}

impl Secret {
    pub fn new(value: String) -> Self {
        Secret {
            value: SecretString::new(value),
            id: None,
            expires_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret {
            value: SecretString::new("hunter2-sentinel".into()),
            id: Some("id-1".into()),
            expires_at: None,
        };
        let mut spare = String::with_capacity(64);
        spare.push_str("sized");
        assert_eq!(SecretString::new(spare).expose(), "sized");
        let shown = format!("{s:?} {:?} {:#?}", s.value, s);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("id-1"));
    }

    #[test]
    fn sent_credentials_are_scrubbed_in_every_form() {
        let _held = Scrubbed::new("tok/en+with=odd&chars-0123");
        let _short = Scrubbed::new("short");
        let echoed = format!(
            "401: bad token tok/en+with=odd&chars-0123, Basic tok/en+with=odd&chars-0123, form {}, json {}",
            "tok%2Fen%2Bwith%3Dodd%26chars-0123", "tok\\/en+with=odd&chars-0123"
        );
        let clean = scrub(echoed);
        assert!(!clean.contains("chars-0123"), "{clean}");
        assert_eq!(scrub("a short word".into()), "a short word");
    }

    #[test]
    fn a_credential_is_scrubbed_while_held_however_many_others_come_and_go() {
        let first = Scrubbed::new("first-credential-held-0001");
        for i in 0..200 {
            let _passing = Scrubbed::new(&format!("passing-credential-{i:04}"));
        }
        let clean = scrub("echo first-credential-held-0001 passing-credential-0007".into());
        assert_eq!(clean, "echo [redacted] passing-credential-0007");
        // A second handle for the same credential shares the entry; it lives while either does.
        let again = Scrubbed::new("first-credential-held-0001");
        drop(first);
        assert!(!scrub("first-credential-held-0001".into()).contains("first"));
        drop(again);
        assert_eq!(
            scrub("first-credential-held-0001".into()),
            "first-credential-held-0001",
            "no longer held: nothing to scrub, and its copy is wiped"
        );
    }

    #[test]
    fn urls_lose_their_user_info() {
        assert_eq!(
            scrub(
                "at https://user:pa55@login.example.com/x and http://u@h:1, 'ftp://a:b@c'".into()
            ),
            "at https://login.example.com/x and http://h:1, 'ftp://c'"
        );
        assert_eq!(scrub("no url: a@b".into()), "no url: a@b");
    }

    #[test]
    fn expose_gives_the_value() {
        let s = SecretString::new("abc".into());
        assert_eq!(s.expose(), "abc");
        assert_eq!(s.len(), 3);
    }
}
