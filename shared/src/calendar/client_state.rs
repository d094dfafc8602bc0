//! The `clientState` secret Graph echoes in every notification. Each subscription's value is
//! derived from one key (in Secrets Manager) and a per-subscription nonce (in the table), so the
//! table holds nothing an attacker could replay, and the endpoint needs one secret, not one per
//! subscription. Comparison is constant-time.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Graph's limit on `clientState`.
pub const MAX_CLIENT_STATE: usize = 128;

#[derive(Clone)]
pub struct ClientStateKey(SecretString);

impl fmt::Debug for ClientStateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientStateKey([redacted])")
    }
}

impl ClientStateKey {
    /// At least 32 bytes of key material, so the derived values cannot be guessed.
    pub fn new(key: SecretString) -> Result<Self, String> {
        if key.expose_secret().len() < 32 {
            return Err("must be at least 32 characters".to_owned());
        }
        Ok(Self(key))
    }

    /// The `clientState` for the subscription created with `nonce` (43 characters).
    pub fn client_state(&self, nonce: &str) -> SecretString {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret().as_bytes())
            .expect("HMAC accepts a key of any length");
        mac.update(b"graph-client-state\0");
        mac.update(nonce.as_bytes());
        SecretString::from(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// Whether `presented` is the client state of `nonce`, in time independent of where they
    /// differ.
    pub fn verify(&self, nonce: &str, presented: &str) -> bool {
        let expected = self.client_state(nonce);
        expected
            .expose_secret()
            .as_bytes()
            .ct_eq(presented.as_bytes())
            .into()
    }
}

/// A fresh random nonce for a new subscription.
pub fn new_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ClientStateKey {
        ClientStateKey::new(SecretString::from("k".repeat(32))).expect("long enough")
    }

    #[test]
    fn derived_state_verifies_and_fits_graphs_limit() {
        let state = key().client_state("n1");
        assert!(state.expose_secret().len() <= MAX_CLIENT_STATE);
        assert!(key().verify("n1", state.expose_secret()));
        assert!(!key().verify("n2", state.expose_secret()));
        assert!(!key().verify("n1", "forged"));
        assert!(!key().verify("n1", ""));
    }

    #[test]
    fn short_keys_and_debug_output_are_refused() {
        assert!(ClientStateKey::new(SecretString::from("short")).is_err());
        assert!(!format!("{:?}", key()).contains("kkkk"));
    }
}
