//! The relay's VAPID identity (RFC 8292): one P-256 key pair, made on first
//! start and kept in the state folder (`push/vapid.pk8`, PKCS#8, mode 0600),
//! so subscriptions taken before a restart still verify after it. Every
//! push carries `Authorization: vapid t=<JWT>, k=<public key>`, the JWT
//! naming the push service's origin, an expiry and the operator's contact.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use super::PushError;

const FILE: &str = "vapid.pk8";
/// RFC 8292 §2: at most 24 hours; 12 leaves room for clock skew.
const JWT_LIFETIME_S: i64 = 12 * 3600;

#[derive(Debug)]
pub struct Vapid {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// The public key, uncompressed point, base64url (`applicationServerKey`).
    pub public_b64: String,
}

impl Vapid {
    /// Loads the key from `dir`, making and storing one if there is none.
    /// A file that is there but does not parse is a loud, named error
    /// ([`PushError::Damaged`]): the caller sets it aside before a new key
    /// is made (`push::open_state`), never replaces it silently.
    pub fn open(dir: &Path) -> Result<Vapid, PushError> {
        let path = dir.join(FILE);
        let rng = SystemRandom::new();
        let pkcs8 = match super::store::read_regular(&path, 64 << 10) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| PushError::Runtime("the system random source failed".into()))?;
                write_private(&path, doc.as_ref())?;
                tracing::info!(path = %path.display(), "new VAPID key pair made");
                doc.as_ref().to_vec()
            }
            Err(source) => return Err(PushError::Io { path, source }),
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|e| PushError::Damaged {
                path: path.clone(),
                why: format!("not a P-256 PKCS#8 key ({e})"),
            })?;
        let public_b64 = B64.encode(key.public_key().as_ref());
        Ok(Vapid {
            key,
            rng,
            public_b64,
        })
    }

    /// The `Authorization` header for a push to `audience` (the push
    /// service's origin, `https://host[:port]`).
    pub fn authorization(&self, audience: &str, contact: &str, now: i64) -> Option<String> {
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": audience,
            "exp": now + JWT_LIFETIME_S,
            "sub": contact,
        });
        let claims = B64.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let sig = self.key.sign(&self.rng, signing_input.as_bytes()).ok()?;
        Some(format!(
            "vapid t={signing_input}.{}, k={}",
            B64.encode(sig.as_ref()),
            self.public_b64
        ))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PushError> {
    super::store::write_durably(path, bytes, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    #[test]
    fn the_key_is_made_once_kept_and_signs_verifiable_tokens() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = Vapid::open(dir.path()).expect("made");
        let b = Vapid::open(dir.path()).expect("read back");
        assert_eq!(a.public_b64, b.public_b64, "the same key after a restart");
        let auth = a
            .authorization("https://push.example", "mailto:ops@example.lg.jp", 1000)
            .expect("signed");
        let (t, k) = auth
            .strip_prefix("vapid t=")
            .and_then(|r| r.split_once(", k="))
            .expect("vapid t=…, k=…");
        assert_eq!(k, a.public_b64);
        let (input, sig) = t.rsplit_once('.').expect("jwt");
        let claims: serde_json::Value = serde_json::from_slice(
            &B64.decode(input.split('.').nth(1).expect("claims"))
                .expect("b64"),
        )
        .expect("json");
        assert_eq!(claims["aud"], "https://push.example");
        assert_eq!(claims["exp"], 1000 + JWT_LIFETIME_S);
        let public = B64.decode(k).expect("key");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public)
            .verify(input.as_bytes(), &B64.decode(sig).expect("sig"))
            .expect("the signature verifies with the served key");
        std::fs::write(dir.path().join(FILE), b"junk").expect("damage");
        let err = Vapid::open(dir.path()).expect_err("damaged key");
        assert!(err.to_string().contains("vapid.pk8"), "{err}");
    }
}
