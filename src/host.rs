//! The real world behind `breaker::Host`: the wall clock, this process's
//! identity and whether another process is still alive (from Linux's
//! `/proc`), and a little randomness for jitter.
//!
//! This is the one place that reads `/proc`; everything here is read lazily,
//! only on the paths that need it (taking or judging a probe slot), so the
//! closed path of `cbreak run` pays for none of it.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::breaker::{Host, Millis, Owner};
use crate::util::Rng;

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
    /// Seeded at the first use: the closed path of `run` draws nothing.
    rng: Option<Rng>,
    /// The time to judge by instead of this machine's clock, when a store
    /// has its own (a server shared by machines).
    clock: Option<Millis>,
}

impl System {
    pub fn new() -> Self {
        System::default()
    }

    /// Judges by `now`, a store's clock read for this decision, instead of
    /// this machine's clock.
    pub fn set_clock(&mut self, now: Millis) {
        self.clock = Some(now);
    }
}

impl Host for System {
    fn now(&self) -> Millis {
        self.clock.unwrap_or_else(now_ms)
    }

    fn me(&mut self) -> Owner {
        *self.me.get_or_insert_with(|| {
            let pid = std::process::id();
            Owner {
                pid,
                start_time: start_time(pid).unwrap_or(0),
                boot_id: identity(),
                kernel_lock: false,
            }
        })
    }

    /// An owner that holds the record's probe lock and is gone has been
    /// cleared from its slot by the store, which asked the kernel (see
    /// `record`): one still there is alive. Otherwise `/proc` and kill(2)
    /// judge, but only for an owner that sees the same pids as this process
    /// (the same boot and pid namespace); of any other, nothing can be known
    /// and the lease decides.
    fn is_alive(&mut self, owner: &Owner) -> bool {
        if owner.kernel_lock {
            return true;
        }
        let me = self.me();
        if owner.boot_id == 0 || owner.boot_id != me.boot_id {
            return true;
        }
        let Ok(pid) = libc::pid_t::try_from(owner.pid) else {
            return false; // no process has such a pid
        };
        if pid <= 0 {
            return false;
        }
        // SAFETY: kill(2) with signal 0 and a positive pid sends nothing; it
        // only checks that the process exists (ESRCH when it does not).
        let gone = unsafe { libc::kill(pid, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            return false;
        }
        match proc_stat(owner.pid) {
            // Hidden (hidepid) or unmounted /proc: it exists, so it may run.
            None => true,
            Some((state, start)) => {
                !(matches!(state, 'Z' | 'X') || owner.start_time != 0 && start != owner.start_time)
            }
        }
    }

    fn random(&mut self) -> u64 {
        // Jitter needs spread, not secrecy.
        self.rng.get_or_insert_with(Rng::seeded).next()
    }
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory and cannot
    // fail.
    unsafe { libc::geteuid() }
}

/// Whether this process is a member of group `gid` (its effective or a
/// supplementary group).
pub fn in_group(gid: u32) -> bool {
    // SAFETY: getegid(2) takes no arguments and cannot fail.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    let mut groups = vec![0 as libc::gid_t; 256];
    loop {
        let len = libc::c_int::try_from(groups.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `groups` has room for `len` gid_t values, and getgroups(2)
        // writes at most that many.
        let n = unsafe { libc::getgroups(len, groups.as_mut_ptr()) };
        match usize::try_from(n) {
            Ok(n) => return groups[..n].contains(&gid),
            Err(_) if groups.len() < 65_536 => groups.resize(groups.len() * 4, 0),
            Err(_) => return false,
        }
    }
}

/// What kind of file system `path` is on, if it is not one known to be
/// local: there `flock(2)`, the probe lock and shared mappings may not be
/// coherent between the machines (or user-space servers) behind it.
pub fn shared_fs(path: &std::path::Path) -> std::io::Result<Option<String>> {
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
    let magic = buf.f_type as u64 & 0xffff_ffff;
    Ok(match local_fs(magic) {
        Some(_) => None,
        None => Some(match network_fs_name(magic) {
            Some(name) => name.to_string(),
            None => format!("a file system cbreak does not know to be local (type {magic:#x})"),
        }),
    })
}

/// Local file systems, by statfs(2) magic number (linux/magic.h): an
/// allowlist, because a denylist of network file systems misses the ones
/// nobody listed (Lustre, GPFS, OCFS2, GFS2, BeeGFS, virtiofs, vboxsf).
pub fn local_fs(f_type: u64) -> Option<&'static str> {
    Some(match f_type & 0xffff_ffff {
        0xef53 => "ext2/3/4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x0102_1994 => "tmpfs",
        0x8584_58f6 => "ramfs",
        0x2fc1_2fc1 => "zfs",
        0xf2f5_2010 => "f2fs",
        0xca45_1a4e => "bcachefs",
        0x794c_7630 => "overlayfs",
        0x5265_4973 => "reiserfs",
        0x3153_464a => "jfs",
        0x3434 => "nilfs2",
        0x4244 => "hfs",
        0x482b => "hfsplus",
        0x4d44 => "vfat",
        0x2011_bab0 => "exfat",
        0x5346_544e => "ntfs",
        0x7366_746e => "ntfs3",
        0x6165_6673 => "aufs",
        _ => return None,
    })
}

/// The names of the well-known network and user-space file systems, for
/// the message.
fn network_fs_name(f_type: u64) -> Option<&'static str> {
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
        0x0bd0_0bd0 => "Lustre",
        0x4750_4653 => "GPFS",
        0x7461_636f => "OCFS2",
        0x0116_1970 => "GFS2",
        0x6a65_6a65 => "virtiofs",
        0x786f_4256 => "vboxsf",
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

/// A stable hash of the kernel's boot id and this process's pid namespace:
/// two processes with the same identity see the same pids. 0 where either
/// cannot be read (no /proc): then nothing is judged from pids.
///
/// `CBREAK_TEST_HOST_ID` replaces it, so that tests can play several
/// machines sharing one breaker on a server (`fleet`) from one machine.
fn identity() -> u64 {
    if let Some(id) = std::env::var_os("CBREAK_TEST_HOST_ID").filter(|v| !v.is_empty()) {
        return crate::util::fnv1a(id.as_encoded_bytes()).max(1);
    }
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id");
    let ns = std::fs::read_link("/proc/self/ns/pid");
    match (boot, ns) {
        (Ok(boot), Ok(ns)) => {
            let mut bytes = boot.trim().as_bytes().to_vec();
            bytes.push(0);
            bytes.extend_from_slice(ns.as_os_str().as_encoded_bytes());
            crate::util::fnv1a(&bytes).max(1)
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_file_systems_are_allowed_and_the_rest_named() {
        for (magic, name) in [
            (0xef53u64, "ext2/3/4"),
            (0x0102_1994, "tmpfs"),
            (0x5846_5342, "xfs"),
            (0x9123_683e, "btrfs"),
            (0x794c_7630, "overlayfs"),
            // Sign-extended as a 64-bit signed f_type would be.
            (0xffff_ffff_9123_683e, "btrfs"),
        ] {
            assert_eq!(local_fs(magic), Some(name));
        }
        for (magic, name) in [
            (0x6969, "NFS"),
            (0xff53_4d42, "CIFS"),
            (0x6573_5546, "FUSE"),
            (0x0bd0_0bd0, "Lustre"),
            (0x6a65_6a65, "virtiofs"),
        ] {
            assert_eq!(local_fs(magic), None);
            assert_eq!(network_fs_name(magic), Some(name));
        }
        let here = shared_fs(&std::env::temp_dir()).unwrap();
        assert_eq!(here, None, "the test machine's temp dir is local");
        let proc = shared_fs(std::path::Path::new("/proc")).unwrap().unwrap();
        assert!(proc.contains("does not know"), "{proc}");
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
        // Another boot or pid namespace: its pids mean nothing here, so
        // only the lease can end its slot.
        let elsewhere = Owner {
            pid: u32::MAX - 1,
            boot_id: me.boot_id ^ 1,
            ..me
        };
        assert!(sys.is_alive(&elsewhere), "other pid namespace");
        let gone = Owner {
            pid: u32::MAX - 1,
            ..me
        };
        assert!(!sys.is_alive(&gone), "no such pid");
        let locked = Owner {
            kernel_lock: true,
            ..gone
        };
        assert!(sys.is_alive(&locked), "the kernel judged it already");
    }
}
