//! The binary: parse, build the fleet (AWS or simulated) and the console, run, print, map
//! to an exit code.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use privlink_restart::cli::{Cli, Command, CutoverArgs, DemoArgs, RestartMethodArg};
use privlink_restart::clock::SystemClock;
use privlink_restart::cutover::{self, Console, CutoverPlan, Durability, Operator, StopSignal};
use privlink_restart::demo::DemoSettings;
use privlink_restart::fleet::aws::AwsFleet;
use privlink_restart::fleet::AwsSettings;
use privlink_restart::fleet::Fleet;
use privlink_restart::iam::{self, PolicyScope};
use privlink_restart::journal::{default_state_dir, JournalStore};
use privlink_restart::lease::LeaseTerms;
use privlink_restart::plan::{CheckPlan, IamPolicyPlan};
use privlink_restart::preflight::{self, PreflightOptions};
use privlink_restart::report::{self, CheckReport, ColorChoice, Colour, OutputFormat};
use privlink_restart::rollout::plan::Selection;
use privlink_restart::rollout::run::{FallbackConfig, RolloutConfig};
use privlink_restart::rollout::script::RestartMethod;
use privlink_restart::rollout::waves::WavePolicy;
use privlink_restart::verify::command::VerifyPlan;
use privlink_restart::verify::{self, ProbeConfig};
use privlink_restart::{exit, fleet};

/// `--color`, set once at start: every report on stdout follows it.
static COLOR: std::sync::OnceLock<ColorChoice> = std::sync::OnceLock::new();

fn main() -> ExitCode {
    let cli = Cli::parse_from_args(std::env::args_os()).unwrap_or_else(|error| error.exit());
    COLOR.get_or_init(|| cli.color);
    let aws = AwsSettings {
        region: cli.aws.region.clone(),
        profile: cli.aws.profile.clone(),
        endpoint_url: cli.aws.endpoint_url.clone(),
        max_attempts: cli.aws.max_attempts,
    };
    let code = match cli.command {
        Some(Command::Check(args)) => {
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
        Some(Command::IamPolicy(args)) => iam_policy(IamPolicyPlan {
            scope: PolicyScope {
                cluster: args.cluster,
                // As --region's help says: else AWS_REGION (a profile's region is not read
                // here: the policy is printed without touching AWS).
                region: aws.region.or_else(|| {
                    std::env::var("AWS_REGION")
                        .ok()
                        .filter(|r| privlink_restart::plan::parse_region(r).is_ok())
                }),
                account: args.account,
                read_only: args.read_only,
            },
        }),
        Some(Command::Verify(args)) => run_async(verify(
            aws,
            VerifyPlan {
                cluster: args.cluster,
                preflight: PreflightOptions {
                    shared_endpoints: args.shared_endpoints,
                },
                probe: ProbeConfig::default(),
            },
            cli.output,
            cli.verbose,
        )),
        Some(Command::Demo(args)) => run_async(demo(args, cli.output)),
        Some(Command::Completions(args)) => {
            privlink_restart::cli::completions(args.shell, &mut std::io::stdout());
            exit::OK
        }
        Some(Command::Man) => match privlink_restart::cli::man_page(&mut std::io::stdout()) {
            Ok(()) => exit::OK,
            // `man | head`: the reader has what it wanted.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
            Err(error) => {
                eprintln!("error: cannot write the manual page: {error}");
                exit::USAGE
            }
        },
        Some(Command::Status(args)) => match state_store(args.state_dir) {
            Ok(store) => run_async(status(aws, args.cluster, store, cli.output)),
            Err(code) => code,
        },
        None => match state_store(cli.cutover.state_dir.clone()) {
            Err(code) => code,
            Ok(store) => match cutover_plan(cli.cutover, cli.output, store) {
                Ok(plan) => run_async(cutover_on_aws(aws, plan, cli.verbose)),
                Err(error) => {
                    eprintln!("error: {error}");
                    exit::USAGE
                }
            },
        },
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

fn colour_for_stdout() -> Colour {
    Colour::chosen(
        COLOR.get().copied().unwrap_or_default(),
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
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
        OutputFormat::Human => report::render_check_human(&report, colour_for_stdout()),
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

async fn verify(aws: AwsSettings, plan: VerifyPlan, output: OutputFormat, verbose: bool) -> i32 {
    let fleet = match AwsFleet::connect(&aws).await {
        Ok(fleet) => fleet,
        Err(error) => return fail(&error),
    };
    if output == OutputFormat::Human {
        eprintln!(
            "Probing the agents of cluster {} over SSM (reads only)…",
            plan.cluster
        );
    }
    let report = match verify::command::verify(&fleet, &plan).await {
        Ok(report) => report,
        Err(error) => return fail(&error),
    };
    let rendered = match output {
        OutputFormat::Json => report::render_verify_json(&report),
        OutputFormat::Human => report::render_verify_human(&report, colour_for_stdout()),
    };
    print_stdout(&rendered);
    if verbose {
        print_requests(&report.requests);
    }
    if report.all_private() {
        exit::OK
    } else {
        exit::BLOCKED
    }
}

/// The journal directory: `--state-dir`, else the platform's state directory.
fn state_store(state_dir: Option<std::path::PathBuf>) -> Result<JournalStore, i32> {
    match state_dir.or_else(default_state_dir) {
        Some(dir) => Ok(JournalStore::new(dir)),
        None => {
            eprintln!("error: no directory for the journal: pass --state-dir, or set XDG_STATE_HOME or HOME");
            Err(exit::USAGE)
        }
    }
}

/// Who runs this, as the lease names them to a colleague.
fn operator() -> Operator {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let host = env("HOSTNAME")
        .or_else(|| {
            ["/proc/sys/kernel/hostname", "/etc/hostname"]
                .iter()
                .find_map(|path| std::fs::read_to_string(path).ok())
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .or_else(|| env("COMPUTERNAME"))
        .unwrap_or_else(|| "unknown-host".into());
    Operator {
        user: env("USER")
            .or_else(|| env("USERNAME"))
            .unwrap_or_else(|| "unknown-user".into()),
        host,
        pid: std::process::id(),
    }
}

/// The first Ctrl-C or SIGTERM asks the run to stop starting new work (or ends the
/// process at once if it has not changed anything yet); the second ends it at once.
fn watch_signals(stop: StopSignal, cluster: String) {
    tokio::spawn(async move {
        let mut signals = 0;
        loop {
            if !next_signal().await {
                return;
            }
            signals += 1;
            if !stop.is_changing() {
                eprintln!("\nInterrupted before anything was changed on cluster {cluster}.");
                std::process::exit(exit::ABORTED);
            }
            if signals > 1 {
                eprintln!("\nInterrupted: exiting now; the journal of cluster {cluster} is consistent. `privlink-restart status --cluster {cluster}` shows what is left; `privlink-restart --cluster {cluster} --resume` goes on (with the same --region and --profile).");
                std::process::exit(exit::ABORTED);
            }
            stop.request();
            eprintln!("\nStopping: nothing new starts; restarts under way are followed to their end, then the journal is written and the lease released. Press Ctrl-C again to exit at once.");
        }
    });
}

/// Waits for Ctrl-C or SIGTERM; `false` if signals cannot be watched.
async fn next_signal() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            interrupt = tokio::signal::ctrl_c() => interrupt.is_ok(),
            _ = term.recv() => true,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

async fn status(
    aws: AwsSettings,
    cluster: String,
    store: JournalStore,
    output: OutputFormat,
) -> i32 {
    let fleet = match AwsFleet::connect(&aws).await {
        Ok(fleet) => fleet,
        Err(error) => return fail(&error),
    };
    match cutover::status::status(
        &fleet,
        &cluster,
        Some(&store),
        output,
        &mut TerminalConsole::new(),
    )
    .await
    {
        Ok(code) => code,
        Err(error) => fail(&error),
    }
}

fn cutover_plan(
    args: CutoverArgs,
    output: OutputFormat,
    store: JournalStore,
) -> Result<CutoverPlan, String> {
    let cluster = args.cluster.ok_or(
        "the cutover needs --cluster NAME (or a subcommand: check, verify, status, iam-policy, demo); see --help",
    )?;
    // A duration counts from now, when the run starts.
    let deadline = args
        .deadline
        .as_deref()
        .map(|raw| privlink_restart::window::parse_deadline(raw, jiff::Timestamp::now()))
        .transpose()
        .map_err(|e| format!("invalid --deadline: {e}"))?;
    let limits = privlink_restart::window::TimeLimits {
        schedule: privlink_restart::window::Schedule {
            windows: args.windows,
        },
        deadline,
    };
    Ok(CutoverPlan {
        cluster,
        preflight: PreflightOptions {
            shared_endpoints: args.shared_endpoints,
        },
        selection: Selection {
            instances: args.instances,
            exclude: args.exclude,
            asg: args.asg,
        },
        rollout: RolloutConfig {
            waves: WavePolicy {
                max_unavailable: args.max_unavailable,
                canary: args.canary,
                by_az: args.by_az,
            },
            max_failures: args.max_failures,
            wave_pause: args.wave_pause,
            agent_timeout: args.agent_timeout,
            poll_interval: args.poll_interval.max(Duration::from_secs(1)),
            method: match args.restart_method {
                RestartMethodArg::Auto => RestartMethod::Auto,
                RestartMethodArg::Systemd => RestartMethod::Systemd,
                RestartMethodArg::Upstart => RestartMethod::Upstart,
                RestartMethodArg::Docker => RestartMethod::Docker,
            },
            fallback: FallbackConfig {
                strategy: args.strategy,
                max_reboots: args.max_reboots as usize,
                drain_timeout: args.drain_timeout,
                reboot_timeout: args.reboot_timeout,
                use_standby: args.use_standby,
                skip_capacity_check: args.skip_capacity_check,
                reboot_standalone_tasks: args.reboot_standalone_tasks,
                reboot_after_drain_timeout: args.reboot_after_drain_timeout,
                ..FallbackConfig::default()
            },
            verify: args.verify,
            limits,
            ..RolloutConfig::default()
        },
        dry_run: args.dry_run,
        assume_yes: args.yes,
        force: args.force,
        restart_all: args.restart_all,
        no_wait: args.no_wait,
        output,
        durability: Durability {
            journal: Some(store),
            resume: args.resume,
            fresh: args.fresh,
            break_lease: args.break_lease,
            lease: LeaseTerms {
                renew_every: args.lease_interval,
            },
            operator: operator(),
        },
    })
}

async fn cutover_on_aws(aws: AwsSettings, plan: CutoverPlan, verbose: bool) -> i32 {
    let fleet = match AwsFleet::connect(&aws).await {
        Ok(fleet) => fleet,
        Err(error) => return fail(&error),
    };
    let code = cutover_on(&fleet, &plan).await;
    if verbose {
        print_requests(&fleet.request_counts());
    }
    code
}

/// The demo: a simulated cluster in scaled real time, through the same flow.
async fn demo(args: DemoArgs, output: OutputFormat) -> i32 {
    let settings = DemoSettings {
        instances: usize::from(args.instances),
        speed: args.speed,
        faults: args.faults,
    };
    let (sim, plan) = privlink_restart::demo::demo(settings, output, SystemTime::now());
    eprintln!(
        "Demo: a simulated cluster of {} container instances, {}x faster than real time. Nothing leaves this machine.",
        args.instances, args.speed
    );
    cutover_on(&sim, &plan).await
}

/// The cutover on a fleet, at the terminal, with Ctrl-C and SIGTERM watched.
async fn cutover_on<F: Fleet>(fleet: &F, plan: &CutoverPlan) -> i32 {
    let stop = StopSignal::default();
    watch_signals(stop.clone(), plan.cluster.clone());
    match cutover::run(
        fleet,
        &SystemClock,
        plan,
        &mut TerminalConsole::new(),
        &stop,
    )
    .await
    {
        Ok(code) => code,
        Err(error) => fail(&error),
    }
}

/// The terminal: report on stdout, messages and the prompt on stderr.
struct TerminalConsole {
    colour: Colour,
    stderr_is_terminal: bool,
    stdin_is_terminal: bool,
}

impl TerminalConsole {
    fn new() -> TerminalConsole {
        TerminalConsole {
            colour: colour_for_stdout(),
            stderr_is_terminal: std::io::stderr().is_terminal(),
            stdin_is_terminal: std::io::stdin().is_terminal(),
        }
    }
}

impl Console for TerminalConsole {
    fn out(&mut self, text: &str) {
        print_stdout(text);
    }

    fn err(&mut self, text: &str) {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    fn confirm(&mut self, question: &str) -> Option<bool> {
        if !self.stdin_is_terminal {
            return None;
        }
        self.err(question);
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).ok()?;
        Some(matches!(
            answer.trim().to_ascii_lowercase().as_str(),
            "y" | "yes"
        ))
    }

    fn colour(&self) -> Colour {
        self.colour
    }

    fn progress_visible(&self) -> bool {
        self.stderr_is_terminal
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
