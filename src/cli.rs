//! The command line, as clap types only. `plan` turns these into validated plans.

use clap::{Args, Parser, Subcommand};

use crate::plan;
use crate::report::{ColorChoice, OutputFormat};
use crate::rollout::run::Strategy;
use crate::verify::VerifyMode;

#[derive(Debug, Parser)]
#[command(
    name = "privlink-restart",
    version = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("PRIVLINK_GIT_REVISION"), ")"),
    about = "Moves ECS agents onto AWS PrivateLink endpoints, safely and with proof",
    long_about = "Moves ECS agents onto AWS PrivateLink endpoints, safely and with proof.\n\n\
        After the ecs, ecs-agent, ecs-telemetry, ecr.api, ecr.dkr and S3 gateway endpoints exist, \
        every ECS agent still talks to ECS over its old public path until it restarts. \
        `privlink-restart --cluster NAME` checks the cluster, shows the plan, asks, then restarts \
        the agents over SSM Run Command in waves and proves each restart from the instance. \
        `check` only checks; `status` shows the last run; `demo` shows the whole flow on a \
        simulated cluster. A run can be interrupted at any moment and resumed with --resume, \
        from this machine or another.",
    after_help = "Exit codes: 0 done or ready; 1 blocking findings, or instances failed or not moved; \
        2 usage, configuration or AWS access error; 3 stopped early and resumable (interrupt, \
        lease lost, out of --window or --deadline time); 4 another run holds the cluster; 130 a \
        second Ctrl-C."
)]
pub struct Cli {
    #[command(flatten)]
    pub cutover: CutoverArgs,

    #[command(flatten)]
    pub aws: AwsArgs,

    /// Human-readable report, or one JSON document on stdout
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human, help_heading = "Output")]
    pub output: OutputFormat,

    /// Also print the AWS requests made, per action, at the end (on stderr)
    #[arg(short, long, global = true, help_heading = "Output")]
    pub verbose: bool,

    /// Colour in human output: auto (on a terminal, unless NO_COLOR is set), always, never
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, help_heading = "Output")]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The cutover (no subcommand).
#[derive(Debug, Args)]
pub struct CutoverArgs {
    /// ECS cluster name or ARN
    #[arg(long, value_parser = plan::parse_cluster, help_heading = "Cutover")]
    pub cluster: Option<String>,

    /// Check, show the plan and the estimate, then stop: change nothing
    #[arg(long, help_heading = "Cutover")]
    pub dry_run: bool,

    /// Only these EC2 instance ids (comma-separated)
    #[arg(long, value_delimiter = ',', help_heading = "Selection")]
    pub instances: Vec<String>,

    /// Leave these EC2 instance ids alone (comma-separated)
    #[arg(long, value_delimiter = ',', help_heading = "Selection")]
    pub exclude: Vec<String>,

    /// Only instances of this Auto Scaling group
    #[arg(long, help_heading = "Selection")]
    pub asg: Option<String>,

    /// How to restart the agent: its supervisor (auto), or one method for every host
    #[arg(long, value_enum, default_value_t = RestartMethodArg::Auto, help_heading = "Rollout")]
    pub restart_method: RestartMethodArg,

    /// Instances away at once: a count or a percentage of the instances to restart
    #[arg(long, default_value = "10%", value_parser = plan::parse_max_unavailable, help_heading = "Rollout")]
    pub max_unavailable: crate::rollout::waves::MaxUnavailable,

    /// Instances restarted first, alone; the rollout halts if any of them fails
    #[arg(long, default_value_t = 1, help_heading = "Rollout")]
    pub canary: usize,

    /// Keep every wave inside one Availability Zone
    #[arg(long, help_heading = "Rollout")]
    pub by_az: bool,

    /// Pause between waves, e.g. 30s or 2m
    #[arg(long, default_value = "0s", value_parser = plan::parse_duration, help_heading = "Rollout")]
    pub wave_pause: std::time::Duration,

    /// How long an agent may take to restart and reconnect, e.g. 5m
    #[arg(long, default_value = "5m", value_parser = plan::parse_agent_timeout, help_heading = "Rollout")]
    pub agent_timeout: std::time::Duration,

    /// How often AWS is read while a wave is in flight
    #[arg(long, default_value = "1s", value_parser = plan::parse_duration, help_heading = "Rollout")]
    pub poll_interval: std::time::Duration,

    /// A maintenance window: days, a time range and an IANA time zone, e.g. "Sat,Sun 02:00-05:00 Europe/Berlin" or "Mon-Fri 22:00-06:00 UTC" (a range past midnight belongs to the day it starts); repeat for more. Outside them the run waits; inside, a wave or reboot starts only if it is expected to end before the window closes
    #[arg(long = "window", value_name = "SPEC", value_parser = parse_window, help_heading = "Timing")]
    pub windows: Vec<crate::window::Window>,

    /// Start nothing that is expected to end after this: a time with an offset (2026-12-01T06:00Z) or a duration from now (90m, 2h)
    #[arg(long, value_name = "TIME|DURATION", value_parser = parse_deadline, help_heading = "Timing")]
    pub deadline: Option<String>,

    /// Outside the maintenance windows, exit 3 at once instead of waiting for the next one
    #[arg(long, help_heading = "Timing")]
    pub no_wait: bool,

    /// The endpoints live in another (hub or shared) VPC: missing local endpoints only warn
    #[arg(long, help_heading = "Verification")]
    pub shared_endpoints: bool,

    /// What proves an instance done after its restart or reboot: its agent's path probed onto the endpoints (private), ECS showing it connected (connected), or the restart's own proof (none) [default: private where SSM reaches the instance, connected where it does not]
    #[arg(long, value_enum, help_heading = "Verification")]
    pub verify: Option<VerifyMode>,

    /// Restart agents the probe shows already on the endpoints too (they are skipped otherwise)
    #[arg(long, help_heading = "Verification")]
    pub restart_all: bool,

    /// Where SSM cannot restart an agent: drain and reboot the instance (auto), never reboot (restart), or drain and reboot every instance (reboot)
    #[arg(long, value_enum, default_value_t = Strategy::Auto, help_heading = "Fallback")]
    pub strategy: Strategy,

    /// Instances drained or rebooting at once (they count toward --max-unavailable too)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100), help_heading = "Fallback")]
    pub max_reboots: u32,

    /// How long a drain may take (and a wait for the services to settle), e.g. 15m
    #[arg(long, default_value = "15m", value_parser = plan::parse_step_timeout, help_heading = "Fallback")]
    pub drain_timeout: std::time::Duration,

    /// How long an instance may take to come back after its reboot, e.g. 15m
    #[arg(long, default_value = "15m", value_parser = plan::parse_step_timeout, help_heading = "Fallback")]
    pub reboot_timeout: std::time::Duration,

    /// Hold a drained instance in Standby instead of scale-in protection
    #[arg(long, help_heading = "Fallback")]
    pub use_standby: bool,

    /// Do not ask before restarting (needed when stdin is not a terminal)
    #[arg(short, long, help_heading = "Safety")]
    pub yes: bool,

    /// Run despite blocking findings; each overridden finding id is named in the output
    #[arg(long, help_heading = "Safety")]
    pub force: bool,

    /// Failed instances tolerated before the rollout halts (no new instance is touched after)
    #[arg(long, default_value_t = 0, help_heading = "Safety")]
    pub max_failures: usize,

    /// Drain even when the placement check finds the tasks will not fit elsewhere
    #[arg(long, help_heading = "Safety")]
    pub skip_capacity_check: bool,

    /// Reboot instances running tasks outside any service (those tasks are killed)
    #[arg(long, help_heading = "Safety")]
    pub reboot_standalone_tasks: bool,

    /// Reboot when the drain times out, rather than put the instance back and fail it
    #[arg(long, help_heading = "Safety")]
    pub reboot_after_drain_timeout: bool,

    /// Where journals are kept [default: $XDG_STATE_HOME/privlink-restart, else ~/.local/state/privlink-restart]
    #[arg(long, env = "PRIVLINK_RESTART_STATE_DIR", help_heading = "Durability")]
    pub state_dir: Option<std::path::PathBuf>,

    /// Finish the unfinished earlier run, if any (put back what it owes, skip what it did) instead of being asked; if the last run finished, do nothing
    #[arg(long, conflicts_with = "fresh", help_heading = "Durability")]
    pub resume: bool,

    /// Set an unfinished earlier run aside and start over (what it owes is still put back)
    #[arg(long, help_heading = "Durability")]
    pub fresh: bool,

    /// Take over the cluster's lease from a run that stopped renewing it (only once it is expired by two renewal intervals)
    #[arg(long, help_heading = "Durability")]
    pub break_lease: bool,

    /// How often the cluster's lease is renewed; it lasts three intervals
    #[arg(long, default_value = "30s", value_parser = plan::parse_lease_interval, help_heading = "Durability")]
    pub lease_interval: std::time::Duration,
}

fn parse_window(raw: &str) -> Result<crate::window::Window, String> {
    crate::window::Window::parse(raw).map_err(|e| e.to_string())
}

/// Checked against the time now; `main` reads it again when the run starts.
fn parse_deadline(raw: &str) -> Result<String, String> {
    crate::window::parse_deadline(raw, jiff::Timestamp::now()).map(|_| raw.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RestartMethodArg {
    Auto,
    Systemd,
    Upstart,
    Docker,
}

#[derive(Debug, Args)]
pub struct AwsArgs {
    /// AWS region [default: AWS_REGION, then the profile's region]
    #[arg(long, global = true, value_parser = plan::parse_region, help_heading = "AWS")]
    pub region: Option<String>,

    /// Named profile from ~/.aws/config (SSO and assume-role profiles work); its credentials are used even when keys are set in the environment [default: AWS_PROFILE, in the SDK's order]
    #[arg(long, global = true, help_heading = "AWS")]
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
    /// The last or ongoing run: per-instance states, evidence, the lease, what is still owed
    Status(StatusArgs),
    /// Prove which agents use the endpoints: probes each instance over SSM (reads only)
    Verify(VerifyArgs),
    /// The whole cutover on a built-in simulated cluster: no AWS account needed
    Demo(DemoArgs),
    /// Print a shell completion script: privlink-restart completions bash > /etc/bash_completion.d/privlink-restart
    Completions(CompletionsArgs),
    /// Print the manual page (roff): privlink-restart man | man -l -
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// ECS cluster name or ARN
    #[arg(long, value_parser = plan::parse_cluster)]
    pub cluster: String,

    /// The endpoints live in another (hub or shared) VPC: a peer counts as private when it is a private address the ecs-a/ecs-t names resolve to
    #[arg(long)]
    pub shared_endpoints: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// ECS cluster name or ARN
    #[arg(long, value_parser = plan::parse_cluster)]
    pub cluster: String,

    /// Where journals are kept [default: $XDG_STATE_HOME/privlink-restart, else ~/.local/state/privlink-restart]
    #[arg(long, env = "PRIVLINK_RESTART_STATE_DIR")]
    pub state_dir: Option<std::path::PathBuf>,
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

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Container instances in the simulated cluster
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u16).range(1..=5000))]
    pub instances: u16,

    /// How much faster than real time the simulation runs
    #[arg(long, default_value_t = 10.0, value_parser = plan::parse_speed)]
    pub speed: f64,

    /// Add trouble: an instance SSM cannot reach, a slow reconnect, a spot interruption, an agent already on the endpoints
    #[arg(long)]
    pub faults: bool,
}

impl Cli {
    /// Parses the command line. Global options (AWS, output) go before or after a
    /// subcommand; the cutover's own options only without one.
    pub fn parse_from_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Cli::command();
        let matches = command.try_get_matches_from_mut(args)?;
        if let Some((name, _)) = matches.subcommand() {
            let cutover = CutoverArgs::augment_args(clap::Command::new("cutover"));
            for arg in cutover.get_arguments() {
                if matches.value_source(arg.get_id().as_str())
                    == Some(clap::parser::ValueSource::CommandLine)
                {
                    let flag = arg.get_long().unwrap_or_else(|| arg.get_id().as_str());
                    return Err(command.error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "--{flag} belongs to the cutover and cannot be used with the subcommand '{name}'"
                        ),
                    ));
                }
            }
        }
        Cli::from_arg_matches(&matches)
    }
}

/// The completion script for `shell`, written to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory;
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "privlink-restart", out);
}

/// The manual page (roff) of the command and its subcommands, written to `out`.
pub fn man_page(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    let command = Cli::command();
    clap_mangen::Man::new(command.clone()).render(out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("privlink-restart-{}", sub.get_name());
        let sub = sub.clone().name(name);
        writeln!(out)?;
        clap_mangen::Man::new(sub).render(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
