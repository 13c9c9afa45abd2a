//! Checkpoints: a C2SP tlog-checkpoint body (origin, tree size, base64 root)
//! in a C2SP signed note with Ed25519 signatures, and C2SP verifier keys
//! (`name+keyid+base64(0x01‖pubkey)`) for exporting trust roots. Standard
//! formats so that off-host tools (witnesses, SIEM checks) can use them
//! without our code.
//!
//! Note layout (https://c2sp.org/signed-note):
//!
//! ```text
//! <origin>\n<size>\n<base64 root>\n      ← body, the signed message
//! \n
//! — <key name> <base64(key id ‖ signature)>\n
//! ```

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::merkle::{Hash, sha256};

/// Algorithm byte for Ed25519 in key ids and verifier keys.
pub const ALG_ED25519: u8 = 0x01;
/// Signature lines start with an em dash (U+2014) and a space.
pub const SIG_PREFIX: &str = "\u{2014} ";
const MAX_NOTE_BYTES: usize = 64 * 1024;
const MAX_SIGNATURES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoteError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, NoteError> {
    Err(NoteError(msg.into()))
}

/// Key names (and our origins) are non-empty and hold no whitespace or '+'.
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// First 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ pubkey).
pub fn key_id(name: &str, pubkey: &[u8; 32]) -> [u8; 4] {
    let mut m = Vec::with_capacity(name.len() + 34);
    m.extend_from_slice(name.as_bytes());
    m.push(b'\n');
    m.push(ALG_ED25519);
    m.extend_from_slice(pubkey);
    let h = sha256(&m);
    [h[0], h[1], h[2], h[3]]
}

/// The C2SP verifier key string for an Ed25519 public key.
pub fn vkey(name: &str, pubkey: &[u8; 32]) -> String {
    let mut k = vec![ALG_ED25519];
    k.extend_from_slice(pubkey);
    format!(
        "{name}+{}+{}",
        hex::encode(key_id(name, pubkey)),
        B64.encode(k)
    )
}

/// Parses a verifier key (surrounding whitespace ignored) into (name, pubkey).
pub fn parse_vkey(text: &str) -> Result<(String, [u8; 32]), NoteError> {
    let t = text.trim();
    // Names hold no '+', base64 may: split from the left.
    let mut parts = t.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return err("not a verifier key (expected NAME+KEYID+BASE64KEY)");
    };
    if !valid_key_name(name) {
        return err(format!(
            "verifier key name {name:?} is not a valid key name"
        ));
    }
    let Ok(raw) = B64.decode(key) else {
        return err("verifier key: the key part is not base64");
    };
    let Some((&ALG_ED25519, pk)) = raw.split_first() else {
        return err("verifier key: not an Ed25519 key (algorithm byte 0x01)");
    };
    let Ok(pk) = <[u8; 32]>::try_from(pk) else {
        return err("verifier key: an Ed25519 public key is 32 bytes");
    };
    if hex::encode(key_id(name, &pk)) != id {
        return err(format!(
            "verifier key: key id {id} does not match the name and key"
        ));
    }
    Ok((name.to_string(), pk))
}

/// The tlog-checkpoint body for a tree.
pub fn checkpoint_body(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", B64.encode(root))
}

/// Signs `body` (which must end in '\n') into a complete note.
pub fn sign_note(body: &str, name: &str, key: &SigningKey) -> String {
    let pk = key.verifying_key().to_bytes();
    let sig = key.sign(body.as_bytes()).to_bytes();
    let mut blob = key_id(name, &pk).to_vec();
    blob.extend_from_slice(&sig);
    format!("{body}\n{SIG_PREFIX}{name} {}\n", B64.encode(blob))
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSig {
    pub name: String,
    pub key_id: [u8; 4],
    pub sig: Vec<u8>,
}

/// A parsed (not yet verified) signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub body: String,
    pub sigs: Vec<NoteSig>,
}

/// What checking a note against one key found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigCheck {
    /// A signature by this key (name and key id) verifies.
    Valid,
    /// A line names this key but its signature does not verify.
    Invalid,
    /// No line is from this key.
    Absent,
}

impl Note {
    /// Checks the signature lines that name this key.
    pub fn check(&self, name: &str, pubkey: &[u8; 32]) -> SigCheck {
        let id = key_id(name, pubkey);
        let mine: Vec<&NoteSig> = self
            .sigs
            .iter()
            .filter(|s| s.name == name && s.key_id == id)
            .collect();
        if mine.is_empty() {
            return SigCheck::Absent;
        }
        let Ok(vk) = VerifyingKey::from_bytes(pubkey) else {
            return SigCheck::Invalid;
        };
        let ok = mine.iter().any(|s| {
            <[u8; 64]>::try_from(s.sig.as_slice()).is_ok_and(|b| {
                vk.verify_strict(self.body.as_bytes(), &Signature::from_bytes(&b))
                    .is_ok()
            })
        });
        if ok {
            SigCheck::Valid
        } else {
            SigCheck::Invalid
        }
    }
}

/// Parses a signed note: a body, a blank line, then signature lines.
pub fn parse_note(text: &str) -> Result<Note, NoteError> {
    if text.len() > MAX_NOTE_BYTES {
        return err("note is larger than 64 KiB");
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return err("note contains control characters");
    }
    if !text.ends_with('\n') {
        return err("note does not end with a newline");
    }
    let Some(split) = text.rfind("\n\n") else {
        return err("note has no blank line before its signatures");
    };
    let body = &text[..split + 1];
    let mut sigs = Vec::new();
    for line in text[split + 2..].lines() {
        let Some(rest) = line.strip_prefix(SIG_PREFIX) else {
            return err(format!(
                "signature line {line:?} does not start with \"— \""
            ));
        };
        let Some((name, b64)) = rest.split_once(' ') else {
            return err(format!("signature line {line:?} has no key name"));
        };
        if !valid_key_name(name) {
            return err(format!("signature line names an invalid key {name:?}"));
        }
        let Ok(blob) = B64.decode(b64) else {
            return err(format!("signature by {name} is not base64"));
        };
        if blob.len() < 5 {
            return err(format!("signature by {name} is too short"));
        }
        let (id, sig) = blob.split_at(4);
        sigs.push(NoteSig {
            name: name.to_string(),
            key_id: [id[0], id[1], id[2], id[3]],
            sig: sig.to_vec(),
        });
        if sigs.len() > MAX_SIGNATURES {
            return err("note has too many signatures");
        }
    }
    if sigs.is_empty() {
        return err("note has no signature");
    }
    Ok(Note {
        body: body.to_string(),
        sigs,
    })
}

/// A parsed checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Extension lines after the root (we write none; others may).
    pub extensions: Vec<String>,
}

pub fn parse_checkpoint(body: &str) -> Result<Checkpoint, NoteError> {
    let Some(body) = body.strip_suffix('\n') else {
        return err("checkpoint body does not end with a newline");
    };
    let mut lines = body.split('\n');
    let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
        return err("checkpoint body has fewer than 3 lines (origin, size, root)");
    };
    if origin.is_empty() {
        return err("checkpoint origin is empty");
    }
    let size_ok = !size.is_empty()
        && size.bytes().all(|c| c.is_ascii_digit())
        && (size == "0" || !size.starts_with('0'));
    let size = match size.parse::<u64>() {
        Ok(s) if size_ok => s,
        _ => return err(format!("checkpoint size {size:?} is not a decimal number")),
    };
    let root = match B64.decode(root).ok().and_then(|r| <Hash>::try_from(r).ok()) {
        Some(r) => r,
        None => return err("checkpoint root is not base64 of 32 bytes"),
    };
    let extensions: Vec<String> = lines.map(str::to_string).collect();
    if extensions.iter().any(String::is_empty) {
        return err("checkpoint has an empty extension line");
    }
    Ok(Checkpoint {
        origin: origin.to_string(),
        size,
        root,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn note_round_trip_and_checks() {
        let k = key(7);
        let pk = k.verifying_key().to_bytes();
        let body = checkpoint_body("example.com/log", 12, &[9; 32]);
        let note = sign_note(&body, "example.com/log", &k);
        assert!(note.starts_with("example.com/log\n12\nCQkJ"));
        assert!(note.contains("\n\n\u{2014} example.com/log "));
        let n = parse_note(&note).unwrap();
        assert_eq!(n.body, body);
        assert_eq!(n.check("example.com/log", &pk), SigCheck::Valid);
        let other = key(8).verifying_key().to_bytes();
        assert_eq!(n.check("example.com/log", &other), SigCheck::Absent);
        let c = parse_checkpoint(&n.body).unwrap();
        assert_eq!(
            (c.origin.as_str(), c.size, c.root),
            ("example.com/log", 12, [9; 32])
        );

        // The same signature over a different body does not verify.
        let forged = note.replacen("\n12\n", "\n13\n", 1);
        assert_eq!(
            parse_note(&forged).unwrap().check("example.com/log", &pk),
            SigCheck::Invalid
        );
    }

    /// The Go reference implementation (golang.org/x/mod/sumdb/note) computes
    /// key ids the same way; this vector is from its documentation.
    #[test]
    fn vkey_matches_the_reference_vector() {
        let v = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let (name, pk) = parse_vkey(v).unwrap();
        assert_eq!(name, "PeterNeumann");
        assert_eq!(vkey(&name, &pk), v);
        assert!(
            parse_vkey("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
                .is_err()
        );
        assert!(parse_vkey("garbage").is_err());
    }

    #[test]
    fn malformed_notes_and_bodies_are_errors() {
        for bad in [
            "",
            "a\n",
            "a\n\n",
            "a\n\nx y\n",
            "a\n\n\u{2014} n !!\n",
            "a\n\n\u{2014} n AAAA\n",
        ] {
            assert!(parse_note(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "o\n1\n",
            "o\n01\nAAAA\n",
            "o\nx\nAAAA\n",
            "o\n1\nAAAA\n",
            "\n1\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
        ] {
            assert!(parse_checkpoint(bad).is_err(), "{bad:?}");
        }
    }
}
