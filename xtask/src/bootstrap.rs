//! Idempotent machine setup. Every step checks first and only installs what
//! is missing, so a second run takes well under a second.

use std::{path::Path, process::Command, time::Instant};

use anyhow::{Context, Result, bail};

use crate::util::{output, sh};

/// The nightly that builds the eBPF crate. Its LLVM major must match
/// bpf-linker's (22): newer nightlies ship LLVM 23 and fail to link.
pub const BPF_TOOLCHAIN: &str = "nightly-2026-05-19";
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
    // cargo xtask vm-test: the VMs and their userland.
    "qemu-system-x86",
    "busybox-static",
    // Headless browser for the replay HTML test (tests/replay).
    "chromium",
    // Real receivers for the shipping tests (tests/ship): rsyslogd with
    // imtcp, gtls and imrelp; certificates come from openssl.
    "rsyslog",
    "rsyslog-gnutls",
    "rsyslog-relp",
    "openssl",
    // The incumbent anchor of `cargo xtask bench --only probes`.
    "auditd",
];

fn run_all() -> Result<()> {
    let t = Instant::now();
    apt_packages()?;
    bpf_toolchain()?;
    bpf_linker()?;
    cargo_fuzz()?;
    kernel_mounts()?;
    crate::vm::fetch_kernels().context("fetching the VM test kernels")?;
    eprintln!("bootstrap: ready in {:.1}s", t.elapsed().as_secs_f64());
    Ok(())
}

pub fn run() -> Result<()> {
    run_all().context("bootstrap failed")
}

fn installed(pkg: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|s| s.contains("install ok installed"))
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("bootstrap: installing {missing:?}");
    // llvm-22 comes from bookworm-security: the package lists must be fresh.
    sh(Command::new("apt-get").args(["update", "-q"]))?;
    sh(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn bpf_toolchain() -> Result<()> {
    let have = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        BPF_TOOLCHAIN,
    ]))
    .is_some_and(|s| s.lines().any(|l| l.starts_with("rust-src")));
    if have {
        return Ok(());
    }
    eprintln!("bootstrap: installing {BPF_TOOLCHAIN} with rust-src");
    sh(Command::new("rustup").args([
        "toolchain",
        "install",
        BPF_TOOLCHAIN,
        "--profile",
        "minimal",
        "-c",
        "rust-src",
    ]))
}

const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// cargo-fuzz, for the short fuzz run of the test suite.
fn cargo_fuzz() -> Result<()> {
    let have = output(Command::new("cargo").args(["fuzz", "--version"]))
        .is_some_and(|s| s.contains(CARGO_FUZZ_VERSION));
    if have {
        return Ok(());
    }
    eprintln!("bootstrap: installing cargo-fuzz {CARGO_FUZZ_VERSION} (~40 s)");
    sh(Command::new("cargo").args([
        "install",
        &format!("cargo-fuzz@{CARGO_FUZZ_VERSION}"),
        "--locked",
    ]))
}

fn bpf_linker() -> Result<()> {
    let have = output(Command::new("bpf-linker").arg("--version"))
        .is_some_and(|s| s.contains(BPF_LINKER_VERSION));
    if have {
        return Ok(());
    }
    eprintln!("bootstrap: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (~90 s)");
    sh(Command::new("cargo")
        .args([
            "install",
            &format!("bpf-linker@{BPF_LINKER_VERSION}"),
            "--locked",
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("LLVM_PREFIX", LLVM_PREFIX))
}

fn mounted(path: &str) -> bool {
    Command::new("mountpoint")
        .args(["-q", path])
        .status()
        .is_ok_and(|s| s.success())
}

fn mount(fstype: &str, path: &str) -> Result<()> {
    if mounted(path) {
        return Ok(());
    }
    std::fs::create_dir_all(path).with_context(|| format!("creating {path}"))?;
    eprintln!("bootstrap: mounting {fstype} at {path}");
    sh(Command::new("mount").args(["-t", fstype, "nodev", path]))
}

fn kernel_mounts() -> Result<()> {
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!(
            "this kernel has no BTF (/sys/kernel/btf/vmlinux); sandbox-audit needs CONFIG_DEBUG_INFO_BTF=y"
        );
    }
    mount("tracefs", "/sys/kernel/tracing")?;
    mount("bpf", "/sys/fs/bpf")?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    if !mountinfo.lines().any(|l| l.contains(" - cgroup2 ")) {
        let path = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
            || mounted("/sys/fs/cgroup")
        {
            "/sys/fs/cgroup/unified"
        } else {
            "/sys/fs/cgroup"
        };
        mount("cgroup2", path)?;
    }
    Ok(())
}
