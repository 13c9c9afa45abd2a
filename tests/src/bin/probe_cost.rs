//! What the probes cost the audited machine, measured in one run against a
//! baseline without probes (run by `cargo xtask bench`, as root):
//!
//! - an audited syscall pair (openat + close of /dev/null) by a process
//!   outside the scope: the in-kernel scope check is all it should pay;
//! - the same inside the scope: full capture (path walk, ring buffer) with
//!   userspace draining and decoding into records;
//! - an unaudited syscall (getppid): no probe is attached to it at all.
//!
//! Prints a Markdown table on stdout.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use audit_capture::{
    drain::Drain,
    probes::{ProbeOptions, Scope},
};
use audit_log::{
    record::Record,
    sink::{Sink, SinkError},
};
use integration_tests::TestCgroup;

const ITERATIONS: u64 = 200_000;

/// Counts records without keeping them (the consumer's decode + record
/// building still happens).
struct Count(u64);

impl Sink for Count {
    fn accept(&mut self, _r: Record) -> Result<(), SinkError> {
        self.0 += 1;
        Ok(())
    }
}

/// The measured loop, in a child process: prints ns per iteration.
fn child_loop(what: &str, n: u64) {
    let path = c"/dev/null";
    let t = Instant::now();
    for _ in 0..n {
        // SAFETY: plain syscalls on a valid path.
        unsafe {
            match what {
                "open" => {
                    let fd = libc::openat(
                        libc::AT_FDCWD,
                        path.as_ptr(),
                        libc::O_RDONLY | libc::O_CLOEXEC,
                    );
                    libc::close(fd);
                }
                _ => {
                    libc::getppid();
                }
            }
        }
    }
    println!("{}", t.elapsed().as_nanos() as f64 / n as f64);
}

/// Runs the loop in a child (inside `cg` if given) and returns ns/iteration,
/// draining `capture` meanwhile if given.
fn measure(
    what: &str,
    cg: Option<&TestCgroup>,
    mut capture: Option<(&mut Drain, &mut Count)>,
) -> f64 {
    let exe = std::env::current_exe().expect("own path");
    let mut cmd = Command::new(exe);
    cmd.args(["--loop", what, &ITERATIONS.to_string()])
        .stdout(Stdio::piped());
    let mut child = match cg {
        Some(cg) => cg.spawn(&mut cmd),
        None => cmd.spawn().expect("spawn loop"),
    };
    while child.try_wait().expect("wait").is_none() {
        match capture.as_mut() {
            Some((c, sink)) => {
                c.pump(Duration::from_millis(20), *sink).expect("pump");
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    if let Some((c, sink)) = capture.as_mut() {
        c.drain(*sink).expect("drain");
    }
    let out = std::io::read_to_string(child.stdout.take().expect("stdout")).expect("read");
    out.trim().parse().expect("ns per iteration")
}

fn best_of(k: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..k).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--loop") {
        child_loop(&args[2], args[3].parse().expect("iterations"));
        return;
    }
    let base_open = best_of(3, || measure("open", None, None));
    let base_getppid = best_of(3, || measure("getppid", None, None));

    let cg = TestCgroup::new("probe-cost");
    let mut capture =
        Drain::start(Scope::Cgroup(cg.target.clone()), &ProbeOptions::default()).expect("probes");
    let mut sink = Count(0);
    let outside_open = best_of(3, || measure("open", None, Some((&mut capture, &mut sink))));
    let outside_getppid = best_of(3, || {
        measure("getppid", None, Some((&mut capture, &mut sink)))
    });
    let before = sink.0;
    let inside_open = best_of(3, || {
        measure("open", Some(&cg), Some((&mut capture, &mut sink)))
    });
    let recorded = sink.0 - before;
    let lost = capture.stats.lost;
    capture.release();

    let row = |name: &str, base: f64, v: f64| {
        println!("| {name} | {base:.0} | {v:.0} | {:.2}× |", v / base);
    };
    println!(
        "| loop ({ITERATIONS} iterations, best of 3) | baseline ns/iter | with probes ns/iter | ratio |"
    );
    println!("|---|---|---|---|");
    row(
        "openat+close, process outside the scope",
        base_open,
        outside_open,
    );
    row(
        "getppid (not audited), outside the scope",
        base_getppid,
        outside_getppid,
    );
    row(
        "openat+close, process inside the scope (recorded)",
        base_open,
        inside_open,
    );
    println!();
    println!("Inside the scope: {recorded} records decoded by the consumer, {lost} reported lost.");
}
