//! `madoguchi backup` and `madoguchi restore` (R10).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use madoguchi_core::backup;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The backup file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// An earlier backup: write only what came after it (incremental).
    #[arg(long, value_name = "FILE")]
    pub after: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A full backup, then the incremental ones that follow it, in order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Reads the log only: safe while the office server runs, which is neither
/// paused nor asked anything.
pub fn run_backup(data: &Path, args: BackupArgs) -> Result<()> {
    let after = match &args.after {
        Some(p) => Some(
            backup::manifest(p)
                .with_context(|| format!("cannot use {} as the earlier backup", p.display()))?,
        ),
        None => None,
    };
    let m = backup::backup(data, &args.out, after.as_ref())
        .with_context(|| format!("backup of {} failed", data.display()))?;
    // It carries every password hash and session (outside tester
    // insider-rt9 F8: it was 0644).
    owner_only(&args.out)?;
    println!(
        "wrote {} ({}: records {}–{}, last hash {}; accounts and devices: {})",
        args.out.display(),
        if m.is_full() { "full" } else { "incremental" },
        m.first_seq,
        m.last_seq,
        m.last_hash,
        if m.carried.is_empty() {
            "none"
        } else {
            "carried"
        }
    );
    let key = super::keys::key_path(data);
    if key.exists() {
        let secret = secret_beside(&args.out);
        copy_secret(&key, &secret)?;
        println!(
            "wrote {} (the relay signing key: a secret, keep it apart from the backup and readable only by the service account)",
            secret.display()
        );
    }
    Ok(())
}

/// The relay signing key written beside a backup file: `<backup>.relay-key`.
pub fn secret_beside(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_os_string();
    name.push(".relay-key");
    PathBuf::from(name)
}

/// Copies a secret file readable by its owner only (temp, fsync, rename).
fn copy_secret(from: &Path, to: &Path) -> Result<()> {
    use std::io::Write;
    let bytes = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut tmp = to.as_os_str().to_os_string();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, to).with_context(|| format!("cannot write {}", to.display()))?;
    Ok(())
}

pub fn run_restore(data: &Path, args: RestoreArgs) -> Result<()> {
    let (m, n) =
        backup::restore(&args.files, data).context("restore refused; nothing was written")?;
    let engine = super::open_engine(data, None)?;
    println!(
        "restored {} records into {}; last hash {}, state {}",
        n,
        data.display(),
        m.last_hash,
        engine.state_hash()
    );
    if m.carried.is_empty() {
        println!(
            "the backups carry no accounts: the server creates a new admin at its first start"
        );
    } else {
        println!("accounts, devices and sessions restored from the backup");
    }
    // The account store and sessions the backup carried: the service
    // user's only (F8).
    for name in backup::CARRIED {
        let path = data.join(name);
        if path.exists() {
            owner_only(&path)?;
        }
    }
    warn_restored(data, &m);
    // The newest relay key beside the files given.
    if let Some(secret) = args
        .files
        .iter()
        .rev()
        .map(|f| secret_beside(f))
        .find(|s| s.exists())
    {
        copy_secret(&secret, &super::keys::key_path(data))?;
        println!("relay signing key restored from {}", secret.display());
    }
    Ok(())
}

/// Says loudly (stderr, the fault records /admin shows) that the restored
/// folder holds its commands until an administrator confirms that no
/// standby enrolled after the backup runs (issue 24, outside tester
/// replay4 N1: such a standby, promoted while cut off, gave the same
/// numbers as the restored primary).
pub(super) fn warn_restored(data: &Path, m: &backup::Manifest) {
    let known = standbys_in(data);
    let known = if known.is_empty() {
        "なし / none".to_string()
    } else {
        known.join("、")
    };
    let said = format!(
        "注意: このバックアップ（{created}、記録 {last} まで）の後に登録された予備機は、復元した主機には分かりません。その予備機が主機に昇格していると同じ番号が二度出るため、このサーバーは受付を止めて起動します。元の主機の予備機（ほかの機械）の電源をすべて切ってから、管理者が管理画面で「予備機の停止を確認」を押してください（バックアップが知っている予備機: {known}。予備機（--standby-of）として起動するときは、昇格のときに自動で解除されます）。\n\
         warning: a standby enrolled after this backup ({created}, records up to {last}) is unknown to the restored primary; promoted, it would give the same numbers. The server starts with commands held: switch every other machine of the office off, then an admin presses 予備機の停止を確認 on /admin (standbys the backup knows: {known}; started as a standby with --standby-of, a promotion ends the hold).",
        created = m.created,
        last = m.last_seq,
    );
    eprintln!("{said}");
    super::record_fault(data, "failover", &said.replace('\n', " "));
}

/// The standby devices the restored account store lists.
fn standbys_in(data: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(data.join("accounts.json")) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    v["devices"]
        .as_array()
        .map(|ds| {
            ds.iter()
                .filter(|d| d["role"] == "standby")
                .filter_map(|d| {
                    let name = d["name"].as_str()?;
                    Some(if d["disabled"] == true {
                        format!("{name}（取り消し済み / revoked）")
                    } else {
                        name.to_string()
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Makes `path` readable by its owner only (0600; nothing elsewhere).
fn owner_only(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).with_context(
            || format!("cannot make {} readable by this user only", path.display()),
        )?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
