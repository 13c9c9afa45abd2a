//! The log writer's core, without I/O: record → chain → Merkle frontier →
//! canonical lines in a buffer, plus the checkpoints and key rotations that
//! make the log verifiable. The store drains the buffer to segment files;
//! benchmarks, fuzz seeds and tests use the writer directly.

use ed25519_dalek::Signer;

use crate::{
    canonical::EncodeError,
    chain::{Chain, Linked},
    checkpoint::{checkpoint_body, sign_note},
    keys::EpochKey,
    lifecycle::{self, CheckpointFields, LifecycleKind},
    merkle::Frontier,
    record::{Json, Record, now_ns},
};

/// A writer call that does not fit the log's state (a bug in the caller,
/// not bad input), or a record that cannot be stored at all.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("a new log starts at epoch 0, not {epoch}")]
    GenesisEpoch { epoch: u64 },
    #[error("cannot encode an unencodable_record wrapper: {0}")]
    Wrapper(EncodeError),
    #[error(
        "cannot announce epoch {next} while signing with epoch {signing} (latest announced {latest})"
    )]
    Announce {
        next: u64,
        signing: u64,
        latest: u64,
    },
    #[error("epoch {epoch} was not announced")]
    NotAnnounced { epoch: u64 },
}

type Result<T, E = WriterError> = std::result::Result<T, E>;

pub struct LogWriter {
    chain: Chain,
    tree: Frontier,
    origin: String,
    /// Signs checkpoints: the current epoch's key.
    signer: EpochKey,
    /// The newest epoch announced in the log (> signer's only between a
    /// `key_rotation` and the checkpoint that closes the old epoch).
    latest_epoch: u64,
    config_digest: String,
    out: Vec<u8>,
    /// Records appended since the last checkpoint (checkpoints not counted).
    since_checkpoint: u64,
    last: Option<Linked>,
    last_note: Option<String>,
}

/// Where a restarted writer picks up (from the validated tail of the log).
pub struct Resume {
    pub chain: Chain,
    pub tree: Frontier,
    pub origin: String,
    pub latest_epoch: u64,
    pub config_digest: String,
    pub last: Option<Linked>,
    pub last_note: Option<String>,
}

impl LogWriter {
    /// A new log: appends the genesis record (seq 0), signed into the first
    /// checkpoint like every other record.
    pub fn genesis(origin: &str, signer: EpochKey, config: &Json) -> Result<LogWriter> {
        if signer.epoch != 0 {
            return Err(WriterError::GenesisEpoch {
                epoch: signer.epoch,
            });
        }
        let pk = signer.public();
        let mut w = LogWriter {
            chain: Chain::new(),
            tree: Frontier::new(),
            origin: origin.to_string(),
            signer,
            latest_epoch: 0,
            config_digest: lifecycle::config_digest(config),
            out: Vec::new(),
            since_checkpoint: 0,
            last: None,
            last_note: None,
        };
        w.append(lifecycle::genesis(now_ns(), origin, config, &pk))?;
        Ok(w)
    }

    /// Continues a log. `signer` must be the key of the epoch that signs the
    /// next checkpoint; if `r.latest_epoch` is newer, call [`close_epoch`]
    /// with that epoch's key next.
    ///
    /// [`close_epoch`]: LogWriter::close_epoch
    pub fn resume(r: Resume, signer: EpochKey) -> LogWriter {
        LogWriter {
            chain: r.chain,
            tree: r.tree,
            origin: r.origin,
            signer,
            latest_epoch: r.latest_epoch,
            config_digest: r.config_digest,
            out: Vec::new(),
            since_checkpoint: 0,
            last: r.last,
            last_note: r.last_note,
        }
    }

    /// Chains a record. A record with no canonical form is kept as an
    /// `unencodable_record` holding its text, never dropped.
    pub fn append(&mut self, rec: Record) -> Result<Linked> {
        let (linked, kind) = match self.chain.append(&rec, &mut self.out) {
            Ok(l) => (l, rec.kind),
            Err(e) => {
                log::warn!(
                    "a `{}` record cannot be stored as is ({e}); storing it as text",
                    rec.kind
                );
                let w = lifecycle::unencodable(&rec, &e.to_string());
                let l = self
                    .chain
                    .append(&w, &mut self.out)
                    .map_err(WriterError::Wrapper)?;
                (l, w.kind)
            }
        };
        self.tree.push_record(&linked.hash);
        if kind != LifecycleKind::Checkpoint.as_str() {
            self.since_checkpoint += 1;
        }
        self.last = Some(linked);
        Ok(linked)
    }

    /// Signs the tree of every record so far and appends that checkpoint.
    pub fn checkpoint(&mut self, reason: &str) -> Result<Linked> {
        let size = self.tree.size();
        let body = checkpoint_body(&self.origin, size, &self.tree.root());
        let note = sign_note(&body, &self.origin, &self.signer.key);
        let frontier = self.tree.nodes().to_vec();
        let rec = lifecycle::checkpoint(
            now_ns(),
            &CheckpointFields {
                epoch: self.signer.epoch,
                latest_epoch: self.latest_epoch,
                note: &note,
                frontier: &frontier,
                reason,
                config_digest: &self.config_digest,
            },
        );
        let l = self.append(rec)?;
        self.since_checkpoint = 0;
        self.last_note = Some(note);
        Ok(l)
    }

    /// Announces `next` (the following epoch) in a record signed by the
    /// current key.
    pub fn announce(&mut self, next: &EpochKey) -> Result<Linked> {
        if Some(next.epoch) != self.signer.epoch.checked_add(1)
            || self.latest_epoch != self.signer.epoch
        {
            return Err(WriterError::Announce {
                next: next.epoch,
                signing: self.signer.epoch,
                latest: self.latest_epoch,
            });
        }
        let pk = next.public();
        let msg = lifecycle::rotation_message(&self.origin, next.epoch, &pk);
        let sig = self.signer.key.sign(&msg).to_bytes();
        let l = self.append(lifecycle::key_rotation(now_ns(), next.epoch, &pk, &sig))?;
        self.latest_epoch = next.epoch;
        Ok(l)
    }

    /// Closes the current epoch with a checkpoint signed by its key, then
    /// signs with `next` from here on. Returns the closed epoch, whose secret
    /// the caller erases once this is durable.
    pub fn close_epoch(&mut self, next: EpochKey) -> Result<u64> {
        if next.epoch != self.latest_epoch || Some(next.epoch) != self.signer.epoch.checked_add(1) {
            return Err(WriterError::NotAnnounced { epoch: next.epoch });
        }
        self.checkpoint("rotation")?;
        let old = std::mem::replace(&mut self.signer, next);
        Ok(old.epoch)
    }

    /// Announces `next` and closes the current epoch: returns the old epoch.
    pub fn rotate(&mut self, next: EpochKey) -> Result<u64> {
        self.announce(&next)?;
        self.close_epoch(next)
    }

    /// The writer as it is now, minus buffered lines: to go back to when
    /// the lines buffered after this cannot be stored (see
    /// [`LogWriter::restore`]).
    pub fn snapshot(&self) -> LogWriter {
        self.clone_state()
    }

    fn clone_state(&self) -> LogWriter {
        LogWriter {
            chain: self.chain.clone(),
            tree: self.tree.clone(),
            origin: self.origin.clone(),
            signer: self.signer.clone(),
            latest_epoch: self.latest_epoch,
            config_digest: self.config_digest.clone(),
            out: Vec::new(),
            since_checkpoint: self.since_checkpoint,
            last: self.last,
            last_note: self.last_note.clone(),
        }
    }

    /// Goes back to a snapshot: the lines buffered since are dropped (the
    /// chain continues after the last record the snapshot had).
    pub fn restore(&mut self, snapshot: &LogWriter) {
        *self = snapshot.clone_state();
    }

    pub fn set_config_digest(&mut self, digest: String) {
        self.config_digest = digest;
    }

    /// Encoded lines not yet taken by the store.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    pub fn since_checkpoint(&self) -> u64 {
        self.since_checkpoint
    }

    /// The last record appended.
    pub fn last(&self) -> Option<Linked> {
        self.last
    }

    pub fn next_seq(&self) -> u64 {
        self.chain.next_seq()
    }

    pub fn epoch(&self) -> u64 {
        self.signer.epoch
    }

    pub fn latest_epoch(&self) -> u64 {
        self.latest_epoch
    }

    pub fn epoch_created(&self) -> std::time::SystemTime {
        self.signer.created
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn config_digest(&self) -> &str {
        &self.config_digest
    }

    /// The most recent signed checkpoint note.
    pub fn last_note(&self) -> Option<&str> {
        self.last_note.as_deref()
    }

    pub fn tree(&self) -> &Frontier {
        &self.tree
    }
}
