//! The completion scripts in `completions/`, run by the shells themselves:
//! breaker names wherever a NAME goes (from the state directory the command
//! line names) and a command line after `--`. bash is driven through
//! `complete -p` and `COMP_WORDS`, fish through `complete -C`, zsh through
//! its breaker function with zsh's completion builtins stood in for.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{Env, bin};

fn script(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("completions")
        .join(file)
}

/// The shell, or None after saying why the test is skipped. In CI (`CI`
/// set, as .ci/run is run) a missing shell is a failure: .ci/run installs
/// them.
fn shell(name: &str, test: &str) -> Option<Command> {
    let found = Command::new(name)
        .args(["-c", "exit 0"])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(Command::new(name));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is not installed; .ci/run installs it"
    );
    println!("SKIPPED {test}: {name} is not installed (.ci/run installs it)");
    None
}

/// Two breakers in the usual state directory, one in another, and a file
/// to complete; the binary's directory first on PATH.
fn setup() -> (Env, PathBuf, String) {
    let env = Env::new();
    for name in ["api", "db"] {
        env.run(&["run", "-n", name, "--", "true"]).success();
    }
    let other = env.path("other");
    env.command(&["run", "-n", "elsewhere", "--", "true"])
        .env("CBREAK_STATE_DIR", &other)
        .output()
        .unwrap();
    std::fs::write(env.path("somefile"), "").unwrap();
    let dir = Path::new(&bin()).parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (env, other, path)
}

#[test]
fn bash_completes_breaker_names_and_commands() {
    let Some(mut bash) = shell("bash", "bash_completes_breaker_names_and_commands") else {
        return;
    };
    let (env, other, path) = setup();
    let program = r#"
source "$1"
spec=$(complete -p cbreak) || exit 1
fn=${spec#*-F }; fn=${fn%% *}
c() {
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
    "$fn" cbreak "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}" 2>/dev/null
    printf '%s|' "$*"; printf ' %s' $(printf '%s\n' "${COMPREPLY[@]}" | sort -u); echo
}
c cbreak status ''
c cbreak reset a
c cbreak check ''
c cbreak run -n ''
c cbreak run --name=x -n ''
c cbreak --state-dir "$2" status ''
c cbreak status --state-dir "$2" ''
c cbreak run -- ech
c cbreak run -t 3 ech
c cbreak run -- cat some
c cbreak check -- ech
c cbreak name ech
c cbreak ru
c cbreak run --thr
c cbreak status --color ''
"#;
    let out = bash
        .args(["--norc", "--noprofile", "-c", program, "bash"])
        .arg(script("cbreak.bash"))
        .arg(&other)
        .env("PATH", path)
        .env("CBREAK_STATE_DIR", env.state())
        .current_dir(env.path(""))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let got = |line: &str| -> Vec<String> {
        let found = text
            .lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix('|'))
            .unwrap_or_else(|| panic!("no line for {line:?} in\n{text}"));
        found.split_whitespace().map(String::from).collect()
    };
    let other_dir = other.display().to_string();
    assert_eq!(got("cbreak status "), ["api", "db"]);
    assert_eq!(got("cbreak reset a"), ["api"]);
    assert_eq!(got("cbreak check "), ["api", "db"]);
    assert_eq!(got("cbreak run -n "), ["api", "db"]);
    assert_eq!(got("cbreak run --name=x -n "), ["api", "db"]);
    assert_eq!(
        got(&format!("cbreak --state-dir {other_dir} status ")),
        ["elsewhere"]
    );
    assert_eq!(
        got(&format!("cbreak status --state-dir {other_dir} ")),
        ["elsewhere"]
    );
    for line in [
        "cbreak run -- ech",
        "cbreak run -t 3 ech",
        "cbreak check -- ech",
        "cbreak name ech",
    ] {
        assert!(got(line).contains(&"echo".to_string()), "{line}: {text}");
    }
    assert_eq!(got("cbreak run -- cat some"), ["somefile"]);
    assert_eq!(got("cbreak ru"), ["run"]);
    assert_eq!(got("cbreak run --thr"), ["--threshold"]);
    assert_eq!(got("cbreak status --color "), ["always", "auto", "never"]);
}

#[test]
fn fish_completes_breaker_names_and_commands() {
    let Some(mut fish) = shell("fish", "fish_completes_breaker_names_and_commands") else {
        return;
    };
    let (env, other, path) = setup();
    let program = r#"
source $argv[1]
for line in "cbreak status " "cbreak run -n " "cbreak --state-dir $argv[2] reset " "cbreak run -- ech" "cbreak check -- ech"
    echo "== $line"
    complete -C "$line" | string replace -r '\t.*' ''
end
"#;
    let out = fish
        .args(["--no-config", "-c", program])
        .arg(script("cbreak.fish"))
        .arg(&other)
        .env("PATH", path)
        .env("CBREAK_STATE_DIR", env.state())
        .current_dir(env.path(""))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let got = |line: &str| -> Vec<&str> {
        let start = text
            .find(&format!("== {line}\n"))
            .unwrap_or_else(|| panic!("{line} in {text}"))
            + line.len()
            + 4;
        text[start..]
            .lines()
            .take_while(|l| !l.starts_with("== "))
            .collect()
    };
    assert_eq!(got("cbreak status "), ["api", "db"], "{text}");
    assert_eq!(got("cbreak run -n "), ["api", "db"], "{text}");
    assert_eq!(
        got(&format!("cbreak --state-dir {} reset ", other.display())),
        ["elsewhere"],
        "{text}"
    );
    assert!(got("cbreak run -- ech").contains(&"echo"), "{text}");
    assert!(got("cbreak check -- ech").contains(&"echo"), "{text}");
}

#[test]
fn zsh_names_breakers_where_a_name_goes() {
    let Some(mut zsh) = shell("zsh", "zsh_names_breakers_where_a_name_goes") else {
        return;
    };
    let (env, other, path) = setup();
    let file = std::fs::read_to_string(script("_cbreak")).unwrap();
    // Every NAME argument and option completes with the breaker function.
    let name_specs: Vec<&str> = file
        .lines()
        .filter(|l| l.contains("Breaker name"))
        .collect();
    assert!(name_specs.len() >= 10, "{name_specs:?}");
    for l in &name_specs {
        assert!(l.ends_with(":_cbreak_breakers' \\"), "{l}");
    }
    // The function itself, with zsh's completion builtins stood in for:
    // it lists the breakers of the state directory the words name.
    let program = r#"
autoload -U compinit && compinit -u -D
source $1
_call_program() { shift; eval "$@" }
_wanted() { shift 3; "$@" }
compadd() { [[ $1 == -a ]] && print -l -- ${(P)2} }
words=(cbreak status ''); CURRENT=3
print "== default"; _cbreak_breakers
words=(cbreak --state-dir $2 reset ''); CURRENT=5
print "== other"; _cbreak_breakers
"#;
    let out = zsh
        .args(["-f", "-c", program, "zsh"])
        .arg(script("_cbreak"))
        .arg(&other)
        .env("PATH", path)
        .env("CBREAK_STATE_DIR", env.state())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("== default\napi\ndb\n== other\nelsewhere\n"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
