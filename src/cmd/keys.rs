//! `madoguchi keys`: the office's Ed25519 key that signs every bundle sent
//! to the internet relays (R11). The private key stays in the data folder
//! (`relay-signing.key`, owner-only); each relay is given the public key.
//! Rotation keeps the previous key beside it until every relay has the new
//! public key (steps in deploy/README.md).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use madoguchi_wire::keys::{signing_key_from_hex, to_hex};

pub type SigningKey = ed25519_dalek::SigningKey;

pub const KEY_FILE: &str = "relay-signing.key";
const PREVIOUS: &str = "relay-signing.key.previous";

#[derive(Debug, clap::Subcommand)]
pub enum Keys {
    /// Create the signing key if there is none; print its public key.
    Generate,
    /// Print the public key to list in each relay's `ingest.office_keys`.
    Show,
    /// Make a new signing key; the old one is kept as
    /// relay-signing.key.previous. Add the new public key to every relay
    /// first, then restart the office, then remove the old public key.
    Rotate,
}

pub fn key_path(data: &Path) -> PathBuf {
    data.join(KEY_FILE)
}

pub fn public_hex(key: &SigningKey) -> String {
    to_hex(key.verifying_key().as_bytes())
}

fn read(path: &Path) -> Result<SigningKey> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    signing_key_from_hex(&text).with_context(|| format!("{} is not a signing key", path.display()))
}

fn write_new(path: &Path) -> Result<SigningKey> {
    let seed: [u8; 32] = rand::random();
    let key = SigningKey::from_bytes(&seed);
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(format!("{}\n", to_hex(&key.to_bytes())).as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(key)
}

/// The office's signing key, created on first use; `true` if it is new.
pub fn load_or_create(data: &Path) -> Result<(SigningKey, bool)> {
    load_or_create_at(&key_path(data))
}

/// The signing key in `path`, created if there is none.
pub fn load_or_create_at(path: &Path) -> Result<(SigningKey, bool)> {
    if path.exists() {
        return Ok((read(path)?, false));
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    Ok((write_new(path)?, true))
}

pub fn run(data: &Path, cmd: Keys) -> Result<()> {
    match cmd {
        Keys::Generate => {
            let (key, new) = load_or_create(data)?;
            println!(
                "{} {}",
                if new { "created" } else { "exists:" },
                key_path(data).display()
            );
            println!("public key: {}", public_hex(&key));
        }
        Keys::Show => {
            let key = read(&key_path(data))
                .context("no signing key yet: run `madoguchi keys generate`")?;
            println!("{}", public_hex(&key));
        }
        Keys::Rotate => {
            let path = key_path(data);
            let old = read(&path).context("no signing key to rotate")?;
            fs::copy(&path, data.join(PREVIOUS))?;
            let new = write_new(&path)?;
            println!("previous public key: {}", public_hex(&old));
            println!("new public key:      {}", public_hex(&new));
            println!("Add the new key to office_keys on every relay, restart the office, then remove the previous key.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_kept_private_and_rotated() {
        let dir = tempfile::tempdir().expect("tmp");
        let (k1, new) = load_or_create(dir.path()).expect("create");
        assert!(new);
        let (k2, new) = load_or_create(dir.path()).expect("load");
        assert!(!new);
        assert_eq!(k1.to_bytes(), k2.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(key_path(dir.path()))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
        }
        run(dir.path(), Keys::Rotate).expect("rotate");
        let (k3, _) = load_or_create(dir.path()).expect("load");
        assert_ne!(k3.to_bytes(), k1.to_bytes());
        assert_eq!(
            read(&dir.path().join(PREVIOUS))
                .expect("previous")
                .to_bytes(),
            k1.to_bytes()
        );
    }
}
