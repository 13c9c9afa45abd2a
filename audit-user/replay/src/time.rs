//! Times on the command line (RFC 3339 or ns since the epoch) and in the
//! output (RFC 3339 UTC with ns), without a date crate: Howard Hinnant's
//! civil-from-days / days-from-civil algorithms.

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// RFC 3339 UTC with nanoseconds: `2026-12-01T19:43:34.123456789Z`.
pub fn rfc3339(ns: u64) -> String {
    Rfc3339(ns).to_string()
}

/// The same with microseconds, for the text timeline.
pub fn short(ns: u64) -> String {
    Short(ns).to_string()
}

/// [`rfc3339`] written in place (a timeline of a million records formats
/// as many times, so without a String each).
#[derive(Clone, Copy)]
pub struct Rfc3339(pub u64);

/// [`short`] written in place.
#[derive(Clone, Copy)]
pub struct Short(pub u64);

fn write_utc(f: &mut std::fmt::Formatter<'_>, ns: u64, micros: bool) -> std::fmt::Result {
    let secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    write!(
        f,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )?;
    if micros {
        write!(f, "{:06}Z", frac / 1000)
    } else {
        write!(f, "{frac:09}Z")
    }
}

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_utc(f, self.0, false)
    }
}

impl std::fmt::Display for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_utc(f, self.0, true)
    }
}

/// Parses `--since`/`--until`: an RFC 3339 date-time (`2026-12-01T19:43:34Z`,
/// fraction and offset optional parts of the standard) or an integer of ns
/// since the Unix epoch. Errors say what is wrong, in words.
pub fn parse(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<u64>()
            .map_err(|_| "too large for ns since the epoch".to_string());
    }
    parse_rfc3339(t).map_err(|why| {
        format!("{why} (expected RFC 3339 like 2026-12-01T19:43:34Z or 2026-12-01T20:43:34.5+01:00, or ns since the Unix epoch)")
    })
}

fn parse_rfc3339(t: &str) -> Result<u64, String> {
    let b = t.as_bytes();
    let digits = |from: usize, n: usize, what: &str| -> Result<u32, String> {
        let s = b
            .get(from..from + n)
            .filter(|s| s.iter().all(u8::is_ascii_digit))
            .ok_or_else(|| format!("no {n}-digit {what}"))?;
        Ok(s.iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0')))
    };
    let sep = |at: usize, want: &[u8], what: &str| -> Result<(), String> {
        match b.get(at) {
            Some(c) if want.contains(c) => Ok(()),
            _ => Err(format!("expected {what} at position {}", at + 1)),
        }
    };
    let year = digits(0, 4, "year")?;
    sep(4, b"-", "'-'")?;
    let month = digits(5, 2, "month")?;
    sep(7, b"-", "'-'")?;
    let day = digits(8, 2, "day")?;
    sep(10, b"Tt ", "'T'")?;
    let hour = digits(11, 2, "hour")?;
    sep(13, b":", "':'")?;
    let minute = digits(14, 2, "minute")?;
    sep(16, b":", "':'")?;
    // 60 is a leap second: RFC 3339 allows it; count it as :59.
    let second = digits(17, 2, "second")?.min(59);
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is out of range"));
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day == 0 || day > month_days[month as usize - 1] {
        return Err(format!("day {day} is out of range for month {month}"));
    }
    if hour > 23 || minute > 59 {
        return Err(format!("time {hour:02}:{minute:02} is out of range"));
    }
    let mut at = 19;
    let mut frac_ns = 0u64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return Err("no digits after '.'".into());
        }
        // Digits beyond ns are cut, not rounded.
        for (i, &c) in b[start..at].iter().take(9).enumerate() {
            frac_ns += u64::from(c - b'0') * 10u64.pow(8 - i as u32);
        }
    }
    let offset_secs: i64 = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(&s @ (b'+' | b'-')) if at + 6 == b.len() => {
            let oh = digits(at + 1, 2, "offset hour")?;
            sep(at + 3, b":", "':' in the offset")?;
            let om = digits(at + 4, 2, "offset minute")?;
            if oh > 23 || om > 59 {
                return Err("offset out of range".into());
            }
            let v = i64::from(oh * 3600 + om * 60);
            if s == b'+' { v } else { -v }
        }
        None => return Err("no time zone (add Z for UTC)".into()),
        _ => return Err(format!("unexpected text at position {}", at + 1)),
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    if secs < 0 {
        return Err("before the Unix epoch".into());
    }
    (secs as u64)
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac_ns))
        .ok_or_else(|| "too far in the future".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_back() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(951_782_400_123_456_789),
            "2000-02-29T00:00:00.123456789Z"
        );
        assert_eq!(
            short(951_782_400_123_456_789),
            "2000-02-29T00:00:00.123456Z"
        );
        for ns in [0, 951_782_400_123_456_789, 1_764_618_214_000_000_001] {
            assert_eq!(parse(&rfc3339(ns)), Ok(ns));
        }
    }

    #[test]
    fn offsets_fractions_and_integers() {
        let base = parse("2026-12-01T19:43:34Z").unwrap();
        assert_eq!(parse("2026-12-01T20:43:34+01:00"), Ok(base));
        assert_eq!(parse("2026-12-01t18:43:34-01:00"), Ok(base));
        assert_eq!(parse("2026-12-01 19:43:34.5Z"), Ok(base + 500_000_000));
        assert_eq!(parse(&base.to_string()), Ok(base));
    }

    #[test]
    fn bad_times_say_why() {
        for (t, why) in [
            ("2026-13-01T00:00:00Z", "month 13"),
            ("2026-02-29T00:00:00Z", "day 29"),
            ("2026-12-01T19:43:34", "no time zone"),
            ("2026-12-01", "'T'"),
            ("yesterday", "year"),
            ("2026-12-01T24:00:00Z", "out of range"),
            ("99999999999999999999999", "too large"),
            ("", "year"),
        ] {
            let e = parse(t).unwrap_err();
            assert!(e.contains(why), "{t}: {e}");
        }
    }
}
