//! Network actions on loopback: socket, bind, listen, connect (accepted and
//! refused), accept with the peer, UDP sends to port 53 with the DNS name,
//! unix sockets (path and abstract), IPv6.

use audit_capture::syscalls::Family;
use integration_tests::{TempDir, expect_in_order, inside_and_outside};
use serde_json::json;

/// A port pair (listener, closed) unlikely to collide between parallel runs.
fn ports() -> (u16, u16) {
    let base = 20_000 + (std::process::id() % 20_000) as u16 * 2;
    (base, base + 1)
}

#[test]
fn network_actions_are_recorded_with_addresses_and_results() {
    let (inside, outside) = (TempDir::new("net-in"), TempDir::new("net-out"));
    let (port, closed) = ports();
    let out_port = port.wrapping_add(7000);
    let (records, report) = inside_and_outside(
        "net",
        &[Family::Network],
        &["net", inside.path(), &port.to_string()],
        &["net", outside.path(), &out_port.to_string()],
    );
    let get = |k: &str| report.iter().find(|(key, _)| key == k).unwrap().1.clone();
    let client_port: u64 = get("client_port").parse().unwrap();
    let lo = |port: u64| json!({"family": "inet", "address": "127.0.0.1", "port": port});
    let ok = "success";
    expect_in_order(
        &records,
        &[
            json!({"kind": "socket", "family": "inet", "type": "stream", "protocol": 0, "result": ok, "fd": 3}),
            json!({"kind": "bind", "fd": 3, "local": lo(port as u64), "result": ok}),
            json!({"kind": "listen", "fd": 3, "backlog": 8, "result": ok}),
            json!({"kind": "socket", "family": "inet", "result": ok, "fd": 4}),
            json!({"kind": "connect", "fd": 4, "remote": lo(port as u64), "result": ok}),
            json!({"kind": "accept", "syscall": "accept4", "fd": 3, "remote": lo(client_port), "new_fd": 5, "result": ok}),
            json!({"kind": "connect", "remote": lo(closed as u64), "result": "failure",
               "errno": libc::ECONNREFUSED, "errno_name": "ECONNREFUSED"}),
            json!({"kind": "socket", "family": "inet", "type": "dgram", "result": ok}),
            json!({"kind": "send", "syscall": "sendto", "remote": lo(53), "dns_query": "agent.example.org", "dns_qtype": 1, "result": ok}),
            json!({"kind": "send", "syscall": "sendmsg", "remote": lo(53), "dns_query": "sendmsg.example.net", "result": ok}),
            json!({"kind": "socket", "family": "unix", "type": "stream", "result": ok}),
            json!({"kind": "bind", "local": {"family": "unix", "path": format!("{}/agent.sock", inside.path())}, "result": ok}),
            json!({"kind": "bind", "local": {"family": "unix", "abstract": format!("sandbox-audit-test-{}", get("pid"))}, "result": ok}),
            json!({"kind": "socket", "family": "inet6", "result": ok}),
            json!({"kind": "connect", "remote": {"family": "inet6", "address": "::1", "port": closed}, "result": "failure",
               "errno_name": "ECONNREFUSED"}),
        ],
    );
}
