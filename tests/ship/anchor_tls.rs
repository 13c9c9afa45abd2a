//! What lives off the host catches what root on the host can do to the
//! store: a log shipped to rsyslogd, then cut at its tail or replaced
//! wholesale, fails `verify --anchor <rsyslog's file>`. And a TLS receiver
//! whose certificate does not chain to `--ship-ca`, or does not carry the
//! expected name, is refused with a clear error that also lands in the
//! chain, while capture goes on.

#[path = "harness/mod.rs"]
mod harness;

use std::{fs, process::Command, time::Duration};

use harness::{Input, Rsyslog, exec_shipping, stored, stored_kind, verify};
use integration_tests::TempDir;

#[test]
fn receivers_file_catches_a_cut_tail_and_a_replaced_log() {
    let dir = TempDir::new("ship-anchor");
    let rs = Rsyslog::start(&dir.0, Input::Tcp);
    let url = format!("syslog+tcp://127.0.0.1:{}", rs.port);
    exec_shipping(&dir.0, "a", &["--ship", &url, "--ship-drain-ms", "20000"]);
    let log = dir.0.join("a-log");
    let last = *stored(&log).keys().last().unwrap();
    harness::wait_for(
        "the whole log at the receiver",
        Duration::from_secs(60),
        || rs.received().iter().any(|(s, _)| *s == last),
    );
    let recv = rs.out.to_str().unwrap().to_string();
    let (code, text) = verify(&["--anchor", &recv, log.to_str().unwrap()]);
    assert_eq!(
        code, 0,
        "the shipped log verifies against its receiver: {text}"
    );

    // Cut the tail of a copy (the store's own files are append-only).
    let cut = dir.0.join("cut");
    assert!(
        Command::new("cp")
            .arg("-r")
            .arg(&log)
            .arg(&cut)
            .status()
            .unwrap()
            .success()
    );
    let seg = audit_log::segment::list(&cut).unwrap().pop().unwrap();
    let data = fs::read(&seg).unwrap();
    let (lines, _) = audit_log::segment::split_lines(&data);
    let keep = lines[lines.len() - 3].0;
    fs::write(&seg, &data[..keep]).unwrap();
    let (code, text) = verify(&["--anchor", &recv, cut.to_str().unwrap()]);
    assert_eq!(code, 1, "a cut tail must be caught: {text}");
    assert!(text.contains("gone"), "{text}");

    // Replace the log: a fresh one with its own keys, same host.
    exec_shipping(&dir.0, "b", &[]);
    let (code, text) = verify(&["--anchor", &recv, dir.0.join("b-log").to_str().unwrap()]);
    assert_eq!(code, 1, "a replaced log must be caught: {text}");
}

#[test]
fn tls_refuses_a_wrong_ca_and_a_wrong_name_clearly() {
    let dir = TempDir::new("ship-tls-refuse");
    let certs = harness::make_certs(&dir.0);
    let (other_ca, _) = harness::make_ca(&dir.0, "other-ca");
    let rs = Rsyslog::start(&dir.0, Input::Tls(&certs));
    let url = format!("syslog+tls://127.0.0.1:{}", rs.port);
    let cases = [
        (
            "ca",
            vec!["--ship-ca", other_ca.to_str().unwrap()],
            "UnknownIssuer",
        ),
        (
            "name",
            vec![
                "--ship-ca",
                certs.ca.to_str().unwrap(),
                "--ship-server-name",
                "wrong.example",
            ],
            "not valid for name \"wrong.example\"",
        ),
    ];
    for (name, flags, why) in cases {
        let mut ship = vec!["--ship", url.as_str(), "--ship-drain-ms", "1000"];
        ship.extend(flags);
        let err = exec_shipping(&dir.0, name, &ship);
        assert!(
            err.contains("TLS handshake with 127.0.0.1")
                && err.contains("invalid peer certificate")
                && err.contains(why),
            "{name}: {err}"
        );
        let outages = stored_kind(&dir.0.join(format!("{name}-log")), "ship_outage");
        assert!(
            outages
                .iter()
                .any(|o| o["error"].as_str().unwrap_or("").contains(why)),
            "{name}: the refusal is not in the chain: {outages:?}"
        );
        // Capture went on: the command's processes are in the log.
        assert!(!stored_kind(&dir.0.join(format!("{name}-log")), "exec").is_empty());
    }
    assert!(
        rs.received().is_empty(),
        "nothing may reach an unverified receiver"
    );
}
