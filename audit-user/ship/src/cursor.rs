//! The durable cursor of one destination: `<state>/<dest id>/cursor`, a
//! small JSON object replaced atomically (write, fsync, rename, fsync the
//! directory), so after a crash it holds either the old or the new position,
//! never a torn one. It moves only past records the destination has.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

use crate::{ShipError, reader::Position};

pub struct Cursor {
    path: PathBuf,
}

fn sync_dir(dir: &Path) -> Result<(), ShipError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ShipError::io(dir, e))
}

impl Cursor {
    /// The cursor file in `dir` (created 0700 if missing).
    pub fn open(dir: &Path) -> Result<Cursor, ShipError> {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(|e| ShipError::io(dir, e))?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| ShipError::io(dir, e))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(Cursor {
            path: dir.join("cursor"),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved position of the log `origin`; None when nothing was shipped
    /// yet. A cursor of another origin is an error: the store was replaced.
    pub fn load(&self, origin: &str) -> Result<Option<Position>, ShipError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ShipError::io(&self.path, e)),
        };
        let bad = |why: String| ShipError::BadFile {
            path: self.path.clone(),
            why,
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let str_of = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("`{k}` is missing or not a string")))
        };
        let u64_of = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| bad(format!("`{k}` is missing or not an unsigned integer")))
        };
        let saved = str_of("origin")?;
        if saved != origin {
            return Err(bad(format!(
                "the cursor belongs to the log {saved}, the store is the log {origin}"
            )));
        }
        let hash = audit_log::chain::parse_hex32(str_of("last_hash")?.as_bytes())
            .ok_or_else(|| bad("`last_hash` is not 64 lowercase hex digits".into()))?;
        Ok(Some(Position {
            segment: str_of("segment")?.to_string(),
            offset: u64_of("offset")?,
            line_start: u64_of("line_start")?,
            next_seq: u64_of("next_seq")?,
            last_hash: Some(hash),
        }))
    }

    /// This destination's HEC channel (`channel` beside the cursor): a
    /// random UUID made on first use and kept, so the receiver sees one
    /// client across restarts.
    pub fn channel(&self) -> Result<String, ShipError> {
        let path = self.path.with_file_name("channel");
        match fs::read_to_string(&path) {
            Ok(t) => {
                let t = t.trim();
                if t.len() == 36 && t.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
                    return Ok(t.to_string());
                }
                return Err(ShipError::BadFile {
                    path,
                    why: "not a UUID".into(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ShipError::io(&path, e)),
        }
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).map_err(|e| ShipError::BadFile {
            path: path.clone(),
            why: format!("no randomness for a channel id: {e}"),
        })?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(b);
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        );
        write_durably(&path, &format!("{uuid}\n"))?;
        Ok(uuid)
    }

    pub fn save(&self, origin: &str, dest: &str, pos: &Position) -> Result<(), ShipError> {
        let Some(h) = pos.last_hash else {
            return Ok(());
        };
        let v = json!({
            "destination": dest,
            "origin": origin,
            "next_seq": pos.next_seq,
            "last_hash": hex::encode(h),
            "segment": pos.segment,
            "offset": pos.offset,
            "line_start": pos.line_start,
        });
        write_durably(&self.path, &format!("{v}\n"))
    }
}

/// Replaces `path` with `text` so that a crash leaves the old or the new
/// content, never a mix: a private temporary file, fsynced, renamed over
/// it, and the directory fsynced.
fn write_durably(path: &Path, text: &str) -> Result<(), ShipError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_data()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| ShipError::io(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_and_refuses_another_origin() {
        let t = tempfile::tempdir().unwrap();
        let c = Cursor::open(&t.path().join("d")).unwrap();
        assert_eq!(c.load("o").unwrap(), None);
        let p = Position {
            segment: "seg-00000000000000000000.log".into(),
            offset: 99,
            line_start: 40,
            next_seq: 3,
            last_hash: Some([7; 32]),
        };
        c.save("o", "relp://x:1", &p).unwrap();
        assert_eq!(c.load("o").unwrap(), Some(p));
        let e = c.load("other").unwrap_err().to_string();
        assert!(e.contains("belongs to the log o"), "{e}");
        fs::write(c.path(), "{").unwrap();
        let e = c.load("o").unwrap_err().to_string();
        assert!(e.contains("cursor") && e.contains("not JSON"), "{e}");
        let ch = c.channel().unwrap();
        assert_eq!((ch.len(), &ch[14..15]), (36, "4"));
        assert_eq!(c.channel().unwrap(), ch, "the channel is kept");
    }
}
