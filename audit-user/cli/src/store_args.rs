//! The command line of the log: store options for `run`/`exec`, and the
//! `verify`, `checkpoint` and `keygen` commands. Kept out of main.rs so the
//! commands are plain functions tests can call.

use std::{fs, io::Write, path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use clap::Args;

use audit_capture::preflight;
use audit_log::{
    keys::{DEFAULT_KEY_DIR, KeyDir},
    lifecycle,
    record::Json,
    recover,
    store::{DEFAULT_LOG_DIR, Store, StoreConfig},
    verify::{self, Options},
};

/// Where and how `run`/`exec` write the log.
#[derive(Args, Clone, Debug)]
pub struct StoreArgs {
    /// Directory of the tamper-evident log (created 0700).
    #[arg(long, default_value = DEFAULT_LOG_DIR)]
    pub log_dir: PathBuf,
    /// Directory of the signing keys (created 0700 on first run).
    #[arg(long, default_value = DEFAULT_KEY_DIR)]
    pub key_dir: PathBuf,
    /// Also print every stored record on stdout, one JSON line each.
    #[arg(long)]
    pub print: bool,
    /// Longest time between write + fsync of buffered records, in ms.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub group_commit_ms: u64,
    /// Sign a checkpoint after this many records…
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_every: u64,
    /// …or this many ms after the last one if records came since.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_ms: u64,
    /// Sign a checkpoint at least this often even when idle, in ms.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_ms: u64,
    /// Signing key epoch length in seconds; then the key rotates and the
    /// old secret is erased.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub epoch_secs: u64,
    /// Start a new segment file past this size (MiB)…
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_max_mib: u64,
    /// …or after writing to one for this many seconds.
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_max_age_secs: u64,
}

impl StoreArgs {
    pub fn config(&self, capture: Json) -> StoreConfig {
        let mut c = StoreConfig::new(&self.log_dir, &self.key_dir);
        c.group_commit = Duration::from_millis(self.group_commit_ms);
        c.checkpoint_every = self.checkpoint_every;
        c.checkpoint_interval = Duration::from_millis(self.checkpoint_ms);
        c.heartbeat = Duration::from_millis(self.heartbeat_ms);
        c.epoch = Duration::from_secs(self.epoch_secs);
        c.segment_max_bytes = self.segment_max_mib << 20;
        c.segment_max_age = Duration::from_secs(self.segment_max_age_secs);
        c.capture = capture;
        c
    }
}

/// Runs a capture session `f` against the store: opens it (root checked
/// first), and closes it with a `stop` record whose reason `end` derives
/// from the outcome. The session's own error wins over a close error.
pub fn with_store<T>(
    args: &StoreArgs,
    capture: Json,
    f: impl FnOnce(&mut Store) -> Result<T>,
    end: impl FnOnce(&Result<T>) -> String,
) -> Result<T> {
    preflight::require_root()?;
    let mut store = Store::open(args.config(capture))?;
    if args.print {
        store.echo_to(Box::new(std::io::stdout()));
    }
    let result = f(&mut store);
    let reason = match &result {
        Err(e) => format!("error: {e:#}"),
        ok => end(ok),
    };
    let closed = store.close(&reason);
    let value = result?;
    closed?;
    Ok(value)
}

#[derive(Args, Clone, Debug)]
pub struct VerifyArgs {
    /// A log directory (default /var/log/sandbox-audit), or segment files in log order.
    pub paths: Vec<PathBuf>,
    /// The trust root exported at keygen (trust-root.vkey): the log's genesis
    /// key must be this one. Without it, a log replaced wholesale and signed
    /// with other keys also verifies.
    #[arg(long)]
    pub pubkey: Option<PathBuf>,
    /// A checkpoint exported earlier (`sandbox-audit checkpoint`), or what a
    /// receiver of `--ship` stored (rsyslog's file, an NDJSON dump: its newest
    /// checkpoint of this log is used): the log must still reach it, with
    /// the same tree.
    #[arg(long)]
    pub anchor: Option<PathBuf>,
    /// What a receiver of `--ship` stored (rsyslog's file, an NDJSON dump,
    /// HEC events; any --ship-format): every shipped record of this log in it
    /// must still be in the log unchanged. Lists the missing and changed
    /// ones (exit status 1 when any).
    #[arg(long, value_name = "FILE")]
    pub against: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox-audit verify`: prints the report; returns its outcome (the
/// exit status).
pub fn verify(args: &VerifyArgs) -> Result<verify::Status> {
    let read = |p: &PathBuf, what: &str| {
        fs::read_to_string(p).with_context(|| format!("reading the {what} {}", p.display()))
    };
    let mut opts = Options::default();
    if let Some(p) = &args.pubkey {
        opts.pubkey = Some(
            verify::parse_pubkey(&read(p, "trust root")?)
                .with_context(|| format!("{}", p.display()))?,
        );
    }
    let inputs = verify::resolve_inputs(&args.paths)?;
    if let Some(p) = &args.anchor {
        let text = read(p, "anchor")?;
        let text = if verify::parse_anchor(&text).is_ok() {
            text
        } else {
            // Not a note file: what a receiver stored (rsyslog's file, an
            // NDJSON dump). Its newest checkpoint of this log is the anchor.
            let origin = audit_ship::anchor::log_origin(&inputs.files);
            let found = audit_ship::anchor::newest_checkpoint(p, origin.as_deref())?;
            eprintln!(
                "sandbox-audit: anchor: the checkpoint of {} at size {} from {} line {}",
                found.origin,
                found.size,
                p.display(),
                found.line
            );
            found.note
        };
        verify::parse_anchor(&text).with_context(|| format!("{}", p.display()))?;
        opts.anchor = Some(text);
    }
    let report = verify::verify_inputs(&inputs, &opts)?;
    let against = match &args.against {
        Some(p) => Some(audit_ship::against::check(p, &inputs.files)?),
        None => None,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut v = verify::render_json(&report);
        if let (Some(a), Some(o)) = (&against, v.as_object_mut()) {
            o.insert("against".into(), audit_ship::against::to_json(a));
        }
        writeln!(out, "{v}")?;
    } else {
        write!(out, "{}", verify::render_text(&report))?;
        if let Some(a) = &against {
            write!(out, "{}", audit_ship::against::render_text(a))?;
        }
    }
    Ok(match against {
        Some(a) if a.differs() => verify::Status::Tampered,
        _ => report.status(),
    })
}

#[derive(Args, Clone, Debug)]
pub struct CheckpointArgs {
    /// The log directory.
    #[arg(long, default_value = DEFAULT_LOG_DIR)]
    pub log_dir: PathBuf,
}

/// `sandbox-audit checkpoint`: the latest signed checkpoint note, for export.
pub fn checkpoint(args: &CheckpointArgs) -> Result<()> {
    match recover::latest_note(&args.log_dir)? {
        Some(note) => {
            print!("{note}");
            Ok(())
        }
        None => bail!("{} holds no checkpoint yet", args.log_dir.display()),
    }
}

#[derive(Args, Clone, Debug)]
pub struct KeygenArgs {
    /// Where to create the keys (0700, secrets 0600).
    #[arg(long, default_value = DEFAULT_KEY_DIR)]
    pub key_dir: PathBuf,
}

/// `sandbox-audit keygen`: creates the key directory and prints the trust
/// root to export off-host. An existing directory is left alone (its trust
/// root is printed).
pub fn keygen(args: &KeygenArgs) -> Result<()> {
    preflight::require_root()?;
    let (keys, created) = KeyDir::open_or_create(&args.key_dir, &lifecycle::host_id())?;
    if created {
        eprintln!(
            "sandbox-audit: created signing keys in {}; keep the trust root below off this host and pass it to `verify --pubkey`",
            keys.path().display()
        );
    } else {
        eprintln!(
            "sandbox-audit: {} already holds keys; its trust root:",
            keys.path().display()
        );
    }
    println!("{}", keys.trust_root()?);
    Ok(())
}
