//! The command line, as clap types only. `plan` turns these into validated plans.

use clap::{Args, Parser, Subcommand};

use crate::plan;
use crate::report::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "privlink-restart",
    version,
    about = "Moves ECS agents onto AWS PrivateLink endpoints, safely and with proof",
    long_about = "Moves ECS agents onto AWS PrivateLink endpoints, safely and with proof.\n\n\
        After the ecs, ecs-agent, ecs-telemetry, ecr.api, ecr.dkr and S3 gateway endpoints exist, \
        every ECS agent still talks to ECS over its old public path until it restarts. \
        `check` tells whether a cluster is ready for that cutover.",
    after_help = "Exit codes: 0 ready, 1 blocking findings, 2 usage, configuration or AWS access error."
)]
pub struct Cli {
    #[command(flatten)]
    pub aws: AwsArgs,

    /// Human-readable report, or one JSON document on stdout
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human, help_heading = "Output")]
    pub output: OutputFormat,

    /// Also print the AWS requests made, per action, at the end (on stderr)
    #[arg(short, long, global = true, help_heading = "Output")]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct AwsArgs {
    /// AWS region [default: AWS_REGION, then the profile's region]
    #[arg(long, global = true, value_parser = plan::parse_region, help_heading = "AWS")]
    pub region: Option<String>,

    /// Named profile from ~/.aws/config (SSO and assume-role profiles work)
    #[arg(long, global = true, env = "AWS_PROFILE", help_heading = "AWS")]
    pub profile: Option<String>,

    /// Send every AWS request to this URL (else AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> apply)
    #[arg(long, global = true, value_parser = plan::parse_endpoint_url, help_heading = "AWS")]
    pub endpoint_url: Option<String>,

    /// Attempts per AWS request, the first included (adaptive retries with back-off)
    #[arg(long, global = true, env = "AWS_MAX_ATTEMPTS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=20), help_heading = "AWS")]
    pub max_attempts: u32,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Preflight: is the cluster ready for the cutover? Reads only; changes nothing
    Check(CheckArgs),
    /// Print the least-privilege IAM policy for everything this tool calls
    IamPolicy(IamPolicyArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// ECS cluster name or ARN
    #[arg(long, value_parser = plan::parse_cluster)]
    pub cluster: String,

    /// The endpoints live in another (hub or shared) VPC: missing local endpoints only warn
    #[arg(long)]
    pub shared_endpoints: bool,
}

#[derive(Debug, Args)]
pub struct IamPolicyArgs {
    /// Scope ECS permissions to this cluster [default: any cluster]
    #[arg(long, value_parser = plan::parse_cluster)]
    pub cluster: Option<String>,

    /// Scope to this account [default: any account]
    #[arg(long, value_parser = plan::parse_account)]
    pub account: Option<String>,

    /// Only the read permissions `check` needs, nothing that changes the fleet
    #[arg(long)]
    pub read_only: bool,
}
