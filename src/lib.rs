//! cbreak: run commands through a circuit breaker shared by every process on
//! the machine.
//!
//! As a library, [`Breaker`] is the breaker in the vocabulary of an
//! in-process one (`should_allow_request`, `record_success`,
//! `record_failure`, `execute`), over the record the `cbreak` command uses:
//!
//! ```
//! # fn call() -> Result<u32, std::io::Error> { Ok(7) }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! use std::time::Duration;
//!
//! let dir = "/var/lib/myapp/breakers";            // or no state_dir: cbreak's own default
//! # let dir = tmp.path();
//! let breaker = cbreak::Breaker::builder("payments-api")
//!     .threshold(3)                               // consecutive failures
//!     .recovery(Duration::from_secs(30))
//!     .state_dir(dir)
//!     .build()?;
//! match breaker.should_allow_request() {
//!     Ok(permit) => match call() {
//!         Ok(_) => breaker.record_success(permit),
//!         Err(_) => breaker.record_failure(permit),
//!     },
//!     Err(rejected) => eprintln!("{rejected}"),   // says when the next probe is due
//! }
//! let v = breaker.execute(call)?;                 // the same in one call; not called while open
//! # assert_eq!(v, 7);
//! # Ok(()) }
//! ```
//!
//! The `cbreak` binary is a thin shell around `run` (feature `cli`);
//! README.md is its user's guide. Everything else in the crate is its
//! machinery, not part of the API.
//!
//! # Features
//!
//! - `cli` (default): the `cbreak` command and [`run`]-as-a-function.
//! - `redis` (default): the store shared by machines (`--store`).
//!
//! With `default-features = false` the library is the breaker over the
//! state directory alone, and compiles only `libc`, `fs2`, `memmap2` and
//! `bytemuck`.

#![warn(missing_docs)]
// Parts of the machine that only the command line uses (`cbreak record`,
// `disable`, timeouts) are unused in a library-only build. The build that
// judges dead code is the default one without `testing` (`cargo build`,
// and `cargo clippy --lib --bins` in CI).
#![cfg_attr(not(feature = "cli"), allow(dead_code, unused_imports))]

// The modules, one concept each (ARCHITECTURE.md has the map, the direction
// of dependencies, and where a new option, policy, store or output goes).
// Only the API above is public. The modules that the crate's own tests,
// benchmarks and fuzz targets reach into are public only with the
// `testing` feature (their dev-dependency on the crate turns it on), so
// that in every other build rustc sees what is used and what is dead.
//
// The library (always):
// - `api`: the library API, `Breaker` and its types;
// - `engine`: the protocol of a breaker's calls, beneath both front ends;
// - `spec`: a policy as a front end asks for it, checked once;
// - `breaker` (with `window`): the pure state machine, its policies
//   and its history, time injected, no I/O;
// - `store`: where states are kept — the `store::Store` interface,
//   breaker names, the state directory, and (feature `redis`) a Redis or
//   Valkey server shared by machines (`store::fleet`);
// - `record`: one breaker's file — its codec (no I/O), mapping, locking,
//   validation; `fault` turns a fault on its mapped pages into an error;
// - `host`: the clock and process identity behind the machine;
// - `output`: one-line messages and the words for spans and reasons;
// - `util`: small helpers that depend on nothing else here.
//
// The command line (feature `cli`):
// - `cli`: the command line, declared once in a table that drives its
//   parser, help, man pages and completions (clap renders, only here);
//   `config` turns it into plain values once; `value` parses single values;
// - `app`: what each subcommand does; `exit`: how cbreak ends; `start`:
//   how the process starts;
// - `exec`: spawning, signals, timeouts, exit statuses;
// - `status`, `metrics`, `hooks`: what cbreak shows people and tools.

/// A module that the crate's own tests, benchmarks and fuzz targets reach
/// into: public (and hidden from the docs) with the `testing` feature,
/// crate-private otherwise.
macro_rules! internal {
    ($(#[$attr:meta])* mod $name:ident;) => {
        $(#[$attr])*
        #[cfg(feature = "testing")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "testing"))]
        pub(crate) mod $name;
    };
}

mod api;
internal! { mod breaker; }
internal! { mod engine; }
pub(crate) mod fault;
internal! { mod host; }
pub(crate) mod output;
internal! { mod record; }
pub(crate) mod spec;
internal! { mod store; }
pub(crate) mod util;
pub(crate) mod window;

#[cfg(feature = "cli")]
pub(crate) mod app;
internal! {
    #[cfg(feature = "cli")]
    mod cli;
}
#[cfg(feature = "cli")]
pub(crate) mod config;
#[cfg(feature = "cli")]
pub(crate) mod exec;
// How `cbreak` ends: what `run` returns.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod exit;
#[cfg(feature = "cli")]
pub(crate) mod hooks;
#[cfg(feature = "cli")]
pub(crate) mod metrics;
// The `cbreak` process's start, for `src/main.rs`.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod start;
#[cfg(feature = "cli")]
pub(crate) mod status;
internal! {
    #[cfg(feature = "cli")]
    mod value;
}

#[cfg(feature = "cli")]
use std::ffi::OsString;

pub use crate::api::{
    Backoff, Breaker, Builder, Error, ExecuteError, Permit, Rejected, State, Stats,
};

#[cfg(feature = "cli")]
use crate::exit::Exit;

/// Parses `args` (program name first), carries them out, and says how to
/// exit: the `cbreak` command, as a function. Usage errors exit 125, not
/// clap's 2, which a wrapped command may use itself.
///
/// ```
/// // `cbreak name -- curl -fsS https://x` prints the breaker name `run` would use.
/// let exit = cbreak::run(["cbreak", "name", "--", "curl", "-fsS", "https://x"].map(Into::into));
/// assert_eq!(exit.end(), std::process::ExitCode::SUCCESS);
/// ```
#[cfg(feature = "cli")]
pub fn run(args: impl IntoIterator<Item = OsString>) -> Exit {
    let args: Vec<OsString> = args.into_iter().collect();
    let cli = match cli::parse::parse(args) {
        Ok(cli) => cli,
        Err(cli::parse::Usage::Print(text)) => {
            return match output::print(&text) {
                Ok(()) => Exit::Success,
                Err(e) => {
                    output::say(&format!("cannot write to stdout: {e}"));
                    Exit::Error
                }
            };
        }
        Err(cli::parse::Usage::Error(line)) => {
            output::say(&line);
            return Exit::Error;
        }
    };
    let from_env = cli.args.from_env.clone();
    match config::Config::from_cli(cli) {
        Ok(config) => app::execute(config),
        Err(msg) => {
            output::say(&cli::parse::name_variables(&msg, &from_env));
            Exit::Error
        }
    }
}
