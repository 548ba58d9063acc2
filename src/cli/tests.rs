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
