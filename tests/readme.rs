//! The README's recipes, run as written, so that none can rot.
//!
//! Every fenced block of README.md tagged `sh`, `bash`, `cron`, `yaml` or
//! `ini` (systemd units) is found and run against the built binary, in a
//! sandbox: a temporary HOME (so the default state directory is used), and
//! a `bin` directory holding `cbreak` and fakes of the services the recipes
//! call (`curl`, `rsync`, `npm`, `mail`, `jq`, `fetch-prices`), each of
//! which logs its call and fails while a `down/NAME` file exists.
//!
//! cron lines are run as cron runs them: a clean environment, its default
//! `PATH=/usr/bin:/bin` unless the crontab sets one, `NAME=VALUE` lines with
//! their quotes stripped, `\%` unescaped, the command part with `sh -c`.
//! A systemd service runs its `ExecStart=` with its `Environment=`, `%S`
//! pointing into the sandbox and the `StateDirectory=` made there. Absolute
//! paths a recipe names (`/usr/local/bin`, the textfile collector's
//! directory) are the one thing rewritten, into the sandbox. `sh dev`
//! blocks (building and testing cbreak itself) are not run; the files and
//! cargo aliases they name must exist.
//!
//! Each runnable block must be claimed by exactly one scenario below, which
//! says what the recipe must do: a new recipe without one fails the test.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::util::{Run, bin};

/// One fenced block of the README.
struct Block {
    info: String,
    text: String,
    line: usize,
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

fn blocks(readme: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in readme.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    text: String::new(),
                    line: i + 1,
                })
            }
            (Some(_), Some("")) => out.push(open.take().unwrap()),
            (Some(b), _) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "README.md has an unclosed fence");
    out
}

const FAKE: &str = r#"#!/bin/sh
# A fake service for the README's recipes: logs the call, fails while
# down/NAME exists.
name=${0##*/}
dir=SANDBOX
printf '%s\n' "$name $*" >> "$dir/calls"
if [ -e "$dir/down/$name" ]; then
  echo "$name: the service is down (fake)" >&2
  exit 7
fi
case $name in
  jq) exec cat ;;
  mail) cat >> "$dir/mail" ;;
  curl)
    out=
    while [ $# -gt 0 ]; do
      if [ "$1" = -o ]; then out=$2; shift; fi
      shift
    done
    if [ -n "$out" ]; then echo fresh > "$out"; else echo '{"price": 1}'; fi ;;
esac
exit 0
"#;

/// A temporary world for one scenario.
struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let sb = Sandbox {
            tmp: tempfile::tempdir().unwrap(),
        };
        for dir in [
            "bin",
            "home",
            "work",
            "down",
            "textfile",
            "var/lib",
            "var/cache",
        ] {
            std::fs::create_dir_all(sb.path(dir)).unwrap();
        }
        let fake = sb.path("fake");
        std::fs::write(&fake, FAKE.replace("SANDBOX", sb.root().to_str().unwrap())).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        for name in ["curl", "rsync", "npm", "mail", "jq", "fetch-prices"] {
            symlink(&fake, sb.path("bin").join(name)).unwrap();
        }
        let cbreak = std::fs::canonicalize(bin()).unwrap();
        symlink(cbreak, sb.path("bin/cbreak")).unwrap();
        sb
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root().join(p)
    }

    /// The absolute paths recipes name, and where they are in the sandbox.
    fn rewrite(&self, s: &str) -> String {
        s.replace("/usr/local/bin", self.path("bin").to_str().unwrap())
            .replace("/var/cache", self.path("var/cache").to_str().unwrap())
            .replace(
                "/var/lib/node_exporter/textfile",
                self.path("textfile").to_str().unwrap(),
            )
    }

    fn down(&self, service: &str) {
        std::fs::write(self.path("down").join(service), "").unwrap();
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.path("calls")).unwrap_or_default()
    }

    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    /// A user's shell: their environment without CBREAK_* settings, HOME
    /// in the sandbox, the fakes and cbreak first on PATH.
    fn shell(&self, shell: &str, script: &str) -> Run {
        let mut cmd = Command::new(shell);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CBREAK_") {
                cmd.env_remove(&k);
            }
        }
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path)
            .env("HOME", self.path("home"))
            .env_remove("XDG_STATE_HOME")
            .arg("-c")
            .arg(script);
        self.output(cmd)
    }

    fn output(&self, mut cmd: Command) -> Run {
        Run::from(
            cmd.current_dir(self.path("work"))
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    }

    /// `cbreak ARGS` as the user's shell runs it.
    fn cbreak(&self, args: &str) -> Run {
        self.shell("sh", &format!("cbreak {args}"))
    }

    fn status(&self, name: &str) -> Value {
        let out = self.cbreak(&format!("status {name} --json")).success();
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// Runs the command part of crontab line `index` (counting schedule
    /// lines only) as cron would.
    fn cron(&self, crontab: &str, index: usize) -> Run {
        let mut env: BTreeMap<String, String> = BTreeMap::from([
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("SHELL".into(), "/bin/sh".into()),
            ("HOME".into(), self.path("home").to_str().unwrap().into()),
            ("LOGNAME".into(), "root".into()),
        ]);
        let mut jobs = Vec::new();
        for line in crontab.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let first = line.split_whitespace().next().unwrap();
            if let Some((k, v)) = line.split_once('=')
                && !first.chars().next().unwrap().is_ascii_digit()
                && !first.starts_with('*')
            {
                let v = v.trim();
                let unquoted = ['"', '\'']
                    .iter()
                    .find_map(|q| v.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                    .unwrap_or(v);
                env.insert(k.trim().into(), self.rewrite(unquoted));
                continue;
            }
            let mut rest = line;
            for _ in 0..5 {
                let (_, r) = rest
                    .trim_start()
                    .split_once(char::is_whitespace)
                    .unwrap_or_else(|| panic!("not a crontab line: {line}"));
                rest = r;
            }
            let command = rest.trim();
            assert!(
                !command.replace("\\%", "").contains('%'),
                "an unescaped % ends a cron command: {line}"
            );
            jobs.push(self.rewrite(&command.replace("\\%", "%")));
        }
        let mut cmd = Command::new("/bin/sh");
        cmd.env_clear().envs(&env).arg("-c").arg(&jobs[index]);
        self.output(cmd)
    }

    /// Runs a systemd service's `ExecStart=` as systemd would; the exit
    /// status and whether the unit counts it a success.
    fn systemd(&self, unit: &str) -> (Run, bool) {
        let mut service = BTreeMap::new();
        let mut section = "";
        for line in unit.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
            } else if let Some((k, v)) = line.split_once('=')
                && section == "[Service]"
                && !line.starts_with('#')
            {
                service.insert(k.to_string(), v.to_string());
            }
        }
        let state = self.path("var/lib");
        let expand = |s: &str| self.rewrite(&s.replace("%S", state.to_str().unwrap()));
        let dir = state.join(&service["StateDirectory"]);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exec = expand(&service["ExecStart"]);
        assert!(
            !exec.contains(['"', '\'', '$', '%']),
            "quoting and specifiers in ExecStart= are not emulated here: {exec}"
        );
        let words: Vec<&str> = exec.split_whitespace().collect();
        let mut cmd = Command::new(words[0]);
        cmd.env_clear()
            .env("PATH", expand("/usr/local/bin:/usr/bin:/bin"))
            .args(&words[1..]);
        if let Some(e) = service.get("Environment") {
            let (k, v) = e.split_once('=').unwrap();
            cmd.env(k, expand(v));
        }
        let run = self.output(cmd);
        let ok = run.code == 0
            || service
                .get("SuccessExitStatus")
                .is_some_and(|s| s.split_whitespace().any(|c| c == run.code.to_string()));
        (run, ok)
    }
}

/// What one recipe must do. `claims` picks its block by a line in it.
struct Scenario {
    claims: &'static str,
    check: fn(&Block),
}

/// A Redis server for the recipes of "One breaker for many machines",
/// with the user `cbreak` (password `s3cret`) the recipes' URL names, and
/// that URL pointed at it; `None` when there is no server here (outside CI).
fn redis_for(recipe: &str) -> Option<(crate::redis_server::Redis, String)> {
    let redis = crate::redis_server::Redis::start_with(
        recipe,
        &[
            "--user",
            "cbreak",
            "on",
            ">s3cret",
            "~cbreak:*",
            "+@all",
            "--databases",
            "4",
        ],
    )?;
    let url = format!("redis://cbreak:s3cret@127.0.0.1:{}/2", redis.port);
    Some((redis, url))
}

/// The steps of a CI job: GitHub's `- run: …` and GitLab's `script:` items.
fn ci_steps(yaml: &str) -> Vec<String> {
    yaml.lines()
        .map(str::trim)
        .filter_map(|l| {
            l.strip_prefix("- run: ").or(l
                .strip_prefix("- cbreak ")
                .map(|_| l.trim_start_matches("- ")))
        })
        .map(str::to_string)
        .collect()
}

/// Two CI jobs on two throwaway runners (sandboxes) sharing the store: the
/// registry's failures in one open the breaker for the other.
fn ci_shares_the_breaker(b: &Block, recipe: &str) {
    let steps = ci_steps(&b.text);
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert!(
        b.text.contains("CBREAK_STORE"),
        "the URL comes from the CI's secrets"
    );
    let Some((_redis, url)) = redis_for(recipe) else {
        return;
    };
    let job = |sb: &Sandbox| {
        // The CI runs a step with `bash -e`, the secret in its environment.
        sb.shell(
            "bash",
            &format!("set -e\nexport CBREAK_STORE='{url}'\n{}", steps[0]),
        )
    };
    let (first, second) = (Sandbox::new(), Sandbox::new());
    job(&first).success();
    assert!(first.calls().contains("npm ci"));
    first.down("npm");
    for _ in 0..3 {
        job(&first).code(7);
    }
    let out = job(&second).code(75);
    assert!(out.stderr.contains("skipped 'npm'"), "{}", out.stderr);
    assert!(
        !second.calls().contains("npm"),
        "the other runner never tried"
    );
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        claims: "CBREAK_STORE=redis://cbreak:s3cret@redis.internal:6379/2",
        check: |b| {
            let Some((_redis, url)) = redis_for("readme: the cron fleet recipe") else {
                return;
            };
            let crontab = b
                .text
                .replace("redis://cbreak:s3cret@redis.internal:6379/2", &url);
            // Two hosts with the same crontab and one breaker.
            let (a, b2) = (Sandbox::new(), Sandbox::new());
            a.cron(&crontab, 0).success().stderr_empty();
            assert_eq!(a.read("var/cache/prices.json"), "fresh\n");
            a.down("curl");
            a.cron(&crontab, 0).code(7);
            b2.down("curl");
            b2.cron(&crontab, 0).code(7);
            a.cron(&crontab, 0)
                .code(7)
                .stderr_has("breaker 'prices-api' opened: 3 consecutive failures");
            // The other host skips, silently, though it failed only once.
            let before = b2.calls();
            let out = b2.cron(&crontab, 0).code(75);
            assert_eq!(out.stdout + &out.stderr, "", "a skip mails nothing");
            assert_eq!(b2.calls(), before, "not even tried");
            let shared = b2.shell(
                "sh",
                &format!("CBREAK_STORE='{url}' cbreak status prices-api --json"),
            );
            let s: Value = serde_json::from_str(&shared.success().stdout).unwrap();
            assert_eq!(
                (s["failures"].as_u64(), s["rejected"].as_u64()),
                (Some(3), Some(1))
            );
        },
    },
    Scenario {
        claims: "CBREAK_STORE: ${{ secrets.CBREAK_STORE }}",
        check: |b| ci_shares_the_breaker(b, "readme: the GitHub Actions recipe"),
    },
    Scenario {
        claims: "# GitLab CI (CBREAK_STORE is a masked CI/CD variable)",
        check: |b| ci_shares_the_breaker(b, "readme: the GitLab CI recipe"),
    },
    Scenario {
        claims: "cbreak run --threshold 3 --recovery 30s -- curl",
        check: |b| {
            let sb = Sandbox::new();
            let out = sb.shell("sh", &b.text).success();
            assert_eq!(out.stdout, "{\"price\": 1}\n", "stdout passes through");
            sb.down("curl");
            sb.shell("sh", &b.text).code(7);
            sb.shell("sh", &b.text).code(7);
            sb.shell("sh", &b.text)
                .code(7)
                .stderr_has("opened: 3 consecutive failures; skipping runs for 30s");
            sb.shell("sh", &b.text)
                .code(75)
                .stderr_has("skipped 'curl'");
        },
    },
    Scenario {
        claims: "-n offsite -t 3 -r 6h --timeout 2h --quiet-skips",
        check: |b| {
            let sb = Sandbox::new();
            let out = sb.cron(&b.text, 0).success();
            assert_eq!(out.stdout + &out.stderr, "", "a good night mails nothing");
            assert!(sb.calls().contains("rsync -a /srv/ backup:/srv/"));
            sb.down("rsync");
            sb.cron(&b.text, 0).code(7);
            sb.cron(&b.text, 0).code(7);
            assert!(!sb.path("mail").exists());
            sb.cron(&b.text, 0)
                .code(7)
                .stderr_has("cbreak: breaker 'offsite' opened: 3 consecutive failures");
            assert_eq!(sb.read("mail"), "backup target down\n", "the hook mails");
            assert!(sb.calls().contains("mail -s cbreak ops@example.com"));
            let out = sb.cron(&b.text, 0).code(75);
            assert_eq!(
                out.stdout + &out.stderr,
                "",
                "a skipped night mails nothing"
            );
        },
    },
    Scenario {
        claims: "-n prices -t 0 --failure-rate 50\\%",
        check: |b| {
            let sb = Sandbox::new();
            sb.cron(&b.text, 0).success().stderr_empty();
            assert!(sb.calls().contains("fetch-prices"));
            let s = sb.status("prices");
            assert_eq!(
                (s["calls"].as_u64(), s["threshold"].as_u64()),
                (Some(1), Some(0))
            );
            assert_eq!(
                s["policy"]["failure_rate_percent"].as_f64(),
                Some(50.0),
                "{s}"
            );
        },
    },
    Scenario {
        claims: "StateDirectory=cbreak",
        check: |b| {
            let sb = Sandbox::new();
            let (run, ok) = sb.systemd(&b.text);
            assert!(ok && run.code == 0, "{}", run.stderr);
            assert!(
                sb.path("var/lib/cbreak/offsite").exists(),
                "state in StateDirectory="
            );
            assert!(!sb.path("home/.local").exists(), "and nowhere else");
            sb.down("rsync");
            for _ in 0..3 {
                let (run, ok) = sb.systemd(&b.text);
                assert!(!ok && run.code == 7, "a failed upload fails the unit");
            }
            let (run, ok) = sb.systemd(&b.text);
            assert!(
                ok && run.code == 75,
                "a skip is no failed unit: {}",
                run.code
            );
        },
    },
    Scenario {
        claims: "OnCalendar=",
        check: |b| {
            let unit = b.text.lines().next().unwrap();
            assert!(
                unit.ends_with("/offsite.timer"),
                "the timer of offsite.service: {unit}"
            );
            for key in [
                "[Timer]",
                "OnCalendar=*-*-* 02:15",
                "WantedBy=timers.target",
            ] {
                assert!(b.text.contains(key), "{key}");
            }
        },
    },
    Scenario {
        claims: "75) cp cache/pkgs.tgz . ;;",
        check: |b| {
            let sb = Sandbox::new();
            std::fs::create_dir(sb.path("work/cache")).unwrap();
            std::fs::write(sb.path("work/cache/pkgs.tgz"), "cached\n").unwrap();
            sb.shell("sh", &b.text).success().stderr_empty();
            assert_eq!(sb.read("work/pkgs.tgz"), "fresh\n");
            sb.down("curl");
            sb.shell("sh", &b.text)
                .code(7)
                .stderr_has("service is down");
            sb.cbreak("trip mirror").success();
            sb.shell("sh", &b.text).success().stderr_empty();
            assert_eq!(
                sb.read("work/pkgs.tgz"),
                "cached\n",
                "a skip uses the cache"
            );
        },
    },
    Scenario {
        claims: "- run: cbreak run -n registry",
        check: |b| {
            let sb = Sandbox::new();
            let steps: Vec<&str> = b
                .text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("- run: "))
                .collect();
            assert_eq!(steps.len(), 1);
            // GitHub Actions runs a step with `bash -e`.
            sb.shell("bash", &format!("set -e\n{}", steps[0])).success();
            assert!(sb.calls().contains("npm ci"));
        },
    },
    Scenario {
        claims: "export CBREAK_ON_OPEN='curl",
        check: |b| {
            let sb = Sandbox::new();
            let script = format!(
                "{}\ncbreak run -n api -t 1 -r 100ms -- false\nsleep 0.5\n\
                 cbreak run -n api -t 1 -r 100ms -- true\n",
                b.text
            );
            sb.shell("sh", &script).success();
            let calls = sb.calls();
            let fail = calls.find("curl -fsS -m 10 https://hc-ping.com/UUID/fail");
            let ok = calls.find("curl -fsS -m 10 https://hc-ping.com/UUID\n");
            assert!(fail.is_some() && ok.is_some() && fail < ok, "{calls}");
        },
    },
    Scenario {
        claims: "cbreak metrics --output /var/lib/node_exporter/textfile/cbreak.prom",
        check: |b| {
            let sb = Sandbox::new();
            sb.cbreak("run -n api -- true").success();
            sb.cron(&b.text, 0).success().stderr_empty();
            let text = sb.read("textfile/cbreak.prom");
            assert!(text.contains("cbreak_calls_total{name=\"api\""), "{text}");
        },
    },
    Scenario {
        claims: "cbreak completions bash > ~/.local/share/bash-completion/completions/cbreak",
        check: |b| {
            let sb = Sandbox::new();
            for dir in [
                "home/.local/share/bash-completion/completions",
                "home/.zfunc",
                "home/.config/fish/completions",
            ] {
                std::fs::create_dir_all(sb.path(dir)).unwrap();
            }
            sb.shell("sh", &b.text).success().stderr_empty();
            let bash = sb.read("home/.local/share/bash-completion/completions/cbreak");
            assert!(bash.contains("complete -F"), "{bash}");
            assert!(sb.read("home/.zfunc/_cbreak").contains("#compdef cbreak"));
            assert!(
                sb.read("home/.config/fish/completions/cbreak.fish")
                    .contains("complete -c cbreak")
            );
            let run = sb.read("home/.local/share/man/man1/cbreak-run.1");
            assert!(run.contains(".SH EXIT STATUS"), "{run}");
        },
    },
    Scenario {
        claims: "fetch_prices() (",
        check: |b| {
            let sb = Sandbox::new();
            let call = |sb: &Sandbox| {
                sb.shell(
                    "bash",
                    &format!(
                        "{}\nURL=https://prices.example.com/today\nfetch_prices",
                        b.text
                    ),
                )
            };
            call(&sb).success();
            assert_eq!(sb.read("work/prices.json"), "{\"price\": 1}\n");
            assert_eq!(sb.status("prices")["successes"], 1);
            sb.down("curl");
            call(&sb).code(1);
            assert_eq!(
                sb.read("work/prices.json"),
                "{\"price\": 1}\n",
                "a failure keeps the last good copy"
            );
            assert!(!sb.path("work/prices.json.new").exists());
            assert_eq!(
                sb.status("prices")["failures"],
                1,
                "a failing curl is a failure"
            );
            sb.cbreak("trip prices").success();
            let before = sb.calls();
            call(&sb).code(75);
            assert_eq!(sb.calls(), before, "an open breaker is not even tried");
        },
    },
];

/// A `rust` block is the crate documentation's example (src/lib.rs) as a
/// reader sees it, without its hidden `# ` lines: that example runs as a
/// doctest, so the README's cannot rot.
fn check_rust_block(b: &Block) {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let docs: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let mut examples = Vec::new();
    let mut open: Option<String> = None;
    for line in docs {
        match (&mut open, line.starts_with("```")) {
            (None, true) => open = Some(String::new()),
            (Some(_), true) => examples.extend(open.take()),
            (Some(text), false) if !(line == "#" || line.starts_with("# ")) => {
                text.push_str(line);
                text.push('\n');
            }
            _ => {}
        }
    }
    assert!(
        examples.contains(&b.text),
        "README.md:{}: this Rust example must be the one in src/lib.rs's crate docs (a doctest), without its hidden lines:\n{}\nthose are:\n{}",
        b.line,
        b.text,
        examples.join("\n---\n")
    );
}

/// A dependency line for Cargo.toml: this crate, at a version this one
/// satisfies, without the command line (the library alone builds so: see
/// tests/architecture.rs and .ci/run).
fn check_toml_block(b: &Block) {
    let line = b
        .text
        .lines()
        .find(|l| l.starts_with("cbreak = "))
        .unwrap_or_else(|| {
            panic!(
                "README.md:{}: a toml block is a dependency on cbreak",
                b.line
            )
        });
    let version = line
        .split("version = \"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .unwrap_or_else(|| panic!("README.md:{}: no version in {line}", b.line));
    let ours = env!("CARGO_PKG_VERSION");
    assert!(
        ours.starts_with(&format!("{version}.")) || ours == version,
        "README.md:{}: version {version} is not this crate's {ours}",
        b.line
    );
    assert!(
        line.contains("default-features = false"),
        "README.md:{}: {line}",
        b.line
    );
}

#[test]
fn every_readme_recipe_runs_as_written() {
    let readme = readme();
    let all = blocks(&readme);
    let mut claimed = vec![0; SCENARIOS.len()];
    for b in &all {
        let lang = b.info.split_whitespace().next().unwrap_or("");
        if b.info == "sh dev" {
            check_dev_block(b);
            continue;
        }
        if lang == "rust" {
            check_rust_block(b);
            continue;
        }
        if lang == "toml" {
            check_toml_block(b);
            continue;
        }
        if !["sh", "bash", "cron", "yaml", "ini"].contains(&lang) {
            assert_eq!(lang, "", "README.md:{}: unknown block type {lang}", b.line);
            continue; // sample output
        }
        let mine: Vec<usize> = (0..SCENARIOS.len())
            .filter(|&i| b.text.contains(SCENARIOS[i].claims))
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "README.md:{}: every recipe needs exactly one scenario in tests/readme.rs:\n{}",
            b.line,
            b.text
        );
        claimed[mine[0]] += 1;
        (SCENARIOS[mine[0]].check)(b);
    }
    for (s, n) in SCENARIOS.iter().zip(claimed) {
        assert_eq!(n, 1, "scenario {:?} matches no README block", s.claims);
    }
}

/// Building and testing cbreak is not run from a test; what those lines
/// name must exist.
fn check_dev_block(b: &Block) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = std::fs::read_to_string(root.join(".cargo/config.toml")).unwrap();
    for line in b.text.lines() {
        let words: Vec<&str> = line.split('#').next().unwrap().split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if w.starts_with("./") || w.starts_with(".ci/") {
                assert!(
                    root.join(w).exists(),
                    "README.md:{}: {w} does not exist",
                    b.line
                );
            }
            if *w == "cargo"
                && let Some(sub) = words.get(i + 1)
                && sub.starts_with("static")
            {
                assert!(
                    config.contains(&format!("{sub} = [")),
                    "no cargo alias {sub}"
                );
            }
            if *w == "--bench" {
                let bench = format!("benches/{}.rs", words[i + 1]);
                assert!(root.join(&bench).exists(), "{bench}");
            }
        }
    }
}

#[test]
fn fences_are_found() {
    let found = blocks("a\n```sh\nx\n```\n```\nout\n```\n");
    assert_eq!(found.len(), 2);
    assert_eq!(
        (found[0].info.as_str(), found[0].text.as_str()),
        ("sh", "x\n")
    );
    assert_eq!(found[1].line, 5);
}
