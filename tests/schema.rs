//! `status --json` against `status.schema.json`: real output, in every
//! state and mode, for one breaker and for the list; and the schema itself
//! is valid draft 2020-12, describes every field, and README names every
//! key.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Env, eventually};

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("status.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the schema is JSON")
}

#[track_caller]
fn assert_valid(validator: &jsonschema::Validator, instance: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\nin {instance:#}");
}

fn json(env: &Env, args: &[&str]) -> Value {
    let out = env.run(args).success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

#[test]
fn status_json_in_every_state_matches_the_schema() {
    let schema = schema();
    jsonschema::draft202012::meta::validate(&schema).expect("a valid draft 2020-12 schema");
    let validator = jsonschema::draft202012::new(&schema).expect("the schema compiles");
    let env = Env::new();
    // closed, with a failure-rate policy over a count window and limits.
    env.run(&[
        "run",
        "-n",
        "closed",
        "--failure-rate",
        "50%",
        "--window",
        "20",
        "--timeout",
        "10s",
        "--slow",
        "5s",
        "--ignore-codes",
        "3,7-9",
        "--",
        "true",
    ])
    .success();
    // open, with a time window and exponential backoff.
    env.run(&[
        "run",
        "-n",
        "open",
        "-t",
        "1",
        "--failure-rate",
        "12.5",
        "--window",
        "1m",
        "--backoff",
        "exponential",
        "--backoff-factor",
        "1.5",
        "--jitter",
        "10",
        "--",
        "false",
    ])
    .code(1);
    // half_open: one of two probes has succeeded.
    for cmd in ["false", "true"] {
        if cmd == "true" {
            std::thread::sleep(Duration::from_millis(400));
        }
        env.run(&[
            "run", "-n", "half", "-t", "1", "-r", "200ms", "--probes", "2", "--", cmd,
        ]);
    }
    // half_open with its probe in flight.
    env.run(&[
        "run", "-n", "probing", "-t", "1", "-r", "100ms", "--", "false",
    ])
    .code(1);
    std::thread::sleep(Duration::from_millis(300));
    let mut probe = env.spawn(&["run", "-n", "probing", "--", "sleep", "5"]);
    assert!(
        eventually(Duration::from_secs(5), || {
            env.status("probing")["probe_in_flight"] == true
        }),
        "the probe never started"
    );
    env.run(&["trip", "--create", "forced"]).success();
    env.run(&["trip", "--create", "for", "--for", "1h"])
        .success();
    env.run(&["run", "-n", "off", "--", "false"]).code(1);
    env.run(&["disable", "--create", "off"]).success();
    env.run(&["run", "-n", "off", "--", "false"]).code(1);

    let mut seen = Vec::new();
    for name in ["closed", "open", "half", "probing", "forced", "for", "off"] {
        let one = env.status(name);
        assert_valid(&validator, &one);
        seen.push(format!(
            "{}/{}",
            one["state"].as_str().unwrap(),
            one["mode"].as_str().unwrap()
        ));
    }
    assert_eq!(
        seen,
        [
            "closed/normal",
            "open/normal",
            "half_open/normal",
            "half_open/normal",
            "forced_open/normal",
            "open/normal",
            "closed/disabled"
        ]
    );
    let all = json(&env, &["status", "--json"]);
    assert_eq!(all.as_array().map(Vec::len), Some(7), "{all:#}");
    assert_valid(&validator, &all);
    assert_valid(&validator, &json(&Env::new(), &["status", "--json"]));
    let _ = probe.kill();
    let _ = probe.wait();
}

#[test]
fn schema_rejects_what_cbreak_never_prints() {
    let validator = jsonschema::draft202012::new(&schema()).unwrap();
    let env = Env::new();
    env.run(&["run", "-n", "x", "--", "true"]).success();
    let good = env.status("x");
    assert_valid(&validator, &good);
    let mut unknown_key = good.clone();
    unknown_key["window_calls"] = 3.into();
    let mut bad_state = good.clone();
    bad_state["state"] = "ajar".into();
    let mut no_version = good.clone();
    no_version.as_object_mut().unwrap().remove("schema_version");
    for bad in [unknown_key, bad_state, no_version] {
        assert!(!validator.is_valid(&bad), "{bad:#}");
    }
}

/// Every property the schema defines, with its path.
fn properties(v: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    if let Some(props) = v.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            out.push((format!("{path}.{k}"), p.clone()));
            properties(p, &format!("{path}.{k}"), out);
        }
    }
    if let Some(defs) = v.get("$defs").and_then(Value::as_object) {
        for (k, d) in defs {
            properties(d, &format!("$defs.{k}"), out);
        }
    }
}

#[test]
fn every_field_is_described_and_in_the_readme() {
    let schema = schema();
    let mut props = Vec::new();
    properties(&schema, "", &mut props);
    assert!(props.len() > 40, "{}", props.len());
    let definitions = &schema["$defs"];
    for (path, p) in &props {
        // A property is described itself, or by the definition it refers to.
        let referred = p["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .map(|d| &definitions[d]);
        let described = p["description"].as_str().is_some_and(|d| d.len() > 10)
            || referred.is_some_and(|d| d["description"].is_string());
        assert!(described, "{path} has no description");
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for (path, _) in &props {
        if let Some(key) = path.strip_prefix("$defs.breaker.") {
            let key = key.rsplit('.').next().unwrap();
            assert!(
                readme.contains(&format!("`{key}`")),
                "README does not name `{key}`"
            );
        }
    }
}
