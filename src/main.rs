//! The binary: parse, build the AWS fleet, run, print, map to an exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use privlink_restart::cli::{Cli, Command};
use privlink_restart::fleet::aws::{AwsFleet, AwsSettings};
use privlink_restart::fleet::Fleet;
use privlink_restart::iam::{self, PolicyScope};
use privlink_restart::plan::{CheckPlan, IamPolicyPlan};
use privlink_restart::preflight::{self, PreflightOptions};
use privlink_restart::report::{self, CheckReport, Colour, OutputFormat};
use privlink_restart::{exit, fleet};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let aws = AwsSettings {
        region: cli.aws.region.clone(),
        profile: cli.aws.profile.clone(),
        endpoint_url: cli.aws.endpoint_url.clone(),
        max_attempts: cli.aws.max_attempts,
    };
    let code = match cli.command {
        Command::Check(args) => {
            let plan = CheckPlan {
                cluster: args.cluster,
                aws,
                preflight: PreflightOptions {
                    shared_endpoints: args.shared_endpoints,
                },
                output: cli.output,
                verbose: cli.verbose,
            };
            run_async(check(plan))
        }
        Command::IamPolicy(args) => iam_policy(IamPolicyPlan {
            scope: PolicyScope {
                cluster: args.cluster,
                region: aws.region,
                account: args.account,
                read_only: args.read_only,
            },
        }),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run_async(work: impl std::future::Future<Output = i32>) -> i32 {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(work),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            exit::USAGE
        }
    }
}

async fn check(plan: CheckPlan) -> i32 {
    let fleet = match AwsFleet::connect(&plan.aws).await {
        Ok(fleet) => fleet,
        Err(error) => return fail(&error),
    };
    let inventory = match fleet.discover(&plan.cluster).await {
        Ok(inventory) => inventory,
        Err(error) => return fail(&error),
    };
    let preflight = preflight::run(&inventory, plan.preflight);
    let requests = fleet.request_counts();
    let report = CheckReport {
        inventory: &inventory,
        preflight: &preflight,
        requests: &requests,
    };
    let rendered = match plan.output {
        OutputFormat::Json => report::render_check_json(&report),
        OutputFormat::Human => {
            let colour = Colour::for_terminal(
                std::io::stdout().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            );
            report::render_check_human(&report, colour)
        }
    };
    print_stdout(&rendered);
    if plan.verbose {
        print_requests(&requests);
    }
    if preflight.is_ready() {
        exit::OK
    } else {
        exit::BLOCKED
    }
}

fn iam_policy(plan: IamPolicyPlan) -> i32 {
    let policy = iam::policy(&plan.scope);
    print_stdout(&(serde_json::to_string_pretty(&policy).unwrap_or_default() + "\n"));
    exit::OK
}

fn fail(error: &fleet::FleetError) -> i32 {
    eprintln!("error: {error}");
    exit::USAGE
}

fn print_stdout(text: &str) {
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn print_requests(requests: &std::collections::BTreeMap<String, u64>) {
    let total: u64 = requests.values().sum();
    eprintln!("AWS requests: {total}");
    for (action, count) in requests {
        eprintln!("  {count:>5}  {action}");
    }
}
