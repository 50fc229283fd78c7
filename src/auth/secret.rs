//! Secrets: how they are made, stored and compared.
//!
//! * Session tokens, API keys and share tokens are 32 random bytes from the
//!   OS generator. Only their BLAKE3 hash is stored: the token has 256 bits
//!   of entropy, so a plain (unkeyed, unsalted) hash cannot be reversed, and
//!   a stolen table opens nothing.
//! * Passwords are argon2id PHC strings (the `argon2` crate's defaults:
//!   19 MiB, 2 passes), verified off the async runtime by the callers.
//! * The CSRF token of a logged-in form is derived from the session token,
//!   which only the browser holding the cookie knows: a synchronizer token
//!   that needs no storage.
//! * Forms shown before a session exists (login, a shared link's password)
//!   carry a [`FormKey`] token: a MAC of the issue time under a per-process
//!   key. Combined with the Origin check it stops login CSRF without setting
//!   a cookie before anyone has logged in.

use super::AuthError;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// 32 random bytes as 64 lowercase hex characters.
pub fn new_token() -> Result<String, AuthError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(hex::encode(b))
}

/// What is stored for a token: its BLAKE3 hash, hex.
pub fn hash_token(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Hash a password as an argon2id PHC string. CPU-heavy: call it from a
/// blocking thread in async code.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// A PHC string that matches no password, verified when the account does not
/// exist so that an unknown e-mail costs as long as a wrong password.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("headcount: no such user").unwrap_or_default());

/// Does `password` match `phc`? An empty or malformed hash never matches.
/// CPU-heavy, like [`hash_password`].
pub fn verify_password(password: &str, phc: &str) -> bool {
    let phc = if phc.is_empty() { DUMMY_HASH.as_str() } else { phc };
    match PasswordHash::new(phc) {
        Ok(parsed) => {
            argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
                && phc != DUMMY_HASH.as_str()
        }
        Err(_) => false,
    }
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The CSRF token for forms of the session whose raw token is `session`.
pub fn csrf_token(session: &str) -> String {
    hex::encode(&blake3::derive_key("headcount dashboard csrf v1", session.as_bytes())[..16])
}

/// Signs and checks the tokens of forms shown before a session exists.
pub struct FormKey {
    key: [u8; 32],
}

impl FormKey {
    /// A fresh random key (per process).
    pub fn generate() -> Result<FormKey, AuthError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| AuthError::Random(e.to_string()))?;
        Ok(FormKey { key })
    }

    fn mac(&self, purpose: &str, issued: i64) -> String {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&(purpose.len() as u64).to_le_bytes());
        h.update(purpose.as_bytes());
        h.update(&issued.to_le_bytes());
        hex::encode(&h.finalize().as_bytes()[..16])
    }

    /// A token for a form about `purpose` (e.g. `login`), issued at `now`
    /// (unix seconds).
    pub fn issue(&self, purpose: &str, now: i64) -> String {
        format!("{now:x}.{}", self.mac(purpose, now))
    }

    /// Was `token` issued by this key for `purpose` less than `max_age`
    /// seconds before `now`?
    pub fn check(&self, token: &str, purpose: &str, now: i64, max_age: i64) -> bool {
        let Some((issued, mac)) = token.split_once('.') else {
            return false;
        };
        let Ok(issued) = i64::from_str_radix(issued, 16) else {
            return false;
        };
        (0..=max_age).contains(&(now - issued)) && ct_eq(mac.as_bytes(), self.mac(purpose, issued).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_hashed() {
        let a = new_token().expect("rng");
        let b = new_token().expect("rng");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(hash_token(&a), a);
        assert_eq!(hash_token(&a), hash_token(&a));
    }

    #[test]
    fn passwords_are_argon2id_and_verify() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", ""));
        assert!(!verify_password("headcount: no such user", ""));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn csrf_is_tied_to_the_session() {
        assert_eq!(csrf_token("a"), csrf_token("a"));
        assert_ne!(csrf_token("a"), csrf_token("b"));
    }

    #[test]
    fn form_tokens_expire_and_are_bound_to_their_purpose() {
        let k = FormKey::generate().expect("rng");
        let t = k.issue("login", 1000);
        assert!(k.check(&t, "login", 1000, 60));
        assert!(k.check(&t, "login", 1060, 60));
        assert!(!k.check(&t, "login", 1061, 60));
        assert!(!k.check(&t, "login", 999, 60));
        assert!(!k.check(&t, "share:x", 1000, 60));
        assert!(!FormKey::generate().expect("rng").check(&t, "login", 1000, 60));
        assert!(!k.check("", "login", 1000, 60));
        assert!(!k.check("zz.00", "login", 1000, 60));
    }
}
