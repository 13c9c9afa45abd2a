//! `cargo xtask demo`: a short scripted "agent" — a few execs, a fork tree, a
//! failing command, a killed process — run under `sandbox-audit exec`, with
//! its records shown as they arrive.

use std::process::Command;

use anyhow::{Context, Result};

use crate::util::{root, sh};

const AGENT_SCRIPT: &str = r#"
echo "agent: listing the workspace"; ls / > /dev/null
echo "agent: a fork tree"; sh -c 'sh -c "true" & wait' 
echo "agent: a failing command"; cat /nonexistent-secret 2>/dev/null || true
echo "agent: a killed process"; sleep 30 & kill -KILL $!; wait $! 2>/dev/null
echo "agent: done"
"#;

pub fn run() -> Result<()> {
    sh(Command::new(env!("CARGO")).current_dir(root()).args([
        "build",
        "--quiet",
        "-p",
        "audit-user",
    ]))?;
    let bin = root().join("target/debug/sandbox-audit");
    let status = Command::new(&bin)
        .args(["exec", "--", "sh", "-c", AGENT_SCRIPT])
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    eprintln!("demo: sandbox-audit exec exited with {status}");
    Ok(())
}
