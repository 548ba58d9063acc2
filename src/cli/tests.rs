//! The command line as people see it: `--help` (snapshots), completions, the manual page.

use clap::CommandFactory;

use super::*;

fn help(path: &[&str]) -> String {
    let mut command = Cli::command().term_width(100);
    let mut current = &mut command;
    for name in path {
        current = current
            .find_subcommand_mut(name)
            .unwrap_or_else(|| panic!("no subcommand {name}"));
    }
    current.render_long_help().to_string()
}

#[test]
fn help_snapshots() {
    insta::assert_snapshot!("help", help(&[]));
    for sub in [
        "check",
        "verify",
        "status",
        "iam-policy",
        "demo",
        "completions",
    ] {
        insta::assert_snapshot!(format!("help-{sub}"), help(&[sub]));
    }
}

#[test]
fn every_option_of_the_cutover_sits_under_a_heading() {
    let command = Cli::command();
    let loose: Vec<String> = command
        .get_arguments()
        .filter(|a| !a.is_positional() && a.get_help_heading().is_none())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .map(|a| a.get_id().to_string())
        .collect();
    assert_eq!(
        loose,
        Vec::<String>::new(),
        "options without a help heading"
    );
}

#[test]
fn completions_generate_for_each_shell() {
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        let mut out = Vec::new();
        completions(shell, &mut out);
        let script = String::from_utf8(out).unwrap();
        for word in [
            "privlink-restart",
            "max-unavailable",
            "window",
            "verify",
            "check",
        ] {
            assert!(script.contains(word), "{shell}: no {word:?}");
        }
    }
}

#[test]
fn the_manual_page_covers_the_command_and_its_subcommands() {
    let mut out = Vec::new();
    man_page(&mut out).unwrap();
    let page = String::from_utf8(out).unwrap();
    assert!(page.starts_with(".ie"), "roff: {}", &page[..40]);
    for part in [
        ".TH privlink-restart 1",
        ".TH privlink-restart-check 1",
        ".TH privlink-restart-verify 1",
        "\\-\\-max\\-unavailable",
        "\\-\\-window",
        "Exit codes",
    ] {
        assert!(page.contains(part), "no {part:?}");
    }
}

#[test]
fn the_version_names_the_git_revision() {
    let version = Cli::command().render_version();
    assert!(
        version.starts_with(&format!(
            "privlink-restart {} (git ",
            env!("CARGO_PKG_VERSION")
        )),
        "{version}"
    );
}

#[test]
fn global_options_go_before_or_after_a_subcommand_but_cutover_options_only_without_one() {
    let parse = |args: &[&str]| {
        Cli::parse_from_args(std::iter::once("privlink-restart").chain(args.iter().copied()))
    };
    for args in [
        &["--region", "eu-west-1", "check", "--cluster", "prod"][..],
        &["check", "--cluster", "prod", "--region", "eu-west-1"],
        &[
            "--output",
            "json",
            "--color",
            "never",
            "verify",
            "--cluster",
            "prod",
        ],
        &["--cluster", "prod", "--dry-run", "--region", "eu-west-1"],
    ] {
        let cli = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert!(
            cli.aws.region.as_deref() == Some("eu-west-1") || args.contains(&"--output"),
            "{args:?}"
        );
    }
    let error = parse(&["--dry-run", "check", "--cluster", "prod"]).unwrap_err();
    assert!(
        error.to_string().contains(
            "--dry-run belongs to the cutover and cannot be used with the subcommand 'check'"
        ),
        "{error}"
    );
    assert_eq!(error.exit_code(), 2);
}

/// Every option that takes a value, given a malformed one: a usage error (exit 2) that
/// names the option and says what is expected. Printed as a table for
/// docs/RELIABILITY.md (`scripts/reliability`).
#[test]
fn every_option_refuses_a_malformed_value_and_names_it() {
    let cases: &[(&[&str], &str)] = &[
        (&["--cluster", "prod cluster"], "not an ECS cluster name"),
        (
            &["--cluster", "p", "--max-unavailable", "0"],
            "is not a count or a percentage",
        ),
        (
            &["--cluster", "p", "--max-unavailable", "101%"],
            "is not a count or a percentage",
        ),
        (&["--cluster", "p", "--canary", "two"], "--canary"),
        (
            &["--cluster", "p", "--max-failures", "many"],
            "--max-failures",
        ),
        (
            &["--cluster", "p", "--wave-pause", "5 minutes"],
            "--wave-pause",
        ),
        (
            &["--cluster", "p", "--agent-timeout", "1s"],
            "--agent-timeout",
        ),
        (
            &["--cluster", "p", "--poll-interval", "x"],
            "--poll-interval",
        ),
        (
            &["--cluster", "p", "--restart-method", "kill"],
            "--restart-method",
        ),
        (&["--cluster", "p", "--verify", "maybe"], "--verify"),
        (&["--cluster", "p", "--strategy", "yolo"], "--strategy"),
        (&["--cluster", "p", "--max-reboots", "0"], "--max-reboots"),
        (
            &["--cluster", "p", "--drain-timeout", "forever"],
            "--drain-timeout",
        ),
        (
            &["--cluster", "p", "--reboot-timeout", "0s"],
            "--reboot-timeout",
        ),
        (
            &["--cluster", "p", "--lease-interval", "1ms"],
            "--lease-interval",
        ),
        (
            &["--cluster", "p", "--window", "Sat 02:00-05:00"],
            "needs three parts",
        ),
        (
            &["--cluster", "p", "--window", "Sat 02:00-05:00 Mars/Olympus"],
            "is not an IANA time zone",
        ),
        (
            &["--cluster", "p", "--deadline", "tomorrow"],
            "neither a time with an offset",
        ),
        (
            &["--cluster", "p", "--region", "euwest1"],
            "not a region name",
        ),
        (
            &["--cluster", "p", "--endpoint-url", "localhost:4566"],
            "must start with http:// or https://",
        ),
        (&["--cluster", "p", "--max-attempts", "0"], "--max-attempts"),
        (&["--cluster", "p", "--output", "yaml"], "--output"),
        (&["--cluster", "p", "--color", "rainbow"], "--color"),
        (&["check", "--cluster", "a/b/c"], "not an ECS cluster name"),
        (
            &["iam-policy", "--account", "12345"],
            "not an AWS account id",
        ),
        (&["demo", "--instances", "0"], "--instances"),
        (&["demo", "--speed", "0"], "--speed"),
        (&["completions", "tcsh"], "tcsh"),
    ];
    println!("\n| options | exit | message |\n|---|---:|---|");
    for (args, expected) in cases {
        let error =
            Cli::parse_from_args(std::iter::once("privlink-restart").chain(args.iter().copied()))
                .expect_err(&format!("{args:?} parsed"));
        let message = error.to_string();
        assert_eq!(error.exit_code(), 2, "{args:?}");
        assert!(message.contains(expected), "{args:?}: {message}");
        let first = message
            .lines()
            .next()
            .unwrap_or_default()
            .replace('|', "\\|");
        println!("| `{}` | 2 | {first} |", args.join(" "));
    }
    // Every option that takes a value is in the table, or takes any text.
    let free_text = ["profile", "state_dir", "asg", "instances", "exclude"];
    let tried: String = cases
        .iter()
        .map(|(a, _)| a.join(" "))
        .collect::<Vec<_>>()
        .join(" ");
    let command = Cli::command();
    for arg in command.get_arguments() {
        let takes_value = arg.get_action().takes_values();
        let id = arg.get_id().as_str();
        if !takes_value || arg.is_positional() || free_text.contains(&id) {
            continue;
        }
        let long = format!("--{}", arg.get_long().unwrap_or(id));
        assert!(tried.contains(&long), "{long} has no malformed-value case");
    }
}
