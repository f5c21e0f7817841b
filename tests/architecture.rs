//! The module map in ARCHITECTURE.md stays true: the modules' dependencies,
//! read from the `crate::` paths of their non-test code, form no cycle, and
//! no module outside `cli` names a clap type, and no signal mask is set
//! with `sigprocmask`, which is unspecified once a process has threads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's code without its unit tests and comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    // The unit tests come last: `#[cfg(test)] [pub(crate)] mod tests {`.
    let text = match text.find("mod tests {") {
        Some(i) => &text[..text[..i].rfind("#[cfg(test)]").unwrap_or(i)],
        None => &text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module a file belongs to (`src/store/dir.rs`: `store`);
/// `None` for the crate root and the binary.
fn module(src: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module(&src, file) else {
            continue;
        };
        let code = code(file);
        let deps = graph.entry(from.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let mut names = Vec::new();
            if let Some(list) = rest.strip_prefix('{') {
                // use crate::{a, b::c, ...}
                let list = &list[..list.find('}').unwrap_or(list.len())];
                names.extend(
                    list.split(',')
                        .map(|p| p.trim().split("::").next().unwrap_or("")),
                );
            } else {
                names.push(
                    rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                        .next()
                        .unwrap_or(""),
                );
            }
            for name in names {
                if !name.is_empty() && name != from {
                    deps.insert(name.to_string());
                }
            }
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    graph
}

/// The modules of ARCHITECTURE.md's code map, in its order (each may use
/// only those before it), and whether each is the library's (listed under
/// "The library") or the command line's.
fn map() -> Vec<(String, bool)> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let section = &text[text.find("## Code map").expect("a code map")..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut library = false;
    let mut modules = Vec::new();
    for line in section.lines() {
        if line.starts_with("### ") {
            library = line.contains("library");
        } else if let Some(rest) = line.strip_prefix("- **`") {
            let name = &rest[..rest.find('`').unwrap()];
            modules.push((name.to_string(), library));
        }
    }
    modules
}

#[test]
fn dependencies_point_down_the_code_map() {
    let graph = graph();
    let map = map();
    let position = |m: &str| map.iter().position(|(n, _)| n == m);
    let library = |m: &str| map.iter().any(|(n, lib)| n == m && *lib);
    for (module, deps) in &graph {
        let Some(at) = position(module) else {
            panic!("src/{module} is not in ARCHITECTURE.md's code map");
        };
        for dep in deps {
            let Some(dep_at) = position(dep) else {
                panic!("src/{dep} is not in ARCHITECTURE.md's code map");
            };
            assert!(
                !library(module) || library(dep),
                "the library's `{module}` imports the command line's `{dep}`"
            );
            assert!(
                dep_at < at,
                "`{module}` uses `{dep}`, which ARCHITECTURE.md lists below it: it points down"
            );
        }
    }
    for (name, _) in &map {
        assert!(
            graph.contains_key(name),
            "ARCHITECTURE.md lists `{name}`, which src/ does not have"
        );
    }
}

#[test]
fn storage_only_stores() {
    let graph = graph();
    for storage in ["store", "record"] {
        for words in ["output", "status", "app", "config", "cli"] {
            assert!(
                !graph[storage].contains(words),
                "`{storage}` imports `{words}`: storage words nothing for people"
            );
        }
    }
}

#[test]
fn the_library_alone_compiles_only_its_few_crates() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "--no-default-features",
        ])
        .args(["--prefix", "none", "--format", "{p}", "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crates: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert_eq!(
        crates.iter().map(String::as_str).collect::<Vec<_>>(),
        ["bytemuck", "cbreak", "fs2", "libc", "memmap2"],
        "cbreak with default-features = false compiles more than the breaker needs"
    );
}

#[test]
fn modules_depend_on_each_other_without_cycles() {
    let graph = graph();
    assert!(
        graph.contains_key("breaker") && graph.contains_key("store"),
        "{graph:?}"
    );
    // Depth-first search; a module met again while on the path is a cycle.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|p| *p == m) {
            panic!("module cycle: {} -> {m}", path[at..].join(" -> "));
        }
        if !done.insert(m) {
            return;
        }
        path.push(m);
        for d in &graph[m] {
            visit(d, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
    // The state machine needs nothing but its windows: no I/O, no output.
    assert_eq!(
        graph["breaker"].iter().collect::<Vec<_>>(),
        ["window"],
        "breaker depends on more than its windows"
    );
}

/// `sigprocmask` is unspecified in a process with more than one thread
/// (POSIX), and cbreak may have two (`start::on_a_thread_of_its_own`): a
/// signal mask is set with `pthread_sigmask`, for the calling thread.
#[test]
fn no_sigprocmask_in_a_process_that_may_have_threads() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    for file in files {
        let code = code(&file);
        assert!(
            !code.contains("sigprocmask("),
            "{} calls sigprocmask; use pthread_sigmask",
            file.display()
        );
    }
}

/// One random generator, shared (`util::Rng`): two copies of xorshift64*
/// (host's jitter and the fleet's versions) drifted apart in how they were
/// seeded.
#[test]
fn one_random_generator() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    // xorshift64*'s multiplier.
    let generators: Vec<String> = files
        .iter()
        .filter(|f| code(f).replace('_', "").contains("0x2545f4914f6cdd1d"))
        .map(|f| f.display().to_string())
        .collect();
    assert_eq!(generators.len(), 1, "{generators:?}");
}
