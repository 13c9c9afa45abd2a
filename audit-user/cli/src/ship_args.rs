//! `--ship` options of `run`/`exec`: where to send the log, and how.

use std::{path::PathBuf, time::Duration};

use anyhow::Result;
use clap::Args;

use audit_ship::{ShipConfig, Shippers, shipper::DEFAULT_STATE_DIR, tls::TlsFiles};

#[derive(Args, Clone, Debug)]
pub struct ShipArgs {
    /// Ship the log to this destination (repeatable): syslog+tcp://HOST:PORT,
    /// syslog+tls://HOST:PORT (RFC 5425), relp://HOST:PORT,
    /// https://HOST[:PORT]/PATH (NDJSON webhook; http:// on loopback only) or
    /// hec+https://HOST:PORT[/PREFIX][?token=T] (Splunk HEC with indexer
    /// acknowledgement; prefer --ship-hec-token-file or $SANDBOX_AUDIT_HEC_TOKEN
    /// to a token in the URL, which other local users can read in ps).
    #[arg(long = "ship", value_name = "URL")]
    pub ship: Vec<String>,
    /// Where each destination keeps its cursor and status.json.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub ship_state: PathBuf,
    /// PEM CA certificate(s) the receiver's certificate must chain to
    /// (syslog+tls, https, hec+https; there are no built-in roots).
    #[arg(long)]
    pub ship_ca: Option<PathBuf>,
    /// PEM client certificate chain for syslog+tls (with --ship-key).
    #[arg(long, requires = "ship_key")]
    pub ship_cert: Option<PathBuf>,
    /// PEM private key of --ship-cert.
    #[arg(long, requires = "ship_cert")]
    pub ship_key: Option<PathBuf>,
    /// The name the receiver's certificate must carry (default: the URL's host).
    #[arg(long)]
    pub ship_server_name: Option<String>,
    /// RELP: most messages unacknowledged at once.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub ship_window: u64,
    /// Plain syslog has no acknowledgement: a record counts as delivered
    /// this long after the receiver's TCP acknowledged it, in ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub ship_settle_ms: u64,
    /// Longest wait between reconnection attempts, in ms.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub ship_backoff_max_ms: u64,
    /// Webhook and HEC: most records in one request (HEC keeps up to 8
    /// requests unacknowledged).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=50_000))]
    pub ship_batch: u64,
    /// Webhook and HEC: deadline of one HTTP request (connect, TLS, send,
    /// response), in ms.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub ship_http_timeout_ms: u64,
    /// HEC: how long a batch may wait for its indexer acknowledgement
    /// before it is taken as lost and sent again, in ms.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub ship_ack_timeout_ms: u64,
    /// HEC: a file holding the token (for hec+https URLs without `token=`;
    /// else $SANDBOX_AUDIT_HEC_TOKEN). The token is never logged.
    #[arg(long)]
    pub ship_hec_token_file: Option<PathBuf>,
    /// At exit, how long to let destinations catch up, in ms (the rest is
    /// shipped from the cursor next time).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub ship_drain_ms: u64,
    /// The payload of every shipped record, for all destinations: `native`
    /// (the stored canonical line), `ocsf` (OCSF 1.3 events) or `ecs`
    /// (Elastic Common Schema); mapped events keep the canonical line, its
    /// origin, seq and hash (docs/SHIPPING.md, "Shipped formats").
    #[arg(long, value_name = "native|ocsf|ecs", default_value = "native")]
    pub ship_format: audit_ship::format::ShipFormat,
}

impl ShipArgs {
    /// Starts the shippers (none without --ship) for the log in `log_dir`.
    pub fn start(&self, log_dir: &std::path::Path) -> Result<Shippers> {
        let mut c = ShipConfig::new(log_dir);
        c.destinations = self.ship.clone();
        c.state_dir = self.ship_state.clone();
        c.tls = TlsFiles {
            ca: self.ship_ca.clone(),
            cert: self.ship_cert.clone(),
            key: self.ship_key.clone(),
            server_name: self.ship_server_name.clone(),
        };
        c.relp_window = self.ship_window as usize;
        c.settle = Duration::from_millis(self.ship_settle_ms);
        c.backoff_max = Duration::from_millis(self.ship_backoff_max_ms);
        c.drain = Duration::from_millis(self.ship_drain_ms);
        c.http_batch = self.ship_batch as usize;
        c.http_timeout = Duration::from_millis(self.ship_http_timeout_ms);
        c.ack_timeout = Duration::from_millis(self.ship_ack_timeout_ms);
        c.hec_token_file = self.ship_hec_token_file.clone();
        c.format = self.ship_format;
        Ok(Shippers::start(c)?)
    }
}
