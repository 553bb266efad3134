//! Message encryption for Web Push (RFC 8291 on RFC 8188 `aes128gcm`):
//! an ephemeral P-256 key agreed with the browser's `p256dh` key, the
//! subscription's `auth` secret mixed in with HKDF-SHA256, one AES-128-GCM
//! record. The push service only ever sees ciphertext. Built on `ring`
//! (already linked by rustls); the RFC's own example is the unit test, and
//! the end-to-end test decrypts with Python's independent `http_ece`.

use ring::{aead, agreement, hkdf, rand};

/// One record holds the whole message (push services take 4096 bytes).
pub const RECORD_SIZE: u32 = 4096;
/// The most plaintext sent: with the 86-byte header, the delimiter and the
/// tag the body stays well under the 4096 bytes every push service takes.
pub const MAX_PLAINTEXT: usize = 3000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EceError {
    #[error("the subscription's p256dh key is not a P-256 point")]
    BadKey,
    #[error("the subscription's auth secret is not 16 bytes")]
    BadAuth,
    #[error("the message is too long for one record")]
    TooLong,
    #[error("the system random source failed")]
    Random,
}

/// HKDF output length for ring's typed API.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &hkdf::Prk, info: &[&[u8]], out: &mut [u8]) {
    // Lengths here are 12, 16 and 32 bytes: far under HKDF's 255 × 32 limit.
    if let Ok(okm) = prk.expand(info, Len(out.len())) {
        let _ = okm.fill(out);
    }
}

/// Encrypts `plaintext` for a browser's subscription keys.
pub fn encrypt(ua_public: &[u8], auth: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EceError> {
    if auth.len() != 16 {
        return Err(EceError::BadAuth);
    }
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EceError::TooLong);
    }
    let rng = rand::SystemRandom::new();
    let private = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
        .map_err(|_| EceError::Random)?;
    let as_public = private
        .compute_public_key()
        .map_err(|_| EceError::Random)?
        .as_ref()
        .to_vec();
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, ua_public);
    let secret =
        agreement::agree_ephemeral(private, &peer, |s| s.to_vec()).map_err(|_| EceError::BadKey)?;
    let mut salt = [0u8; 16];
    rand::SecureRandom::fill(&rng, &mut salt).map_err(|_| EceError::Random)?;
    Ok(seal(&secret, ua_public, &as_public, auth, &salt, plaintext))
}

/// Whether `ua_public` is a key the browser could hold (an uncompressed
/// P-256 point): checked by agreeing with a throw-away key.
pub fn valid_key(ua_public: &[u8]) -> bool {
    let rng = rand::SystemRandom::new();
    let Ok(private) = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng) else {
        return false;
    };
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, ua_public);
    ua_public.len() == 65 && agreement::agree_ephemeral(private, &peer, |_| ()).is_ok()
}

/// The deterministic half of [`encrypt`]: key schedule and the record,
/// given the ECDH secret and the salt (the RFC's example fixes both).
fn seal(
    ecdh_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    auth: &[u8],
    salt: &[u8; 16],
    plaintext: &[u8],
) -> Vec<u8> {
    // RFC 8291 §3.3: IKM from the ECDH secret, keyed by the auth secret.
    let prk_key = hkdf::Salt::new(hkdf::HKDF_SHA256, auth).extract(ecdh_secret);
    let mut ikm = [0u8; 32];
    expand(
        &prk_key,
        &[b"WebPush: info\0", ua_public, as_public],
        &mut ikm,
    );
    // RFC 8188 §2.2-2.3: content key and nonce from the salt.
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&ikm);
    let mut cek = [0u8; 16];
    expand(&prk, &[b"Content-Encoding: aes128gcm\0"], &mut cek);
    let mut nonce = [0u8; 12];
    expand(&prk, &[b"Content-Encoding: nonce\0"], &mut nonce);
    // One record, so its sequence number is 0 and the nonce is unchanged;
    // 0x02 marks the last record (no padding).
    let mut record = Vec::with_capacity(plaintext.len() + 17);
    record.extend_from_slice(plaintext);
    record.push(2);
    let mut out = Vec::with_capacity(86 + record.len() + 16);
    out.extend_from_slice(salt);
    out.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    out.push(as_public.len() as u8);
    out.extend_from_slice(as_public);
    let sealed = aead::UnboundKey::new(&aead::AES_128_GCM, &cek)
        .map(aead::LessSafeKey::new)
        .and_then(|key| {
            key.seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::empty(),
                &mut record,
            )
        });
    // AES-128 takes any 16-byte key and a record under 4 KiB is far below
    // GCM's limit: sealing cannot fail here.
    debug_assert!(sealed.is_ok());
    out.extend_from_slice(&record);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .expect("base64url")
    }

    /// RFC 8291 §5 (and its Appendix A intermediate values): the example
    /// message, byte for byte.
    #[test]
    fn the_rfc_8291_example_encrypts_byte_for_byte() {
        let plaintext = b64("V2hlbiBJIGdyb3cgdXAsIEkgd2FudCB0byBiZSBhIHdhdGVybWVsb24");
        let as_public = b64("BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8");
        let ua_public = b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4");
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().expect("16");
        let auth = b64("BTBZMqHH6r4Tts7J_aSIgg");
        let ecdh = b64("kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs");
        let out = seal(&ecdh, &ua_public, &as_public, &auth, &salt, &plaintext);
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn keys_that_are_not_points_are_refused() {
        let ua = b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4");
        assert!(valid_key(&ua));
        let mut off = ua.clone();
        off[40] ^= 1;
        assert!(!valid_key(&off), "a point off the curve");
        assert!(!valid_key(&ua[..33]), "compressed or short");
        assert_eq!(encrypt(&off, &[0; 16], b"x").err(), Some(EceError::BadKey));
        assert_eq!(encrypt(&ua, &[0; 15], b"x").err(), Some(EceError::BadAuth));
        let m = encrypt(&ua, &[0; 16], b"hello").expect("encrypts");
        assert_eq!(m.len(), 16 + 4 + 1 + 65 + 5 + 1 + 16);
    }
}
