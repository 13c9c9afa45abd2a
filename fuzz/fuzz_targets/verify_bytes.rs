//! Arbitrary bytes as a log of up to four segments (split at 0xFF bytes),
//! with and without a live writer and an anchor: verify must never panic.
//! Each line also checks the canonical scanner against serde_json: a line
//! is accepted exactly when re-encoding what serde_json parses gives the
//! same bytes.

#![no_main]

use audit_log::{
    canonical,
    verify::{Options, verify_segments},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (flags, rest) = data.split_first().unwrap_or((&0, &[]));
    let segments: Vec<(&str, &[u8])> = rest
        .split(|&b| b == 0xff)
        .take(4)
        .map(|s| ("seg", s))
        .collect();
    let anchor = std::str::from_utf8(rest)
        .ok()
        .filter(|_| flags & 2 != 0)
        .map(str::to_string);
    let opts = Options {
        live: flags & 1 != 0,
        anchor,
        ..Options::default()
    };
    // An anchor that does not parse is an error result, never a panic.
    let _ = verify_segments(&segments, &opts);

    for line in rest.split(|&b| b == b'\n') {
        let reencoded = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .filter(serde_json::Value::is_object)
            .and_then(|v| canonical::to_vec(&v).ok());
        assert_eq!(
            canonical::is_canonical_object(line),
            reencoded.as_deref() == Some(line),
            "scanner and serde_json disagree on {:?}",
            String::from_utf8_lossy(line)
        );
    }
});
