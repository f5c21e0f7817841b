//! cbreak's exit statuses, and the one place that maps them to numbers.
//!
//! They follow timeout(1) (coreutils), which is what people already put in
//! crontabs: 124 timed out, 125 the wrapper's own error, 126 cannot execute,
//! 127 not found; otherwise the command's own status passes through, and
//! death by signal N is 128+N. Skipping an open breaker is 75 (EX_TEMPFAIL
//! in sysexits.h: "try again later"), or `--open-exit-code`.

/// How cbreak ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// A query found a problem (a corrupt record, a missing breaker).
    Problem,
    /// The command was skipped because the breaker is open.
    Skipped(u8),
    TimedOut,
    /// cbreak's own error: usage, bad name, `--on-state-error fail`.
    Error,
    CannotExecute,
    NotFound,
    /// The command's own status (already 128+N for a signal).
    Child(i32),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Problem => 1,
            Exit::Skipped(code) => code,
            Exit::TimedOut => 124,
            Exit::Error => 125,
            Exit::CannotExecute => 126,
            Exit::NotFound => 127,
            Exit::Child(code) => u8::try_from(code).unwrap_or(1),
        }
    }
}
