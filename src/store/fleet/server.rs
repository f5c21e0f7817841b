//! The conversation with a Redis or Valkey server: connecting (TCP, TLS,
//! unix socket) within a timeout, the three small server-side scripts, and
//! turning what can go wrong into one clear sentence.
//!
//! The scripts hold no policy: `READ` returns the server's clock and the
//! key's value in one round trip; `CAS` stores a value only if the key
//! still holds the version the caller read (the record body's sequence
//! word), and otherwise answers with what it holds now, so that a conflict
//! costs no extra read; `ASIDE` renames a value that is not a cbreak
//! record, but only if it is still the value the caller judged.
//! Decisions are `breaker`'s, the bytes `record`'s; this module owns
//! neither.

use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, ErrorKind, RedisConnectionInfo, Value};

use super::url::{Address, StoreUrl};
use crate::breaker::Millis;

/// `TIME`, then the key's type and, for a string, its value.
const READ: &str = r"
local t = redis.call('TIME')
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'string' then
  return {t[1], t[2], kind, redis.call('GET', KEYS[1])}
end
return {t[1], t[2], kind}
";

/// Compare-and-set on the version: `ARGV[1]` is the 8 bytes the value held
/// at byte `ARGV[4]` (1-based) when it was read, or empty for "no key";
/// `ARGV[2]` the new value; `ARGV[3]` an idle expiry in ms (0: none). The
/// write comes before `TIME`, which servers older than 5 refuse to follow
/// with a write.
const CAS: &str = r"
local kind = redis.call('TYPE', KEYS[1]).ok
local ok = false
if ARGV[1] == '' then
  ok = (kind == 'none')
elseif kind == 'string' then
  local at = tonumber(ARGV[4])
  ok = string.sub(redis.call('GET', KEYS[1]), at, at + 7) == ARGV[1]
end
if ok then
  if ARGV[3] ~= '0' then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  else
    redis.call('SET', KEYS[1], ARGV[2])
  end
  local t = redis.call('TIME')
  return {1, t[1], t[2]}
end
local t = redis.call('TIME')
if kind == 'string' then
  return {0, t[1], t[2], kind, redis.call('GET', KEYS[1])}
end
return {0, t[1], t[2], kind}
";

/// Renames `KEYS[1]` to `KEYS[2]` if it still has type `ARGV[1]` (and, for a
/// string, value `ARGV[2]`).
const ASIDE: &str = r"
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= ARGV[1] then return 0 end
if kind == 'string' and redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
";

/// What a key holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    Absent,
    Bytes(Vec<u8>),
    /// A key of another type (a hash, a list…): never cbreak's.
    OtherType(String),
}

/// A key's value and the server's clock when it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub now: Millis,
    pub stored: Stored,
}

/// How a compare-and-set ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cas {
    /// Written, at this server time.
    Done(Millis),
    /// The key no longer held the version: here is what it holds.
    Conflict(Read),
}

/// Why the server could not be used, in words for the user (never the
/// password).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    Unreachable(String),
    /// No answer within the timeout (`tls`: over TLS, which a plain port
    /// never answers).
    Silent {
        within: Duration,
        tls: bool,
    },
    Auth(String),
    WrongDb(String),
    ReadOnly,
    NotRedis(String),
    Tls(String),
    Denied(String),
    Other(String),
}


/// An open connection to the server, with its timeouts set.
pub struct Server {
    con: redis::Connection,
}

/// The client's settings for `url`: no client name sent (one command
/// fewer at connect).
fn connection_info(url: &StoreUrl) -> redis::RedisResult<ConnectionInfo> {
    let addr = match &url.address {
        Address::Tcp { host, port } => ConnectionAddr::Tcp(host.clone(), *port),
        Address::Tls { host, port } => ConnectionAddr::TcpTls {
            host: host.clone(),
            port: *port,
            insecure: false,
            tls_params: None,
        },
        Address::Unix(path) => ConnectionAddr::Unix(path.clone()),
    };
    let mut redis = RedisConnectionInfo::default()
        .set_db(url.db)
        .set_skip_set_lib_name();
    if let Some(user) = &url.username {
        redis = redis.set_username(user);
    }
    if let Some(pass) = url.password() {
        redis = redis.set_password(pass);
    }
    Ok(redis::IntoConnectionInfo::into_connection_info(addr)?.set_redis_settings(redis))
}

impl Server {
    /// Connects (and authenticates, and selects the database) within
    /// `timeout`; every command after that has `timeout` too.
    pub fn connect(url: &StoreUrl, timeout: Duration) -> Result<Server, redis::RedisError> {
        if url.is_tls() {
            // rustls picks its one compiled-in provider (ring); installing
            // it explicitly keeps that true if another crate enables a
            // second one.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = connection_info(url).and_then(redis::Client::open)?;
        let con = client.get_connection_with_timeout(timeout)?;
        let t = Some(timeout);
        con.set_read_timeout(t)?;
        con.set_write_timeout(t)?;
        Ok(Server { con })
    }

    /// The key's value and the server's clock, in one round trip.
    pub fn read(&mut self, key: &str) -> Result<Read, redis::RedisError> {
        let v: Value = redis::Script::new(READ).key(key).invoke(&mut self.con)?;
        parse_read(&v, 0).ok_or_else(|| unexpected(&v))
    }

    /// Stores `value` if the key still holds `expected` (8 bytes at byte
    /// `at`, 0-based), or nothing when `expected` is `None`.
    pub fn cas(
        &mut self,
        key: &str,
        expected: Option<[u8; 8]>,
        at: usize,
        value: &[u8],
        idle_ms: u64,
    ) -> Result<Cas, redis::RedisError> {
        let expected: &[u8] = match &expected {
            Some(e) => e,
            None => &[],
        };
        let v: Value = redis::Script::new(CAS)
            .key(key)
            .arg(expected)
            .arg(value)
            .arg(idle_ms)
            .arg(at + 1)
            .invoke(&mut self.con)?;
        let Value::Array(items) = &v else {
            return Err(unexpected(&v));
        };
        match items.first() {
            Some(Value::Int(1)) => {
                let now = time(items.get(1), items.get(2)).ok_or_else(|| unexpected(&v))?;
                Ok(Cas::Done(now))
            }
            Some(Value::Int(0)) => parse_read(&v, 1)
                .map(Cas::Conflict)
                .ok_or_else(|| unexpected(&v)),
            _ => Err(unexpected(&v)),
        }
    }

    /// Renames `key` to `aside` if it still holds `seen`; whether it did.
    pub fn set_aside(
        &mut self,
        key: &str,
        aside: &str,
        seen: &Stored,
    ) -> Result<bool, redis::RedisError> {
        let (kind, bytes): (&str, &[u8]) = match seen {
            Stored::Absent => return Ok(false),
            Stored::Bytes(b) => ("string", b),
            Stored::OtherType(t) => (t, &[]),
        };
        let moved: i64 = redis::Script::new(ASIDE)
            .key(key)
            .key(aside)
            .arg(kind)
            .arg(bytes)
            .invoke(&mut self.con)?;
        Ok(moved == 1)
    }

    /// Every key that matches `pattern`, by SCAN (never KEYS).
    pub fn scan(&mut self, pattern: &str) -> Result<Vec<String>, redis::RedisError> {
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut self.con)?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    pub fn ping(&mut self) -> Result<(), redis::RedisError> {
        redis::cmd("PING").query::<()>(&mut self.con)
    }

    pub fn exists(&mut self, key: &str) -> Result<bool, redis::RedisError> {
        let n: i64 = redis::cmd("EXISTS").arg(key).query(&mut self.con)?;
        Ok(n > 0)
    }

    /// Deletes `key`; whether there was one.
    pub fn delete(&mut self, key: &str) -> Result<bool, redis::RedisError> {
        let n: i64 = redis::cmd("DEL").arg(key).query(&mut self.con)?;
        Ok(n > 0)
    }
}

/// `[now_s, now_us, type, value?]` from `items[skip..]`.
fn parse_read(v: &Value, skip: usize) -> Option<Read> {
    let Value::Array(items) = v else { return None };
    let items = items.get(skip..)?;
    let now = time(items.first(), items.get(1))?;
    let kind = text(items.get(2)?)?;
    let stored = match (kind.as_str(), items.get(3)) {
        ("none", _) => Stored::Absent,
        ("string", Some(Value::BulkString(b))) => Stored::Bytes(b.clone()),
        ("string", _) => return None,
        (other, _) => Stored::OtherType(other.to_string()),
    };
    Some(Read { now, stored })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `TIME`'s seconds and microseconds as milliseconds since the epoch.
fn time(secs: Option<&Value>, micros: Option<&Value>) -> Option<Millis> {
    let secs: u64 = text(secs?)?.parse().ok()?;
    let micros: u64 = text(micros?)?.parse().ok()?;
    Some(secs.saturating_mul(1000).saturating_add(micros / 1000))
}

fn unexpected(v: &Value) -> redis::RedisError {
    let shown = format!("{v:?}");
    let shown: String = shown.chars().take(80).collect();
    redis::RedisError::from((ErrorKind::UnexpectedReturnType, "unexpected reply", shown))
}

/// Whether `e` is a system call interrupted by a signal (a read with a
/// timeout is not restarted): worth one more try on a new connection.
pub fn interrupted(e: &redis::RedisError) -> bool {
    e.is_io_error() && e.to_string().contains("Interrupted")
}

/// Says what went wrong with the server in words; `timeout` is the one in
/// force, for "no answer within …".
pub fn classify(e: &redis::RedisError, url: &StoreUrl, timeout: Duration) -> Problem {
    let text = e.to_string();
    let code = e.code().unwrap_or("");
    let detail = e.detail().unwrap_or("").to_string();
    let lower = text.to_ascii_lowercase();
    if e.kind() == ErrorKind::AuthenticationFailed
        || matches!(code, "WRONGPASS" | "NOAUTH")
        || lower.contains("wrongpass")
        || lower.contains("noauth")
    {
        let why = if lower.contains("noauth") {
            "the server needs a password and the URL gives none".to_string()
        } else {
            "wrong user name or password".to_string()
        };
        return Problem::Auth(why);
    }
    if lower.contains("db index is out of range") || lower.contains("invalid db index") {
        return Problem::WrongDb(format!("database {} does not exist", url.db));
    }
    if code == "READONLY" || lower.contains("readonly") || lower.contains("read only replica") {
        return Problem::ReadOnly;
    }
    if code == "NOPERM" || lower.contains("noperm") {
        return Problem::Denied(first_line(&detail_or(&detail, &text)));
    }
    if let Some(io) = io_error(e) {
        use std::io::ErrorKind as K;
        let tls = url.is_tls();
        let inner = io.to_string();
        if tls && (inner.contains("certificate") || inner.contains("Certificate")) {
            return Problem::Tls(format!(
                "the server's certificate is not trusted ({inner}); give its CA with SSL_CERT_FILE or SSL_CERT_DIR"
            ));
        }
        if tls && io.kind() == K::InvalidData {
            return Problem::Tls(format!(
                "the handshake failed ({inner}); does the server speak TLS on that port?"
            ));
        }
        return Problem::Unreachable(match io.kind() {
            K::ConnectionRefused => "nothing is listening there (connection refused)".into(),
            K::NotFound => match &url.address {
                Address::Unix(p) => format!("no socket at {}", p.display()),
                _ => format!("host not found ({inner})"),
            },
            K::TimedOut | K::WouldBlock => {
                return Problem::Silent {
                    within: timeout,
                    tls,
                };
            }
            K::PermissionDenied => format!("permission denied ({inner})"),
            K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe | K::ConnectionAborted => {
                return Problem::NotRedis(format!("it closed the connection: {inner}"));
            }
            _ => first_line(&inner),
        });
    }
    match e.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => Problem::NotRedis(first_line(&text)),
        _ if lower.contains("unknown command") || lower.contains("noscript") => {
            Problem::NotRedis(first_line(&text))
        }
        _ => Problem::Other(first_line(&text)),
    }
}

fn detail_or(detail: &str, text: &str) -> String {
    if detail.is_empty() {
        text.to_string()
    } else {
        detail.to_string()
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    line.chars().take(200).collect()
}

/// The I/O error inside a client error, if that is what it is (the
/// client keeps the original behind a private type: its kind is read back
/// from the client's own tests and the text).
fn io_error(e: &redis::RedisError) -> Option<std::io::Error> {
    use std::io::ErrorKind as K;
    if !e.is_io_error() {
        return None;
    }
    let msg = e.to_string();
    let lower = msg.to_ascii_lowercase();
    let kind = if lower.contains("no such file") {
        K::NotFound
    } else if e.is_connection_refusal() {
        K::ConnectionRefused
    } else if e.is_timeout() || lower.contains("timed out") || lower.contains("interrupted") {
        K::TimedOut
    } else if lower.contains("failed to lookup") || lower.contains("name or service not known") {
        K::NotFound
    } else if lower.contains("permission denied") {
        K::PermissionDenied
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("received corrupt message")
        || lower.contains("peer sent")
        || lower.contains("invalid data")
    {
        K::InvalidData
    } else if e.is_connection_dropped()
        || lower.contains("eof")
        || lower.contains("reset")
        || lower.contains("broken pipe")
    {
        K::UnexpectedEof
    } else {
        K::Other
    };
    Some(std::io::Error::new(kind, msg))
}
