//! Bad input: each is one clear line on stderr and exit 2, before or instead of any work.

use crate::durability::{journal_path, script_results};
use crate::harness::Emulator;
use crate::scenario::{build, Break, CLUSTER};

fn assert_usage_error(output: &std::process::Output, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    for part in expected {
        assert!(stderr.contains(part), "{part:?} not in: {stderr}");
    }
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test]
async fn unknown_cluster_names_cluster_region_and_account() {
    let emulator = Emulator::start();
    let output = emulator
        .binary()
        .args(["check", "--cluster", "nope"])
        .output()
        .unwrap();
    assert_usage_error(
        &output,
        &[
            "cluster \"nope\" not found in eu-west-1",
            "account 123456789012",
            "--region or --profile",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn no_credentials() {
    let emulator = Emulator::start();
    let output = emulator
        .binary_without_credentials()
        .args(["check", "--cluster", "prod"])
        .output()
        .unwrap();
    assert_usage_error(&output, &["no usable AWS credentials", "AWS_PROFILE"]);
}

#[tokio::test]
async fn unreachable_endpoint_url() {
    let emulator = Emulator::start();
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let output = emulator
        .binary()
        .args([
            "check",
            "--cluster",
            "prod",
            "--endpoint-url",
            "http://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert_usage_error(
        &output,
        &["cannot reach AWS at http://127.0.0.1:1", "--endpoint-url"],
    );
}

#[tokio::test]
async fn malformed_options_are_usage_errors() {
    let emulator = Emulator::start();
    let cases: [(&[&str], &str); 9] = [
        (
            &[
                "--cluster",
                "prod",
                "--window",
                "Sat,Sun 2:00-05:00 Europe/Berlin",
            ],
            r#"invalid window "Sat,Sun 2:00-05:00 Europe/Berlin": "2:00" is not a time (HH:MM)"#,
        ),
        (
            &[
                "--cluster",
                "prod",
                "--window",
                "Mon-Fri 22:00-06:00 Mars/Olympus",
            ],
            r#""Mars/Olympus" is not an IANA time zone"#,
        ),
        (
            &["--cluster", "prod", "--deadline", "tomorrow"],
            "is neither a time with an offset (2026-12-01T06:00Z) nor a duration",
        ),
        (
            &[
                "check",
                "--cluster",
                "prod",
                "--endpoint-url",
                "127.0.0.1:5000",
            ],
            "must start with http:// or https://",
        ),
        (
            &[
                "check",
                "--cluster",
                "prod",
                "--endpoint-url",
                "http://host:99999",
            ],
            "port",
        ),
        (
            &["check", "--cluster", "prod", "--region", "euwest1"],
            "not a region name",
        ),
        (
            &["check", "--cluster", "prod", "--output", "yaml"],
            "invalid value 'yaml'",
        ),
        (
            &["check", "--cluster", "prod cluster"],
            "not an ECS cluster name",
        ),
        (
            &["iam-policy", "--account", "12345"],
            "not an AWS account id",
        ),
    ];
    for (args, expected) in cases {
        let output = emulator.binary().args(args).output().unwrap();
        assert_usage_error(&output, &[expected]);
    }
    let output = emulator.binary().args(["check"]).output().unwrap();
    assert_usage_error(&output, &["--cluster"]);
}

/// One bad situation for the table: how it is set up, the command, the exit code and a
/// part of the line that must explain it.
struct Case {
    name: &'static str,
    args: Vec<String>,
    exit: i32,
    says: &'static str,
}

/// Now, in Unix seconds: read right before each lease is written, so a slow machine
/// does not age a lease past what its case means.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A lease record of another run on `prod`: its owner, and when it expires (Unix seconds).
fn foreign_lease(expires: i64) -> String {
    serde_json::json!({
        "schema": 1,
        "owner": {"user": "alice", "host": "bastion-2", "pid": 4242, "run": "20261127T010203Z-1092"},
        "started": expires - 600,
        "renewed": expires - 90,
        "expires": expires,
        "renew_every": 30
    })
    .to_string()
}

async fn put_lease(emulator: &Emulator, value: &str) {
    emulator
        .ssm()
        .put_parameter()
        .name(format!("/privlink-restart/lease/{CLUSTER}"))
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

/// A web server on loopback that is not AWS: every request gets a 404 page.
fn not_aws() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 65536];
            let _ = std::io::Read::read(&mut stream, &mut buffer);
            let body = "<html><body>Not Found</body></html>";
            let _ = std::io::Write::write_all(
                &mut stream,
                format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    url
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_string()).collect()
}

/// The table of bad situations beyond malformed options (those are `cli::tests`): each
/// run against the emulator with the real binary, with its exit code and the line that
/// explains it. `scripts/reliability` copies the table into docs/RELIABILITY.md.
#[tokio::test]
async fn bad_situations_each_have_their_exit_code_and_a_line_that_names_them() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    script_results(&emulator, &scenario, false);
    let cutover = ["--cluster", CLUSTER, "--yes", "--poll-interval", "1s"];
    let mut rows = Vec::new();
    let simple = [
        Case {
            name: "unknown cluster",
            args: strings(&["check", "--cluster", "nope"]),
            exit: 2,
            says: "cluster \"nope\" not found in eu-west-1 (account 123456789012)",
        },
        Case {
            name: "cluster in another region",
            args: strings(&["check", "--cluster", CLUSTER, "--region", "ap-southeast-4"]),
            exit: 2,
            says: "not found in ap-southeast-4",
        },
        Case {
            name: "unknown profile",
            args: strings(&["check", "--cluster", CLUSTER, "--profile", "nobody"]),
            exit: 2,
            says: "nobody",
        },
        Case {
            name: "endpoint unreachable",
            args: strings(&[
                "check",
                "--cluster",
                CLUSTER,
                "--endpoint-url",
                "http://127.0.0.1:1",
            ]),
            exit: 2,
            says: "cannot reach AWS at http://127.0.0.1:1",
        },
        Case {
            name: "endpoint that is not AWS",
            args: vec![
                "check".into(),
                "--cluster".into(),
                CLUSTER.into(),
                "--endpoint-url".into(),
                not_aws(),
            ],
            exit: 2,
            says: "the answer is not AWS's (HTTP 404, text/html)",
        },
    ];
    for case in simple {
        rows.push(run_case(emulator.binary(), None, &case));
    }
    rows.push(run_case(
        emulator.binary_without_credentials(),
        None,
        &Case {
            name: "no credentials",
            args: strings(&["check", "--cluster", CLUSTER]),
            exit: 2,
            says: "no usable AWS credentials",
        },
    ));

    // Leases: another run's, live; expired but not by two renewal intervals; long expired.
    put_lease(&emulator, &foreign_lease(now() + 300)).await;
    rows.push(run_case(
        emulator.binary(),
        Some(&cutover),
        &Case {
            name: "lease held by another run",
            args: vec![],
            exit: 4,
            says: "is held by alice@bastion-2",
        },
    ));
    put_lease(&emulator, &foreign_lease(now() - 10)).await;
    rows.push(run_case(
        emulator.binary(),
        Some(&cutover),
        &Case {
            name: "lease just expired, --break-lease",
            args: strings(&["--break-lease"]),
            exit: 4,
            says: "not expired by two renewal intervals",
        },
    ));
    put_lease(&emulator, &foreign_lease(now() - 3600)).await;
    rows.push(run_case(
        emulator.binary(),
        Some(&cutover),
        &Case {
            name: "lease long expired, no --break-lease",
            args: vec![],
            exit: 4,
            says: "if it is dead, pass --break-lease after",
        },
    ));
    put_lease(&emulator, "{not a lease").await;
    rows.push(run_case(
        emulator.binary(),
        Some(&cutover),
        &Case {
            name: "lease record unreadable",
            args: vec![],
            exit: 4,
            says: "holds something this version cannot read",
        },
    ));
    put_lease(&emulator, &foreign_lease(now() - 3600)).await;
    // A journal that is not JSON: kept aside, and the run goes on from the records on AWS.
    let journal = journal_path(&emulator);
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    std::fs::write(&journal, "{\"schema\":1,\"status\":\"runn").unwrap();
    rows.push(run_case(
        emulator.binary(),
        Some(&cutover),
        &Case {
            name: "journal corrupted; long-expired lease, --break-lease",
            args: strings(&["--break-lease"]),
            exit: 0,
            says: "is unreadable",
        },
    ));

    eprintln!();
    eprintln!("| situation | command | exit | what it says |");
    eprintln!("|---|---|---:|---|");
    let home = emulator.home().display().to_string();
    for (case, command, code, line) in rows {
        eprintln!(
            "| {case} | `{}` | {code} | {} |",
            command.replace(&emulator.url(), "http://127.0.0.1:PORT"),
            line.replace(&home, "~").replace('|', "\\|")
        );
    }
}

/// Runs one case (after `prefix`, the cutover's options) and checks its exit code and
/// line; returns the row: name, command, exit code, the line.
fn run_case(
    mut command: assert_cmd::Command,
    prefix: Option<&[&str]>,
    case: &Case,
) -> (&'static str, String, i32, String) {
    let mut args: Vec<String> = prefix.map(strings).unwrap_or_default();
    args.extend(case.args.iter().cloned());
    let output = command.args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let code = output.status.code().unwrap_or(-1);
    assert_eq!(code, case.exit, "{}: {stderr}", case.name);
    let line = stderr
        .lines()
        .find(|l| l.contains(case.says))
        .unwrap_or_else(|| panic!("{}: {:?} not in: {stderr}", case.name, case.says))
        .to_string();
    (
        case.name,
        format!("privlink-restart {}", args.join(" ")),
        code,
        line,
    )
}
