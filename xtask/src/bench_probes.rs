//! The prose of the probe-cost section of docs/BENCHMARKS.md around the
//! table tests/src/bin/probe_cost prints (bench.rs runs it).

pub fn section(table: &str) -> String {
    format!(
        "\n## What the probes cost the audited machine\n\n\
         A child process loops over syscalls the probes audit (`openat` + `close` of /dev/null;\n\
         `fork` + `execve` of /bin/true + `wait`; `socket` + `connect` to a refused loopback port +\n\
         `close`) or one they do not (`getppid`) for up to 0.3 s, timed in chunks (128 opens, 4\n\
         fork+execs, 16 connects, 1024 getppids; the fastest chunk counts, as the machine is\n\
         shared): bare (no probes), then with\n\
         all families attached on each syscall path — the raw `sys_enter`/`sys_exit` dispatcher\n\
         (the default) and the `syscalls:*` tracepoints (the fallback, the path before the\n\
         dispatcher) — with the process outside the audited cgroup, then inside it while the\n\
         capture drains and decodes every record; and Debian's auditd with one rule for the same\n\
         syscalls, filtered on an audit login uid the loop does not have (not matching: like\n\
         outside the scope) or has (capturing, logging to a file). Release build. The\n\
         configurations run in interleaved rounds (the two probe paths swap places every round)\n\
         and each cell is the best round, all in one run of `cargo xtask bench` (only this\n\
         section: `cargo xtask bench --only probes`). Ratios are of operations per second\n\
         (1.00× = as fast as bare).\n\n\
         {table}\n\
         Any program on the raw `sys_enter` tracepoint (the dispatcher, or the compat probes of the\n\
         fallback) puts every task's syscalls on the kernel's slower tracing entry path; auditd's\n\
         syscall auditing does the same. The `syscalls:*` events are themselves fed from that raw\n\
         tracepoint (the kernel's perf_syscall_enter checks a bitmap for every syscall, then fills\n\
         a perf record for the audited ones), so the fallback pays for both, while the dispatcher\n\
         stops an unaudited syscall at one array read and an audited one of a task outside the\n\
         scope at the scope check. Inside the scope an `openat` also resolves its path in the\n\
         kernel and is decoded by the consumer, which shares the two cores with the workload.\n"
    )
}
