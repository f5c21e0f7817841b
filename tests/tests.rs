//! Integration tests: the real `cbreak` binary in temporary state
//! directories. One test binary, one module per area.

mod util;

mod api;
mod architecture;
mod chaos;
mod colour;
mod completions;
mod concurrency;
mod crash;
mod disk;
mod fleet;
mod fleet_cli;
mod generated;
mod hardening;
mod name;
mod observe;
mod packaging;
mod policies;
mod readme;
mod redis_server;
mod run;
mod schema;
mod signals;
mod state_errors;
mod static_binary;
mod status;
mod terminal;
