//! The exit code of a remote command. ECS Exec never reports one, so the command runs under
//! `sh -c` followed by a `printf` of an unguessable per-run marker and `$?`; the marker is cut
//! out of the output stream and its code returned. The marker never appears contiguously in
//! the command line (printf joins its two halves), so a command that prints its own argv
//! (`ps`, `cat /proc/self/cmdline`) cannot fake it.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// A per-run marker and the wrapped command line.
#[derive(Debug, Clone)]
pub struct Wrapped {
    /// What ExecuteCommand is given.
    pub command: String,
    marker: Vec<u8>,
    /// Printed once the terminal is set up (echo off), before the command runs: input may
    /// be sent only after it (a pty echoes what arrives before `stty -echo`).
    ready: Option<Vec<u8>>,
}

/// Quotes one word for a POSIX shell.
pub fn sh_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Wraps `argv` so the container's shell prints the marker and the exit status at the end.
/// `stty -onlcr -echo` keeps the pseudo-terminal from turning `\n` into `\r\n`, so the output
/// arrives byte for byte as the command wrote it (where `stty` exists).
pub fn wrap(argv: &[String]) -> Wrapped {
    wrap_inner(argv, false)
}

/// As [`wrap`], for a command that reads input: a ready line (cut from the output) says
/// when the terminal no longer echoes, so input is sent only then.
pub fn wrap_with_input(argv: &[String]) -> Wrapped {
    wrap_inner(argv, true)
}

fn wrap_inner(argv: &[String], with_input: bool) -> Wrapped {
    let mut bytes = [0u8; 16];
    // SystemRandom only fails when the OS has no randomness; a time-based marker is then
    // still unique to this run.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        let t = super::frame::now_ms().to_be_bytes();
        bytes[..8].copy_from_slice(&t);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let (a, b) = hex.split_at(16);
    let user = argv
        .iter()
        .map(|w| sh_quote(w))
        .collect::<Vec<_>>()
        .join(" ");
    let ready = if with_input {
        format!("printf '%s%s\\n' CDR{a} {b}R; ")
    } else {
        String::new()
    };
    let script = format!(
        "stty -onlcr -echo 2>/dev/null; {ready}{user}\n__cd_rc=$?; printf '%s%s:%d\\n' CDX{a} {b}X \"$__cd_rc\""
    );
    Wrapped {
        command: format!("sh -c {}", sh_quote(&script)),
        marker: format!("CDX{a}{b}X:").into_bytes(),
        ready: with_input.then(|| format!("CDR{a}{b}R").into_bytes()),
    }
}

impl Wrapped {
    /// A scanner for this run's output.
    pub fn scanner(&self) -> Scanner {
        Scanner {
            marker: self.marker.clone(),
            tail: Vec::new(),
            code: None,
            done: false,
            ready: self.ready.clone(),
            held: Vec::new(),
        }
    }
}

/// Cuts the marker line out of the output as it streams, holding back only as many bytes
/// as could be the start of the marker line.
#[derive(Debug)]
pub struct Scanner {
    marker: Vec<u8>,
    tail: Vec<u8>,
    code: Option<i32>,
    done: bool,
    /// The ready line still awaited, and the output held until it comes.
    ready: Option<Vec<u8>>,
    held: Vec<u8>,
}

/// Output held while waiting for the ready line, at most; beyond, it is let through.
const MAX_HELD_BEFORE_READY: usize = 64 * 1024;

/// Longest marker line: marker + "-2147483648\r\n".
const MAX_CODE: usize = 13;

impl Scanner {
    /// Feeds output; returns what can be printed now.
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        if let Some(ready) = &self.ready {
            self.held.extend_from_slice(data);
            let data = match find(&self.held, ready) {
                Some(at) => match self.held[at..].iter().position(|b| *b == b'\n') {
                    Some(nl) => self.held.split_off(at + nl + 1),
                    None => return Vec::new(),
                },
                None if self.held.len() > MAX_HELD_BEFORE_READY => std::mem::take(&mut self.held),
                None => return Vec::new(),
            };
            self.ready = None;
            self.held.clear();
            return self.push(&data);
        }
        if self.done {
            return Vec::new();
        }
        self.tail.extend_from_slice(data);
        if let Some(at) = find(&self.tail, &self.marker) {
            let rest = &self.tail[at + self.marker.len()..];
            if let Some(nl) = rest.iter().position(|b| *b == b'\n') {
                let digits = String::from_utf8_lossy(&rest[..nl]).trim().to_string();
                self.code = digits.parse().ok();
                self.done = true;
                let out = self.tail[..at].to_vec();
                self.tail.clear();
                return out;
            }
            if rest.len() > MAX_CODE {
                // Not our line after all (no newline in reach): let it through.
                let out = std::mem::take(&mut self.tail);
                return out;
            }
            let out = self.tail[..at].to_vec();
            self.tail.drain(..at);
            return out;
        }
        // Keep the longest suffix that is a prefix of the marker.
        let keep = (1..self.marker.len().min(self.tail.len() + 1))
            .rev()
            .find(|&n| self.tail.ends_with(&self.marker[..n]))
            .unwrap_or(0);
        let cut = self.tail.len() - keep;
        let out = self.tail[..cut].to_vec();
        self.tail.drain(..cut);
        out
    }

    /// The end of the stream: what is left to print, and the exit code if the marker came.
    pub fn finish(&mut self) -> (Vec<u8>, Option<i32>) {
        if self.ready.take().is_some() {
            let held = std::mem::take(&mut self.held);
            let mut out = self.push(&held);
            out.extend(std::mem::take(&mut self.tail));
            return (out, self.code);
        }
        (std::mem::take(&mut self.tail), self.code)
    }

    pub fn code(&self) -> Option<i32> {
        self.code
    }

    /// Whether the terminal is ready for input (always, without a ready line).
    pub fn is_ready(&self) -> bool {
        self.ready.is_none()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(w: &Wrapped, chunks: &[&[u8]]) -> (Vec<u8>, Option<i32>) {
        let mut s = w.scanner();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(s.push(c));
        }
        let (rest, code) = s.finish();
        out.extend(rest);
        (out, code)
    }

    #[test]
    fn the_marker_is_cut_out_and_its_code_returned_however_the_output_is_split() {
        let w = wrap(&["sh".into(), "-c".into(), "echo out; exit 7".into()]);
        let marker = String::from_utf8(w.marker.clone()).unwrap();
        let all = format!("out\nerr\n{marker}7\n");
        for split in 0..all.len() {
            let (a, b) = all.as_bytes().split_at(split);
            assert_eq!(
                run(&w, &[a, b]),
                (b"out\nerr\n".to_vec(), Some(7)),
                "split at {split}"
            );
        }
        let one_by_one: Vec<&[u8]> = all.as_bytes().chunks(1).collect();
        assert_eq!(run(&w, &one_by_one), (b"out\nerr\n".to_vec(), Some(7)));
        // Output without a final newline keeps its last line intact.
        assert_eq!(
            run(&w, &[format!("partial{marker}0\r\n").as_bytes()]),
            (b"partial".to_vec(), Some(0))
        );
    }

    #[test]
    fn no_marker_means_no_code_and_all_output_kept() {
        let w = wrap(&["true".into()]);
        let (out, code) = run(
            &w,
            &[b"exec: \"sh\": executable file not found in $PATH\r\n"],
        );
        assert_eq!(code, None);
        assert!(out.starts_with(b"exec:"));
        // Something that looks like the start of a marker is not swallowed.
        let (out, code) = run(&w, &[b"CDX", b"1234"]);
        assert_eq!((out, code), (b"CDX1234".to_vec(), None));
    }

    #[test]
    fn the_command_line_never_contains_the_marker_and_quotes_safely() {
        let w = wrap(&["echo".into(), "it's $HOME; rm -rf /".into()]);
        let marker = String::from_utf8(w.marker.clone()).unwrap();
        assert!(!w.command.contains(&marker));
        assert!(w.command.starts_with("sh -c '"));
        assert_ne!(
            wrap(&["true".into()]).marker,
            w.marker,
            "a new marker every run"
        );
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote("plain-word"), "plain-word");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn the_ready_line_is_cut_and_gates_input() {
        let w = wrap_with_input(&["cat".into()]);
        let ready = String::from_utf8(w.ready.clone().unwrap()).unwrap();
        assert!(!w.command.contains(&ready));
        let marker = String::from_utf8(w.marker.clone()).unwrap();
        let mut s = w.scanner();
        assert!(!s.is_ready());
        assert!(s.push(&ready.as_bytes()[..5]).is_empty());
        assert!(!s.is_ready());
        let rest = format!("{}\nhello\n{marker}0\n", &ready[5..]);
        assert_eq!(s.push(rest.as_bytes()), b"hello\n");
        assert!(s.is_ready());
        assert_eq!(s.finish(), (Vec::new(), Some(0)));
    }

    #[test]
    fn the_wrapped_command_really_prints_the_marker_in_a_shell() {
        let w = wrap(&[
            "sh".into(),
            "-c".into(),
            "echo out; echo err >&2; exit 7".into(),
        ]);
        let script = w.command.strip_prefix("sh -c ").unwrap();
        let script = script.trim_matches('\'').replace(r"'\''", "'");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let (printed, code) = run(&w, &[&out.stdout]);
        assert_eq!(code, Some(7));
        assert_eq!(printed, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }
}
