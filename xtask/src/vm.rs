//! `cargo xtask vm-test`: the capture checks on other kernels, each booted
//! under QEMU/TCG (this machine's /dev/kvm cannot run a guest, and its own
//! kernel refuses BPF LSM programs). Every VM boots Debian's uncompressed
//! vmlinux straight through PVH with an initramfs of busybox-static, the
//! host build of sandbox-audit and the `vm_runner` test binary (the same
//! binaries `cargo test` builds, with the glibc libraries they load: a
//! static musl build from a clean clone costs more than the whole suite's
//! time budget); /init runs the runner, which prints `VMTEST PASS|FAIL`
//! lines on the serial console.
//!
//! The extracted kernels are machine state, like the apt packages: `cargo
//! xtask bootstrap` downloads them once into /var/cache/sandbox-audit/, so a
//! fresh clone's test run fetches nothing. The initramfs lives under
//! target/vm/ so that a second run only rebuilds what changed.

use std::{
    fs,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::util::{output, root, sh};

const BUSYBOX: &str = "/bin/busybox";
const LSM_WITH_BPF: &str = "lockdown,capability,landlock,bpf";
const LSM_WITHOUT_BPF: &str = "lockdown,capability,landlock";

/// One VM of the matrix.
struct Kernel {
    /// Name in the report.
    name: String,
    /// Debian package holding the kernel.
    package: String,
    lsm: &'static str,
    /// Whether this boot has BPF LSM (the runner then expects LSM mode).
    expect_lsm: bool,
    /// Part of the subset `cargo xtask test` boots (see [`Options::suite`]).
    in_suite: bool,
}

pub struct Options {
    /// Kill a VM that has not powered off after this long.
    pub timeout: Duration,
    /// Only boot kernels whose name contains this.
    pub filter: Option<String>,
    /// Leave out kernels whose name contains this.
    pub skip: Option<String>,
    /// Only the kernels of the test suite's subset: 6.1 and the newest
    /// kernel with BPF LSM, and one boot without it (the whole matrix does
    /// not fit the suite's time budget on 2 cores).
    pub suite: bool,
}

/// What one VM reported.
pub struct KernelResult {
    pub name: String,
    pub passed: u64,
    pub failed: u64,
    /// From the start of the boots to this VM's end.
    pub secs: f64,
}

fn vm_dir() -> PathBuf {
    root().join("target/vm")
}

/// Where bootstrap keeps the matrix's extracted kernels (outside any clone).
const KERNEL_CACHE: &str = "/var/cache/sandbox-audit/vm-kernels";

/// Bootstrap's step: every kernel of the matrix extracted into the cache
/// (a no-op when they already are).
pub fn fetch_kernels() -> Result<()> {
    let mut packages: Vec<String> = matrix()?.into_iter().map(|k| k.package).collect();
    packages.sort();
    packages.dedup();
    for p in packages {
        vmlinux(&p)?;
    }
    Ok(())
}

/// `cargo xtask vm-test`: boots the matrix and fails unless every check passed.
pub fn run(opts: &Options) -> Result<()> {
    let started = Instant::now();
    let results = run_matrix(opts)?;
    let passed: u64 = results.iter().map(|r| r.passed).sum();
    let failed: u64 = results.iter().map(|r| r.failed).sum();
    println!(
        "vm-test: {passed} passed, {failed} failed ({:.0}s in all)",
        started.elapsed().as_secs_f64()
    );
    if failed > 0 || passed == 0 {
        bail!("vm-test failed");
    }
    Ok(())
}

/// Builds, records the host reference, boots the selected kernels and
/// returns what each reported. An error means nothing could be booted.
pub fn run_matrix(opts: &Options) -> Result<Vec<KernelResult>> {
    check_tools()?;
    let kernels: Vec<Kernel> = matrix()?
        .into_iter()
        .filter(|k| !opts.suite || k.in_suite)
        .filter(|k| opts.filter.as_ref().is_none_or(|f| k.name.contains(f)))
        .filter(|k| opts.skip.as_ref().is_none_or(|s| !k.name.contains(s)))
        .collect();
    if kernels.is_empty() {
        bail!(
            "no kernel of the matrix matches the filter {:?}",
            opts.filter
        );
    }
    let t = Instant::now();
    let (sandbox_audit, runner) = build_guest_bins()?;
    eprintln!(
        "vm-test: guest binaries ready in {:.0}s",
        t.elapsed().as_secs_f64()
    );
    let reference = host_reference(&sandbox_audit, &runner)?;
    let libs = shared_libs(&[&sandbox_audit, &runner])?;
    let initrd = initramfs(&sandbox_audit, &runner, &reference, &libs)?;

    // All VMs at once: each is one single-threaded TCG process, so on a
    // shared machine the matrix takes about as long as its slowest VM.
    let t = Instant::now();
    let runs: Vec<_> = kernels
        .iter()
        .map(|k| {
            let booted = vmlinux(&k.package).and_then(|v| Vm::start(k, &v, &initrd));
            (k, booted)
        })
        .collect();
    let mut results = Vec::new();
    for (k, vm) in runs {
        let (passed, failed) = match vm.and_then(|vm| vm.finish(k, t, opts.timeout)) {
            Ok(v) => v,
            Err(e) => {
                println!("{}: FAIL {e:#}", k.name);
                (0, 1)
            }
        };
        let secs = t.elapsed().as_secs_f64();
        println!("{}: {passed} passed, {failed} failed ({secs:.1}s)", k.name);
        results.push(KernelResult {
            name: k.name.clone(),
            passed,
            failed,
            secs,
        });
    }
    Ok(results)
}

fn check_tools() -> Result<()> {
    let need = [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("apt-get", "apt"),
        ("dpkg-deb", "dpkg"),
        ("xz", "xz-utils"),
        ("strip", "binutils"),
        ("ldd", "libc-bin"),
    ];
    for (tool, pkg) in need {
        if output(Command::new("sh").args(["-c", &format!("command -v {tool}")])).is_none() {
            bail!(
                "{tool} not found: install the Debian package {pkg} (cargo xtask bootstrap does)"
            );
        }
    }
    if !Path::new(BUSYBOX).exists() {
        bail!("{BUSYBOX} not found: install busybox-static (cargo xtask bootstrap does)");
    }
    Ok(())
}

/// The kernels to boot: Debian 6.1 with and without BPF LSM, and the newest
/// Debian kernel the configured package lists offer.
fn matrix() -> Result<Vec<Kernel>> {
    let images = kernel_packages(&kernel_pkgnames()?);
    let newest_61 = images
        .iter()
        .filter(|(v, _)| v.starts_with(&[6, 1, 0]))
        .max()
        .map(|(_, p)| p.clone())
        .context(
            "no linux-image-6.1.0-*-amd64-unsigned package in the apt lists (run apt-get update)",
        )?;
    let newest = images
        .iter()
        .max()
        .map(|(_, p)| p.clone())
        .filter(|n| *n != newest_61);
    // The suite's boots: 6.1 and the newest kernel with BPF LSM, and one
    // boot without it (the newest kernel's when there is one newer than 6.1).
    let has_newer = newest.is_some();
    let mut out = vec![Kernel {
        name: format!("{newest_61} lsm=bpf"),
        package: newest_61.clone(),
        lsm: LSM_WITH_BPF,
        expect_lsm: true,
        in_suite: true,
    }];
    if let Some(n) = newest {
        out.push(Kernel {
            name: format!("{n} lsm=bpf"),
            package: n.clone(),
            lsm: LSM_WITH_BPF,
            expect_lsm: true,
            in_suite: true,
        });
        out.push(Kernel {
            name: format!("{n} no-bpf-lsm"),
            package: n,
            lsm: LSM_WITHOUT_BPF,
            expect_lsm: false,
            in_suite: true,
        });
    }
    out.push(Kernel {
        name: format!("{newest_61} no-bpf-lsm"),
        package: newest_61,
        lsm: LSM_WITHOUT_BPF,
        expect_lsm: false,
        in_suite: !has_newer,
    });
    Ok(out)
}

/// The kernel image package names apt knows. `apt-cache` takes seconds, so
/// its answer is kept beside the kernels and reused until the package lists
/// change (apt replaces list files, which moves the lists directory's mtime).
fn kernel_pkgnames() -> Result<String> {
    let cached = Path::new(KERNEL_CACHE).join("pkgnames");
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(c), Some(l)) = (mtime(&cached), mtime(Path::new("/var/lib/apt/lists"))) {
        if c >= l {
            if let Ok(names) = fs::read_to_string(&cached) {
                return Ok(names);
            }
        }
    }
    let names = output(Command::new("apt-cache").args(["pkgnames", "linux-image-"]))
        .context("apt-cache pkgnames failed")?;
    // Only a speed-up: a cache that cannot be written is asked again next time.
    let _ = fs::create_dir_all(KERNEL_CACHE).and_then(|()| fs::write(&cached, &names));
    Ok(names)
}

/// `linux-image-<version>-amd64-unsigned` packages with their version as
/// numbers (6.1.0-57 → [6,1,0,57]; 6.12.117+deb12 → [6,12,117,12]).
fn kernel_packages(pkgnames: &str) -> Vec<(Vec<u64>, String)> {
    pkgnames
        .lines()
        .filter_map(|l| {
            let v = l
                .trim()
                .strip_prefix("linux-image-")?
                .strip_suffix("-amd64-unsigned")?;
            // Flavours (cloud, rt) end in "-cloud"/"-rt" before the suffix.
            if !v.starts_with(|c: char| c.is_ascii_digit())
                || v.contains("-cloud")
                || v.contains("-rt")
            {
                return None;
            }
            let nums: Vec<u64> = v
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.parse().ok())
                .collect();
            Some((nums, l.trim().to_string()))
        })
        .collect()
}

/// The uncompressed kernel of `package`, downloaded and extracted once
/// (normally by bootstrap; a bare `vm-test` fetches what is missing).
fn vmlinux(package: &str) -> Result<PathBuf> {
    let dir = Path::new(KERNEL_CACHE).join(package);
    let out = dir.join("vmlinux");
    if out.exists() {
        return Ok(out);
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("vm kernels: downloading {package}");
    let status = Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(&dir)
        .status()
        .context("running apt-get download")?;
    if !status.success() {
        bail!("apt-get download {package} failed ({status}): is the package list current?");
    }
    let deb = fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download left no .deb in {}", dir.display()))?;
    let unpacked = dir.join("unpacked");
    sh(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let boot = unpacked.join("boot");
    let vmlinuz = fs::read_dir(&boot)
        .with_context(|| format!("{} has no boot/", deb.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("no vmlinuz-* in {}", boot.display()))?;
    let elf = decompress_vmlinuz(&vmlinuz)?;
    let tmp = dir.join("vmlinux.tmp");
    fs::write(&tmp, &elf)?;
    fs::rename(&tmp, &out)?;
    // The package and its tree are 70 MB+; the ELF is all we boot.
    let _ = fs::remove_dir_all(&unpacked);
    let _ = fs::remove_file(&deb);
    Ok(out)
}

/// The ELF vmlinux inside a bzImage: the compressed stream that starts at
/// the first XZ (Debian 6.1) or zstd (Debian 6.12) magic.
fn decompress_vmlinuz(path: &Path) -> Result<Vec<u8>> {
    const FORMATS: &[(&[u8], &str, &[&str])] = &[
        (b"\xfd7zXZ\x00", "xz", &["-dc", "--single-stream", "-q"]),
        (b"\x28\xb5\x2f\xfd", "zstd", &["-dcq"]),
    ];
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    for (magic, tool, args) in FORMATS {
        let Some(at) = data.windows(magic.len()).position(|w| w == *magic) else {
            continue;
        };
        let elf = decompress(tool, args, &data[at..])?;
        if elf.starts_with(b"\x7fELF") {
            return Ok(elf);
        }
    }
    bail!(
        "{} holds no XZ or zstd stream that decompresses to an ELF kernel",
        path.display()
    )
}

/// Pipes `input` through `tool args`; the output even when the tool
/// complains about the bytes after the stream (the bzImage's trailer).
fn decompress(tool: &str, args: &[&str], input: &[u8]) -> Result<Vec<u8>> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {tool}"))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let tail = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&tail));
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .context("stdout")?
        .read_to_end(&mut out)?;
    let _ = writer.join();
    let _ = child.wait();
    Ok(out)
}

/// sandbox-audit and the runner exactly as the integration tests build
/// their binaries (tests/src/lib.rs `built`: dev profile, host target, the
/// same packages and so the same feature unification), stripped. Inside
/// `cargo xtask test` the tests have just run that command, so nothing is
/// left to compile.
fn build_guest_bins() -> Result<(PathBuf, PathBuf)> {
    eprintln!("vm-test: building sandbox-audit and vm_runner");
    sh(Command::new(env!("CARGO")).current_dir(root()).args([
        "build",
        "--quiet",
        "-p",
        "sandbox-audit",
        "-p",
        "integration-tests",
        "--bins",
    ]))?;
    let dir = root().join("target").join("debug");
    let strip_dir = vm_dir().join("bin");
    fs::create_dir_all(&strip_dir)?;
    let mut out = Vec::new();
    for name in ["sandbox-audit", "vm_runner"] {
        let src = dir.join(name);
        let dst = strip_dir.join(name);
        if !newer(&dst, &src) {
            sh(Command::new("strip").arg("-o").arg(&dst).arg(&src))?;
        }
        out.push(dst);
    }
    Ok((out[0].clone(), out[1].clone()))
}

/// The shared libraries (and the dynamic loader) the binaries load, by
/// absolute path, as `ldd` lists them.
fn shared_libs(bins: &[&Path]) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for bin in bins {
        let text = output(Command::new("ldd").arg(bin))
            .with_context(|| format!("ldd {}", bin.display()))?;
        for line in text.lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x…)"; the vDSO has no file.
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(p) = path.filter(|p| p.starts_with('/')) {
                let p = PathBuf::from(p);
                if !libs.contains(&p) {
                    libs.push(p);
                }
            }
        }
    }
    if libs.is_empty() {
        bail!("ldd found no shared libraries for {:?}", bins);
    }
    Ok(libs)
}

/// Is `a` at least as new as `b`?
fn newer(a: &Path, b: &Path) -> bool {
    let m = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((m(a), m(b)), (Some(x), Some(y)) if x >= y)
}

/// Runs the runner's scenarios on this host (tracepoint mode) and keeps the
/// field sets of their records: the guests must produce the same ones.
fn host_reference(sandbox_audit: &Path, runner: &Path) -> Result<PathBuf> {
    let out = vm_dir().join("host-fields.json");
    eprintln!("vm-test: recording the host's field sets");
    let status = Command::new(runner)
        .arg("reference")
        .arg(&out)
        .env("VMTEST_SANDBOX_AUDIT", sandbox_audit)
        .status()
        .context("running vm_runner on the host")?;
    if !status.success() {
        bail!("vm_runner reference failed on the host ({status})");
    }
    Ok(out)
}

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tracefs tracefs /sys/kernel/tracing
mount -t bpf bpf /sys/fs/bpf
mount -t securityfs securityfs /sys/kernel/security
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
echo "VMTEST BOOTED $(uname -r) lsm=$(cat /sys/kernel/security/lsm)"
VMTEST_SANDBOX_AUDIT=/bin/sandbox-audit /bin/vm_runner guest /host-fields.json
echo "VMTEST DONE rc=$?"
poweroff -f
"#;

/// One uncompressed newc cpio archive for every VM (the kernel takes
/// uncompressed initramfs; skipping gzip saves seconds per run).
fn initramfs(
    sandbox_audit: &Path,
    runner: &Path,
    reference: &Path,
    libs: &[PathBuf],
) -> Result<PathBuf> {
    let mut c = Cpio::default();
    for d in [
        "bin", "dev", "proc", "sys", "tmp", "etc", "root", "var", "run",
    ] {
        c.dir(d);
    }
    // The libraries at the paths the binaries look for them (their
    // directories as real directories: the guest has no merged /usr).
    let mut dirs: Vec<String> = Vec::new();
    for lib in libs {
        let rel = lib.strip_prefix("/").unwrap_or(lib);
        let mut dir = PathBuf::new();
        for part in rel.parent().into_iter().flat_map(|p| p.components()) {
            dir.push(part);
            let d = dir.to_string_lossy().into_owned();
            if !dirs.contains(&d) {
                c.dir(&d);
                dirs.push(d);
            }
        }
        let data = fs::read(lib).with_context(|| format!("reading {}", lib.display()))?;
        c.file(&rel.to_string_lossy(), 0o755, &data);
    }
    c.file("init", 0o755, INIT.as_bytes());
    c.file("bin/busybox", 0o755, &fs::read(BUSYBOX)?);
    c.symlink("bin/sh", "busybox");
    c.file("bin/sandbox-audit", 0o755, &fs::read(sandbox_audit)?);
    c.file("bin/vm_runner", 0o755, &fs::read(runner)?);
    c.file("host-fields.json", 0o644, &fs::read(reference)?);
    let out = vm_dir().join("initramfs.cpio");
    fs::write(&out, c.finish()).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

/// Writer of the "newc" cpio format the kernel unpacks as initramfs.
#[derive(Default)]
struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, data);
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, target.as_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.buf
    }
}

/// One running VM and where its serial console goes.
struct Vm {
    child: std::process::Child,
    log_path: PathBuf,
}

impl Vm {
    fn start(k: &Kernel, vmlinux: &Path, initrd: &Path) -> Result<Vm> {
        let logs = vm_dir().join("logs");
        fs::create_dir_all(&logs)?;
        let log_path = logs.join(format!("{}.log", k.name.replace([' ', '='], "_")));
        let log = fs::File::create(&log_path)?;
        let append = format!(
            "console=ttyS0 lsm={} panic=-1 quiet vmtest.expect_lsm={}",
            k.lsm, k.expect_lsm as u8
        );
        eprintln!(
            "vm-test: booting {} (serial log {})",
            k.name,
            log_path.display()
        );
        let child = Command::new("qemu-system-x86_64")
            .args(["-M", "pc", "-accel", "tcg", "-cpu", "max", "-m", "1G"])
            .args(["-smp", "1", "-nographic", "-no-reboot", "-nic", "none"])
            .arg("-kernel")
            .arg(vmlinux)
            .arg("-initrd")
            .arg(initrd)
            .args(["-append", &append])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting qemu-system-x86_64")?;
        Ok(Vm { child, log_path })
    }

    /// Waits for the VM (killing it once `timeout` has passed since
    /// `start`) and counts the runner's PASS/FAIL lines. A VM that panics,
    /// hangs or never reports DONE is a failure.
    fn finish(mut self, k: &Kernel, start: Instant, timeout: Duration) -> Result<(u64, u64)> {
        let timed_out = loop {
            if self.child.try_wait()?.is_some() {
                break false;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break true;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let (mut passed, mut failed, mut done) = (0, 0, false);
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            let Some(at) = line.find("VMTEST ") else {
                continue;
            };
            let msg = &line[at + 7..];
            if msg.starts_with("PASS") {
                passed += 1;
                println!("{}: {msg}", k.name);
            } else if msg.starts_with("FAIL") {
                failed += 1;
                println!("{}: {msg}", k.name);
            } else if msg.starts_with("DONE") {
                done = true;
            } else if msg.starts_with("BOOTED") {
                println!("{}: {msg}", k.name);
            }
        }
        if !done {
            failed += 1;
            let why = if timed_out {
                format!("killed after {}s", timeout.as_secs())
            } else {
                "the VM stopped before the runner finished".into()
            };
            println!(
                "{}: FAIL vm: {why}; see {}",
                k.name,
                self.log_path.display()
            );
        }
        Ok((passed, failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_plain_amd64_kernels_with_numeric_versions() {
        let names = "linux-image-6.1.0-57-amd64-unsigned\nlinux-image-6.1.0-9-amd64-unsigned\n\
                     linux-image-6.12.117+deb12-amd64-unsigned\nlinux-image-6.12.117+deb12-rt-amd64-unsigned\n\
                     linux-image-6.1.0-57-cloud-amd64-unsigned\nlinux-image-amd64\n";
        let mut k = kernel_packages(names);
        k.sort();
        let got: Vec<&str> = k.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(
            got,
            [
                "linux-image-6.1.0-9-amd64-unsigned",
                "linux-image-6.1.0-57-amd64-unsigned",
                "linux-image-6.12.117+deb12-amd64-unsigned"
            ]
        );
    }

    #[test]
    fn cpio_entries_are_aligned_and_terminated() {
        let mut c = Cpio::default();
        c.file("a", 0o644, b"xyz");
        let b = c.finish();
        assert!(b.starts_with(b"070701"));
        assert!(b.len().is_multiple_of(4));
        assert!(b.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
