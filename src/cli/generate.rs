//! Completion scripts, made from the definition (`defs`, rendered as a
//! `clap::Command`): clap_complete's for
//! every shell, plus, for bash, zsh and fish, the parts clap cannot know —
//! breaker names wherever a NAME goes (asked of `cbreak list`, in the state
//! directory the command line names) and a command line after `--` or
//! after `run`'s first positional.
//!
//! `cbreak completions SHELL` prints these; `tests/generated.rs` checks the
//! copies committed in `completions/`. Only these subcommands reach this
//! module: a `cbreak run` never does.

use clap::{Arg, ValueHint};
use clap_complete::Shell as Generator;

/// A shell cbreak writes completions for.
// PowerShell is the shell's own name.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    PowerShell,
}

/// Every shell, in the order of the files in `completions/` (for the test
/// that keeps them up to date).
#[cfg(feature = "testing")]
pub const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::Elvish,
    Shell::PowerShell,
];

/// The file name a shell's script is committed and installed under (for
/// the test that keeps them up to date).
#[cfg(feature = "testing")]
pub fn completion_file(shell: Shell) -> &'static str {
    match shell {
        Shell::Bash => "cbreak.bash",
        Shell::Zsh => "_cbreak",
        Shell::Fish => "cbreak.fish",
        Shell::Elvish => "cbreak.elv",
        Shell::PowerShell => "_cbreak.ps1",
    }
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> String {
    let mut cmd = super::command();
    let mut buf = Vec::new();
    let generator = match shell {
        Shell::Bash => Generator::Bash,
        Shell::Zsh => Generator::Zsh,
        Shell::Fish => Generator::Fish,
        Shell::Elvish => Generator::Elvish,
        Shell::PowerShell => Generator::PowerShell,
    };
    clap_complete::generate(generator, &mut cmd, "cbreak", &mut buf);
    let script = String::from_utf8_lossy(&buf).into_owned();
    let shape = Shape::of(&cmd);
    match shell {
        Shell::Bash => bash(script, &shape),
        Shell::Zsh => zsh(script),
        Shell::Fish => fish(script, &shape),
        Shell::Elvish | Shell::PowerShell => script,
    }
}

/// What the added completion needs to know of the command line, read from
/// the clap definition so that it follows new options and subcommands.
struct Shape {
    /// Options that take a value (`--state-dir`, `-n`, ...), as spelled.
    value_options: Vec<String>,
    /// Subcommands whose first positional is a breaker NAME.
    name_subcommands: Vec<String>,
    /// Options whose value is a breaker name (`run -n`).
    name_options: Vec<String>,
    /// Subcommands that have such an option.
    name_option_subcommands: Vec<String>,
    /// Subcommands whose first positional starts the command (`run`, `name`).
    command_subcommands: Vec<String>,
    /// Subcommands that take a command after `--` (`check`).
    dashdash_subcommands: Vec<String>,
}

impl Shape {
    fn of(cmd: &clap::Command) -> Shape {
        let mut shape = Shape {
            value_options: Vec::new(),
            name_subcommands: Vec::new(),
            name_options: Vec::new(),
            name_option_subcommands: Vec::new(),
            command_subcommands: Vec::new(),
            dashdash_subcommands: Vec::new(),
        };
        let spellings = |a: &Arg| {
            let mut v: Vec<String> = a.get_long().map(|l| format!("--{l}")).into_iter().collect();
            v.extend(a.get_short().map(|s| format!("-{s}")));
            v
        };
        let note_options = |args: &mut dyn Iterator<Item = &Arg>, shape: &mut Shape| {
            for a in args {
                if a.is_positional() || !a.get_action().takes_values() {
                    continue;
                }
                for s in spellings(a) {
                    if a.get_id() == "name" && !shape.name_options.contains(&s) {
                        shape.name_options.push(s.clone());
                    }
                    if !shape.value_options.contains(&s) {
                        shape.value_options.push(s);
                    }
                }
            }
        };
        note_options(&mut cmd.get_arguments(), &mut shape);
        for sub in cmd.get_subcommands() {
            note_options(&mut sub.get_arguments(), &mut shape);
            let name = sub.get_name().to_string();
            if sub
                .get_arguments()
                .any(|a| !a.is_positional() && a.get_id() == "name")
            {
                shape.name_option_subcommands.push(name.clone());
            }
            let first = sub.get_positionals().next();
            if first.is_some_and(|a| a.get_id() == "name") {
                shape.name_subcommands.push(name.clone());
            }
            for a in sub.get_positionals() {
                if a.get_value_hint() == ValueHint::CommandWithArguments {
                    if a.is_last_set() {
                        shape.dashdash_subcommands.push(name.clone());
                    } else {
                        shape.command_subcommands.push(name.clone());
                    }
                }
            }
        }
        shape
    }
}

fn bash(script: String, s: &Shape) -> String {
    // clap's own `complete -F _cbreak ...` block goes: the wrapper below
    // registers instead, and calls `_cbreak` for all the rest.
    let script = match script.find("\nif [[ \"${BASH_VERSINFO[0]}\"") {
        Some(start) => match script[start..].find("\nfi\n") {
            Some(len) => format!("{}{}", &script[..start + 1], &script[start + len + 4..]),
            None => script,
        },
        None => script,
    };
    let alt = |v: &[String]| v.join("|");
    let mut with_command = s.command_subcommands.clone();
    with_command.extend(s.dashdash_subcommands.iter().cloned());
    format!(
        r#"{script}
# Added to clap's completion: breaker names where a NAME goes (from
# `cbreak list` in the state directory the command line names), and a
# command line after `--` or after the first word of `run`'s command.
_cbreak_breakers() {{
    local i dir=
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${{COMP_WORDS[i]}} in
            --state-dir) dir=${{COMP_WORDS[i+1]}} ;;
            --state-dir=*) dir=${{COMP_WORDS[i]#--state-dir=}} ;;
        esac
    done
    cbreak ${{dir:+--state-dir "$dir"}} list 2>/dev/null
}}

_cbreak_complete() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=
    ((COMP_CWORD > 1)) && prev=${{COMP_WORDS[COMP_CWORD-1]}}
    local i w sub= positionals=0 command_at=
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        case $w in
            --)
                command_at=$((i + 1))
                break ;;
            {value_options})
                ((i++))
                continue ;;
            -*) continue ;;
        esac
        if [[ -z $sub ]]; then
            sub=$w
            continue
        fi
        case $sub in
            {command_subcommands})
                command_at=$i
                break ;;
        esac
        positionals=$((positionals + 1))
    done
    if [[ -n $command_at ]]; then
        case $sub in
            {with_command})
                if ((command_at == COMP_CWORD)); then
                    COMPREPLY=($(compgen -c -- "$cur"))
                elif declare -F _command_offset >/dev/null; then
                    _command_offset "$command_at"
                else
                    COMPREPLY=($(compgen -f -- "$cur"))
                fi
                return ;;
        esac
    fi
    case $prev in
        {value_options})
            case $prev in
                {name_options})
                    COMPREPLY=($(compgen -W "$(_cbreak_breakers)" -- "$cur"))
                    compopt +o default +o bashdefault 2>/dev/null
                    return ;;
            esac
            _cbreak "$@"
            return ;;
    esac
    if [[ -n $sub && $cur != -* && $positionals -eq 0 ]]; then
        case $sub in
            {name_subcommands})
                COMPREPLY=($(compgen -W "$(_cbreak_breakers)" -- "$cur"))
                compopt +o default +o bashdefault 2>/dev/null
                return ;;
            {command_subcommands})
                COMPREPLY=($(compgen -c -- "$cur"))
                return ;;
        esac
    fi
    _cbreak "$@"
}}

if [[ "${{BASH_VERSINFO[0]}}" -eq 4 && "${{BASH_VERSINFO[1]}}" -ge 4 || "${{BASH_VERSINFO[0]}}" -gt 4 ]]; then
    complete -F _cbreak_complete -o nosort -o bashdefault -o default cbreak
else
    complete -F _cbreak_complete -o bashdefault -o default cbreak
fi
"#,
        value_options = alt(&s.value_options),
        name_options = alt(&s.name_options),
        name_subcommands = alt(&s.name_subcommands),
        command_subcommands = alt(&s.command_subcommands),
        with_command = alt(&with_command),
    )
}

fn zsh(script: String) -> String {
    // clap offers files for every value it knows nothing of; a NAME is a
    // breaker.
    let mut out: String = script
        .lines()
        .map(|l| {
            if l.contains("Breaker name") && l.ends_with(":_default' \\") {
                let l = l.strip_suffix(":_default' \\").unwrap_or(l);
                format!("{l}:_cbreak_breakers' \\\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let breakers = r#"(( $+functions[_cbreak_breakers] )) ||
_cbreak_breakers() {
    local i dir
    for ((i = 2; i < CURRENT; i++)); do
        case $words[i] in
            --state-dir) dir=$words[i+1] ;;
            --state-dir=*) dir=${words[i]#--state-dir=} ;;
        esac
    done
    local -a names
    names=(${(f)"$(_call_program breakers cbreak ${dir:+--state-dir $dir} list 2>/dev/null)"})
    _wanted breakers expl 'breaker' compadd -a names
}

"#;
    let anchor = "if [ \"$funcstack[1]\" = \"_cbreak\" ]; then";
    match out.find(anchor) {
        Some(i) => out.insert_str(i, breakers),
        None => out.push_str(breakers),
    }
    out
}

fn fish(script: String, s: &Shape) -> String {
    let spaced = |v: &[String]| v.join(" ");
    let (short, long): (Vec<&String>, Vec<&String>) =
        s.name_options.iter().partition(|o| !o.starts_with("--"));
    let name_option_flags: String = short
        .iter()
        .map(|o| format!(" -s {}", o.trim_start_matches('-')))
        .chain(
            long.iter()
                .map(|o| format!(" -l {}", o.trim_start_matches('-'))),
        )
        .collect();
    let mut with_command = s.command_subcommands.clone();
    with_command.extend(s.dashdash_subcommands.iter().cloned());
    format!(
        r#"{script}
# Added to clap's completion: breaker names where a NAME goes, from
# `cbreak list` in the state directory the command line names.
function __cbreak_breakers
    set -l args (commandline -opc)
    set -l dir
    for i in (seq (count $args))
        switch $args[$i]
            case --state-dir
                set dir $args[(math $i + 1)]
            case '--state-dir=*'
                set dir (string replace -- --state-dir= '' $args[$i])
        end
    end
    if test -n "$dir"
        cbreak --state-dir $dir list 2>/dev/null
    else
        cbreak list 2>/dev/null
    end
end

# The command line after `--`, completed as that command's own.
function __cbreak_after_dashdash
    set -l args (commandline -opc)
    set -l i (contains -i -- -- $args); or return 1
    set -l rest $args[(math $i + 1)..-1]
    if test (count $rest) -eq 0
        __fish_complete_command
    else
        complete -C (string join ' ' -- (string escape -- $rest) (commandline -ct))
    end
end

complete -c cbreak -n "__fish_seen_subcommand_from {name_subcommands}; and not contains -- -- (commandline -opc)" -f -a "(__cbreak_breakers)"
complete -c cbreak -n "__fish_seen_subcommand_from {name_option_subcommands}"{name_option_flags} -x -a "(__cbreak_breakers)"
complete -c cbreak -n "__fish_seen_subcommand_from {with_command}; and contains -- -- (commandline -opc)" -f -a "(__cbreak_after_dashdash)"
"#,
        name_subcommands = spaced(&s.name_subcommands),
        name_option_subcommands = spaced(&s.name_option_subcommands),
        with_command = spaced(&with_command),
    )
}
