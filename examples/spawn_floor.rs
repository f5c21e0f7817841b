//! The floor for `cbreak run`'s closed path: spawn argv, wait, exit with its
//! status, nothing else. Built with cbreak's release profile by the
//! overhead benchmark (`cargo build --release --examples`).

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        std::process::exit(2);
    };
    let status = std::process::Command::new(program).args(args).status();
    std::process::exit(status.ok().and_then(|s| s.code()).unwrap_or(1));
}
