//! The real world behind `breaker::Host`: the wall clock, this process's
//! identity and whether another process is still alive (from Linux's
//! `/proc`), and a little randomness for jitter.
//!
//! This is the one place that reads `/proc`; everything here is read lazily,
//! only on the paths that need it (taking or judging a probe slot), so the
//! closed path of `cbreak run` pays for none of it.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::breaker::{Host, Millis, Owner};

/// Milliseconds since the Unix epoch; 0 for a clock before it.
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The running system.
#[derive(Default)]
pub struct System {
    me: Option<Owner>,
    rng: u64,
}

impl System {
    pub fn new() -> Self {
        System::default()
    }
}

impl Host for System {
    fn now(&self) -> Millis {
        now_ms()
    }

    fn me(&mut self) -> Owner {
        *self.me.get_or_insert_with(|| {
            let pid = std::process::id();
            Owner {
                pid,
                start_time: start_time(pid).unwrap_or(0),
                boot_id: boot_id(),
            }
        })
    }

    fn is_alive(&mut self, owner: &Owner) -> bool {
        if owner.boot_id != self.me().boot_id {
            return false; // the machine rebooted since the slot was taken
        }
        match proc_stat(owner.pid) {
            None => false,
            Some((state, start)) => {
                !(matches!(state, 'Z' | 'X') || owner.start_time != 0 && start != owner.start_time)
            }
        }
    }

    fn random(&mut self) -> u64 {
        if self.rng == 0 {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            self.rng = t ^ u64::from(std::process::id()).rotate_left(32) | 1;
        }
        // xorshift64*: jitter needs spread, not secrecy.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory and cannot
    // fail.
    unsafe { libc::geteuid() }
}

/// The name of the network or user-space file system `path` is on, if it is
/// one: there `flock(2)` and shared mappings are not coherent between the
/// machines (or processes) that share it.
pub fn network_fs(path: &std::path::Path) -> std::io::Result<Option<&'static str>> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path has a NUL byte"))?;
    // SAFETY: a zeroed statfs is a valid out-parameter; `c` is a valid
    // NUL-terminated string and `buf` a valid, writable statfs for the call.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; statfs(2) writes only into `buf`.
    if unsafe { libc::statfs(c.as_ptr(), &mut buf) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fs_kind(buf.f_type as u64))
}

/// The detection table, by statfs(2) magic number (linux/magic.h).
pub fn fs_kind(f_type: u64) -> Option<&'static str> {
    Some(match f_type & 0xffff_ffff {
        0x6969 => "NFS",
        0x517b => "SMB",
        0xff53_4d42 => "CIFS",
        0xfe53_4d42 => "SMB2",
        0x6573_5546 => "FUSE",
        0x5346_414f => "AFS",
        0x00c3_6400 => "Ceph",
        0x0102_1997 => "9P",
        0x7375_7245 => "Coda",
        _ => return None,
    })
}

/// State letter and start time (field 22) of a process, from
/// `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<(char, u64)> {
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, start)| start)
}

/// A stable hash of the kernel's boot id; 0 where it cannot be read.
fn boot_id() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| crate::store::fnv1a(id.trim().as_bytes()))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_file_systems_are_recognised() {
        for (magic, name) in [
            (0x6969, "NFS"),
            (0xff53_4d42, "CIFS"),
            (0xfe53_4d42, "SMB2"),
            (0x517b, "SMB"),
            (0x6573_5546, "FUSE"),
        ] {
            assert_eq!(fs_kind(magic), Some(name));
        }
        // Sign-extended as a 64-bit signed f_type would be.
        assert_eq!(fs_kind(0xffff_ffff_ff53_4d42), Some("CIFS"));
        for local in [
            0xef53u64,   /* ext4 */
            0x0102_1994, /* tmpfs */
            0x5846_5342, /* xfs */
            0x9123_683e, /* btrfs */
        ] {
            assert_eq!(fs_kind(local), None);
        }
        assert_eq!(network_fs(std::path::Path::new("/proc")).unwrap(), None);
    }

    #[test]
    fn parses_stat_with_a_hostile_command_name() {
        let line =
            "1234 (a) b) (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_stranger_is_not() {
        let mut sys = System::new();
        let me = sys.me();
        assert!(me.start_time > 0);
        assert!(sys.is_alive(&me));
        let reused = Owner {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!sys.is_alive(&reused), "same pid, other start time");
        let rebooted = Owner {
            boot_id: me.boot_id ^ 1,
            ..me
        };
        assert!(!sys.is_alive(&rebooted), "other boot");
        let gone = Owner {
            pid: u32::MAX - 1,
            ..me
        };
        assert!(!sys.is_alive(&gone), "no such pid");
    }
}
