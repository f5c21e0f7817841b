//! Man pages: `cbreak(1)` and one `cbreak-SUBCOMMAND(1)` per subcommand,
//! made from the definition (`defs`, rendered as a `clap::Command`: name,
//! description, options with their
//! variables, subcommands) plus the sections written here (synopsis,
//! environment, exit status, files, examples, see also).
//!
//! `cbreak man [PAGE]` prints them; `tests/generated.rs` checks the copies
//! committed in `man/`.

use clap::ArgAction;
use clap_mangen::Man;

/// Every page, `cbreak` first, as (name, roff).
pub fn pages() -> Vec<(String, String)> {
    let mut cmd = super::command().disable_help_subcommand(true);
    // Propagates the global options (--state-dir, ...) into each
    // subcommand, so that each page lists them.
    cmd.build();
    let mut names: Vec<String> = vec!["cbreak".into()];
    names.extend(
        cmd.get_subcommands()
            .map(|s| format!("cbreak-{}", s.get_name())),
    );
    let mut out = vec![("cbreak".to_string(), page(&cmd, None, &names))];
    for sub in cmd.get_subcommands() {
        let name = format!("cbreak-{}", sub.get_name());
        out.push((name, page(&cmd, Some(sub), &names)));
    }
    out
}

/// One page by name: `cbreak`, `cbreak-run` or `run`.
pub fn page_named(name: &str) -> Option<String> {
    let wanted = if name == "cbreak" || name.starts_with("cbreak-") {
        name.to_string()
    } else {
        format!("cbreak-{name}")
    };
    pages()
        .into_iter()
        .find(|(n, _)| *n == wanted)
        .map(|(_, p)| p)
}

fn page(top: &clap::Command, sub: Option<&clap::Command>, names: &[String]) -> String {
    // Positionals follow the last option's heading (Hooks) in clap's
    // definition; in a man page they belong under OPTIONS.
    let (title, cmd) = match sub {
        None => ("cbreak".to_string(), top.clone()),
        Some(s) => {
            let title = format!("cbreak-{}", s.get_name());
            // clap takes a 'static name unless its "string" feature is on;
            // each page is made once per process.
            let name: &'static str = Box::leak(title.clone().into_boxed_str());
            (
                title,
                s.clone().name(name).version(env!("CARGO_PKG_VERSION")),
            )
        }
    };
    let sub_name = sub.map(|s| s.get_name().to_string());
    let cmd = cmd.mut_args(|a| {
        if a.is_positional() {
            a.help_heading(None)
        } else {
            a
        }
    });
    let man = Man::new(cmd.clone())
        .title(title.to_uppercase())
        .section("1")
        .source(format!("cbreak {}", env!("CARGO_PKG_VERSION")))
        .manual("User Commands");
    let mut out = Vec::new();
    let mut render = |f: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        // Writing to a Vec cannot fail.
        let _ = f(&mut out);
    };
    render(&|w| man.render_title(w));
    render(&|w| man.render_name_section(w));
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push_str(&synopsis(top, sub));
    let mut rest = Vec::new();
    let _ = man.render_description_section(&mut rest);
    let _ = man.render_options_section(&mut rest);
    if sub.is_none() {
        let _ = man.render_subcommands_section(&mut rest);
    }
    text.push_str(&String::from_utf8_lossy(&rest));
    text.push_str(&environment(top, sub));
    text.push_str(&exit_status(sub_name.as_deref()));
    text.push_str(&files());
    text.push_str(&examples(sub_name.as_deref()));
    text.push_str(&see_also(&title, names));
    let mut version = Vec::new();
    let _ = man.render_version_section(&mut version);
    text.push_str(&String::from_utf8_lossy(&version));
    text
}

/// Text for roff: backslashes and hyphens escaped, no line starting with a
/// control character.
fn esc(s: &str) -> String {
    s.replace('\\', "\\e")
        .replace('-', "\\-")
        .lines()
        .map(|l| {
            if l.starts_with(['.', '\'']) {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// "Breaker name" → "breaker name", to follow a colon; "NFS ..." stays.
fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if b.is_lowercase() => {
            a.to_lowercase().chain(s[a.len_utf8()..].chars()).collect()
        }
        _ => s.to_string(),
    }
}

fn bold(s: &str) -> String {
    format!("\\fB{}\\fR", esc(s))
}

fn italic(s: &str) -> String {
    format!("\\fI{}\\fR", esc(s))
}

fn section(title: &str) -> String {
    format!(".SH {title}\n")
}

fn para(text: &str) -> String {
    format!(".PP\n{}\n", esc(text))
}

fn item(tag: &str, text: &str) -> String {
    format!(".TP\n{tag}\n{}\n", esc(text))
}

fn example(text: &str, code: &str) -> String {
    format!(
        ".PP\n{}\n.PP\n.RS 4\n.nf\n{}\n.fi\n.RE\n",
        esc(text),
        esc(code)
    )
}

/// `cbreak run [OPTIONS] [--] COMMAND [ARGS]...` and the like, one line
/// per form.
fn synopsis(top: &clap::Command, sub: Option<&clap::Command>) -> String {
    let mut out = section("SYNOPSIS");
    let Some(sub) = sub else {
        out.push_str(&format!(
            "{} [{}] {} [{}]\n",
            bold("cbreak"),
            italic("OPTIONS"),
            italic("SUBCOMMAND"),
            italic("ARGS")
        ));
        for s in top.get_subcommands() {
            out.push_str(".br\n");
            out.push_str(&synopsis_lines(s).join("\n.br\n"));
            out.push('\n');
        }
        return out;
    };
    out.push_str(&synopsis_lines(sub).join("\n.br\n"));
    out.push('\n');
    out
}

fn synopsis_lines(sub: &clap::Command) -> Vec<String> {
    let head = format!(
        "{} [{}]",
        bold(&format!("cbreak {}", sub.get_name())),
        italic("OPTIONS")
    );
    let command = format!("{} [{}]...", italic("COMMAND"), italic("ARGS"));
    let mut plain = Vec::new();
    let mut last = None;
    for a in sub.get_positionals() {
        let word = match a.get_value_names().and_then(|v| v.first()) {
            _ if a.get_value_hint() == clap::ValueHint::CommandWithArguments => command.clone(),
            _ if !a.get_possible_values().is_empty() => a
                .get_possible_values()
                .iter()
                .map(|v| bold(v.get_name()))
                .collect::<Vec<_>>()
                .join("|"),
            Some(v) => italic(v),
            None => italic(&a.get_id().as_str().to_uppercase()),
        };
        if a.is_last_set() {
            last = Some(word);
        } else if a.is_trailing_var_arg_set() {
            plain.push(format!("[{}] {word}", bold("--")));
        } else if a.is_required_set() {
            plain.push(word);
        } else if last.is_none() && !sub.get_positionals().any(|p| p.is_last_set()) {
            plain.push(format!("[{word}]"));
        } else {
            // NAME, or the command after `--`: shown as two forms.
            plain.push(word);
        }
    }
    let mut lines = vec![
        std::iter::once(head.clone())
            .chain(plain)
            .collect::<Vec<_>>()
            .join(" "),
    ];
    if let Some(word) = last {
        lines.push(format!("{head} {} {word}", bold("--")));
    }
    lines
}

/// The variables this page's options read, then those cbreak reads or sets
/// otherwise.
fn environment(top: &clap::Command, sub: Option<&clap::Command>) -> String {
    let mut out = section("ENVIRONMENT");
    let mut seen: Vec<String> = Vec::new();
    let commands: Vec<&clap::Command> = match sub {
        Some(s) => vec![s],
        None => std::iter::once(top).chain(top.get_subcommands()).collect(),
    };
    for c in &commands {
        for a in c.get_arguments() {
            let (Some(var), Some(long)) = (a.get_env(), a.get_long()) else {
                continue;
            };
            let var = var.to_string_lossy().into_owned();
            if seen.contains(&var) {
                continue;
            }
            seen.push(var.clone());
            let help = a
                .get_help()
                .map(|h| lower_first(&h.to_string()))
                .unwrap_or_default();
            let kind = if matches!(a.get_action(), ArgAction::SetTrue) {
                " (1/0, yes/no, true/false, on/off)"
            } else {
                ""
            };
            out.push_str(&item(
                &bold(&var),
                &format!("The default of --{long}{kind}: {help}."),
            ));
        }
    }
    out.push_str(&para(
        "An option given on the command line wins over its variable.",
    ));
    let name = sub.map(|s| s.get_name());
    if !matches!(name, Some("name" | "completions" | "man")) {
        out.push_str(&item(
            &bold("XDG_STATE_HOME"),
            "Without --state-dir or CBREAK_STATE_DIR, records are kept in $XDG_STATE_HOME/cbreak (when it is an absolute path).",
        ));
        out.push_str(&item(
            &bold("HOME"),
            "Failing that, in $HOME/.local/state/cbreak. cbreak never asks the user database.",
        ));
    }
    if matches!(name, None | Some("status")) {
        for (var, text) in [
            (
                "NO_COLOR",
                "Set and not empty: status prints no colour (unless --color always).",
            ),
            (
                "CLICOLOR_FORCE",
                "Set, not empty and not 0: colour even when stdout is not a terminal (NO_COLOR and --color never win over it).",
            ),
            ("CLICOLOR", "0: no colour."),
            ("TERM", "dumb: no colour."),
            (
                "LC_ALL, LC_CTYPE, LANG",
                "The first one set says whether the terminal takes UTF-8; if not, status uses + and x for outcomes.",
            ),
        ] {
            out.push_str(&item(&bold(var), text));
        }
        out.push_str(&para(
            "Colour: the first rule that applies decides, in the order --color, NO_COLOR, CLICOLOR_FORCE, CLICOLOR, TERM; otherwise status colours when stdout is a terminal.",
        ));
    }
    if matches!(name, None | Some("run" | "record")) {
        out.push_str(&para(
            "Hooks (--on-open and the others) run with sh -c and see these variables:",
        ));
        for (var, text) in [
            ("CBREAK_NAME", "the breaker's name"),
            (
                "CBREAK_STATE",
                "the state entered: closed, open, half_open or forced_open",
            ),
            ("CBREAK_PREVIOUS_STATE", "the state left"),
            (
                "CBREAK_CONSECUTIVE_FAILURES",
                "failures in a row at the transition",
            ),
            (
                "CBREAK_OPENED_AT",
                "when the breaker opened (RFC 3339), empty when closed",
            ),
            (
                "CBREAK_NEXT_PROBE_AT",
                "when the next probe may run (RFC 3339), empty unless open",
            ),
            (
                "CBREAK_REASON",
                "why, e.g. \"3 consecutive failures\" or \"probe succeeded\"",
            ),
        ] {
            out.push_str(&item(&bold(var), text));
        }
    }
    out
}

fn exit_status(sub: Option<&str>) -> String {
    let mut out = section("EXIT STATUS");
    let rows: &[(&str, &str)] = match sub {
        Some("run") => &[
            (
                "the command's",
                "The command ran; its exit status is passed through.",
            ),
            ("128+N", "The command was killed by signal N."),
            (
                "75",
                "Skipped: the breaker is open (--open-exit-code changes it). With --fallback, the fallback's status instead.",
            ),
            ("124", "The command ran past --timeout and was killed."),
            (
                "125",
                "cbreak's own error: usage, an invalid option or name, or --on-state-error fail when the state cannot be used.",
            ),
            (
                "126",
                "The command could not be executed (not recorded on the breaker).",
            ),
            (
                "127",
                "The command was not found (not recorded on the breaker).",
            ),
        ],
        Some("check") => &[
            (
                "0",
                "A call would run now (also when the breaker does not exist yet).",
            ),
            (
                "75",
                "A call would be skipped: the breaker is open, forced open, or half-open with its probe running.",
            ),
            ("1", "The breaker's record is corrupt."),
            ("125", "Usage error, or the state directory cannot be used."),
        ],
        Some("status") => &[
            ("0", "Printed."),
            (
                "1",
                "The breaker asked about does not exist, or a record is corrupt (the others are still printed).",
            ),
            ("125", "Usage error, or the state directory cannot be used."),
        ],
        Some("forget") => &[
            ("0", "Deleted."),
            ("1", "No such breaker, or its record is corrupt."),
            ("125", "Usage error, or the record cannot be deleted."),
        ],
        Some("metrics") => &[
            ("0", "Printed, or written to --output."),
            ("1", "A record is corrupt (the others are still printed)."),
            ("125", "Usage error, or the output cannot be written."),
        ],
        Some("name" | "completions" | "man") => &[
            ("0", "Printed."),
            ("125", "Usage error (no command, an unknown shell or page)."),
        ],
        Some(_) => &[
            ("0", "Done."),
            ("1", "The breaker's record is corrupt."),
            (
                "125",
                "Usage error, or the state cannot be read or written.",
            ),
        ],
        None => &[
            ("0", "Success; for check, a call would run now."),
            (
                "1",
                "status, check, forget or metrics: the breaker asked about does not exist or its record is corrupt.",
            ),
            (
                "75",
                "run: skipped, the breaker is open; check: a call would be skipped.",
            ),
            ("124", "run: the command timed out."),
            (
                "125",
                "cbreak's own error: usage, an invalid option or name, an unusable state directory.",
            ),
            (
                "126, 127",
                "run: the command could not be executed, or was not found.",
            ),
            (
                "anything else",
                "run: the command's own exit status; 128+N when signal N killed it.",
            ),
        ],
    };
    for (code, text) in rows {
        out.push_str(&item(&bold(code), text));
    }
    out
}

fn files() -> String {
    let mut out = section("FILES");
    out.push_str(&item(
        &italic("$XDG_STATE_HOME/cbreak/NAME, ~/.local/state/cbreak/NAME"),
        "One record per breaker, named after it: 8 KiB, mode 0600 (0660 in a setgid, group-writable directory), in a directory made mode 0700. --state-dir or CBREAK_STATE_DIR chooses another directory; network file systems are refused unless --allow-network-fs.",
    ));
    out.push_str(&item(
        &italic("NAME~corrupt-UNIXMS"),
        "A corrupt record, moved aside by the next run, which starts a fresh breaker.",
    ));
    out
}

fn examples(sub: Option<&str>) -> String {
    let cron_line =
        "15 2 * * * cbreak run -n offsite -t 3 -r 6h --timeout 2h -- rsync -a /srv/ backup:/srv/";
    let shell = "if ! cbreak run -n mirror -q -- curl -fsS -o pkgs.tgz https://mirror.example.com/pkgs.tgz; then\n  status=$?\n  [ \"$status\" -eq 75 ] && cp cache/pkgs.tgz . || exit \"$status\"\nfi";
    let ci = "- run: cbreak run -n registry -t 2 -r 5m --timeout 60s -- npm ci";
    let list: Vec<(&str, &str)> = match sub {
        None | Some("run") => vec![
            (
                "In a crontab: skip the nightly upload while the target is down; open after 3 failures, probe again after 6 hours.",
                cron_line,
            ),
            (
                "In a shell script: use the cached copy when the breaker is open.",
                shell,
            ),
            (
                "In a CI step: parallel jobs on one runner share the breaker, so a dead registry costs one timeout per recovery period.",
                ci,
            ),
            (
                "Judge by failure rate instead of failures in a row:",
                "cbreak run -n prices -t 0 --failure-rate 50% --window 20 --min-calls 10 -- fetch-prices",
            ),
        ],
        Some("status") => vec![(
            "Every breaker, then one in detail, then as JSON for jq:",
            "cbreak status\ncbreak status api\ncbreak status api --json | jq .state",
        )],
        Some("check") => vec![
            (
                "Ask first, report after, from a shell function:",
                "cbreak check prices || return 75\nif fetch; then cbreak record prices success; else cbreak record prices failure; fi",
            ),
            (
                "Would this command run now?",
                "cbreak check -- curl -fsS https://api.example.com/x",
            ),
        ],
        Some("record") => vec![(
            "Report the outcome of work that is not one command:",
            "if curl -fsS \"$URL\" | jq . > prices.json; then\n  cbreak record prices success\nelse\n  cbreak record prices failure\nfi",
        )],
        Some("trip") => vec![(
            "Hold a breaker open during maintenance, for an hour or until reset:",
            "cbreak trip api --for 1h\ncbreak trip api\ncbreak reset api",
        )],
        Some("reset") => vec![(
            "Close a breaker after fixing what failed:",
            "cbreak reset api",
        )],
        Some("disable") | Some("enable") => vec![(
            "Count calls without ever skipping them, then go back to normal:",
            "cbreak disable api\ncbreak enable api",
        )],
        Some("list") => vec![(
            "Reset every breaker:",
            "cbreak list | xargs -n1 cbreak reset",
        )],
        Some("forget") => vec![(
            "Delete a breaker that is no longer used:",
            "cbreak forget curl-ba24b96721ea",
        )],
        Some("metrics") => vec![(
            "For node_exporter's textfile collector, every minute from cron:",
            "* * * * * cbreak metrics --output /var/lib/node_exporter/textfile/cbreak.prom",
        )],
        Some("name") => vec![(
            "Find the breaker of a command run without --name, and look at it:",
            "cbreak status \"$(cbreak name -- curl -fsS https://api.example.com/x)\"",
        )],
        Some("completions") => vec![(
            "Install for bash, zsh and fish:",
            "cbreak completions bash > ~/.local/share/bash-completion/completions/cbreak\ncbreak completions zsh > ~/.zfunc/_cbreak   # a directory on $fpath\ncbreak completions fish > ~/.config/fish/completions/cbreak.fish",
        )],
        Some("man") => vec![(
            "Read a page, or install them all:",
            "cbreak man run | man -l -\nfor p in $(cbreak man --list); do cbreak man \"$p\" > ~/.local/share/man/man1/\"$p\".1; done",
        )],
        Some(_) => vec![],
    };
    let mut out = section("EXAMPLES");
    for (text, code) in list {
        out.push_str(&example(text, code));
    }
    out
}

fn see_also(this: &str, names: &[String]) -> String {
    let mut refs: Vec<String> = ["timeout", "flock"]
        .iter()
        .map(|p| format!("\\%{}(1)", bold(p)))
        .collect();
    refs.extend(
        names
            .iter()
            .filter(|n| n.as_str() != this)
            .map(|n| format!("\\%{}(1)", bold(n))),
    );
    format!("{}{}\n", section("SEE ALSO"), refs.join(", "))
}
