//! The format checks that restart ([`crate::recover`]) and `verify`
//! ([`crate::verify`]) both make, in one place so they cannot drift: the
//! chain link between two records, a checkpoint's note, signature, frontier
//! and tree, and a key rotation's order and signature. Restart stops at the
//! first [`CheckError`]; verify turns each into a verdict of its own kind.

use crate::{
    chain::GENESIS_PREV,
    checkpoint::{Checkpoint, Note, NoteError, SigCheck, parse_checkpoint, parse_note},
    lifecycle::{self, CheckpointRecord, FieldError, RotationRecord},
    merkle::{Frontier, Hash},
    record::Json,
};

/// Why a record fails a format check.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The record's content no longer has the hash it claims.
    #[error("record hash does not match its content")]
    Hash,
    /// `seq` is not the previous record's plus one.
    #[error("does not follow seq {before} (seq or prev_hash wrong)")]
    Seq { before: u64, found: u64 },
    /// `prev_hash` is not the previous record's `hash`.
    #[error("does not follow seq {before} (seq or prev_hash wrong)")]
    Prev { before: u64 },
    /// Seq 0 whose `prev_hash` is not all zeros, or a genesis elsewhere.
    #[error("genesis record is not seq 0")]
    NotChainStart,
    #[error("{0}")]
    Field(#[from] FieldError),
    /// The checkpoint's note (or the checkpoint body in it) does not parse.
    #[error("note: {0}")]
    Note(NoteError),
    #[error("checkpoint origin {found} is not {expected}")]
    Origin { found: String, expected: String },
    #[error("checkpoint at seq {seq} signs a tree of {size} records")]
    SizeNotSeq { seq: u64, size: u64 },
    #[error("checkpoint is not signed by epoch {epoch}'s key")]
    Signature { epoch: u64 },
    #[error("frontier does not fit a tree of {size} records")]
    FrontierShape { size: u64 },
    #[error("frontier does not match the signed root")]
    FrontierRoot,
    #[error("signed root does not match the records before it")]
    Tree(TreeMismatch),
    /// A rotation that does not announce the next epoch, or comes before
    /// the previous one was closed by a checkpoint.
    #[error("rotation to epoch {epoch} does not follow epoch {latest}")]
    RotationOrder { epoch: u64, latest: u64 },
    #[error("rotation is not signed by epoch {signer}'s key")]
    RotationSignature { signer: u64 },
}

/// How the records before a checkpoint differ from the tree it signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeMismatch {
    /// The log holds fewer records than were signed (`have` < `signed`).
    Fewer { have: u64, signed: u64 },
    /// The log holds more records than were signed.
    More { have: u64, signed: u64 },
    /// As many records, another root: some were rewritten.
    Root,
}

/// Seq and hash of a record, as the next one must link to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub seq: u64,
    pub hash: Hash,
}

/// Whether a record with this `seq` and `prev_hash` directly follows
/// `before` (the chain link; checked arithmetic: a seq at u64::MAX has no
/// successor).
pub fn follows(before: Link, seq: u64, prev: &Hash) -> Result<(), CheckError> {
    if before.seq.checked_add(1) != Some(seq) {
        return Err(CheckError::Seq {
            before: before.seq,
            found: seq,
        });
    }
    if !links_to(&before.hash, prev) {
        return Err(CheckError::Prev { before: before.seq });
    }
    Ok(())
}

/// Whether a record's `prev_hash` is the `hash` of the record before it
/// (verify, which tells gaps and reorderings apart by seq itself, checks
/// this half of [`follows`] on its own).
pub fn links_to(before_hash: &Hash, prev: &Hash) -> bool {
    before_hash == prev
}

/// Whether a seq 0 record starts the chain (its `prev_hash` is all zeros).
pub fn starts_chain(seq: u64, prev: &Hash) -> bool {
    seq == 0 && *prev == GENESIS_PREV
}

/// A genesis record's origin and epoch 0 public key.
pub fn genesis_fields(j: &Json) -> Result<(String, [u8; 32]), FieldError> {
    Ok((
        lifecycle::get_str(j, "origin")?.to_string(),
        lifecycle::get_public_key(j)?,
    ))
}

/// A checkpoint record, read: its fields, its signed note and the
/// checkpoint body the note signs.
#[derive(Clone, Debug)]
pub struct CheckpointParts {
    pub record: CheckpointRecord,
    pub note: Note,
    pub body: Checkpoint,
}

/// Reads a checkpoint record's fields and note (no signature checked yet).
pub fn read_checkpoint(j: &Json) -> Result<CheckpointParts, CheckError> {
    let record = CheckpointRecord::parse(j)?;
    let note = parse_note(&record.note).map_err(CheckError::Note)?;
    let body = parse_checkpoint(&note.body).map_err(CheckError::Note)?;
    Ok(CheckpointParts { record, note, body })
}

/// The checkpoint is for this log's origin.
pub fn checkpoint_origin(body: &Checkpoint, origin: &str) -> Result<(), CheckError> {
    if body.origin != origin {
        return Err(CheckError::Origin {
            found: body.origin.clone(),
            expected: origin.to_string(),
        });
    }
    Ok(())
}

/// How the note's signature by one key checks out (origin is the key name).
pub fn checkpoint_signature(note: &Note, origin: &str, public_key: &[u8; 32]) -> SigCheck {
    note.check(origin, public_key)
}

/// The tree the checkpoint's frontier describes, which must have the
/// signed size and root.
pub fn signed_frontier(body: &Checkpoint, frontier: &[Hash]) -> Result<Frontier, CheckError> {
    let f = Frontier::from_parts(body.size, frontier.to_vec())
        .ok_or(CheckError::FrontierShape { size: body.size })?;
    if f.root() != body.root {
        return Err(CheckError::FrontierRoot);
    }
    Ok(f)
}

/// The tree of every record before the checkpoint is the one it signed.
pub fn checkpoint_tree(tree: &Frontier, body: &Checkpoint) -> Result<(), TreeMismatch> {
    let (have, signed) = (tree.size(), body.size);
    if have < signed {
        Err(TreeMismatch::Fewer { have, signed })
    } else if have > signed {
        Err(TreeMismatch::More { have, signed })
    } else if tree.root() != body.root {
        Err(TreeMismatch::Root)
    } else {
        Ok(())
    }
}

/// A rotation announces the epoch after the latest one, and only once the
/// latest is the one signing (the previous rotation was closed).
pub fn rotation_order(epoch: u64, latest_epoch: u64, sign_epoch: u64) -> Result<(), CheckError> {
    if Some(epoch) != latest_epoch.checked_add(1) || latest_epoch != sign_epoch {
        return Err(CheckError::RotationOrder {
            epoch,
            latest: latest_epoch,
        });
    }
    Ok(())
}

/// The rotation is signed by `signer`'s key (epoch `signer_epoch`).
pub fn rotation_signature(
    origin: &str,
    r: &RotationRecord,
    signer_epoch: u64,
    signer: &[u8; 32],
) -> Result<(), CheckError> {
    let msg = lifecycle::rotation_message(origin, r.epoch, &r.public_key);
    let ok = ed25519_dalek::VerifyingKey::from_bytes(signer).is_ok_and(|vk| {
        vk.verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&r.signature))
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(CheckError::RotationSignature {
            signer: signer_epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_need_the_next_seq_and_the_previous_hash() {
        let before = Link {
            seq: 4,
            hash: [1; 32],
        };
        assert_eq!(follows(before, 5, &[1; 32]), Ok(()));
        assert_eq!(
            follows(before, 6, &[1; 32]),
            Err(CheckError::Seq {
                before: 4,
                found: 6
            })
        );
        assert_eq!(
            follows(before, 5, &[2; 32]),
            Err(CheckError::Prev { before: 4 })
        );
        let last = Link {
            seq: u64::MAX,
            hash: [1; 32],
        };
        assert!(follows(last, 0, &[1; 32]).is_err());
        assert!(starts_chain(0, &GENESIS_PREV));
        assert!(!starts_chain(0, &[1; 32]));
    }

    #[test]
    fn rotations_announce_the_next_epoch_once_closed() {
        assert_eq!(rotation_order(3, 2, 2), Ok(()));
        assert!(rotation_order(4, 2, 2).is_err());
        assert!(rotation_order(3, 2, 1).is_err());
        assert!(rotation_order(0, u64::MAX, u64::MAX).is_err());
    }

    #[test]
    fn tree_mismatches_say_how() {
        let mut t = Frontier::new();
        t.push_record(&[1; 32]);
        let body = |size, root| Checkpoint {
            origin: "o".into(),
            size,
            root,
            extensions: vec![],
        };
        assert_eq!(checkpoint_tree(&t, &body(1, t.root())), Ok(()));
        assert_eq!(
            checkpoint_tree(&t, &body(2, t.root())),
            Err(TreeMismatch::Fewer { have: 1, signed: 2 })
        );
        assert_eq!(
            checkpoint_tree(&t, &body(0, t.root())),
            Err(TreeMismatch::More { have: 1, signed: 0 })
        );
        assert_eq!(
            checkpoint_tree(&t, &body(1, [0; 32])),
            Err(TreeMismatch::Root)
        );
    }
}
