//! What cbreak prints: messages on stderr, and `status` for people and for
//! programs.
//!
//! Owns wording and formatting only. Rendering functions take the current
//! time and the terminal's abilities as arguments, so their output is fixed
//! in tests; deciding those abilities (is stdout a terminal, the colour
//! variables, the locale) happens once, in [`Style::detect`].

use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::breaker::{Backoff, BreakerState, Millis, Mode, Reason, State, Window};

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

/// RFC 3339 in UTC with milliseconds.
pub fn rfc3339(ms: Millis) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.min(253_402_300_799_000));
    humantime::format_rfc3339_millis(t).to_string()
}

/// How the human output may look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
    pub unicode: bool,
}

impl Style {
    /// Unicode symbols on a terminal whose locale is UTF-8 (`ascii`
    /// overrides); colour as [`color_wanted`] decides.
    pub fn detect(color: Option<bool>, ascii: Option<bool>) -> Style {
        let tty = std::io::stdout().is_terminal();
        let utf8 = ["LC_ALL", "LC_CTYPE", "LANG"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .is_some_and(|v| {
                let v = v.to_ascii_lowercase();
                v.contains("utf-8") || v.contains("utf8")
            });
        Style {
            color: color_wanted(color, |k| std::env::var_os(k), tty),
            unicode: !ascii.unwrap_or(false) && tty && utf8,
        }
    }
}

/// Whether to colour, the first rule that applies winning:
///
/// 1. `--color always` or `--color never` (`flag`);
/// 2. `NO_COLOR` set and not empty: no colour (<https://no-color.org>);
/// 3. `CLICOLOR_FORCE` set, not empty and not `0`: colour, even when piped;
/// 4. `CLICOLOR=0`: no colour (<https://bixense.com/clicolors/>);
/// 5. `TERM=dumb`: no colour;
/// 6. otherwise colour exactly when stdout is a terminal.
pub fn color_wanted(
    flag: Option<bool>,
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
    tty: bool,
) -> bool {
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(forced) = flag {
        return forced;
    }
    if set("NO_COLOR").is_some() {
        return false;
    }
    if set("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
        return true;
    }
    if set("CLICOLOR").is_some_and(|v| v == "0") {
        return false;
    }
    if set("TERM").is_some_and(|v| v == "dumb") {
        return false;
    }
    tty
}

fn paint(state: State, text: &str, style: Style) -> String {
    if !style.color {
        return text.to_string();
    }
    let code = match state {
        State::Closed => "32",
        State::Open => "31",
        State::HalfOpen => "33",
        State::ForcedOpen => "35",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// What is due next, for people: "next probe in 24s", "probe running".
fn when(s: &BreakerState, now: Millis) -> String {
    match s.state {
        State::Closed => String::new(),
        State::Open => format!(
            "next probe {}, opened {}",
            relative(s.next_probe_at, now),
            relative(s.opened_at, now)
        ),
        State::HalfOpen if s.probe.is_some() => "probe running".to_string(),
        State::HalfOpen => "next call probes".to_string(),
        State::ForcedOpen => format!("until reset, opened {}", relative(s.opened_at, now)),
    }
}

fn state_label(s: &BreakerState) -> String {
    match s.mode {
        Mode::Normal => s.state.as_str().to_string(),
        Mode::Disabled => format!("{} (disabled)", s.state.as_str()),
    }
}

/// The aligned table of all breakers.
pub fn table(breakers: &[(String, BreakerState)], now: Millis, style: Style) -> String {
    let header = ["NAME", "STATE", "FAILURES", "CALLS", "REJECTED", "WHEN"];
    let rows: Vec<[String; 6]> = breakers
        .iter()
        .map(|(name, s)| {
            [
                name.clone(),
                state_label(s),
                match s.policy.threshold {
                    0 => s.consecutive_failures.to_string(),
                    t => format!("{}/{t}", s.consecutive_failures),
                },
                s.counters.calls.to_string(),
                s.counters.rejected.to_string(),
                when(s, now),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 6], state: Option<State>| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let text = match (i, state) {
                (1, Some(st)) => paint(st, cell, style),
                _ => cell.to_string(),
            };
            l.push_str(&text);
            if i + 1 < cells.len() {
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header, None);
    for ((_, s), row) in breakers.iter().zip(&rows) {
        line(row.each_ref().map(String::as_str), Some(s.state));
    }
    out
}

/// The recent outcomes as a strip, oldest first.
pub fn strip(s: &BreakerState, style: Style) -> String {
    let (ok, bad) = if style.unicode {
        ('✓', '✗')
    } else {
        ('+', 'x')
    };
    s.recent
        .oldest_first()
        .into_iter()
        .map(|failed| if failed { bad } else { ok })
        .collect()
}

/// One breaker in detail.
pub fn detail(name: &str, s: &BreakerState, now: Millis, style: Style) -> String {
    let p = &s.policy;
    let c = &s.counters;
    let mut rows: Vec<(&str, String)> = Vec::new();
    let due = when(s, now);
    rows.push((
        "state",
        if due.is_empty() {
            paint(s.state, s.state.as_str(), style)
        } else {
            format!("{} ({due})", paint(s.state, s.state.as_str(), style))
        },
    ));
    rows.push(("mode", s.mode.as_str().to_string()));
    rows.push((
        "failures",
        match p.threshold {
            0 => format!("{} consecutive (no threshold)", s.consecutive_failures),
            t => format!("{} consecutive (opens at {t})", s.consecutive_failures),
        },
    ));
    rows.push((
        "calls",
        format!(
            "{} ({} succeeded, {} failed, {} ignored, {} cancelled; {} slow, {} timed out)",
            c.calls, c.successes, c.failures, c.ignored, c.cancelled, c.slow, c.timeouts
        ),
    ));
    rows.push(("rejected", c.rejected.to_string()));
    if let Some(rate) = p.failure_rate {
        let t = s.window_tally(now);
        let window = match p.window {
            Window::Count(n) => format!("last {n} calls"),
            Window::Time(ms) => format!("last {}", span(ms)),
            Window::None => "no window".to_string(),
        };
        rows.push((
            "window",
            format!(
                "{} failed of {} ({}%) over the {window}; opens at {}% from {} calls",
                t.failures,
                t.calls,
                t.percent(),
                percent(rate),
                p.min_calls
            ),
        ));
    }
    let mut recovery = format!("{} (base {}", span(s.recovery), span(p.recovery));
    if p.backoff == Backoff::Exponential {
        recovery.push_str(&format!(
            ", exponential ×{} up to {}",
            p.backoff_factor_milli as f64 / 1000.0,
            span(p.max_recovery)
        ));
    }
    if p.jitter_percent > 0 {
        recovery.push_str(&format!(", jitter ±{}%", p.jitter_percent));
    }
    recovery.push_str(&format!("; reopened {} times)", s.reopens));
    rows.push(("recovery", recovery));
    if p.probes > 1 || s.state == State::HalfOpen {
        rows.push((
            "probes",
            format!("{} of {} succeeded", s.probe_successes, p.probes),
        ));
    }
    let mut limits = Vec::new();
    if let Some(t) = p.timeout {
        limits.push(format!(
            "timeout {} (kill after {})",
            span(t),
            span(p.kill_after)
        ));
    }
    if let Some(slow) = p.slow {
        limits.push(format!("slow over {}", span(slow)));
    }
    limits.push(format!("success codes {}", p.success_codes.to_list()));
    if !p.ignore_codes.is_empty() {
        limits.push(format!("ignored codes {}", p.ignore_codes.to_list()));
    }
    rows.push(("calls judged", limits.join(", ")));
    let recent = strip(s, style);
    rows.push((
        "recent",
        if recent.is_empty() {
            "(none yet)".to_string()
        } else {
            recent
        },
    ));
    let mut out = format!("{name}\n");
    for (k, v) in rows {
        out.push_str(&format!("  {:<13} {v}\n", format!("{k}:")));
    }
    let history = s.history.oldest_first();
    if !history.is_empty() {
        out.push_str("  transitions:\n");
        let arrow = if style.unicode { "→" } else { "->" };
        let ago: Vec<String> = history.iter().map(|t| relative(t.at, now)).collect();
        let width = ago.iter().map(String::len).max().unwrap_or(0);
        for (t, ago) in history.iter().zip(ago).rev() {
            let to = format!("{:<11}", t.to.as_str());
            out.push_str(&format!(
                "    {ago:<width$}  {:<11} {arrow} {}  {}\n",
                t.from.as_str(),
                paint(t.to, &to, style),
                reason(t.reason)
            ));
        }
    }
    out
}

fn percent(bp: u32) -> String {
    if bp.is_multiple_of(100) {
        (bp / 100).to_string()
    } else {
        format!("{:.2}", f64::from(bp) / 100.0)
    }
}

/// The version of `status --json`'s format, its first key. It goes up
/// when a key is removed, renamed or changes meaning; adding a key does not
/// change it.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// The JSON form of one breaker; its keys are a contract, described field
/// by field in `status.schema.json` (checked by `tests/schema.rs`).
#[derive(Serialize)]
pub struct Json<'a> {
    schema_version: u32,
    name: &'a str,
    state: &'static str,
    mode: &'static str,
    consecutive_failures: u64,
    threshold: u32,
    recovery_ms: u64,
    base_recovery_ms: u64,
    reopens: u64,
    calls: u64,
    successes: u64,
    failures: u64,
    ignored: u64,
    cancelled: u64,
    rejected: u64,
    slow: u64,
    timeouts: u64,
    opened_at: Option<String>,
    next_probe_at: Option<String>,
    probe_in_flight: bool,
    probe_successes: u64,
    calls_in_window: u64,
    failures_in_window: u64,
    policy: JsonPolicy,
    recent_outcomes: Vec<&'static str>,
    transitions: Vec<JsonTransition>,
    transitions_total: JsonTotals,
    updated_at: Option<String>,
    last_success_at: Option<String>,
    last_failure_at: Option<String>,
}

#[derive(Serialize)]
struct JsonPolicy {
    failure_rate_percent: Option<f64>,
    window_size_calls: Option<u32>,
    window_size_ms: Option<u64>,
    min_calls: u32,
    timeout_ms: Option<u64>,
    kill_after_ms: u64,
    slow_ms: Option<u64>,
    success_codes: String,
    ignore_codes: String,
    backoff: &'static str,
    backoff_factor: f64,
    max_recovery_ms: u64,
    jitter_percent: u32,
    probes: u32,
}

#[derive(Serialize)]
struct JsonTransition {
    at: String,
    from: &'static str,
    to: &'static str,
    reason: String,
    consecutive_failures: u64,
}

#[derive(Serialize)]
struct JsonTotals {
    closed: u64,
    open: u64,
    half_open: u64,
    forced_open: u64,
}

pub fn json<'a>(name: &'a str, s: &BreakerState, now: Millis) -> Json<'a> {
    let p = &s.policy;
    let c = &s.counters;
    let t = s.window_tally(now);
    Json {
        schema_version: JSON_SCHEMA_VERSION,
        name,
        state: s.state.as_str(),
        mode: s.mode.as_str(),
        consecutive_failures: s.consecutive_failures,
        threshold: p.threshold,
        recovery_ms: s.recovery,
        base_recovery_ms: p.recovery,
        reopens: s.reopens,
        calls: c.calls,
        successes: c.successes,
        failures: c.failures,
        ignored: c.ignored,
        cancelled: c.cancelled,
        rejected: c.rejected,
        slow: c.slow,
        timeouts: c.timeouts,
        opened_at: s.opened().map(rfc3339),
        next_probe_at: s.next_probe().map(rfc3339),
        probe_in_flight: s.probe.is_some(),
        probe_successes: s.probe_successes,
        calls_in_window: t.calls,
        failures_in_window: t.failures,
        policy: JsonPolicy {
            failure_rate_percent: p.failure_rate.map(|bp| f64::from(bp) / 100.0),
            window_size_calls: match p.window {
                Window::Count(n) => Some(n),
                _ => None,
            },
            window_size_ms: match p.window {
                Window::Time(ms) => Some(ms),
                _ => None,
            },
            min_calls: p.min_calls,
            timeout_ms: p.timeout,
            kill_after_ms: p.kill_after,
            slow_ms: p.slow,
            success_codes: p.success_codes.to_list(),
            ignore_codes: p.ignore_codes.to_list(),
            backoff: p.backoff.as_str(),
            backoff_factor: f64::from(p.backoff_factor_milli) / 1000.0,
            max_recovery_ms: p.max_recovery,
            jitter_percent: p.jitter_percent,
            probes: p.probes,
        },
        recent_outcomes: s
            .recent
            .oldest_first()
            .into_iter()
            .map(|failed| if failed { "failure" } else { "success" })
            .collect(),
        transitions: s
            .history
            .oldest_first()
            .into_iter()
            .map(|t| JsonTransition {
                at: rfc3339(t.at),
                from: t.from.as_str(),
                to: t.to.as_str(),
                reason: reason(t.reason),
                consecutive_failures: t.consecutive_failures,
            })
            .collect(),
        transitions_total: JsonTotals {
            closed: s.transitions[State::Closed.index()],
            open: s.transitions[State::Open.index()],
            half_open: s.transitions[State::HalfOpen.index()],
            forced_open: s.transitions[State::ForcedOpen.index()],
        },
        updated_at: (s.updated_at > 0).then(|| rfc3339(s.updated_at)),
        last_success_at: (s.last_success_at > 0).then(|| rfc3339(s.last_success_at)),
        last_failure_at: (s.last_failure_at > 0).then(|| rfc3339(s.last_failure_at)),
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
    use crate::breaker::tests::FakeHost;
    use crate::breaker::{Admission, Call, Outcome, Policy};

    const NOW: Millis = 1_764_000_000_000;

    fn sample() -> (BreakerState, BreakerState) {
        let p = Policy {
            threshold: 3,
            ..Policy::default()
        };
        let mut h = FakeHost::at(NOW - 200_000);
        let mut open = BreakerState::new(h.now, 1, p);
        for outcome in [
            Outcome::Success,
            Outcome::Failure,
            Outcome::Success,
            Outcome::Failure,
            Outcome::Failure,
        ] {
            h.now += 1000;
            if let (Admission::Run(t), _) = open.admit(&p, &mut h) {
                open.record(
                    t,
                    Call {
                        outcome,
                        slow: false,
                        timed_out: false,
                    },
                    &mut h,
                );
            }
        }
        h.now = NOW - 6_000;
        open.trip(Some(30_000), h.now);
        let mut closed = BreakerState::new(NOW - 10_000, 1, Policy::default());
        closed.counters.calls = 120;
        closed.counters.successes = 120;
        (open, closed)
    }

    #[test]
    fn colour_rules_apply_in_their_documented_order() {
        let wanted = |flag: Option<bool>, vars: &[(&str, &str)], tty: bool| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            color_wanted(
                flag,
                |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.into()),
                tty,
            )
        };
        // The flag beats every variable.
        assert!(wanted(
            Some(true),
            &[("NO_COLOR", "1"), ("TERM", "dumb")],
            false
        ));
        assert!(!wanted(Some(false), &[("CLICOLOR_FORCE", "1")], true));
        // NO_COLOR beats CLICOLOR_FORCE; an empty NO_COLOR is unset.
        assert!(!wanted(
            None,
            &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")],
            true
        ));
        assert!(wanted(
            None,
            &[("NO_COLOR", ""), ("CLICOLOR_FORCE", "1")],
            false
        ));
        // CLICOLOR_FORCE beats CLICOLOR=0, TERM=dumb and a pipe; 0 is off.
        assert!(wanted(
            None,
            &[("CLICOLOR_FORCE", "1"), ("CLICOLOR", "0"), ("TERM", "dumb")],
            false
        ));
        assert!(!wanted(None, &[("CLICOLOR_FORCE", "0")], false));
        // CLICOLOR=0 and TERM=dumb turn a terminal's colour off.
        assert!(!wanted(None, &[("CLICOLOR", "0")], true));
        assert!(wanted(None, &[("CLICOLOR", "1")], true));
        assert!(!wanted(None, &[("TERM", "dumb")], true));
        assert!(wanted(None, &[("TERM", "xterm-256color")], true));
        // Otherwise: a terminal.
        assert!(wanted(None, &[], true));
        assert!(!wanted(None, &[], false));
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
    fn table_snapshot() {
        let (open, closed) = sample();
        let out = table(
            &[("api".into(), open), ("backup-offsite".into(), closed)],
            NOW,
            Style {
                color: false,
                unicode: false,
            },
        );
        assert_eq!(
            out,
            "\
NAME            STATE   FAILURES  CALLS  REJECTED  WHEN
api             open    2/3       5      0         next probe in 24s, opened 6s ago
backup-offsite  closed  0/5       120    0
"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let (open, _) = sample();
        let plain = table(
            &[("a".into(), open)],
            NOW,
            Style {
                color: false,
                unicode: false,
            },
        );
        assert!(!plain.contains('\x1b'));
        let coloured = table(
            &[("a".into(), open)],
            NOW,
            Style {
                color: true,
                unicode: false,
            },
        );
        assert!(coloured.contains("\x1b[31mopen\x1b[0m"));
    }

    #[test]
    fn detail_snapshot() {
        let (open, _) = sample();
        let out = detail(
            "api",
            &open,
            NOW,
            Style {
                color: false,
                unicode: true,
            },
        );
        assert_eq!(
            out,
            "\
api
  state:        open (next probe in 24s, opened 6s ago)
  mode:         normal
  failures:     2 consecutive (opens at 3)
  calls:        5 (2 succeeded, 3 failed, 0 ignored, 0 cancelled; 0 slow, 0 timed out)
  rejected:     0
  recovery:     30s (base 30s; reopened 0 times)
  calls judged: success codes 0
  recent:       ✓✗✓✗✗
  transitions:
    6s ago  closed      → open         tripped by hand for 30s
"
        );
        let ascii = detail(
            "api",
            &open,
            NOW,
            Style {
                color: false,
                unicode: false,
            },
        );
        assert!(ascii.contains("recent:       +x+xx"));
        assert!(ascii.contains("closed      -> open"));
    }

    #[test]
    fn json_keys_and_times() {
        let (open, _) = sample();
        let v = serde_json::to_value(json("api", &open, NOW)).unwrap();
        assert_eq!(v["state"], "open");
        assert_eq!(v["next_probe_at"], rfc3339(NOW + 24_000));
        assert_eq!(v["recent_outcomes"][1], "failure");
        assert_eq!(v["transitions"][0]["to"], "open");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
