//! The on-instance path probe: constant scripts (probe.sh and probe.ps1 beside this file)
//! that print one record line, read back by [`super::record`].
//!
//! ECS only says whether an agent is connected, never over which path. Only the instance
//! knows what the ECS and ECR names resolve to there and where the agent's connections
//! end, so the proof is read on the instance, with tools every ECS host has. The scripts
//! only read; the tool puts a region and an account number in front of them, filtered so
//! that nothing can be spliced into the command.

const SCRIPT: &str = include_str!("probe.sh");
const POWERSHELL_SCRIPT: &str = include_str!("probe.ps1");

/// Starts the probe's record line in the command output.
pub const PROBE_MARKER: &str = "PRIVLINK-PROBE ";

/// The text by which a probe command is recognised (first line of both scripts).
pub const PROBE_TAG: &str = "privlink-restart probe";

/// The region as the scripts see it: `[a-z0-9-]` only, so it can neither end the
/// assignment nor the quoted string it sits in.
fn region_word(region: &str) -> String {
    region
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect()
}

/// The account's digits; `unknown` without them, and the probe then resolves the
/// account-less ECR registry name instead.
fn account_word(account: Option<&str>) -> String {
    let digits: String = account
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    if digits.is_empty() {
        "unknown".to_string()
    } else {
        digits
    }
}

/// The shell commands for `AWS-RunShellScript`: two exported values, then the constant
/// script handed to bash. SSM runs the commands with `sh` — dash on Debian and Ubuntu,
/// bash in POSIX mode on Amazon Linux 2 — and the probe needs bash, so it is quoted whole
/// (every `'` closed, escaped and reopened) into `bash -c`.
pub fn linux_probe_commands(region: &str, account: Option<&str>) -> String {
    format!(
        "# {PROBE_TAG}: run under bash\nexport PRIVLINK_REGION={}\nexport PRIVLINK_ACCOUNT={}\nexec bash -c '{}'\n",
        region_word(region),
        account_word(account),
        SCRIPT.replace('\'', "'\\''")
    )
}

/// The commands for `AWS-RunPowerShellScript`: the same two values as PowerShell
/// variables, then the constant script. Not yet verified on a real host.
pub fn windows_probe_commands(region: &str, account: Option<&str>) -> String {
    format!(
        "$PrivlinkRegion = '{}'\n$PrivlinkAccount = '{}'\n{POWERSHELL_SCRIPT}",
        region_word(region),
        account_word(account)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::record::{ProbeRecord, Reading, PROBED_NAMES};
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Stand-ins for the tools the probe reads, answering from files in $STATE:
    /// `dns/<name>` (one address a line; absent: no such name), `no-ahostsv4` (a getent
    /// that knows only `hosts`), `agent-pid` and `agent-env` (the ecs-agent container;
    /// no `agent-pid`: no such container), `pgrep` (its answer), `ss` (the listing) and
    /// `ss-without-H` (an older iproute2). Each fails on a call the probe should not make.
    const FAKES: &[(&str, &str)] = &[
        (
            "getent",
            r#"[ "$1" = ahostsv4 ] && [ -f "$STATE/no-ahostsv4" ] && { echo "Unknown database: ahostsv4" >&2; exit 1; }
[ -f "$STATE/dns/$2" ] || exit 2
while read -r ip; do
  case "$1" in
    ahostsv4) printf '%s      STREAM %s\n%s      DGRAM  \n%s      RAW    \n' "$ip" "$2" "$ip" "$ip" ;;
    hosts) printf '%s      %s\n' "$ip" "$2" ;;
    *) exit 1 ;;
  esac
done < "$STATE/dns/$2""#,
        ),
        (
            "docker",
            r#"[ "$1 $2 $4" = "inspect -f ecs-agent" ] && [ -f "$STATE/agent-pid" ] || { echo "Error: No such object: ecs-agent" >&2; exit 1; }
case "$3" in
  '{{.State.Pid}}') cat "$STATE/agent-pid" ;;
  '{{range .Config.Env}}{{println .}}{{end}}') [ -f "$STATE/agent-env" ] && cat "$STATE/agent-env"; echo ;;
  *) exit 1 ;;
esac"#,
        ),
        (
            "pgrep",
            r#"[ "$*" = "-o -x agent" ] && [ -f "$STATE/pgrep" ] && cat "$STATE/pgrep""#,
        ),
        (
            "ss",
            r#"[ "$1" = -Htnp ] && [ -f "$STATE/ss-without-H" ] && { echo "ss: invalid option -- 'H'" >&2; exit 255; }
[ "${*:2}" = "state established ( dport = :443 )" ] || exit 1
cat "$STATE/ss""#,
        ),
    ];

    const REGION: &str = "eu-west-1";
    const ACCOUNT: &str = "123456789012";

    /// Out of order and with a duplicate, to show the probe sorts and dedupes.
    const HEALTHY_DNS: &[(&str, &str)] = &[
        ("ecs.eu-west-1.amazonaws.com", "10.0.6.20\n10.0.5.20\n"),
        (
            "ecs-a.eu-west-1.amazonaws.com",
            "10.0.6.10\n10.0.5.10\n10.0.6.10\n",
        ),
        ("ecs-t.eu-west-1.amazonaws.com", "10.0.5.11\n10.0.6.11\n"),
        ("api.ecr.eu-west-1.amazonaws.com", "10.0.5.12\n"),
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "10.0.5.13\n",
        ),
    ];

    /// The agent (pid 2345) on two endpoint addresses, one of them twice and one
    /// IPv4-mapped; besides it: another process on :443, the agent on :80 and on IPv6,
    /// and a process whose pid starts with the agent's.
    const HEALTHY_SS: &str = r#"0      0      10.0.1.23:45678     10.0.5.10:443     users:(("agent",pid=2345,fd=12))
0      0      10.0.1.23:45679     [::ffff:10.0.6.10]:443     users:(("agent",pid=2345,fd=13))
0      0      10.0.1.23:45680     10.0.5.10:443     users:(("agent",pid=2345,fd=14))
0      0      10.0.1.23:45681     52.94.1.10:443    users:(("curl",pid=999,fd=3))
0      0      10.0.1.23:45682     10.0.7.7:80       users:(("agent",pid=2345,fd=15))
0      0      [2600:1f18::5]:45683     [2600:1f18::9]:443     users:(("agent",pid=2345,fd=16))
0      0      10.0.1.23:45684     10.0.8.8:443      users:(("agent",pid=23456,fd=3))
"#;

    /// What agents since 1.76 write: the URL is on the "established" line itself.
    const LOGFMT_LOG: &str = r#"level=info time=2026-11-27T00:31:59Z msg="Websocket connection established." URL="https://ecs-a-1.eu-west-1.amazonaws.com/ws?agentHash=abc" ConnectTime="2026-11-27 00:31:59" ExpectedDisconnectTime="2026-11-27 01:01:59"
level=info time=2026-11-27T01:02:02Z msg="Establishing a Websocket connection" url="https://ecs-a-3.eu-west-1.amazonaws.com/ws?agentHash=abc&clusterArn=prod"
level=info time=2026-11-27T01:02:03Z msg="Websocket connection established." URL="https://ecs-a-3.eu-west-1.amazonaws.com/ws?agentHash=abc&clusterArn=prod" ConnectTime="2026-11-27 01:02:03" ExpectedDisconnectTime="2026-11-27 01:32:03"
level=info time=2026-11-27T01:02:04Z msg="Connected to ACS endpoint"
"#;

    /// A fake host: the fakes above plus the few real tools the probe and the fakes use
    /// (bash, cat, grep), and nothing else on PATH. The probe reads the agent's log and
    /// ecs.config at the paths given by PRIVLINK_AGENT_LOG and PRIVLINK_ECS_CONFIG, which
    /// point into the host's directory.
    struct FakeHost {
        dir: tempfile::TempDir,
    }

    impl FakeHost {
        /// All the tools, none of them with anything to say yet.
        fn new() -> FakeHost {
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::create_dir_all(dir.path().join("state/dns")).unwrap();
            for (name, body) in FAKES {
                write_executable(&bin.join(name), &format!("#!/bin/bash\n{body}\n"));
            }
            for tool in ["bash", "cat", "grep"] {
                let path = which(tool).unwrap_or_else(|| panic!("{tool} is needed"));
                std::os::unix::fs::symlink(path, bin.join(tool)).unwrap();
            }
            // SSM runs the commands with `sh`: dash where there is one (as on Debian),
            // else bash (in POSIX mode, as on Amazon Linux 2).
            let sh = which("dash").or_else(|| which("bash")).expect("a shell");
            std::os::unix::fs::symlink(sh, bin.join("sh")).unwrap();
            FakeHost { dir }
        }

        /// An agent in its container, on the endpoints, no proxy.
        fn healthy() -> FakeHost {
            let host = FakeHost::new();
            for (name, addresses) in HEALTHY_DNS {
                host.state(&format!("dns/{name}"), addresses);
            }
            host.state("agent-pid", "2345\n");
            host.state(
                "agent-env",
                "PATH=/usr/local/sbin:/usr/bin\nECS_CLUSTER=prod\n",
            );
            host.state("ss", HEALTHY_SS);
            host.log(LOGFMT_LOG);
            host
        }

        fn state(&self, name: &str, content: &str) {
            std::fs::write(self.dir.path().join("state").join(name), content).unwrap();
        }

        fn log(&self, content: &str) {
            std::fs::write(self.dir.path().join("ecs-agent.log"), content).unwrap();
        }

        fn config(&self, content: &str) {
            std::fs::write(self.dir.path().join("ecs.config"), content).unwrap();
        }

        fn remove(&self, path: &str) {
            std::fs::remove_file(self.dir.path().join(path)).unwrap();
        }

        /// Runs the probe as SSM would; returns its exit code and its one output line.
        fn run(&self) -> (i32, String) {
            let output = Command::new(self.dir.path().join("bin/sh"))
                .arg("-c")
                .arg(linux_probe_commands(REGION, Some(ACCOUNT)))
                .env_clear()
                .env("PATH", self.dir.path().join("bin"))
                .env("STATE", self.dir.path().join("state"))
                .env("PRIVLINK_AGENT_LOG", self.dir.path().join("ecs-agent.log"))
                .env("PRIVLINK_ECS_CONFIG", self.dir.path().join("ecs.config"))
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout).to_string();
            let stderr = String::from_utf8_lossy(&output.stderr);
            // Anything on stderr means a tool's noise leaked or the script broke somewhere.
            assert!(stderr.is_empty(), "stderr: {stderr}\nstdout: {stdout}");
            assert_eq!(stdout.lines().count(), 1, "{stdout}");
            (output.status.code().unwrap_or(-1), stdout)
        }

        fn record(&self) -> ProbeRecord {
            let (code, stdout) = self.run();
            assert_eq!(code, 0, "{stdout}");
            ProbeRecord::parse(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
        }
    }

    fn write_executable(path: &Path, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, body).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn which(tool: &str) -> Option<PathBuf> {
        ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
    }

    fn addresses(list: &[&str]) -> Vec<Ipv4Addr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn healthy_dns() -> BTreeMap<String, Reading<Vec<Ipv4Addr>>> {
        let table: [(&str, &[&str]); 5] = [
            ("ecs", &["10.0.5.20", "10.0.6.20"]),
            ("ecs-a", &["10.0.5.10", "10.0.6.10"]),
            ("ecs-t", &["10.0.5.11", "10.0.6.11"]),
            ("ecr-api", &["10.0.5.12"]),
            ("ecr-dkr", &["10.0.5.13"]),
        ];
        table
            .into_iter()
            .map(|(name, list)| (name.to_string(), Reading::Seen(addresses(list))))
            .collect()
    }

    #[test]
    fn a_healthy_host_reports_the_agents_own_peers_and_its_newest_websocket() {
        let host = FakeHost::healthy();
        let (code, stdout) = host.run();
        assert_eq!(code, 0);
        let expected = ProbeRecord {
            agent_pid: Reading::Seen(2345),
            proxy: Reading::Nothing,
            no_proxy: Reading::Nothing,
            dns: healthy_dns(),
            peers: Reading::Seen(addresses(&["10.0.5.10", "10.0.6.10"])),
            websocket_host: Reading::Seen("ecs-a-3.eu-west-1.amazonaws.com".into()),
            websocket_at: Reading::Seen("2026-11-27T01:02:03Z".into()),
        };
        assert_eq!(ProbeRecord::parse(&stdout).unwrap(), expected, "{stdout}");
        // The script and the record's rendering agree on the line, field for field.
        assert_eq!(stdout.trim_end(), expected.to_string());
    }

    #[test]
    fn every_log_format_gives_the_newest_websockets_host_and_time() {
        let cases = [
            (
                "JSON",
                r#"{"level":"info","time":"2026-11-27T01:00:00Z","msg":"Websocket connection established.","URL":"https://ecs-a-1.eu-west-1.amazonaws.com/ws"}
{"level":"info","time":"2026-11-27T02:03:04Z","msg":"Websocket connection established.","URL":"https://ecs-t-2.eu-west-1.amazonaws.com/ws?agentHash=abc\u0026cluster=prod","ConnectTime":"2026-11-27 02:03:04"}
{"level":"info","time":"2026-11-27T02:03:05Z","msg":"Connected to TCS endpoint"}
"#,
                Reading::Seen("ecs-t-2.eu-west-1.amazonaws.com"),
                Reading::Seen("2026-11-27T02:03:04Z"),
            ),
            (
                "seelog",
                "2026-11-27T03:04:05Z [INFO] Websocket connection established: wss://ecs-a-2.eu-west-1.amazonaws.com:443/ws?agentHash=abc\n",
                Reading::Seen("ecs-a-2.eu-west-1.amazonaws.com"),
                Reading::Seen("2026-11-27T03:04:05Z"),
            ),
            (
                // Before 1.76 the URL was only on the "Establishing" line.
                "URL on the line before",
                r#"level=info time=2026-11-27T04:00:00Z msg="Establishing a Websocket connection" url="https://ecs-a-4.eu-west-1.amazonaws.com/ws?agentHash=abc"
level=info time=2026-11-27T04:00:01Z msg="Websocket connection established." ConnectTime="2026-11-27 04:00:01" ExpectedDisconnectTime="2026-11-27 04:30:01"
level=info time=2026-11-27T04:10:00Z msg="Establishing a Websocket connection" url="https://ecs-t-9.eu-west-1.amazonaws.com/ws"
"#,
                Reading::Seen("ecs-a-4.eu-west-1.amazonaws.com"),
                Reading::Seen("2026-11-27T04:00:01Z"),
            ),
            (
                "no websocket yet",
                "level=info time=2026-11-27T04:00:00Z msg=\"Loading configuration\"\n",
                Reading::Nothing,
                Reading::Nothing,
            ),
            (
                "a line with neither URL nor time",
                "Websocket connection established\n",
                Reading::Unknown,
                Reading::Unknown,
            ),
        ];
        for (format, log, host_name, at) in cases {
            let host = FakeHost::healthy();
            host.log(log);
            let record = host.record();
            let owned = |r: Reading<&str>| match r {
                Reading::Seen(s) => Reading::Seen(s.to_string()),
                Reading::Nothing => Reading::Nothing,
                Reading::Unknown => Reading::Unknown,
            };
            assert_eq!(record.websocket_host, owned(host_name), "{format}");
            assert_eq!(record.websocket_at, owned(at), "{format}");
        }
    }

    #[test]
    fn proxies_from_ecs_config_and_the_agents_environment_are_reported_without_credentials() {
        let host = FakeHost::healthy();
        host.config(
            "# ecs-init passes this file to the agent's container\n\
             ECS_CLUSTER=prod\n\
             HTTPS_PROXY=\"http://10.0.0.5:3128\"\n\
             #HTTP_PROXY=http://10.9.9.9:3128\n\
             http_proxy='http://operator:s3/cret@10.0.0.5:3128/'\n",
        );
        host.state(
            "agent-env",
            "PATH=/usr/bin\nHTTPS_PROXY=http://10.0.0.5:3128\nNO_PROXY=169.254.169.254,169.254.170.2,/var/run/docker.sock\n",
        );
        let (_, stdout) = host.run();
        assert!(!stdout.contains("cret"), "{stdout}");
        let record = ProbeRecord::parse(&stdout).unwrap();
        // The quoted HTTPS_PROXY in ecs.config is the one the agent has: reported once.
        assert_eq!(
            record.proxy,
            Reading::Seen(vec![
                ("HTTPS_PROXY".into(), "http://10.0.0.5:3128".into()),
                ("http_proxy".into(), "http://***@10.0.0.5:3128/".into()),
            ])
        );
        assert_eq!(
            record.no_proxy,
            Reading::Seen("169.254.169.254,169.254.170.2,/var/run/docker.sock".into())
        );
    }

    #[test]
    fn a_host_without_the_tools_reports_every_field_unknown() {
        let host = FakeHost::healthy();
        for tool in ["getent", "ss", "docker", "pgrep"] {
            host.remove(&format!("bin/{tool}"));
        }
        host.remove("ecs-agent.log");
        assert_eq!(host.record(), ProbeRecord::blind());
    }

    #[test]
    fn tools_that_find_nothing_say_none_not_unknown() {
        let host = FakeHost::new();
        host.state("ss", "");
        host.log("level=info time=2026-11-27T04:00:00Z msg=\"Loading configuration\"\n");
        host.config("ECS_CLUSTER=prod\n");
        let record = host.record();
        let expected = ProbeRecord {
            agent_pid: Reading::Nothing,
            proxy: Reading::Nothing,
            no_proxy: Reading::Nothing,
            dns: PROBED_NAMES
                .iter()
                .map(|n| (n.to_string(), Reading::Nothing))
                .collect(),
            peers: Reading::Nothing,
            websocket_host: Reading::Nothing,
            websocket_at: Reading::Nothing,
        };
        assert_eq!(record, expected);
    }

    #[test]
    fn an_older_host_without_docker_is_read_the_same_way() {
        // iproute2 without -H (a header, a State column, v4-mapped peers without
        // brackets), a getent without ahostsv4, and an agent found by pgrep.
        let host = FakeHost::healthy();
        host.remove("bin/docker");
        host.state("pgrep", "2345\n");
        host.state("ss-without-H", "");
        host.state("no-ahostsv4", "");
        host.state(
            "ss",
            r#"State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process
ESTAB  0      0      10.0.1.23:45678     10.0.5.10:443     users:(("agent",pid=2345,fd=12))
ESTAB  0      0      ::ffff:10.0.1.23:45679     ::ffff:10.0.6.10:443     users:(("agent",pid=2345,fd=13))
ESTAB  0      0      10.0.1.23%eth0:45680     10.0.9.10:443     users:(("agent",pid=2345,fd=14),("other",pid=7,fd=1))
ESTAB  0      0      10.0.1.23:45681     52.94.1.10:443    users:(("curl",pid=999,fd=3))
ESTAB  0      0      10.0.1.23:45684     10.0.8.8:443      users:(("agent",pid=23456,fd=3))
"#,
        );
        let record = host.record();
        assert_eq!(record.agent_pid, Reading::Seen(2345));
        assert_eq!(record.dns, healthy_dns());
        assert_eq!(
            record.peers,
            Reading::Seen(addresses(&["10.0.5.10", "10.0.6.10", "10.0.9.10"]))
        );
        // Neither docker nor ecs.config to read.
        assert_eq!(record.proxy, Reading::Unknown);

        // Without any way to learn the pid, the agent's connections are known by name.
        host.remove("bin/pgrep");
        let record = host.record();
        assert_eq!(record.agent_pid, Reading::Unknown);
        assert_eq!(
            record.peers,
            Reading::Seen(addresses(&[
                "10.0.5.10",
                "10.0.6.10",
                "10.0.8.8",
                "10.0.9.10"
            ]))
        );
    }

    #[test]
    fn at_most_sixty_four_peers_and_the_line_stays_under_two_thousand_bytes() {
        let host = FakeHost::healthy();
        let listing: String = (1..=80)
            .rev()
            .map(|i| {
                format!(
                    "0 0 10.0.1.23:{} 100.100.{i}.{}:443 users:((\"agent\",pid=2345,fd={i}))\n",
                    40000 + i,
                    100 + i
                )
            })
            .collect();
        host.state("ss", &listing);
        let (_, stdout) = host.run();
        assert!(stdout.len() < 2000, "{} bytes", stdout.len());
        let record = ProbeRecord::parse(&stdout).unwrap();
        let lowest: Vec<Ipv4Addr> = (1..=64)
            .map(|i| Ipv4Addr::new(100, 100, i, 100 + i))
            .collect();
        assert_eq!(record.peers, Reading::Seen(lowest));
    }

    #[test]
    fn even_every_field_at_its_longest_fits_under_two_thousand_bytes() {
        let host = FakeHost::healthy();
        for (name, _) in HEALTHY_DNS {
            let many: String = (1..=20)
                .map(|i| format!("255.255.{}.{}\n", 200 + i, 200 + i))
                .collect();
            host.state(&format!("dns/{name}"), &many);
        }
        let listing: String = (1..=80)
            .map(|i| {
                format!(
                    "0 0 10.0.1.23:{} 255.255.{}.{}:443 users:((\"agent\",pid=2345,fd={i}))\n",
                    40000 + i,
                    100 + i,
                    100 + i
                )
            })
            .collect();
        host.state("ss", &listing);
        let long_url = format!("http://{}", "p".repeat(300));
        let no_proxy: Vec<String> = (0..40)
            .map(|i| format!("host{i:03}.example.internal"))
            .collect();
        host.config(&format!(
            "HTTP_PROXY={long_url}\nHTTPS_PROXY={long_url}x\nhttp_proxy={long_url}y\nhttps_proxy={long_url}z\nNO_PROXY={}\n",
            no_proxy.join(",")
        ));
        host.log(&format!(
            "level=info time=2026-11-27T01:02:03Z msg=\"Websocket connection established.\" URL=\"https://{}/ws\"\n",
            "h".repeat(400)
        ));
        let (_, stdout) = host.run();
        assert!(stdout.len() < 2000, "{} bytes: {stdout}", stdout.len());
        let record = ProbeRecord::parse(&stdout).unwrap();
        for (name, reading) in &record.dns {
            let list = reading
                .seen()
                .unwrap_or_else(|| panic!("{name}: {reading:?}"));
            assert!(!list.is_empty() && list.len() <= 8, "{name}: {list:?}");
        }
        let peers = record.peers.seen().unwrap();
        assert!(!peers.is_empty() && peers.len() <= 64, "{peers:?}");
        for (var, value) in record.proxy.seen().unwrap() {
            assert!(value.len() <= 200, "{var}: {} bytes", value.len());
        }
        assert!(record.websocket_host.seen().unwrap().len() <= 253);
    }

    #[test]
    fn linux_commands_carry_only_sanitised_values_before_the_constant_script() {
        let commands = linux_probe_commands("eu-west-1; rm -rf /", Some("12345678901x2"));
        let head = "# privlink-restart probe: run under bash\nexport PRIVLINK_REGION=eu-west-1rm-rf\nexport PRIVLINK_ACCOUNT=123456789012\nexec bash -c '";
        assert!(commands.starts_with(head), "{commands}");
        assert!(commands.ends_with("'\n"));
        // The script, quoted: nothing outside the quotes but the closing one.
        let quoted = &commands[head.len()..commands.len() - 2];
        assert_eq!(quoted.replace("'\\''", "'"), SCRIPT);
        assert!(linux_probe_commands(REGION, None).contains("export PRIVLINK_ACCOUNT=unknown\n"));
    }

    #[test]
    fn windows_commands_carry_only_sanitised_values_and_print_the_same_fields() {
        let commands = windows_probe_commands(
            "eu-west-1'; Remove-Item C:\\ -Recurse; '",
            Some("1234-5678-9012"),
        );
        let assignments =
            "$PrivlinkRegion = 'eu-west-1emove-tem-ecurse'\n$PrivlinkAccount = '123456789012'\n";
        assert!(commands.starts_with(assignments), "{commands}");
        assert_eq!(commands.len(), assignments.len() + POWERSHELL_SCRIPT.len());
        assert!(windows_probe_commands(REGION, None).contains("$PrivlinkAccount = 'unknown'\n"));
        assert!(POWERSHELL_SCRIPT.contains("PRIVLINK-PROBE v=1 "));
        for field in [
            "'agent'",
            "'proxy'",
            "'no_proxy'",
            "'dns.ecs'",
            "'dns.ecs-a'",
            "'dns.ecs-t'",
            "'dns.ecr-api'",
            "'dns.ecr-dkr'",
            "'peers'",
            "'ws_host'",
            "'ws_at'",
        ] {
            assert!(POWERSHELL_SCRIPT.contains(field), "{field}");
        }
    }

    #[test]
    fn both_scripts_are_recognisable_by_their_first_line() {
        for script in [SCRIPT, POWERSHELL_SCRIPT] {
            let first = script.lines().next().unwrap();
            assert!(
                first.starts_with("# ") && first.contains(PROBE_TAG),
                "{first}"
            );
            assert!(script.contains(PROBE_MARKER.trim_end()));
        }
    }

    /// From real-looking `ss` lines and agent log lines to the verdict, on the
    /// preflight's ready inventory (in subnet-a the ecs-agent and ecs-telemetry ENIs are
    /// 10.0.1.100 and .101).
    #[test]
    fn what_the_probe_prints_is_judged_on_the_inventory() {
        use crate::preflight::testkit::ready_inventory;
        use crate::verify::{Path, PathMap};
        let map = PathMap::from_inventory(&ready_inventory(), false);
        let restarted = FakeHost::healthy();
        restarted.state(
            "ss",
            "ESTAB 0 0 10.0.1.10:40022 10.0.1.100:443 users:((\"agent\",pid=2345,fd=12))\n\
             ESTAB 0 0 10.0.1.10:40024 10.0.1.101:443 users:((\"agent\",pid=2345,fd=14))\n\
             ESTAB 0 0 10.0.1.10:40026 52.94.1.10:443 users:((\"curl\",pid=999,fd=3))\n",
        );
        restarted.log(
            "level=info time=2026-11-27T02:00:00Z msg=\"Websocket connection established.\" \
             URL=\"https://ecs-t.eu-west-1.amazonaws.com/ws\" ConnectTime=\"2026-11-27 02:00:00\" \
             ExpectedDisconnectTime=\"2026-11-27 02:30:00\"\n",
        );
        let verdict = map.verdict("i-a", &restarted.record());
        assert_eq!(verdict.path, Path::Private, "{verdict:#?}");
        assert_eq!(
            verdict.websocket.as_deref(),
            Some("ecs-t.eu-west-1.amazonaws.com at 2026-11-27T02:00:00Z")
        );
        // Before the restart: the agent's log still names the numbered public host it
        // cached, and its peers are not the VPC's endpoints.
        let before = FakeHost::healthy();
        let verdict = map.verdict("i-a", &before.record());
        assert_eq!(verdict.path, Path::Public, "{verdict:#?}");
        assert!(
            verdict.reason.contains("ecs-a-3.eu-west-1.amazonaws.com"),
            "{}",
            verdict.reason
        );
    }

    /// Amazon Linux 2's `sh` is bash in POSIX mode, where process substitution and other
    /// bash features are off: the probe must still print its record.
    #[test]
    fn the_probe_runs_under_bash_as_sh_too() {
        let host = FakeHost::healthy();
        let under_dash = host.record();
        let sh = host.dir.path().join("bin/sh");
        std::fs::remove_file(&sh).unwrap();
        std::os::unix::fs::symlink(which("bash").unwrap(), &sh).unwrap();
        assert_eq!(host.record(), under_dash);
        assert!(under_dash.peers.seen().is_some(), "{under_dash:?}");
    }
}
