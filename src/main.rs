//! The `cbreak` binary: parse, run, exit. Everything else is in the library.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(cbreak::run(std::env::args_os()).code())
}
