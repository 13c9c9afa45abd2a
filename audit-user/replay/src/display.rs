//! Record text is attacker-controlled (argv, paths, comm): before it reaches
//! a terminal it is made inert. Control characters (C0, DEL, C1) and the
//! Unicode bidirectional overrides, which could rewrite what a responder
//! sees, are shown as escapes; argv is quoted the way a shell would read it.

/// `s` with control and bidi-override characters escaped (`\n`, `\x1b`,
/// `\u{202e}`) and `\` doubled, so the result is unambiguous.
pub fn inert(s: &str) -> String {
    inert_cow(s).into_owned()
}

/// [`inert`], borrowing `s` when it needs no escape.
pub fn inert_cow(s: &str) -> std::borrow::Cow<'_, str> {
    // Printable ASCII other than a backslash needs nothing (the common case, and
    // checked a byte at a time rather than through the Unicode tables).
    if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\') || !s.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_inert(&mut out, c);
    }
    std::borrow::Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || is_bidi_control(c)
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}')
}

fn push_inert(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if (c as u32) < 0x80 && c.is_control() => {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
        c if c.is_control() || is_bidi_control(c) => {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
        c => out.push(c),
    }
}

/// One argument as a shell would need it: bare when it has only safe
/// characters, else in single quotes (`'` as `'\''`), control characters
/// escaped in any case.
pub fn shell_word(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_alphanumeric() || "-_./=:,+@%^".contains(c));
    let arg = inert(arg);
    if safe {
        arg
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

pub fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_word(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Signal names for exit statuses (x86-64 numbering).
pub fn signal_name(sig: i64) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match usize::try_from(sig).ok().and_then(|i| NAMES.get(i)) {
        Some(n) if !n.is_empty() => (*n).to_string(),
        _ => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_are_made_inert() {
        assert_eq!(inert("plain /tmp/x"), "plain /tmp/x");
        assert_eq!(inert("a\x1b[2Jb\n"), "a\\x1b[2Jb\\n");
        assert_eq!(inert("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(inert("a\\b"), "a\\\\b");
        assert_eq!(inert("\u{85}"), "\\u{85}");
    }

    #[test]
    fn argv_is_quoted_like_a_shell() {
        let argv: Vec<String> = ["sh", "-c", "exit 3", "it's", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(command_line(&argv), "sh -c 'exit 3' 'it'\\''s' ''");
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(99), "signal 99");
    }
}
