//! Bad input: each is one clear line on stderr and exit 2, before or instead of any work.

use crate::harness::Emulator;

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
