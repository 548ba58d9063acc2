//! The on-instance restart: a constant shell script (restart.sh beside this file) and the
//! one evidence line it prints, parsed back into [`Evidence`].
//!
//! The script restarts the agent the way its supervisor expects, waits for the agent's
//! introspection API and its ACS connection, and reports times measured on the instance's
//! own clock, so the proof never compares two machines' clocks.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

const SCRIPT: &str = include_str!("restart.sh");
const POWERSHELL_SCRIPT: &str = include_str!("restart.ps1");

/// The marker that starts the evidence line in the command's output.
pub const EVIDENCE_MARKER: &str = "PRIVLINK-EVIDENCE ";

/// How the agent is restarted (`--restart-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartMethod {
    /// Whatever supervises the agent: systemd, upstart, or none (a bare container).
    Auto,
    Systemd,
    Upstart,
    /// `docker restart ecs-agent`: only where no supervisor runs the agent.
    Docker,
}

impl RestartMethod {
    fn as_str(self) -> &'static str {
        match self {
            RestartMethod::Auto => "auto",
            RestartMethod::Systemd => "systemd",
            RestartMethod::Upstart => "upstart",
            RestartMethod::Docker => "docker",
        }
    }
}

/// The shell commands for `AWS-RunShellScript`: two assignments from the tool's own enum
/// and integer, then the constant script.
pub fn linux_restart_commands(method: RestartMethod, wait: Duration) -> String {
    format!(
        "PRIVLINK_METHOD={}\nPRIVLINK_WAIT={}\n{SCRIPT}",
        method.as_str(),
        wait.as_secs().max(2)
    )
}

/// The commands for `AWS-RunPowerShellScript`: Windows has one supervisor, the
/// `AmazonECS` service, so only the wait is set. Not yet verified on a real host.
pub fn windows_restart_commands(wait: Duration) -> String {
    format!(
        "$PrivlinkWait = {}\n{POWERSHELL_SCRIPT}",
        wait.as_secs().max(2)
    )
}

/// What the script saw on the instance; times are Unix seconds on the instance's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Evidence {
    pub ok: bool,
    /// Why it failed (`unknown-supervisor`, `acs-not-connected`, …); `None` when ok.
    pub reason: Option<String>,
    /// The method used (after `auto` was resolved).
    pub method: String,
    pub supervisor: String,
    pub agent_version: Option<String>,
    pub restart_at: i64,
    pub agent_started: i64,
    pub acs_connected: i64,
    pub credentials_before: String,
    pub credentials_after: String,
    pub boot_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("the command printed no evidence line")]
    Missing,
    #[error("the evidence line is malformed: {0}")]
    Malformed(String),
}

/// Reads the last evidence line in a command's output.
pub fn parse_evidence(output: &str) -> Result<Evidence, EvidenceError> {
    let line = output
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(EVIDENCE_MARKER))
        .ok_or(EvidenceError::Missing)?;
    let fields: Vec<(&str, &str)> = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let get = |key: &str| fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let text = |key: &str| get(key).ok_or_else(|| EvidenceError::Malformed(format!("no {key}")));
    let number = |key: &str| -> Result<i64, EvidenceError> {
        text(key)?
            .parse()
            .map_err(|_| EvidenceError::Malformed(format!("{key} is not a number")))
    };
    if get("v") != Some("1") {
        return Err(EvidenceError::Malformed(format!("version {:?}", get("v"))));
    }
    let known = |value: &str| {
        (value != "unknown" && value != "none" && !value.is_empty()).then(|| value.to_string())
    };
    Ok(Evidence {
        ok: match text("result")? {
            "ok" => true,
            "failed" => false,
            other => return Err(EvidenceError::Malformed(format!("result {other}"))),
        },
        reason: known(text("reason")?),
        method: text("method")?.to_string(),
        supervisor: text("supervisor")?.to_string(),
        agent_version: known(text("agent_version")?),
        restart_at: number("restart_at")?,
        agent_started: number("agent_started")?,
        acs_connected: number("acs_connected")?,
        credentials_before: text("credentials_before")?.to_string(),
        credentials_after: text("credentials_after")?.to_string(),
        boot_id: get("boot_id").and_then(known),
    })
}

impl fmt::Display for Evidence {
    /// A compact, human form of the evidence for reports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.ok {
            return write!(
                f,
                "failed: {} ({} via {})",
                self.reason.as_deref().unwrap_or("unknown"),
                self.supervisor,
                self.method
            );
        }
        write!(
            f,
            "{} restart; agent {} started {}s after the restart, connected to ACS {}s later",
            self.method,
            self.agent_version.as_deref().unwrap_or("?"),
            self.agent_started - self.restart_at,
            self.acs_connected - self.agent_started
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    #[test]
    fn parses_the_last_evidence_line() {
        let output = "noise\nPRIVLINK-EVIDENCE v=1 result=failed reason=x method=auto supervisor=none agent_version=unknown restart_at=0 agent_started=0 acs_connected=0 credentials_before=none credentials_after=none boot_id=unknown\n\
            PRIVLINK-EVIDENCE v=1 result=ok reason=none method=systemd supervisor=systemd agent_version=1.80.0 restart_at=100 agent_started=103 acs_connected=105 credentials_before=404 credentials_after=404 boot_id=abc\n";
        let evidence = parse_evidence(output).unwrap();
        assert!(evidence.ok);
        assert_eq!(evidence.reason, None);
        assert_eq!(evidence.agent_version.as_deref(), Some("1.80.0"));
        assert_eq!(
            (
                evidence.restart_at,
                evidence.agent_started,
                evidence.acs_connected
            ),
            (100, 103, 105)
        );
        assert_eq!(evidence.boot_id.as_deref(), Some("abc"));
        assert_eq!(
            evidence.to_string(),
            "systemd restart; agent 1.80.0 started 3s after the restart, connected to ACS 2s later"
        );
    }

    #[test]
    fn rejects_missing_and_malformed_evidence() {
        assert_eq!(parse_evidence("no line here"), Err(EvidenceError::Missing));
        for bad in [
            "PRIVLINK-EVIDENCE v=2 result=ok",
            "PRIVLINK-EVIDENCE v=1 result=maybe reason=none",
            "PRIVLINK-EVIDENCE v=1 result=ok reason=none method=systemd supervisor=systemd agent_version=1 restart_at=soon agent_started=1 acs_connected=1 credentials_before=1 credentials_after=1",
        ] {
            assert!(matches!(parse_evidence(bad), Err(EvidenceError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn windows_commands_carry_only_the_wait_and_print_the_same_fields() {
        let commands = windows_restart_commands(Duration::from_secs(60));
        assert!(commands.starts_with("$PrivlinkWait = 60\n# privlink-restart"));
        for field in [
            "v=1",
            "result=",
            "reason=",
            "agent_started=",
            "acs_connected=",
            "restart_at=",
            "boot_id=",
        ] {
            assert!(POWERSHELL_SCRIPT.contains(field), "{field}");
        }
    }

    #[test]
    fn commands_carry_only_the_method_and_wait_before_the_constant_script() {
        let commands = linux_restart_commands(RestartMethod::Docker, Duration::from_secs(90));
        assert!(
            commands.starts_with("PRIVLINK_METHOD=docker\nPRIVLINK_WAIT=90\n# privlink-restart")
        );
        assert!(commands.ends_with(SCRIPT));
    }

    /// A fake host: stand-ins for systemctl, initctl, stop/start, docker and curl that
    /// keep their state in files, plus the real tools the script needs, and nothing else
    /// on PATH.
    struct FakeHost {
        dir: tempfile::TempDir,
    }

    const FAKES: &[(&str, &str)] = &[
        (
            "systemctl",
            r#"case "$1" in
  cat) [ "$(cat "$STATE/supervisor")" = systemd ] ;;
  restart) date -u +%Y-%m-%dT%H:%M:%S.000000000Z > "$STATE/started"; [ -f "$STATE/no-start" ] || touch "$STATE/running" ;;
  is-active) [ -f "$STATE/running" ] ;;
  *) exit 1 ;;
esac"#,
        ),
        (
            "initctl",
            r#"[ "$(cat "$STATE/supervisor")" = upstart ] || exit 1
[ -f "$STATE/running" ] && echo "ecs start/running, process 1" || echo "ecs stop/waiting""#,
        ),
        ("stop", r#"rm -f "$STATE/running""#),
        (
            "start",
            r#"date -u +%Y-%m-%dT%H:%M:%S.000000000Z > "$STATE/started"; touch "$STATE/running""#,
        ),
        (
            "docker",
            r#"case "$1 $2" in
  "inspect ecs-agent") exit 0 ;;
  "inspect -f")
    case "$3" in
      *StartedAt*) cat "$STATE/started" ;;
      *Running*) [ -f "$STATE/running" ] && echo true || echo false ;;
    esac ;;
  "restart ecs-agent") date -u +%Y-%m-%dT%H:%M:%S.000000000Z > "$STATE/started"; touch "$STATE/running" ;;
  "logs --since")
    if [ -f "$STATE/stale-acs" ]; then echo 'level=info time=2020-01-01T00:00:00Z msg="Connected to ACS endpoint"'
    elif [ -f "$STATE/json-log" ]; then echo "{\"level\":\"info\",\"time\":\"$(cat "$STATE/started")\",\"msg\":\"Connected to ACS endpoint\"}"
    elif [ ! -f "$STATE/no-acs" ]; then echo "level=info time=$(cat "$STATE/started") msg=\"Connected to ACS endpoint\""; fi ;;
  *) exit 1 ;;
esac"#,
        ),
        (
            "curl",
            r#"for arg in "$@"; do url="$arg"; done
case "$url" in
  *51678*) [ -f "$STATE/running" ] && echo '{"Cluster":"prod","Version":"Amazon ECS Agent - v1.80.0 (abcdef)"}' ;;
  *169.254.170.2*) if [ -f "$STATE/started-once" ] && [ -f "$STATE/credentials-lost" ]; then printf 000; else printf 404; fi; touch "$STATE/started-once" ;;
esac"#,
        ),
        ("sleep", "exit 0"),
    ];

    impl FakeHost {
        fn new(supervisor: &str) -> FakeHost {
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("bin");
            let state = dir.path().join("state");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::create_dir_all(&state).unwrap();
            for (name, body) in FAKES {
                if supervisor != "upstart" && matches!(*name, "initctl" | "stop" | "start") {
                    continue;
                }
                write_executable(&bin.join(name), &format!("#!/bin/bash\n{body}\n"));
            }
            for tool in [
                "bash", "cat", "date", "grep", "sed", "seq", "tail", "head", "tr", "touch", "rm",
                "printf",
            ] {
                if let Some(path) = which(tool) {
                    let _ = std::os::unix::fs::symlink(path, bin.join(tool));
                }
            }
            std::fs::write(state.join("supervisor"), supervisor).unwrap();
            std::fs::write(state.join("started"), "2020-01-01T00:00:00.000000000Z").unwrap();
            std::fs::write(state.join("running"), "").unwrap();
            FakeHost { dir }
        }

        fn flag(&self, name: &str) {
            std::fs::write(self.dir.path().join("state").join(name), "").unwrap();
        }

        fn run(&self, method: RestartMethod) -> (i32, Evidence) {
            let script = linux_restart_commands(method, Duration::from_secs(10));
            let output = Command::new(self.dir.path().join("bin/bash"))
                .arg("-c")
                .arg(script)
                .env_clear()
                .env("PATH", self.dir.path().join("bin"))
                .env("STATE", self.dir.path().join("state"))
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout).to_string();
            let evidence = parse_evidence(&stdout).unwrap_or_else(|e| {
                panic!("{e}: {stdout} {}", String::from_utf8_lossy(&output.stderr))
            });
            (output.status.code().unwrap_or(-1), evidence)
        }
    }

    fn write_executable(path: &Path, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, body).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn which(tool: &str) -> Option<std::path::PathBuf> {
        ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
    }

    #[test]
    fn restarts_each_supervisor_its_own_way_and_proves_it() {
        for (supervisor, method) in [
            ("systemd", RestartMethod::Auto),
            ("systemd", RestartMethod::Systemd),
            ("upstart", RestartMethod::Auto),
            ("docker", RestartMethod::Auto),
            ("docker", RestartMethod::Docker),
        ] {
            let host = FakeHost::new(supervisor);
            let (code, evidence) = host.run(method);
            assert_eq!(code, 0, "{supervisor} {method:?}: {evidence:?}");
            assert!(evidence.ok, "{evidence:?}");
            assert_eq!(evidence.method, supervisor);
            assert_eq!(evidence.agent_version.as_deref(), Some("1.80.0"));
            assert!(
                evidence.agent_started >= evidence.restart_at,
                "{evidence:?}"
            );
            assert!(
                evidence.acs_connected >= evidence.agent_started,
                "{evidence:?}"
            );
            assert_eq!(evidence.credentials_before, evidence.credentials_after);
        }
    }

    #[test]
    fn an_agent_logging_json_is_understood() {
        let host = FakeHost::new("systemd");
        host.flag("json-log");
        let (code, evidence) = host.run(RestartMethod::Auto);
        assert_eq!(code, 0, "{evidence:?}");
        assert!(
            evidence.ok && evidence.acs_connected >= evidence.agent_started,
            "{evidence:?}"
        );
    }

    #[test]
    fn docker_restart_is_refused_on_a_supervised_host() {
        let host = FakeHost::new("systemd");
        let (code, evidence) = host.run(RestartMethod::Docker);
        assert_eq!(code, 1);
        assert_eq!(
            evidence.reason.as_deref(),
            Some("docker-restart-on-supervised-host")
        );
        assert_eq!(evidence.restart_at, 0, "nothing was restarted");
    }

    #[test]
    fn failed_checks_fail_the_restart_with_their_reason() {
        let cases: [(&str, &str, RestartMethod, &str); 6] = [
            ("none", "", RestartMethod::Auto, "unknown-supervisor"),
            (
                "systemd",
                "no-start",
                RestartMethod::Auto,
                "introspection-api-not-back",
            ),
            ("docker", "no-acs", RestartMethod::Auto, "acs-not-connected"),
            (
                "docker",
                "stale-acs",
                RestartMethod::Auto,
                "acs-not-connected",
            ),
            (
                "systemd",
                "credentials-lost",
                RestartMethod::Auto,
                "credentials-endpoint-changed",
            ),
            ("docker", "", RestartMethod::Upstart, "supervisor-is-docker"),
        ];
        for (supervisor, flag, method, reason) in cases {
            let host = FakeHost::new(supervisor);
            if supervisor == "none" {
                std::fs::remove_file(host.dir.path().join("bin/docker")).unwrap();
            }
            if flag == "no-start" {
                std::fs::remove_file(host.dir.path().join("state/running")).unwrap();
            }
            if !flag.is_empty() {
                host.flag(flag);
            }
            let (code, evidence) = host.run(method);
            assert_eq!(
                (code, evidence.ok),
                (1, false),
                "{supervisor} {flag}: {evidence:?}"
            );
            assert_eq!(
                evidence.reason.as_deref(),
                Some(reason),
                "{supervisor} {flag}: {evidence:?}"
            );
        }
    }

    #[test]
    fn evidence_line_stays_under_two_thousand_bytes() {
        let host = FakeHost::new("systemd");
        let script = linux_restart_commands(RestartMethod::Auto, Duration::from_secs(10));
        let output = Command::new(host.dir.path().join("bin/bash"))
            .arg("-c")
            .arg(script)
            .env_clear()
            .env("PATH", host.dir.path().join("bin"))
            .env("STATE", host.dir.path().join("state"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        assert!(stdout.len() < 2000);
    }
}
