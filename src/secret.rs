//! The secret value type: wiped when dropped, never shown by `Debug`.

use std::fmt;
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
    fn expose_gives_the_value() {
        let s = SecretString::new("abc".into());
        assert_eq!(s.expose(), "abc");
        assert_eq!(s.len(), 3);
    }
}
