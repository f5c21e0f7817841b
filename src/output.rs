//! What cbreak says: one-line messages on stderr, text on stdout, and the
//! words both front ends use for spans of time and transitions' reasons.
//!
//! Owns wording only; the library's warnings and `Rejected` use it as the
//! command line does. The status views are `status`'s.

use std::io::Write;

use crate::breaker::{Millis, Reason};

/// cbreak was started with its stdout closed (`cbreak status >&-`): what
/// it prints there fails, as it would for any other program. (Descriptor
/// 1 is `/dev/null` by then, only so that no file cbreak opens takes it;
/// see `start`.)
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes that stdout was closed when cbreak started.
pub fn stdout_was_closed() {
    STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Writes `text` to stdout. A closed pipe (`cbreak list | head -1`) is not
/// an error: the reader has what it wanted.
pub fn print(text: &str) -> std::io::Result<()> {
    if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(std::io::Error::from_raw_os_error(libc::EBADF));
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Prints `cbreak: MSG` on stderr: an error, or news the user should see
/// (a skipped run, a breaker that opened).
pub fn say(msg: &str) {
    message("cbreak: ", msg);
}

/// Prints `cbreak: warning: MSG` on stderr.
pub fn warn(msg: &str) {
    message("cbreak: warning: ", msg);
}

/// Writes `PREFIX MSG` and its newline to stderr with one `write(2)`, looping
/// only on a short write: cron, CI and `parallel` give many jobs one stderr,
/// and a line written in pieces (`writeln!` writes each piece of its
/// format) is torn by another job's line landing between them. std's
/// stderr is unbuffered, so `write_all` is that one call.
fn message(prefix: &str, msg: &str) {
    let line = format!("{prefix}{}\n", one_line(msg));
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// The longest message line cbreak prints, in characters.
const MAX_LINE: usize = 2000;

/// A message as one line with no control characters: names, commands and
/// paths come from users (or attackers), and a newline or a terminal escape
/// in one must not forge a second message or drive the terminal.
///
/// A line longer than [`MAX_LINE`] characters (an argument of 100 KB
/// quoted back, twice) is cut there, saying so.
fn one_line(msg: &str) -> std::borrow::Cow<'_, str> {
    // Bidirectional controls reorder what follows them on a terminal.
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if let Some((cut, _)) = msg.char_indices().nth(MAX_LINE) {
        let total = msg.chars().count();
        let kept = one_line(&msg[..cut]);
        return format!("{kept}… (cut: the message was {total} characters long)").into();
    }
    if !msg.chars().any(unsafe_char) {
        return msg.into();
    }
    msg.chars()
        .map(|c| {
            if unsafe_char(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// A short span: `850ms`, `24s`, `3m12s`, `2h5m`, `3d4h`.
pub fn span(ms: Millis) -> String {
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms}ms"),
        0..60 => format!("{s}s"),
        60..3600 => trim_zero(format!("{}m{}s", s / 60, s % 60)),
        3600..86_400 => trim_zero(format!("{}h{}m", s / 3600, s % 3600 / 60)),
        _ => trim_zero(format!("{}d{}h", s / 86_400, s % 86_400 / 3600)),
    }
}

fn trim_zero(s: String) -> String {
    // "5m0s" reads better as "5m".
    match s
        .strip_suffix("0s")
        .or_else(|| s.strip_suffix("0m"))
        .or_else(|| s.strip_suffix("0h"))
    {
        Some(t) if t.ends_with(|c: char| c.is_ascii_alphabetic()) => t.to_string(),
        _ => s,
    }
}

/// "in 24s" for a time ahead of `now`, "24s ago" for one behind.
pub fn relative(at: Millis, now: Millis) -> String {
    if at >= now {
        format!("in {}", span(at - now))
    } else {
        format!("{} ago", span(now - at))
    }
}

/// A transition's reason, for people and hooks: "3 consecutive failures".
pub fn reason(r: Reason) -> String {
    match r {
        Reason::ConsecutiveFailures(1) => "1 failure".to_string(),
        Reason::ConsecutiveFailures(n) => format!("{n} consecutive failures"),
        Reason::FailureRate { percent, calls } => {
            format!("failure rate {percent}% over {calls} calls")
        }
        Reason::RecoveryElapsed => "recovery period elapsed".to_string(),
        Reason::ProbeSucceeded => "probe succeeded".to_string(),
        Reason::ProbeFailed => "probe failed".to_string(),
        Reason::Tripped => "tripped by hand".to_string(),
        Reason::TrippedFor(ms) => format!("tripped by hand for {}", span(ms)),
        Reason::Reset => "reset".to_string(),
        Reason::Disabled => "disabled".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_764_000_000_000;

    #[test]
    fn a_huge_message_is_cut_and_says_so() {
        let name = "n".repeat(100_000);
        let line = one_line(&format!("invalid name '{name}'; invalid name '{name}'")).into_owned();
        assert!(line.chars().count() < MAX_LINE + 80, "{}", line.len());
        assert!(line.starts_with("invalid name 'nnn"));
        assert!(
            line.ends_with("(cut: the message was 200032 characters long)"),
            "{line:.80}"
        );
        // Cut on a character boundary, escaping still applied.
        let line = one_line(&format!("\n{}", "é".repeat(3000))).into_owned();
        assert!(
            line.starts_with("\\né") && line.ends_with("characters long)"),
            "{line:.20}"
        );
        assert_eq!(one_line("short"), "short");
    }
    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(850), "850ms");
        assert_eq!(span(24_000), "24s");
        assert_eq!(span(192_000), "3m12s");
        assert_eq!(span(300_000), "5m");
        assert_eq!(span(7_500_000), "2h5m");
        assert_eq!(span(3_600_000), "1h");
        assert_eq!(span(100_800_000), "1d4h");
        assert_eq!(relative(NOW + 24_000, NOW), "in 24s");
        assert_eq!(relative(NOW - 180_000, NOW), "3m ago");
    }
}
