//! Salts at rest are sealed under the operator's key.
//!
//! Salts are shared between Headcount instances through ClickHouse, but a
//! salt stored in the clear next to the visitor ids would let anyone with
//! read access hash all 2^32 IPv4 addresses with common User-Agents and
//! re-identify today's visitors. So a salt is written only as
//! XChaCha20-Poly1305 ciphertext under a 256-bit key that lives in a file on
//! the Headcount hosts and never enters ClickHouse. The day and the proposal
//! id are bound in as associated data, so a sealed salt cannot be replayed as
//! another day's. (Russian rules since 2025 require depersonalized data and
//! the means to reverse it to be kept apart; this is that separation.)

use super::salt::{SALT_LEN, Salt};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fmt;
use time::Date;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Nonce length of XChaCha20-Poly1305.
pub const NONCE_LEN: usize = 24;
/// Key length.
pub const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("salt key must be {KEY_LEN} bytes written as {} hex characters", KEY_LEN * 2)]
    BadKey,
    #[error("sealed salt does not open with this key (wrong salt key, or the row was altered)")]
    WrongKeyOrTampered,
    #[error("operating system random number generator failed")]
    Rng,
}

/// The operator's salt-sealing key. Never logged, zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SaltKey([u8; KEY_LEN]);

impl SaltKey {
    pub fn generate() -> Result<Self, SealError> {
        let mut k = [0u8; KEY_LEN];
        getrandom::fill(&mut k).map_err(|_| SealError::Rng)?;
        Ok(SaltKey(k))
    }

    /// Parse the key file's contents: 64 hex characters, surrounding
    /// whitespace ignored.
    pub fn from_hex(text: &str) -> Result<Self, SealError> {
        let mut k = [0u8; KEY_LEN];
        hex::decode_to_slice(text.trim(), &mut k).map_err(|_| SealError::BadKey)?;
        Ok(SaltKey(k))
    }

    /// The key file's contents.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A short public fingerprint, to tell operators whether two hosts hold
    /// the same key without revealing it.
    pub fn fingerprint(&self) -> String {
        let h = blake3::derive_key("headcount.salt-key.fingerprint.v1", &self.0);
        hex::encode(&h[..6])
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

impl fmt::Debug for SaltKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SaltKey(fingerprint {})", self.fingerprint())
    }
}

/// A salt as stored: nonce + ciphertext (with tag).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: [u8; NONCE_LEN],
    pub ciphertext: Vec<u8>,
}

fn aad(day: Date, proposal_id: &[u8; 16]) -> Vec<u8> {
    let mut a = b"headcount.salt.v1".to_vec();
    a.extend_from_slice(day.to_string().as_bytes());
    a.extend_from_slice(proposal_id);
    a
}

/// Seal `salt` for `day` under `key`.
pub fn seal(key: &SaltKey, day: Date, proposal_id: &[u8; 16], salt: &Salt) -> Result<Sealed, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| SealError::Rng)?;
    let aad = aad(day, proposal_id);
    let ciphertext = key
        .cipher()
        .encrypt(&XNonce::from(nonce), Payload { msg: salt.expose_secret(), aad: &aad })
        .map_err(|_| SealError::WrongKeyOrTampered)?;
    Ok(Sealed { nonce, ciphertext })
}

/// Open a sealed salt; fails on a wrong key, another day, or tampering.
pub fn open(key: &SaltKey, day: Date, proposal_id: &[u8; 16], sealed: &Sealed) -> Result<Salt, SealError> {
    let aad = aad(day, proposal_id);
    let mut plain = key
        .cipher()
        .decrypt(&XNonce::from(sealed.nonce), Payload { msg: &sealed.ciphertext, aad: &aad })
        .map_err(|_| SealError::WrongKeyOrTampered)?;
    let mut bytes = [0u8; SALT_LEN];
    let result = if plain.len() == SALT_LEN {
        bytes.copy_from_slice(&plain);
        Ok(Salt::from_bytes(bytes))
    } else {
        Err(SealError::WrongKeyOrTampered)
    };
    plain.zeroize();
    bytes.zeroize();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn round_trip_and_binding() {
        let key = SaltKey::generate().expect("rng");
        let salt = Salt::generate().expect("rng");
        let day = date!(2026 - 11 - 22);
        let id = [9u8; 16];
        let sealed = seal(&key, day, &id, &salt).expect("seal");
        assert!(
            !sealed.ciphertext.windows(SALT_LEN).any(|w| w == salt.expose_secret()),
            "ciphertext contains the salt"
        );
        assert_eq!(open(&key, day, &id, &sealed).expect("open").expose_secret(), salt.expose_secret());

        let other_key = SaltKey::generate().expect("rng");
        assert!(open(&other_key, day, &id, &sealed).is_err(), "wrong key");
        assert!(open(&key, date!(2026 - 11 - 23), &id, &sealed).is_err(), "other day");
        assert!(open(&key, day, &[8u8; 16], &sealed).is_err(), "other proposal");
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(open(&key, day, &id, &tampered).is_err(), "tampered");
    }

    #[test]
    fn key_hex_round_trip_and_errors() {
        let key = SaltKey::generate().expect("rng");
        let again = SaltKey::from_hex(&format!("  {}\n", key.to_hex())).expect("parse");
        assert_eq!(key.to_hex(), again.to_hex());
        assert!(SaltKey::from_hex("abcd").is_err());
        assert!(SaltKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(!format!("{key:?}").contains(&key.to_hex()));
    }
}
