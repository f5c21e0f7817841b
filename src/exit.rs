//! cbreak's exit statuses, and the one place that maps them to numbers.
//!
//! They follow timeout(1) (coreutils), which is what people already put in
//! crontabs: 124 timed out, 125 the wrapper's own error, 126 cannot execute,
//! 127 not found; otherwise the command's own status passes through, and
//! a death by signal N is passed on by dying of N (128+N when that is not
//! possible), as is a SIGINT, SIGTERM, SIGHUP or SIGQUIT that stopped
//! cbreak. Skipping an open breaker is 75 (EX_TEMPFAIL
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
    /// The command's own exit status.
    Child(i32),
    /// Die of signal N: the command died of it (and did not time out), or
    /// cbreak was stopped by it. 128+N if cbreak cannot die of it.
    Killed(i32),
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
            Exit::Killed(sig) => u8::try_from(128 + sig).unwrap_or(1),
        }
    }

    /// Ends the process as `self` says: for [`Exit::Killed`] by dying of
    /// the signal, so that a shell sees the death it would see without
    /// cbreak (bash stops a loop only when its child *died of* SIGINT);
    /// otherwise, or if that fails, by returning the exit status.
    pub fn end(self) -> std::process::ExitCode {
        std::process::ExitCode::from(self.status())
    }

    /// [`Exit::end`] for C's `main` (see `start`): dies of the signal of
    /// [`Exit::Killed`], or returns the exit status.
    pub fn status(self) -> u8 {
        if let Exit::Killed(sig) = self {
            crate::exec::die_of(sig);
        }
        self.code()
    }
}
