//! The `cbreak` binary: parse, run, exit. Everything else is in the library.

fn main() -> std::process::ExitCode {
    cbreak::run(std::env::args_os()).end()
}
