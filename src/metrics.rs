//! Prometheus metrics: every breaker in the text exposition format, and
//! writing them atomically for node_exporter's textfile collector.
//!
//! Owns the metric names, their HELP and TYPE lines and the file written;
//! the values come from `breaker` states read by `store`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::breaker::{BreakerState, Millis, Mode, State};

/// One metric family, and how to read its samples from a state: each
/// family names its own values, so a new family cannot print another's.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    /// (extra labels, value) for each sample of one breaker.
    samples: fn(&BreakerState) -> Vec<(String, String)>,
}

/// The one sample of a family without labels of its own.
fn one(value: String) -> Vec<(String, String)> {
    vec![(String::new(), value)]
}

const FAMILIES: [Family; 14] = [
    Family {
        name: "cbreak_state",
        kind: "gauge",
        help: "1 for the breaker's current state, 0 for the others.",
        samples: |s| {
            State::ALL
                .iter()
                .map(|&st| {
                    (
                        format!(",state=\"{}\"", st.as_str()),
                        u8::from(s.state == st).to_string(),
                    )
                })
                .collect()
        },
    },
    Family {
        name: "cbreak_consecutive_failures",
        kind: "gauge",
        help: "Failures in a row.",
        samples: |s| one(s.consecutive_failures.to_string()),
    },
    Family {
        name: "cbreak_calls_total",
        kind: "counter",
        help: "Calls whose outcome was recorded, by outcome.",
        samples: |s| {
            let c = &s.counters;
            [
                ("success", c.successes),
                ("failure", c.failures),
                ("ignored", c.ignored),
                ("cancelled", c.cancelled),
            ]
            .iter()
            .map(|(outcome, v)| (format!(",outcome=\"{outcome}\""), v.to_string()))
            .collect()
        },
    },
    Family {
        name: "cbreak_rejected_total",
        kind: "counter",
        help: "Runs skipped because the breaker was open.",
        samples: |s| one(s.counters.rejected.to_string()),
    },
    Family {
        name: "cbreak_slow_calls_total",
        kind: "counter",
        help: "Successful calls counted as failures for being slow.",
        samples: |s| one(s.counters.slow.to_string()),
    },
    Family {
        name: "cbreak_timeouts_total",
        kind: "counter",
        help: "Calls killed at their timeout.",
        samples: |s| one(s.counters.timeouts.to_string()),
    },
    Family {
        name: "cbreak_opened_timestamp_seconds",
        kind: "gauge",
        help: "When the breaker last opened (Unix time); 0 when closed.",
        samples: |s| one(seconds(s.opened())),
    },
    Family {
        name: "cbreak_next_probe_timestamp_seconds",
        kind: "gauge",
        help: "When the next probe may run (Unix time); 0 when not open.",
        samples: |s| one(seconds(s.next_probe())),
    },
    Family {
        name: "cbreak_transitions_total",
        kind: "counter",
        help: "Transitions into each state.",
        samples: |s| {
            State::ALL
                .iter()
                .map(|&st| {
                    (
                        format!(",to=\"{}\"", st.as_str()),
                        s.transitions[st.index()].to_string(),
                    )
                })
                .collect()
        },
    },
    Family {
        name: "cbreak_disabled",
        kind: "gauge",
        help: "1 when the breaker is disabled (metrics only: every call runs, it never opens), else 0.",
        samples: |s| one(u8::from(s.mode == Mode::Disabled).to_string()),
    },
    Family {
        name: "cbreak_recovery_period_seconds",
        kind: "gauge",
        help: "The current open period: the configured recovery, grown by backoff after failed probes.",
        samples: |s| one(seconds(Some(s.recovery))),
    },
    Family {
        name: "cbreak_last_success_timestamp_seconds",
        kind: "gauge",
        help: "When a call last succeeded (Unix time); 0 when none has.",
        samples: |s| one(seconds(Some(s.last_success_at))),
    },
    Family {
        name: "cbreak_last_failure_timestamp_seconds",
        kind: "gauge",
        help: "When a call last failed (Unix time); 0 when none has.",
        samples: |s| one(seconds(Some(s.last_failure_at))),
    },
    Family {
        name: "cbreak_threshold",
        kind: "gauge",
        help: "Consecutive failures that open the breaker (policy last used).",
        samples: |s| one(s.policy.threshold.to_string()),
    },
];

fn seconds(ms: Option<Millis>) -> String {
    let ms = ms.unwrap_or(0);
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Label values are breaker names, which cannot hold `"` or `\`; escape
/// anyway, as the format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text for `breakers`.
pub fn render(breakers: &[(String, BreakerState)]) -> String {
    let mut out = String::new();
    for f in &FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (name, s) in breakers {
            let n = label(name);
            for (labels, value) in (f.samples)(s) {
                let _ = writeln!(out, "{}{{name=\"{n}\"{labels}}} {value}", f.name);
            }
        }
    }
    out
}

/// Writes `text` to `path` through a temporary file in the same directory
/// and a rename, so a reader never sees a partial file. The temporary name
/// is `.NAME.XXXXXX.tmp`, random and created exclusively (`tempfile`), so
/// that writers sharing the directory (containers, a crashed run whose pid
/// came round again) never meet on one name; it ends in `.tmp`, which the
/// textfile collector (it reads `*.prom`) skips, and it is removed if
/// anything fails.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    // Replace only a regular file: renaming over a symlink, a FIFO, a
    // device (as root, /dev/null) or a directory would break whatever it
    // stands for.
    // The replacement keeps the permissions of the file of the caller's
    // that it replaces, and a new one is readable by all (0644), whatever
    // the umask: the collector reading it usually runs as another user.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mode = match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => {
            let what = describe_file_type(&meta.file_type());
            return Err(std::io::Error::other(format!(
                "it is {what}; --output writes only a regular file or a new path (use '-' for stdout)"
            )));
        }
        // Only the permission bits, and only from a file of the caller's
        // own: another user's file in a shared directory must not hand
        // its mode (setuid and all) to the one written in its place.
        Ok(meta) if meta.uid() == crate::host::euid() => meta.permissions().mode() & 0o777,
        Ok(_) => 0o644,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0o644,
        Err(e) => return Err(e),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the output path names no file"))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(file_name);
    prefix.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)?;
    // Dropped on an error, the temporary file is removed.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn describe_file_type(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_symlink() {
        "a symlink"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_type_and_a_series_per_breaker() {
        let mut s = BreakerState::default();
        s.trip(Some(30_000), 1_500);
        s.counters.calls = 3;
        s.counters.failures = 3;
        let text = render(&[("api".into(), s), ("db".into(), BreakerState::default())]);
        for f in &FAMILIES {
            assert!(
                text.contains(&format!("# TYPE {} {}\n", f.name, f.kind)),
                "{}",
                f.name
            );
        }
        assert!(text.contains("cbreak_state{name=\"api\",state=\"open\"} 1\n"));
        assert!(text.contains("cbreak_state{name=\"api\",state=\"closed\"} 0\n"));
        assert!(text.contains("cbreak_calls_total{name=\"api\",outcome=\"failure\"} 3\n"));
        assert!(text.contains("cbreak_next_probe_timestamp_seconds{name=\"api\"} 31.500\n"));
        assert!(text.contains("cbreak_opened_timestamp_seconds{name=\"db\"} 0.000\n"));
        assert!(text.contains("cbreak_transitions_total{name=\"api\",to=\"open\"} 1\n"));
    }

    #[test]
    fn mode_recovery_and_last_outcomes_are_exported() {
        use crate::breaker::tests::FakeHost;
        use crate::breaker::{Admission, Call, Outcome, Policy};
        let mut h = FakeHost::at(10_000);
        let p = Policy::default();
        let mut s = BreakerState::new(h.now, 1, p);
        let call = |s: &mut BreakerState, h: &mut FakeHost, outcome| {
            h.now += 1_250;
            let (Admission::Run(t), _) = s.admit(&p, h) else {
                panic!("rejected")
            };
            let call = Call {
                outcome,
                slow: false,
                timed_out: false,
            };
            s.record(t, call, h);
        };
        call(&mut s, &mut h, Outcome::Success);
        call(&mut s, &mut h, Outcome::Failure);
        s.disable(h.now);
        let text = render(&[("api".into(), s)]);
        assert!(text.contains("cbreak_disabled{name=\"api\"} 1\n"), "{text}");
        assert!(text.contains("cbreak_recovery_period_seconds{name=\"api\"} 30.000\n"));
        assert!(text.contains("cbreak_last_success_timestamp_seconds{name=\"api\"} 11.250\n"));
        assert!(text.contains("cbreak_last_failure_timestamp_seconds{name=\"api\"} 12.500\n"));
        let fresh = render(&[("db".into(), BreakerState::new(0, 1, p))]);
        assert!(fresh.contains("cbreak_disabled{name=\"db\"} 0\n"));
        assert!(fresh.contains("cbreak_last_success_timestamp_seconds{name=\"db\"} 0.000\n"));
    }

    /// The temporary file was `.NAME.PID.tmp`: another container writing
    /// to the same directory, or a crashed run whose pid came round again,
    /// left one of that name, and every write failed with EEXIST.
    #[test]
    fn a_temporary_of_the_same_pid_left_by_another_writer_does_not_block_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cbreak.prom");
        let theirs = dir
            .path()
            .join(format!(".cbreak.prom.{}.tmp", std::process::id()));
        std::fs::write(&theirs, "another writer's").unwrap();
        write_atomically(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(
            std::fs::read_to_string(&theirs).unwrap(),
            "another writer's",
            "another writer's temporary is left alone"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cbreak.prom");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
