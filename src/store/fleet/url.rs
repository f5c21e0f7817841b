//! `--store` URLs: `redis://[user[:password]@]host[:port][/db]`,
//! `rediss://…` (TLS) and `unix:///path/to/redis.sock`.
//!
//! Parsed here rather than by the client crate so that every mistake gets
//! a message of its own and no message, `Display` or `Debug` ever shows
//! the password: [`StoreUrl`]'s `Display` writes `***` in its place, and a
//! URL that does not parse is quoted only with its credentials cut out.

use std::fmt;
use std::path::PathBuf;

/// The port Redis and Valkey listen on unless told otherwise.
pub const DEFAULT_PORT: u16 = 6379;

/// Where the server is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// `redis://host:port`
    Tcp { host: String, port: u16 },
    /// `rediss://host:port`: TLS, verified against the system's trust
    /// store (and `SSL_CERT_FILE` / `SSL_CERT_DIR`).
    Tls { host: String, port: u16 },
    /// `unix:///path`
    Unix(PathBuf),
}

/// A parsed `--store` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl {
    pub address: Address,
    pub username: Option<String>,
    password: Option<String>,
    /// The logical database (`SELECT`), 0 unless the URL names one.
    pub db: i64,
}

impl StoreUrl {
    /// Parses `text`; the error names what is wrong (never the password).
    pub fn parse(text: &str) -> Result<StoreUrl, String> {
        // A URL that does not parse may hold a password anywhere, raw '/',
        // '#', '?' or '@' in it included: everything up to its last '@' is
        // masked, and no piece of it is quoted back.
        let bad = |why: &str| {
            let why = if text.contains('@') {
                unquoted(why)
            } else {
                why.to_string()
            };
            format!("bad store URL '{}': {why}", redact(text))
        };
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(bad(
                "expected redis://HOST[:PORT][/DB], rediss://… or unix:///PATH",
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "redis" | "valkey" => parse_network(rest, false).map_err(|w| bad(&w)),
            "rediss" | "valkeys" => parse_network(rest, true).map_err(|w| bad(&w)),
            "unix" | "redis+unix" => parse_unix(rest).map_err(|w| bad(&w)),
            "" => Err(bad("no scheme; expected redis://, rediss:// or unix://")),
            // Named without quotes (which `bad` would mask when the URL
            // holds credentials), and only when it is a scheme: text before
            // "://" with anything else in it could be a password.
            other if is_scheme(other) => Err(bad(&format!(
                "unknown scheme {other}://; cbreak speaks redis://, rediss:// and unix://"
            ))),
            _ => Err(bad(
                "unknown scheme; cbreak speaks redis://, rediss:// and unix://",
            )),
        }
    }

    /// The password, for the connection only.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.address, Address::Tls { .. })
    }
}

fn parse_network(rest: &str, tls: bool) -> Result<StoreUrl, String> {
    // Anything after '?' or '#' is not ours to interpret.
    if rest.contains(['?', '#']) {
        return Err("query strings and fragments are not supported".into());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    // The credentials end at the last '@': a password may contain one.
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (user, pass) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            let user = percent_decode(user).ok_or("the user name is not valid percent-encoding")?;
            let pass = match pass {
                Some(p) => {
                    Some(percent_decode(p).ok_or("the password is not valid percent-encoding")?)
                }
                None => None,
            };
            // `redis://:secret@host` gives a password and no user (the
            // `default` user, or the pre-ACL `requirepass`).
            (Some(user).filter(|u| !u.is_empty()), pass)
        }
    };
    let (host, port) = split_host_port(hostport)?;
    let db = match path.trim_end_matches('/') {
        "" => 0,
        db => db
            .parse::<i64>()
            .ok()
            .filter(|&n| n >= 0)
            .ok_or_else(|| format!("'{db}' is not a database number"))?,
    };
    let address = if tls {
        Address::Tls { host, port }
    } else {
        Address::Tcp { host, port }
    };
    Ok(StoreUrl {
        address,
        username,
        password,
        db,
    })
}

fn split_host_port(hostport: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        // [::1]:6379
        let (h, after) = v6
            .split_once(']')
            .ok_or("an IPv6 address lacks its closing bracket")?;
        match after {
            "" => (h, None),
            p => (
                h,
                Some(p.strip_prefix(':').ok_or("junk after the IPv6 address")?),
            ),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    if host.contains(['@', '/', ' ', '[', ']']) {
        return Err(format!("'{host}' is not a host name"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&n| n > 0)
            // Not quoted: `redis://default:secret`, a URL missing its
            // host, puts the password where the port goes.
            .ok_or("the port is not a number from 1 to 65535")?,
    };
    Ok((host.to_string(), port))
}

fn parse_unix(rest: &str) -> Result<StoreUrl, String> {
    // unix:///path/to/sock, optionally with ?db=N (redis-cli's form) and
    // the credentials as redis-rs takes them: user=NAME&pass=PASSWORD
    // (username and password are accepted too).
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if !path.starts_with('/') {
        return Err("a unix socket needs an absolute path: unix:///path/to/redis.sock".into());
    }
    let path = percent_decode(path).ok_or("the path is not valid percent-encoding")?;
    let mut db = 0;
    let (mut username, mut password) = (None, None);
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "db" => {
                    db = value
                        .parse::<i64>()
                        .ok()
                        .filter(|&n| n >= 0)
                        .ok_or_else(|| format!("'{value}' is not a database number"))?;
                }
                "user" | "username" => {
                    username = Some(
                        percent_decode(value)
                            .ok_or("the user name is not valid percent-encoding")?,
                    )
                    .filter(|u| !u.is_empty());
                }
                "pass" | "password" => {
                    password = Some(
                        percent_decode(value)
                            .ok_or("the password is not valid percent-encoding")?,
                    );
                }
                // Only the name: a value may be a secret under a name
                // cbreak does not know.
                _ => {
                    return Err(format!(
                        "unknown parameter '{}' (db, user and pass are known)",
                        key.chars()
                            .filter(char::is_ascii_alphanumeric)
                            .collect::<String>()
                    ));
                }
            }
        }
    }
    Ok(StoreUrl {
        address: Address::Unix(PathBuf::from(path)),
        username,
        password,
        db,
    })
}

/// `%XX` escapes decoded; `None` for a broken escape or bytes that are not
/// UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `text` with anything between `://` and the last `@` of the authority
/// replaced by `***`: safe to print whatever the user typed.
pub fn redact(text: &str) -> String {
    // A query string may carry credentials (unix:///s?pass=...): masked.
    let (text, query) = match text.find(['?', '#']) {
        Some(i) => (&text[..i], "?***"),
        None => (text, ""),
    };
    // Everything up to the last '@' may be credentials; only a real
    // scheme before them is kept.
    let Some(at) = text.rfind('@') else {
        return format!("{}{query}", redact_port(text));
    };
    match text.split_once("://") {
        Some((scheme, _)) if scheme.len() < at && is_scheme(scheme) => {
            format!("{scheme}://***{}{query}", &text[at..])
        }
        _ => format!("***{}{query}", &text[at..]),
    }
}

/// `text` (a URL without credentials) with what follows the last ':' of
/// its host part masked unless it is a number: `redis://default:secret`,
/// a URL missing its host and '@', holds a password there.
fn redact_port(text: &str) -> String {
    let start = text.find("://").map_or(0, |i| i + 3);
    let end = text[start..].find('/').map_or(text.len(), |i| start + i);
    match text[start..end].rfind(':') {
        Some(i) if !text[start + i + 1..end].bytes().all(|b| b.is_ascii_digit()) => {
            format!("{}***{}", &text[..start + i + 1], &text[end..])
        }
        _ => text.to_string(),
    }
}

/// Whether `s` can be a URL scheme (RFC 3986: letters, digits, `+`, `-`,
/// `.`), so that naming it cannot show a password.
fn is_scheme(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `s` with every byte but RFC 3986's unreserved characters
/// percent-encoded.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `why` with every quoted piece ('…') of the URL left out.
fn unquoted(why: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in why.chars() {
        match c {
            '\'' if !quoted => {
                quoted = true;
                out.push_str("a part");
            }
            '\'' => quoted = false,
            _ if !quoted => out.push(c),
            _ => {}
        }
    }
    out
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, host, port) = match &self.address {
            Address::Unix(path) => {
                write!(f, "unix://{}", path.display())?;
                if self.db != 0 {
                    write!(f, "?db={}", self.db)?;
                }
                return Ok(());
            }
            Address::Tcp { host, port } => ("redis", host, port),
            Address::Tls { host, port } => ("rediss", host, port),
        };
        write!(f, "{scheme}://")?;
        // The user name as a URL would carry it: decoded, `u%3Asecret`
        // would read as user `u` with password `secret`.
        match (self.username.as_deref().map(percent_encode), &self.password) {
            (Some(u), Some(_)) => write!(f, "{u}:***@")?,
            // A user name without a password may be a token written in
            // the wrong place (redis://TOKEN@host).
            (Some(_), None) => write!(f, "***@")?,
            (None, Some(_)) => write!(f, ":***@")?,
            (None, None) => {}
        }
        if host.contains(':') {
            write!(f, "[{host}]:{port}")?;
        } else {
            write!(f, "{host}:{port}")?;
        }
        if self.db != 0 {
            write!(f, "/{}", self.db)?;
        }
        Ok(())
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_url_that_does_not_parse_never_shows_its_password() {
        for url in [
            "redis://cb3:hunter2/x@127.0.0.1:16379",
            "redis://cb:p@ss:w/rd%40#?x@127.0.0.1:16379",
            "redis://:hunter2%::/@[::1]:1",
            "unix://:hunter2/@@h",
            "rediss://us@er:hun[ter2/[@@h",
            "hunter2@h",
        ] {
            let err = StoreUrl::parse(url).unwrap_err();
            assert!(
                !err.contains("hunter2") && !err.contains("ter2"),
                "{url}: {err}"
            );
            assert!(err.starts_with("bad store URL '"), "{err}");
        }
    }

    use super::*;

    fn tcp(host: &str, port: u16) -> Address {
        Address::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        let u = StoreUrl::parse("redis://localhost").unwrap();
        assert_eq!(u.address, tcp("localhost", 6379));
        assert_eq!((u.username.as_deref(), u.password(), u.db), (None, None, 0));

        let u = StoreUrl::parse("redis://ci:s%40cr%3At@10.1.2.3:6380/4").unwrap();
        assert_eq!(u.address, tcp("10.1.2.3", 6380));
        assert_eq!(u.username.as_deref(), Some("ci"));
        assert_eq!(u.password(), Some("s@cr:t"));
        assert_eq!(u.db, 4);

        let u = StoreUrl::parse("redis://:only-pass@h/").unwrap();
        assert_eq!(
            (u.username.as_deref(), u.password()),
            (None, Some("only-pass"))
        );

        let u = StoreUrl::parse("rediss://user:p@ss@cache.example:6390").unwrap();
        assert!(u.is_tls());
        assert_eq!(u.password(), Some("p@ss"), "a password may hold an '@'");

        let u = StoreUrl::parse("redis://[::1]:7000/2").unwrap();
        assert_eq!(u.address, tcp("::1", 7000));
        assert_eq!(u.to_string(), "redis://[::1]:7000/2");

        let u = StoreUrl::parse("unix:///run/redis/redis.sock").unwrap();
        assert_eq!(u.address, Address::Unix("/run/redis/redis.sock".into()));
        let u = StoreUrl::parse("unix:///tmp/r.sock?db=3").unwrap();
        assert_eq!(u.db, 3);
        assert_eq!(u.to_string(), "unix:///tmp/r.sock?db=3");
    }

    #[test]
    fn no_message_or_display_shows_the_password() {
        let u = StoreUrl::parse("redis://alice:hunter2@h:1/0").unwrap();
        assert_eq!(u.to_string(), "redis://alice:***@h:1");
        // A user name is shown encoded, as given: decoded, "u%3Ahunter2"
        // would read as user u, password hunter2 (and without a password
        // it is not shown at all: it may be a token).
        let u = StoreUrl::parse("redis://u%3Ahunter2@h:1/0").unwrap();
        assert_eq!(u.to_string(), "redis://***@h:1");
        let u = StoreUrl::parse("redis://u%3Ahunter2:pw@h:1/0").unwrap();
        assert_eq!(u.to_string(), "redis://u%3Ahunter2:***@h:1");
        let u = StoreUrl::parse("redis://u%40x:pw@h:1/0").unwrap();
        assert_eq!(u.to_string(), "redis://u%40x:***@h:1");
        assert!(!format!("{u:?}").contains("hunter2"));
        for bad in [
            "redis://alice:hunter2@h:99999",
            "redis://alice:hunter2@:6379",
            "redis://alice:hunter2@h/x",
            "http://alice:hunter2@h",
            "alice:hunter2@h:6379",
            "redis://alice:hunter2@h?x=1",
            "redis://alice:hunter2%zz@h",
        ] {
            let err = StoreUrl::parse(bad).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.starts_with("bad store URL '"), "{err}");
        }
    }

    #[test]
    fn each_mistake_is_named() {
        let err = |s| StoreUrl::parse(s).unwrap_err();
        assert!(err("memcached://h").contains("unknown scheme memcached://;"));
        // Named also when the URL holds credentials (whose quoted parts
        // are masked), and without them.
        let e = err("http://u:hunter2@h/0");
        assert!(e.contains("unknown scheme http://;"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = err("u:hunter2@h://x");
        assert!(
            e.contains("unknown scheme;") && !e.contains("hunter2"),
            "{e}"
        );
        assert!(err("localhost:6379").contains("expected redis://"));
        assert!(err("redis://h:0").contains("port is not a number"));
        assert!(err("redis://h:http").contains("port is not a number"));
        assert!(err("redis:///0").contains("no host"));
        assert!(err("redis://h/-1").contains("not a database number"));
        assert!(err("unix://relative.sock").contains("absolute path"));
        assert!(err("unix:///s?timeout=1").contains("unknown parameter 'timeout'"));
        assert!(err("redis://[::1:1").contains("closing bracket"));
    }

    #[test]
    fn secrets_in_odd_places_are_not_shown() {
        // A password where the port goes (host and '@' forgotten), in a
        // query string, or a token written as the user name.
        for url in [
            "redis://default:hunter2",
            "redis://default:hunter2/0",
            "unix:///s?password=hunter2&bogus=1",
            "unix:///s?bogus=hunter2",
            "redis://h?x=hunter2",
        ] {
            let e = StoreUrl::parse(url).unwrap_err();
            assert!(!e.contains("hunter2"), "{url}: {e}");
        }
        let u = StoreUrl::parse("redis://hunter2@h").unwrap();
        assert_eq!(u.to_string(), "redis://***@h:6379");
        let u = StoreUrl::parse("unix:///s.sock?user=ci&pass=hunter2&db=2").unwrap();
        assert_eq!(
            (u.username.as_deref(), u.password(), u.db),
            (Some("ci"), Some("hunter2"), 2)
        );
        assert_eq!(u.to_string(), "unix:///s.sock?db=2");
        assert_eq!(
            redact("redis://h:6379/0"),
            "redis://h:6379/0",
            "a port is kept"
        );
    }
}
