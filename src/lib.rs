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
//! The `cbreak` binary is a thin shell around [`run`]; README.md is its
//! user's guide. Everything else in the crate is its machinery, not part of
//! the API.

#![warn(missing_docs)]

// The modules, one concept each (ARCHITECTURE.md has the map, the direction
// of dependencies, and where a new option, policy, store or output goes).
// Only the API above is public; the modules that tests, benchmarks and fuzz
// targets reach into are `#[doc(hidden)] pub`, the rest `pub(crate)`:
//
// - `cli`: the command line's definition (clap, and only here), with
//   `run`'s options declared once and a lean parser for `run`; `config`
//   turns it into plain values once; `value` parses single values for
//   both;
// - `breaker` (with `window`): the pure state machine, its policies
//   and its history, time injected, no I/O;
// - `record`: one breaker's file — its codec (no I/O), mapping, locking,
//   validation; `fault` turns a fault on its mapped pages into an error;
// - `store`: where states are kept — the `store::Store` interface,
//   breaker names, and the two stores behind it: the state directory, and
//   a Redis or Valkey server shared by machines (`--store`, `store::fleet`);
// - `exec`: spawning, signals, timeouts, exit statuses;
// - `host`: the clock and process identity behind the machine;
// - `output`, `metrics`, `hooks`: what cbreak tells people and tools;
// - `app`: what each subcommand does; `exit`: how cbreak ends;
// - `util`: small helpers that depend on nothing else here;
// - `api`: the library API, `Breaker` and its types.

mod api;
pub(crate) mod app;
#[doc(hidden)]
pub mod breaker;
#[doc(hidden)]
pub mod cli;
pub(crate) mod config;
pub(crate) mod engine;
pub(crate) mod exec;
#[doc(hidden)]
pub mod exit;
pub(crate) mod fault;
pub(crate) mod hooks;
#[doc(hidden)]
pub mod host;
pub(crate) mod metrics;
pub(crate) mod output;
#[doc(hidden)]
pub mod record;
pub(crate) mod spec;
#[doc(hidden)]
pub mod start;
#[doc(hidden)]
pub mod store;
pub(crate) mod util;
#[doc(hidden)]
pub mod value;
pub(crate) mod window;

use std::ffi::OsString;

pub use crate::api::{
    Backoff, Breaker, Builder, Error, ExecuteError, Permit, Rejected, State, Stats,
};

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
pub fn run(args: impl IntoIterator<Item = OsString>) -> Exit {
    let args: Vec<OsString> = args.into_iter().collect();
    let cli = match cli::parse_or_explain(&args) {
        Ok(cli) => cli,
        Err(cli::usage::Usage::Print(text)) => {
            return match output::print(&text) {
                Ok(()) => Exit::Success,
                Err(e) => {
                    output::say(&format!("cannot write to stdout: {e}"));
                    Exit::Error
                }
            };
        }
        Err(cli::usage::Usage::Error(line)) => {
            output::say(&line);
            return Exit::Error;
        }
    };
    match config::Config::from_cli(cli) {
        Ok(config) => app::execute(config),
        Err(msg) => {
            output::say(&cli::usage::name_variables(&msg, &args));
            Exit::Error
        }
    }
}
