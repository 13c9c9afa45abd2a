//! `--path` patterns: `*` matches within one path component, `**` across
//! components (any run of characters, `/` included), `?` one character other
//! than `/`, `[abc]`, `[a-z]` and `[!…]` one character of (not of) a set;
//! `\` quotes the next character. The whole path must match.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
    AnyDeep,
    One,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Clone, Debug)]
pub struct Glob {
    text: String,
    toks: Vec<Tok>,
}

impl Glob {
    pub fn new(text: &str) -> Result<Glob, String> {
        if text.is_empty() {
            return Err("an empty pattern matches nothing".into());
        }
        let mut toks = Vec::new();
        let mut it = text.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '*' if it.peek() == Some(&'*') => {
                    it.next();
                    while it.peek() == Some(&'*') {
                        it.next();
                    }
                    toks.push(Tok::AnyDeep);
                }
                '*' => toks.push(Tok::Any),
                '?' => toks.push(Tok::One),
                '\\' => match it.next() {
                    Some(q) => toks.push(Tok::Lit(q)),
                    None => return Err("ends with a lone '\\'".into()),
                },
                '[' => {
                    let negated = matches!(it.peek(), Some('!' | '^'));
                    if negated {
                        it.next();
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let Some(a) = it.next() else {
                            return Err("'[' without a closing ']'".into());
                        };
                        if a == ']' && !first {
                            break;
                        }
                        first = false;
                        let a = if a == '\\' {
                            it.next().ok_or("'[' without a closing ']'")?
                        } else {
                            a
                        };
                        let mut ahead = it.clone();
                        if ahead.next() == Some('-') && ahead.peek().is_some_and(|&e| e != ']') {
                            it.next();
                            let b = it.next().ok_or("'[' without a closing ']'")?;
                            if b < a {
                                return Err(format!("range {a}-{b} is reversed"));
                            }
                            ranges.push((a, b));
                        } else {
                            ranges.push((a, a));
                        }
                    }
                    toks.push(Tok::Class { negated, ranges });
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Glob {
            text: text.to_string(),
            toks,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, path: &str) -> bool {
        let s: Vec<char> = path.chars().collect();
        // Iterative matching with one backtrack point per star kind keeps
        // this linear-ish on hostile paths (no exponential recursion).
        matches_at(&self.toks, &s)
    }
}

fn one(tok: &Tok, c: char) -> bool {
    match tok {
        Tok::Lit(l) => *l == c,
        Tok::One => c != '/',
        Tok::Class { negated, ranges } => {
            c != '/' && (ranges.iter().any(|&(a, b)| a <= c && c <= b) != *negated)
        }
        Tok::Any | Tok::AnyDeep => false,
    }
}

/// Dynamic programming over (token, char) positions: O(tokens × chars),
/// whatever the pattern and the (attacker-chosen) path.
fn matches_at(toks: &[Tok], s: &[char]) -> bool {
    // reach[j]: the tokens so far can consume exactly s[..j].
    let mut reach = vec![false; s.len() + 1];
    reach[0] = true;
    for tok in toks {
        let mut next = vec![false; s.len() + 1];
        match tok {
            Tok::Any | Tok::AnyDeep => {
                let deep = matches!(tok, Tok::AnyDeep);
                let mut on = false;
                for j in 0..=s.len() {
                    if reach[j] {
                        on = true;
                    }
                    next[j] = on;
                    if j < s.len() && s[j] == '/' && !deep {
                        on = false;
                    }
                }
            }
            _ => {
                for j in 0..s.len() {
                    if reach[j] && one(tok, s[j]) {
                        next[j + 1] = true;
                    }
                }
            }
        }
        reach = next;
        if !reach.iter().any(|&r| r) {
            return false;
        }
    }
    reach[s.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).unwrap().matches(s)
    }

    #[test]
    fn stars_classes_and_quotes() {
        assert!(m("/etc/*", "/etc/passwd"));
        assert!(!m("/etc/*", "/etc/ssh/sshd_config"));
        assert!(m("/etc/**", "/etc/ssh/sshd_config"));
        assert!(m("**/shadow", "/etc/shadow"));
        assert!(m("/tmp/*.txt", "/tmp/notes.txt"));
        assert!(!m("/tmp/*.txt", "/tmp/notes.txt.bak"));
        assert!(m("/dev/tty?", "/dev/tty1"));
        assert!(!m("/dev/tty?", "/dev/tty12"));
        assert!(m("/x/[a-c]", "/x/b"));
        assert!(!m("/x/[!a-c]", "/x/b"));
        assert!(m("/x/[]]", "/x/]"));
        assert!(m("/x/\\*", "/x/*"));
        assert!(!m("/x/\\*", "/x/y"));
        assert!(m("/nonexistent", "/nonexistent"));
        assert!(!m("/nonexistent", "/nonexistent2"));
        assert!(m("*", ""));
    }

    #[test]
    fn bad_patterns_are_errors() {
        for p in ["", "[abc", "a\\", "[z-a]"] {
            assert!(Glob::new(p).is_err(), "{p}");
        }
    }

    #[test]
    fn hostile_paths_stay_fast() {
        let g = Glob::new("**a**a**a**a**a**b").unwrap();
        let s = "a".repeat(5000);
        assert!(!g.matches(&s));
    }
}
