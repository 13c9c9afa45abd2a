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

use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use crate::{
    chain::parse_hex32,
    checkpoint::{NoteError, parse_vkey, valid_key_name, vkey},
    merkle::Hash,
};

pub const DEFAULT_KEY_DIR: &str = "/var/lib/sandbox-audit/keys";

/// Why a key directory could not be created, read or changed. Each names
/// the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `action` says what was done to `path` ("reading", "creating", …).
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("renaming {} to {}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {} (create keys with `sandbox-audit keygen`)", path.display())]
    NoOrigin {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading random bytes: {0}")]
    Random(String),
    #[error(
        "{} has mode {mode:o}; it must not be accessible to group or others (expected {expected:o})",
        path.display()
    )]
    Exposed {
        path: PathBuf,
        mode: u32,
        expected: u32,
    },
    #[error("{} already holds keys", path.display())]
    Exists { path: PathBuf },
    #[error("host id {host_id:?} does not make a valid origin")]
    BadHostId { host_id: String },
    #[error("{} is not a directory", path.display())]
    NotDir { path: PathBuf },
    #[error("{}: {origin:?} is not a valid origin", path.display())]
    BadOrigin { path: PathBuf, origin: String },
    #[error("unexpected file {name} in {}", dir.display())]
    Unexpected { name: String, dir: PathBuf },
    #[error("{} is not a 32-byte Ed25519 seed", path.display())]
    BadSeed { path: PathBuf },
    #[error("{} does not match {public}", path.display())]
    Mismatch { path: PathBuf, public: String },
    #[error("{}", path.display())]
    BadVerifierKey {
        path: PathBuf,
        #[source]
        source: NoteError,
    },
    #[error("{} is for {name}, not {origin}", path.display())]
    WrongOrigin {
        path: PathBuf,
        name: String,
        origin: String,
    },
    #[error("{} does not hold a record hash", path.display())]
    BadBound { path: PathBuf },
}

type Result<T, E = KeyError> = std::result::Result<T, E>;

/// An I/O error while doing `action` to `path`.
fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> KeyError + 'a {
    move |source| KeyError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

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
        .map_err(io_err("creating", &tmp))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io_err("writing", &tmp))?;
    let dest = dir.join(name);
    fs::rename(&tmp, &dest).map_err(|source| KeyError::Rename {
        from: tmp.clone(),
        to: dest.clone(),
        source,
    })?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing directory", dir))
}

/// Random bytes from the kernel.
pub fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>> {
    let mut b = Zeroizing::new([0u8; N]);
    getrandom::fill(b.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
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
    let m = fs::metadata(path).map_err(io_err("reading", path))?;
    if m.mode() & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: path.to_path_buf(),
            mode: m.mode() & 0o777,
            expected: want_mode,
        });
    }
    Ok(())
}

impl KeyDir {
    /// Initialises a new key directory: origin, epoch 0's key, trust root.
    /// Fails if one is already there.
    pub fn create(path: &Path, host_id: &str) -> Result<KeyDir> {
        fs::create_dir_all(path).map_err(io_err("creating key directory", path))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .map_err(io_err("setting mode 0700 on", path))?;
        if path.join("origin").exists() {
            return Err(KeyError::Exists {
                path: path.to_path_buf(),
            });
        }
        let tag = random_bytes::<4>()?;
        let origin = format!("sandbox-audit/{host_id}/{}", hex::encode(*tag));
        if !valid_key_name(&origin) {
            return Err(KeyError::BadHostId {
                host_id: host_id.to_string(),
            });
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
        let m = fs::metadata(path).map_err(io_err("key directory", path))?;
        if !m.is_dir() {
            return Err(KeyError::NotDir {
                path: path.to_path_buf(),
            });
        }
        check_private(path, 0o700)?;
        let origin_path = path.join("origin");
        let origin = fs::read_to_string(&origin_path).map_err(|source| KeyError::NoOrigin {
            path: origin_path.clone(),
            source,
        })?;
        let origin = origin.trim_end_matches('\n').to_string();
        if !valid_key_name(&origin) {
            return Err(KeyError::BadOrigin {
                path: origin_path,
                origin,
            });
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
        let s = fs::read_to_string(&p).map_err(io_err("reading", &p))?;
        parse_vkey(&s).map_err(|source| KeyError::BadVerifierKey {
            path: p.clone(),
            source,
        })?;
        Ok(s.trim().to_string())
    }

    /// Epochs whose secret is present, ascending.
    pub fn secret_epochs(&self) -> Result<Vec<u64>> {
        let mut v = Vec::new();
        for e in fs::read_dir(&self.path).map_err(io_err("listing", &self.path))? {
            let name = e.map_err(io_err("listing", &self.path))?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_prefix("epoch-")
                .and_then(|r| r.strip_suffix(".secret"))
            {
                match n.parse() {
                    Ok(n) => v.push(n),
                    Err(_) => {
                        return Err(KeyError::Unexpected {
                            name: name.into_owned(),
                            dir: self.path.clone(),
                        });
                    }
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
        let bytes = Zeroizing::new(fs::read(&p).map_err(io_err("reading", &p))?);
        let seed: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::BadSeed { path: p.clone() })?;
        let key = SigningKey::from_bytes(seed);
        let created = fs::metadata(&p)
            .and_then(|m| m.modified())
            .map_err(io_err("reading the time of", &p))?;
        let k = EpochKey {
            epoch,
            key,
            created,
        };
        if self.public(epoch)? != k.public() {
            return Err(KeyError::Mismatch {
                path: p,
                public: pub_name(epoch),
            });
        }
        Ok(k)
    }

    /// Epoch `epoch`'s public key (kept after its secret is erased).
    pub fn public(&self, epoch: u64) -> Result<[u8; 32]> {
        let p = self.path.join(pub_name(epoch));
        let s = fs::read_to_string(&p).map_err(io_err("reading", &p))?;
        let (name, pk) = parse_vkey(&s).map_err(|source| KeyError::BadVerifierKey {
            path: p.clone(),
            source,
        })?;
        if name != self.origin {
            return Err(KeyError::WrongOrigin {
                path: p,
                name,
                origin: self.origin.clone(),
            });
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
                .map_err(io_err("overwriting", &p))?;
        }
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing", &p)(e)),
        }
        sync_dir(&self.path)
    }

    /// The genesis hash of the store these keys sign, if bound yet.
    pub fn bound(&self) -> Result<Option<Hash>> {
        let p = self.path.join("bound");
        match fs::read_to_string(&p) {
            Ok(s) => parse_hex32(s.trim().as_bytes())
                .map(Some)
                .ok_or(KeyError::BadBound { path: p }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading", &p)(e)),
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
