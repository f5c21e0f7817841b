//! What cbreak says: one-line messages on stderr, text on stdout, and the
//! words both front ends use for spans of time and transitions' reasons.
//!
//! Owns wording only; the library's warnings and `Rejected` use it as the
//! command line does. The status views are `status`'s.

use std::fmt;
use std::io::Write;

use crate::breaker::{Millis, Reason};
#[cfg(feature = "redis")]
use crate::store::fleet::{FleetError, server::Problem};
use crate::store::{Event, Location, Refusal, StoreError};

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

/// What a front end calls the settings and commands that a message about
/// the store points its user to: the command line's options and
/// subcommands ([`COMMAND`]), or the builder's methods ([`LIBRARY`]).
pub struct Voice {
    /// Choosing another state directory: `--state-dir`.
    pub state_dir: &'static str,
    /// An example of one of your own: `--state-dir ~/.local/state/cbreak`.
    pub own_state_dir: &'static str,
    /// Waiting longer for a record's lock: `--lock-timeout`.
    pub lock_timeout: &'static str,
    /// Allowing a network file system: `--allow-network-fs`.
    pub allow_network_fs: &'static str,
    /// Waiting longer for the server: `--store-timeout`.
    pub store_timeout: &'static str,
    /// Where the breakers are listed, if the front end has such a place.
    pub listing: Option<&'static str>,
    /// Who next sets a damaged value aside: "the next 'cbreak run'".
    pub next_writer: &'static str,
}

/// The command line's words.
pub const COMMAND: Voice = Voice {
    state_dir: "--state-dir",
    own_state_dir: "--state-dir ~/.local/state/cbreak",
    lock_timeout: "--lock-timeout",
    allow_network_fs: "--allow-network-fs",
    store_timeout: "--store-timeout",
    listing: Some("run 'cbreak list' to see the breakers there"),
    next_writer: "the next 'cbreak run'",
};

/// The library's words: its builder's methods.
pub const LIBRARY: Voice = Voice {
    state_dir: "state_dir",
    own_state_dir: "state_dir(\"/home/you/.local/state/cbreak\")",
    lock_timeout: "lock_timeout",
    allow_network_fs: "allow_network_fs(true)",
    store_timeout: "the store's timeout",
    listing: None,
    next_writer: "the next call",
};

/// `e` in `voice`'s words.
pub fn store_error(e: &StoreError, voice: &Voice) -> String {
    let v = voice;
    match e {
        StoreError::NotFound { name, store } => match v.listing {
            Some(listing) => format!("no breaker named '{name}' in {store} ({listing})"),
            None => format!("no breaker named '{name}' in {store}"),
        },
        StoreError::Corrupt { at, why } => format!(
            "record {at} is corrupt ({why}); {} moves it aside and starts afresh",
            v.next_writer
        ),
        StoreError::NoStateDir => format!(
            "no state directory: HOME is not set (or not an absolute path); give {} DIR or set CBREAK_STATE_DIR",
            v.state_dir
        ),
        StoreError::Refused { dir, why } => format!(
            "refusing the state directory {}: {}",
            dir.display(),
            refusal(why, v)
        ),
        StoreError::Untrusted { at, why } => format!(
            "refusing the record {at}: {why}; delete it if you do not know where it came from"
        ),
        StoreError::Busy { at, waited } => format!(
            "another process has held the lock on {at} for over {}; if no cbreak is working on it, find the holder with 'fuser -v {at}' ({} waits longer)",
            span(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)),
            v.lock_timeout
        ),
        StoreError::Foreign { at, why } => format!(
            "{at} is not a cbreak record ({why}); cbreak leaves it alone: move it away, or use another state directory ({})",
            v.state_dir
        ),
        StoreError::Newer { at, version } => format!(
            "record {at} has format version {version}, newer than this cbreak understands; upgrade cbreak"
        ),
        StoreError::Contended { at, waited } => match at {
            Location::Path(path) => format!(
                "cannot lock {}: the record kept being replaced while cbreak tried to lock it",
                path.display()
            ),
            _ => format!(
                "key {at} kept changing under this process for {}; too many processes are updating it at once",
                span(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX))
            ),
        },
        #[cfg(feature = "redis")]
        StoreError::Server(e) => fleet_error(e, v),
        StoreError::Io { at, what, err } => {
            let hint = match err.raw_os_error() {
                Some(libc::ELOOP) => " (it is a symlink; cbreak never follows one there)",
                Some(libc::ENOSPC) => " (ENOSPC: free some space on that disk)",
                _ => "",
            };
            format!("cannot {what} {at}: {err}{hint}")
        }
    }
}

fn refusal(why: &Refusal, v: &Voice) -> String {
    match why {
        Refusal::NotADirectory => "it is not a directory".to_string(),
        Refusal::WorldWritable { mode } => format!(
            "it is writable by every user (mode {mode:o}), so another user could create or replace your breakers; use a directory of your own (e.g. {}) or 'chmod o-w' it",
            v.own_state_dir
        ),
        Refusal::NotInGroup { gid, uid } => {
            format!("it is shared by group gid {gid}, and you (uid {uid}) are not a member")
        }
        Refusal::GroupWritable { gid } => format!(
            "it is writable by its group (gid {gid}) but is not a shared group directory; 'chmod g-w' it, or make it one with 'chmod 2770'"
        ),
        Refusal::Owner { owner, uid } => format!(
            "it belongs to uid {owner}, not to you (uid {uid}); a directory shared by a group must be setgid and group-writable (chmod 2770)"
        ),
        Refusal::SymlinkOwner { owner, uid } => {
            format!("it is a symlink that belongs to uid {owner}, not to you (uid {uid})")
        }
        Refusal::NetworkFs { kind } => format!(
            "it is on {kind}, where file locks and shared memory maps may not be coherent between machines; use a local directory, or {} if only this machine uses it",
            v.allow_network_fs
        ),
        Refusal::DanglingSymlink { target } => format!(
            "it is a symlink to {}, which does not exist; make that directory, or remove the symlink",
            target.display()
        ),
        Refusal::WontCreate { uid, inside, owner } => format!(
            "it does not exist, and cbreak (uid {uid}) will not create it inside {}, which belongs to uid {owner}; give {} (e.g. a directory of your own)",
            inside.display(),
            v.state_dir
        ),
    }
}

/// A shared store's error in `v`'s words.
#[cfg(feature = "redis")]
fn fleet_error(e: &FleetError, v: &Voice) -> String {
    match e {
        FleetError::Server { store, problem } => {
            format!("store {store}: {}", fleet_problem(problem, v))
        }
        // A missing, damaged or newer breaker is what it is in any store.
        FleetError::NotFound { .. } | FleetError::Corrupt { .. } | FleetError::Newer { .. } => {
            store_error(&StoreError::from(e.clone()), v)
        }
    }
}

#[cfg(feature = "redis")]
fn fleet_problem(p: &Problem, v: &Voice) -> String {
    match p {
        Problem::Unreachable(why) => format!("cannot reach the server: {why}"),
        Problem::Silent { within, tls } => format!(
            "cannot reach the server: no answer within {} ({}){}",
            span(u64::try_from(within.as_millis()).unwrap_or(u64::MAX)),
            v.store_timeout,
            if *tls { "; is that a TLS port?" } else { "" }
        ),
        Problem::Auth(why) => {
            format!("authentication failed ({why}); check the user name and password in the URL")
        }
        Problem::WrongDb(why) => format!(
            "the server refused the database in the URL ({why}); use a number below its 'databases' setting"
        ),
        Problem::ReadOnly => {
            "the server is a read-only replica; point the store at the primary".to_string()
        }
        Problem::NotRedis(why) => format!(
            "the server does not answer as Redis or Valkey do ({why}); is that the right host and port?"
        ),
        Problem::Tls(why) => format!("TLS failed: {why}"),
        Problem::Denied(why) => format!(
            "the server refused a command ({why}); the user needs EVALSHA, EVAL, SCRIPT, GET, SET, TYPE, TIME, RENAME, DEL, EXISTS and SCAN on the key prefix"
        ),
        Problem::Other(why) => why.clone(),
    }
}

/// The library speaks of the store in its own words.
impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&store_error(self, &LIBRARY))
    }
}

#[cfg(feature = "redis")]
impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fleet_error(self, &LIBRARY))
    }
}

/// What the store did, for people (both front ends alike).
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::SetAside { at, aside, why } => match (at, aside) {
                (Location::Key { key, .. }, Location::Key { key: aside, .. }) => write!(
                    f,
                    "key {key} did not hold a usable cbreak record ({why}); kept it as {aside} and started a fresh breaker"
                ),
                _ => write!(
                    f,
                    "record {at} was corrupt ({why}); kept it as {aside} and started a fresh breaker"
                ),
            },
        }
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

    #[test]
    fn the_library_speaks_of_the_store_without_the_command_lines_words() {
        use std::path::PathBuf;
        let at = || Location::Path(PathBuf::from("/s/api"));
        let dir = PathBuf::from("/s");
        let errors = [
            StoreError::NotFound {
                name: "api".into(),
                store: Location::Path(dir.clone()),
            },
            StoreError::Corrupt {
                at: at(),
                why: "checksum".into(),
            },
            StoreError::NoStateDir,
            StoreError::Busy {
                at: at(),
                waited: std::time::Duration::from_secs(5),
            },
            StoreError::Foreign {
                at: at(),
                why: "x".into(),
            },
            StoreError::Refused {
                dir: dir.clone(),
                why: Refusal::WorldWritable { mode: 0o777 },
            },
            StoreError::Refused {
                dir: dir.clone(),
                why: Refusal::NetworkFs { kind: "nfs".into() },
            },
            StoreError::Refused {
                dir,
                why: Refusal::WontCreate {
                    uid: 1,
                    inside: "/".into(),
                    owner: 2,
                },
            },
        ];
        for e in &errors {
            let library = e.to_string();
            assert!(
                !library.contains("--") && !library.contains("'cbreak "),
                "{library}"
            );
            assert_ne!(library, store_error(e, &COMMAND));
        }
        assert_eq!(
            store_error(&errors[3], &COMMAND),
            "another process has held the lock on /s/api for over 5s; if no cbreak is working on it, find the holder with 'fuser -v /s/api' (--lock-timeout waits longer)"
        );
        assert!(
            errors[3]
                .to_string()
                .ends_with("(lock_timeout waits longer)")
        );
    }
}
