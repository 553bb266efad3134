//! The text form of the office's keys: 64 hex digits (the signing key's
//! seed in the office's data folder, the public key in each relay's
//! `ingest.office_keys`).

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::bundle::BundleError;

/// A signing key from its text form (64 hex digits of the seed).
pub fn signing_key_from_hex(text: &str) -> Result<SigningKey, BundleError> {
    let bytes = hex32(text.trim())?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// A public key from its text form (64 hex digits).
pub fn verifying_key_from_hex(text: &str) -> Result<VerifyingKey, BundleError> {
    let bytes = hex32(text.trim())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| BundleError::BadKey("not an Ed25519 public key"))
}

pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn hex32(text: &str) -> Result<[u8; 32], BundleError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out)
        .map_err(|_| BundleError::BadKey("expected 64 hex digits"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_hex() {
        let k = SigningKey::from_bytes(&[9; 32]);
        let back = signing_key_from_hex(&to_hex(&k.to_bytes())).expect("hex");
        assert_eq!(back.to_bytes(), k.to_bytes());
        let v = verifying_key_from_hex(&to_hex(k.verifying_key().as_bytes())).expect("hex");
        assert_eq!(v, k.verifying_key());
        assert!(verifying_key_from_hex("zz").is_err());
        assert!(signing_key_from_hex(&"é".repeat(32)).is_err());
    }
}
