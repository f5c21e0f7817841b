//! cbreak: run commands through a circuit breaker shared by every process on
//! the machine.
//!
//! The binary is a thin shell around [`run`]. The modules, one concept each:
//!
//! - [`cli`] and [`config`]: the command line, parsed once into plain values
//!   (and the completion scripts and man pages made from its definition);
//! - [`breaker`] (with [`window`] and [`history`]): the pure state machine
//!   and its policies, time injected, no I/O;
//! - [`record`]: one breaker's file — layout, mapping, locking, validation;
//! - [`store`]: the state directory — names, listing, corrupt records;
//! - [`exec`]: spawning, signals, timeouts, exit statuses;
//! - [`host`]: the clock and process identity behind the machine;
//! - [`output`], [`metrics`], [`hooks`]: what cbreak tells people and tools;
//! - [`app`]: what each subcommand does; [`exit`]: how cbreak ends.

pub mod app;
pub mod breaker;
pub mod cli;
pub mod config;
pub mod exec;
pub mod exit;
pub mod history;
pub mod hooks;
pub mod host;
pub mod metrics;
pub mod output;
pub mod record;
pub mod store;
pub mod window;

use std::ffi::OsString;

use crate::exit::Exit;

/// Parses `args` (program name first), carries them out, and says how to
/// exit. Usage errors exit 125, not clap's 2, which a wrapped command may
/// use itself.
pub fn run(args: impl IntoIterator<Item = OsString>) -> Exit {
    let cli = match cli::parse(args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match config::Config::from_cli(cli) {
        Ok(config) => app::execute(config),
        Err(msg) => {
            output::say(&msg);
            Exit::Error
        }
    }
}

fn usage_error(e: &clap::Error) -> Exit {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = output::print(&e.render().to_string());
            Exit::Success
        }
        _ => {
            // clap's message is several lines; keep the first, which says
            // what is wrong, and point at the help.
            let text = e.render().to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            let tip = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("tip: "))
                .map(|t| format!("; {t}"))
                .unwrap_or_default();
            output::say(&format!("{first}{tip} (see 'cbreak --help')"));
            Exit::Error
        }
    }
}
