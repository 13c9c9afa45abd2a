//! `cargo xtask bench --only ship`: ship throughput per transport on
//! loopback to a real rsyslogd (audit-user/ship/benches/ship.rs), from a
//! pre-filled store of 200 000 records. Needs root and rsyslogd.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::util::root;

/// The ship table (printed as it is made).
pub fn ship_table() -> Result<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args([
            "bench",
            "-p",
            "audit-ship",
            "--bench",
            "ship",
            "--",
            "200000",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo bench -p audit-ship --bench ship")?;
    if !out.status.success() {
        bail!("the ship benchmark failed ({})", out.status);
    }
    let table = String::from_utf8(out.stdout).context("ship benchmark output")?;
    print!("{table}");
    Ok(table)
}

/// The shipping section of BENCHMARKS.md.
pub fn section() -> Result<String> {
    let table = ship_table()?;
    Ok(format!(
        "\n## Shipping off the host\n\n\
         A store pre-filled with 200 000 exec records is shipped to a real rsyslogd on loopback;\n\
         the time runs until every record is acknowledged (RELP) or written (TCP) and is in\n\
         rsyslog's output file. Goal (issue 10): syslog+tls and RELP at 100 000 records/s or more.\n\
         Only this section: `cargo xtask bench --only ship`.\n\n\
         {table}\n"
    ))
}
