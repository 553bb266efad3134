//! The relay's ingest path from a received body to its decision: the
//! input is signed with the office key the relay trusts (so the fuzzer
//! gets past the signature into the header, the sequence and time rules,
//! the delta chain and the site), checked by `ingest::examine` against a
//! relay holding a site, then applied to that site as the handler does.
#![no_main]

mod alloc_cap;

use std::path::Path;
use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use madoguchi_relay::config::{Config, EXAMPLE};
use madoguchi_relay::serve::ingest::{examine, Held};
use madoguchi_relay::site::Site;
use madoguchi_wire::bundle::{pack, Header, Kind, MAGIC};
use madoguchi_wire::{UnixMillis, UnixSeconds};

const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

/// Made once: deriving a key is a scalar multiplication.
fn office() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::from_bytes(&[7; 32]))
}

fn setup() -> &'static (Config, Site, Vec<ed25519_dalek::VerifyingKey>) {
    static S: OnceLock<(Config, Site, Vec<ed25519_dalek::VerifyingKey>)> = OnceLock::new();
    S.get_or_init(|| {
        let key = madoguchi_wire::keys::to_hex(office().verifying_key().as_bytes());
        let text = EXAMPLE.replace(
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            &key,
        );
        let cfg = Config::parse(&text, Path::new("/tmp/relay.toml")).expect("config");
        let now = NOW.seconds();
        let h = Header {
            relay: cfg.ingest.name.clone(),
            seq: NOW.0 - 5000,
            created: now,
            expires: now.plus(std::time::Duration::from_secs(60)),
            kind: Kind::Full,
            base: 0,
            files: vec![],
            removed: vec![],
            reset: None,
        };
        let raw = pack(
            &h,
            &[
                ("index.html".into(), b"<p>a</p>".to_vec()),
                ("displays/status.json".into(), b"{}".to_vec()),
            ],
            office(),
        );
        let b = madoguchi_wire::bundle::verify(&raw, &[office().verifying_key()]).expect("seed");
        let site = Site::default().apply(&b).expect("seed site").0;
        let _ = UnixSeconds(0);
        let keys = cfg.office_keys();
        (cfg, site, keys)
    })
}

fuzz_target!(|data: &[u8]| {
    let (cfg, site, keys) = setup();
    // Half the inputs as they come (a stranger's bytes), half as the signed
    // part of a bundle from the office.
    let raw = if data.first().is_some_and(|b| b & 1 == 1) {
        data[1..].to_vec()
    } else {
        let mut signed = MAGIC.to_vec();
        signed.extend_from_slice(data.get(1..).unwrap_or_default());
        // The wire crate's own signing: in fuzzing builds a stand-in at a
        // hash's cost (`madoguchi_wire::bundle::sign`).
        let sig = madoguchi_wire::bundle::sign(office(), &signed);
        signed.extend_from_slice(&sig);
        signed
    };
    let held = Held {
        seq: site.seq,
        chain: (3, 4096),
        site,
    };
    if let Ok((b, _, _)) = examine(cfg, keys, &raw, &held, madoguchi_wire::rules::Clocks::same(NOW)) {
        let _ = site.apply(&b);
    }
});
