//! Signing keys with forward security. Each epoch has its own Ed25519 key;
//! at the end of an epoch the store announces the next public key in a
//! record signed by the current key, closes the epoch with a checkpoint
//! signed by the current key, and only once both are durable erases the
//! current secret. Whoever takes the host later holds only the newest
//! secret, which verify refuses for any older epoch (the CVE-2023-31438/9
//! lessons: every checkpoint is checked against its own epoch's key).
//!
//! Key directory (0700, files 0600, outside any sandbox):
//!
//! | file | content |
//! |---|---|
//! | `origin` | the log's origin line (also the signed-note key name) |
//! | `trust-root.vkey` | epoch 0's verifier key: export it off-host, pass it to `verify --pubkey` |
//! | `epoch-N.pub` | epoch N's verifier key |
//! | `epoch-N.secret` | epoch N's 32-byte Ed25519 seed; at most two exist, briefly, during a rotation |
//! | `bound` | hash of the genesis record of the one store these keys sign |

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use crate::{
    chain::parse_hex32,
    checkpoint::{parse_vkey, valid_key_name, vkey},
    merkle::Hash,
};

pub const DEFAULT_KEY_DIR: &str = "/var/lib/sandbox-audit/keys";

/// One epoch's signing key.
#[derive(Clone)]
pub struct EpochKey {
    pub epoch: u64,
    pub key: SigningKey,
    /// When the secret was created: the epoch's age counts from here.
    pub created: SystemTime,
}

impl EpochKey {
    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
}

pub struct KeyDir {
    path: PathBuf,
    origin: String,
}

/// Writes `bytes` to `dir/name` atomically (temp file, fsync, rename, fsync
/// of the directory) with mode 0600.
fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    let dest = dir.join(name);
    fs::rename(&tmp, &dest)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Random bytes from the kernel.
pub fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>> {
    let mut b = Zeroizing::new([0u8; N]);
    getrandom::fill(b.as_mut()).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
    Ok(b)
}

fn secret_name(epoch: u64) -> String {
    format!("epoch-{epoch}.secret")
}

fn pub_name(epoch: u64) -> String {
    format!("epoch-{epoch}.pub")
}

/// Refuses a secret that others could read: it would already be compromised.
fn check_private(path: &Path, want_mode: u32) -> Result<()> {
    let m = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if m.mode() & 0o077 != 0 {
        bail!(
            "{} has mode {:o}; it must not be accessible to group or others (expected {:o})",
            path.display(),
            m.mode() & 0o777,
            want_mode
        );
    }
    Ok(())
}

impl KeyDir {
    /// Initialises a new key directory: origin, epoch 0's key, trust root.
    /// Fails if one is already there.
    pub fn create(path: &Path, host_id: &str) -> Result<KeyDir> {
        fs::create_dir_all(path)
            .with_context(|| format!("creating key directory {}", path.display()))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting mode 0700 on {}", path.display()))?;
        if path.join("origin").exists() {
            bail!("{} already holds keys", path.display());
        }
        let tag = random_bytes::<4>()?;
        let origin = format!("sandbox-audit/{host_id}/{}", hex::encode(*tag));
        if !valid_key_name(&origin) {
            bail!("host id {host_id:?} does not make a valid origin");
        }
        let dir = KeyDir {
            path: path.to_path_buf(),
            origin,
        };
        let k0 = dir.create_epoch(0)?;
        write_private(
            path,
            "trust-root.vkey",
            format!("{}\n", vkey(&dir.origin, &k0.public())).as_bytes(),
        )?;
        // Last: a directory with `origin` is complete.
        write_private(path, "origin", format!("{}\n", dir.origin).as_bytes())?;
        Ok(dir)
    }

    /// Opens an existing key directory.
    pub fn open(path: &Path) -> Result<KeyDir> {
        let m = fs::metadata(path).with_context(|| format!("key directory {}", path.display()))?;
        if !m.is_dir() {
            bail!("{} is not a directory", path.display());
        }
        check_private(path, 0o700)?;
        let origin_path = path.join("origin");
        let origin = fs::read_to_string(&origin_path).with_context(|| {
            format!(
                "reading {} (create keys with `sandbox-audit keygen`)",
                origin_path.display()
            )
        })?;
        let origin = origin.trim_end_matches('\n').to_string();
        if !valid_key_name(&origin) {
            bail!(
                "{}: {origin:?} is not a valid origin",
                origin_path.display()
            );
        }
        Ok(KeyDir {
            path: path.to_path_buf(),
            origin,
        })
    }

    /// Opens the directory, creating it (and epoch 0's key) when it holds no
    /// keys yet. Returns whether it was created.
    pub fn open_or_create(path: &Path, host_id: &str) -> Result<(KeyDir, bool)> {
        if path.join("origin").exists() {
            Ok((KeyDir::open(path)?, false))
        } else {
            Ok((KeyDir::create(path, host_id)?, true))
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The trust root: epoch 0's verifier key line.
    pub fn trust_root(&self) -> Result<String> {
        let p = self.path.join("trust-root.vkey");
        let s = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        parse_vkey(&s).with_context(|| format!("{}", p.display()))?;
        Ok(s.trim().to_string())
    }

    /// Epochs whose secret is present, ascending.
    pub fn secret_epochs(&self) -> Result<Vec<u64>> {
        let mut v = Vec::new();
        for e in
            fs::read_dir(&self.path).with_context(|| format!("listing {}", self.path.display()))?
        {
            let name = e?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_prefix("epoch-")
                .and_then(|r| r.strip_suffix(".secret"))
            {
                match n.parse() {
                    Ok(n) => v.push(n),
                    Err(_) => bail!("unexpected file {name} in {}", self.path.display()),
                }
            }
        }
        v.sort_unstable();
        Ok(v)
    }

    /// Loads epoch `epoch`'s secret.
    pub fn load(&self, epoch: u64) -> Result<EpochKey> {
        let p = self.path.join(secret_name(epoch));
        check_private(&p, 0o600)?;
        let bytes =
            Zeroizing::new(fs::read(&p).with_context(|| format!("reading {}", p.display()))?);
        let seed: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} is not a 32-byte Ed25519 seed", p.display()))?;
        let key = SigningKey::from_bytes(seed);
        let created = fs::metadata(&p)
            .and_then(|m| m.modified())
            .with_context(|| format!("reading the time of {}", p.display()))?;
        let k = EpochKey {
            epoch,
            key,
            created,
        };
        if self.public(epoch)? != k.public() {
            bail!("{} does not match {}", p.display(), pub_name(epoch));
        }
        Ok(k)
    }

    /// Epoch `epoch`'s public key (kept after its secret is erased).
    pub fn public(&self, epoch: u64) -> Result<[u8; 32]> {
        let p = self.path.join(pub_name(epoch));
        let s = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let (name, pk) = parse_vkey(&s).with_context(|| format!("{}", p.display()))?;
        if name != self.origin {
            bail!("{} is for {name}, not {}", p.display(), self.origin);
        }
        Ok(pk)
    }

    /// Generates and durably stores epoch `epoch`'s key (public part first).
    pub fn create_epoch(&self, epoch: u64) -> Result<EpochKey> {
        let seed = random_bytes::<32>()?;
        let key = SigningKey::from_bytes(&seed);
        let k = EpochKey {
            epoch,
            key,
            created: SystemTime::now(),
        };
        write_private(
            &self.path,
            &pub_name(epoch),
            format!("{}\n", vkey(&self.origin, &k.public())).as_bytes(),
        )?;
        write_private(&self.path, &secret_name(epoch), seed.as_slice())?;
        Ok(k)
    }

    /// Erases epoch `epoch`'s secret: overwrite with zeros, sync, unlink,
    /// sync the directory. (On journaling or copy-on-write filesystems old
    /// blocks may survive the overwrite; the unlink is what `ls` sees.)
    pub fn erase(&self, epoch: u64) -> Result<()> {
        let p = self.path.join(secret_name(epoch));
        if let Ok(mut f) = OpenOptions::new().write(true).open(&p) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(32) as usize;
            f.write_all(&vec![0u8; len])
                .and_then(|_| f.sync_all())
                .with_context(|| format!("overwriting {}", p.display()))?;
        }
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
        }
        sync_dir(&self.path)
    }

    /// The genesis hash of the store these keys sign, if bound yet.
    pub fn bound(&self) -> Result<Option<Hash>> {
        let p = self.path.join("bound");
        match fs::read_to_string(&p) {
            Ok(s) => parse_hex32(s.trim().as_bytes())
                .map(Some)
                .with_context(|| format!("{} does not hold a record hash", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    /// Binds these keys to the store whose genesis record has this hash.
    pub fn bind(&self, genesis: &Hash) -> Result<()> {
        write_private(
            &self.path,
            "bound",
            format!("{}\n", hex::encode(genesis)).as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_open_rotate_erase() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("keys");
        let d = KeyDir::create(&p, "0123abcd").unwrap();
        assert!(d.origin().starts_with("sandbox-audit/0123abcd/"));
        assert!(KeyDir::create(&p, "0123abcd").is_err());
        let mode = |f: &str| fs::metadata(p.join(f)).unwrap().mode() & 0o777;
        assert_eq!(mode(""), 0o700);
        assert_eq!(mode("epoch-0.secret"), 0o600);
        let d = KeyDir::open(&p).unwrap();
        let k0 = d.load(0).unwrap();
        let (_, root) = parse_vkey(&d.trust_root().unwrap()).unwrap();
        assert_eq!(root, k0.public());
        let k1 = d.create_epoch(1).unwrap();
        assert_eq!(d.secret_epochs().unwrap(), vec![0, 1]);
        d.erase(0).unwrap();
        assert_eq!(d.secret_epochs().unwrap(), vec![1]);
        assert_eq!(d.public(0).unwrap(), k0.public());
        assert_eq!(d.load(1).unwrap().public(), k1.public());
        assert!(d.load(0).is_err());
        assert_eq!(d.bound().unwrap(), None);
        d.bind(&[7; 32]).unwrap();
        assert_eq!(d.bound().unwrap(), Some([7; 32]));
    }

    #[test]
    fn readable_secret_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = KeyDir::create(t.path(), "h").unwrap();
        fs::set_permissions(
            t.path().join("epoch-0.secret"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let e = d.load(0).err().unwrap().to_string();
        assert!(e.contains("must not be accessible"), "{e}");
    }
}
