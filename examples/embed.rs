//! A service guarding an HTTP call with the breaker its cron jobs use.
//!
//! ```sh
//! cargo run --example embed -- 127.0.0.1:8080 /health   # nothing listening: it opens
//! cbreak status embed-http                              # the same breaker, from the shell
//! ```
//!
//! Every request goes through `Breaker::execute`: while the upstream keeps
//! failing, the breaker opens after 3 failures and the service answers from
//! its cache without touching the network, until one probe 5 s later finds
//! the upstream back (or not). Run several copies at once: they share the
//! breaker, and only one of them probes. The state directory is the
//! `cbreak` command's (`CBREAK_STATE_DIR`, else `~/.local/state/cbreak`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use cbreak::{Breaker, ExecuteError};

/// One `GET path` over HTTP/1.0; an error unless the status is 2xx.
fn get(addr: &str, path: &str) -> std::io::Result<String> {
    let timeout = Duration::from_secs(2);
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{addr}: no address")))?;
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.lines().next().unwrap_or_default().to_string();
    match status.split_whitespace().nth(1) {
        Some(code) if code.starts_with('2') => Ok(response),
        _ => Err(std::io::Error::other(format!("upstream said '{status}'"))),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let path = args.next().unwrap_or_else(|| "/".into());
    let breaker = Breaker::builder("embed-http")
        .threshold(3)
        .recovery(Duration::from_secs(5))
        .slow(Duration::from_secs(1)) // a 2xx that took over 1 s is a failure too
        .build()?;
    let mut cache = String::from("(nothing cached yet)");
    for request in 1..=8 {
        let answer = match breaker.execute(|| get(&addr, &path)) {
            Ok(body) => {
                cache = body.lines().last().unwrap_or_default().to_string();
                format!("fresh: {cache}")
            }
            Err(ExecuteError::Failed(e)) => format!("upstream failed ({e}); cached: {cache}"),
            Err(ExecuteError::Rejected(r)) => format!("not asked ({r}); cached: {cache}"),
        };
        println!("request {request}: {answer}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let stats = breaker.stats()?;
    println!(
        "breaker '{}': {}, {} calls ({} failed), {} rejected",
        breaker.name(),
        stats.state,
        stats.calls,
        stats.failures,
        stats.rejected
    );
    Ok(())
}
