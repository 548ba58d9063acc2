//! The documentation is checked against the real binary: the README's demo output and
//! quick-start commands, docs/OUTPUT.md's JSON examples (every key they show exists in
//! the real output of that kind), and the walkthrough example end to end.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cutover::{cutover, script_results};
use crate::harness::Emulator;
use crate::scenario::{build, Break, CLUSTER};

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

/// The fenced blocks of `text` in language `lang` (`""`: no language), each with the line
/// before its opening fence. Fences of every language are followed, so a closing fence is
/// never taken for an opening one.
fn blocks<'a>(text: &'a str, lang: &str) -> Vec<(&'a str, String)> {
    let mut found = Vec::new();
    let mut open: Option<(&str, &str, usize, String)> = None;
    let mut before = "";
    for line in text.lines() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let indent = line.len() - trimmed.len();
                    open = Some((before, info.trim(), indent, String::new()));
                } else {
                    before = line;
                }
            }
            Some((above, info, indent, body)) => {
                if trimmed == "```" {
                    if *info == lang {
                        found.push((*above, std::mem::take(body)));
                    }
                    open = None;
                    before = line;
                } else {
                    body.push_str(line.get(*indent..).unwrap_or(trimmed));
                    body.push('\n');
                }
            }
        }
    }
    found
}

/// Digits vary from run to run (times, counts): compare the shape.
fn shape(text: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

#[test]
fn the_readme_shows_the_demo_as_it_runs() {
    let readme = read("README.md");
    let marker = "<!-- output of: privlink-restart demo --instances 9 --speed 50 --faults -->";
    let (_, shown) = blocks(&readme, "")
        .into_iter()
        .find(|(before, _)| *before == marker)
        .expect("the README marks its demo output");
    let output = assert_cmd::Command::cargo_bin("privlink-restart")
        .unwrap()
        .args(["demo", "--instances", "9", "--speed", "50", "--faults"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let real = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    // The demo's first line goes to stderr before the report; the rest interleaves as
    // the README shows it.
    let real_lines: Vec<String> = real.lines().map(shape).collect();
    for line in shown.lines() {
        assert!(
            real_lines.contains(&shape(line)),
            "README line not in the demo's output: {line:?}\n--- real ---\n{real}"
        );
    }
    assert_eq!(
        shown.lines().count(),
        real.lines().count(),
        "README block and demo output differ in length:\n{real}"
    );
}

/// Every key of `example` is in `real` (objects), recursively; arrays compare their
/// first elements.
fn keys_exist(example: &Value, real: &Value, path: &str) -> Vec<String> {
    match (example, real) {
        (Value::Object(e), Value::Object(r)) => e
            .iter()
            .flat_map(|(k, v)| match r.get(k) {
                None => vec![format!("{path}.{k}")],
                Some(rv) => keys_exist(v, rv, &format!("{path}.{k}")),
            })
            .collect(),
        (Value::Array(e), Value::Array(r)) => match (e.first(), r.first()) {
            (Some(e), Some(r)) => keys_exist(e, r, &format!("{path}[]")),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The JSON documents on stdout: one (pretty-printed) or one per line.
fn json_documents(output: &std::process::Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if let Ok(one) = serde_json::from_str(&stdout) {
        return vec![one];
    }
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test]
async fn the_readme_commands_and_the_json_examples_match_the_binary() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    script_results(&emulator, &scenario, None);

    // Real output of every kind.
    let mut real: BTreeMap<String, Value> = BTreeMap::new();
    let run = |args: &[&str]| emulator.binary().args(args).output().unwrap();
    let check = run(&["check", "--cluster", CLUSTER, "--output", "json"]);
    assert_eq!(check.status.code(), Some(0));
    let plan = run(&["--cluster", CLUSTER, "--dry-run", "--output", "json"]);
    assert_eq!(plan.status.code(), Some(0));
    let rolled = cutover(&emulator, &["--output", "json"]);
    assert_eq!(
        rolled.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&rolled.stderr)
    );
    let verified = run(&["verify", "--cluster", CLUSTER, "--output", "json"]);
    assert_eq!(verified.status.code(), Some(0));
    let status = run(&["status", "--cluster", CLUSTER, "--output", "json"]);
    assert_eq!(status.status.code(), Some(0));
    for output in [&check, &plan, &rolled, &verified, &status] {
        for value in json_documents(output) {
            if let Some(kind) = value["kind"].as_str() {
                real.insert(kind.to_string(), value.clone());
            }
        }
    }
    assert!(
        real["summary"]["verdicts"]
            .as_object()
            .is_some_and(|v| !v.is_empty()),
        "the summary has verdicts"
    );

    // docs/OUTPUT.md: every example parses, and every key it shows is real.
    let output_md = read("docs/OUTPUT.md");
    let examples = blocks(&output_md, "json");
    assert!(examples.len() >= 7, "{}", examples.len());
    for (_, body) in examples {
        let example: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}):\n{body}"));
        let missing = if let Some(kind) = example["kind"].as_str() {
            let real = real
                .get(kind)
                .unwrap_or_else(|| panic!("no real output of kind {kind}"));
            keys_exist(&example, real, kind)
        } else if example.get("path").is_some() {
            // A verdict: read as the type the tool writes and written back; a key the
            // type does not know would be lost on the way.
            match serde_json::from_value::<privlink_restart::verify::Verdict>(example.clone()) {
                Ok(read) => keys_exist(&example, &serde_json::to_value(read).unwrap(), "verdict"),
                Err(e) => vec![format!("verdict: {e}")],
            }
        } else if example["method"] == "reboot" {
            // A reboot's proof: what the journal and the events carry.
            serde_json::from_value::<privlink_restart::rollout::state::Proof>(example.clone())
                .map(|_| Vec::new())
                .unwrap_or_else(|e| vec![format!("reboot proof: {e}")])
        } else {
            panic!("an example of no known kind:\n{body}");
        };
        assert!(
            missing.is_empty(),
            "keys not in the real output: {missing:?}\n{body}"
        );
    }

    // The README's quick start, against the same cluster.
    let readme = read("README.md");
    let (_, quick) = blocks(&readme, "sh")
        .into_iter()
        .find(|(_, body)| body.contains("privlink-restart check --cluster prod"))
        .expect("the README's quick start");
    for line in quick.lines() {
        let command = line.split('#').next().unwrap_or_default().trim();
        let Some(args) = command.strip_prefix("privlink-restart ") else {
            continue;
        };
        let args = shell_words(args);
        let output = emulator.binary().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The cluster is cut over already: each command finds nothing to do, or
        // reports the finished run, and succeeds.
        let expected = 0;
        assert_eq!(
            output.status.code(),
            Some(expected),
            "README: privlink-restart {args:?}\n{stderr}"
        );
    }
}

/// Splits a README command line: words, and "double-quoted" phrases.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').expect("a closing quote");
            words.push(quoted[..end].to_string());
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            words.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    words
}

#[test]
fn the_walkthrough_example_runs_end_to_end() {
    let binary = assert_cmd::cargo::cargo_bin("privlink-restart");
    let output = std::process::Command::new("bash")
        .arg(root().join("examples/walkthrough/run.sh"))
        .arg(&binary)
        .env(
            "PYTHON",
            std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()),
        )
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
