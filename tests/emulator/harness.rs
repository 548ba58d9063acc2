//! The emulator harness: one moto server (with the test-support launcher's additions) per
//! test binary, on a free loopback port, reset before each test. Tests take a lock so
//! they do not see each other's resources; the server exits when this process does
//! (it watches its stdin, which this process holds).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use aws_credential_types::Credentials;
use aws_sdk_ec2::config::{BehaviorVersion, Region};
use aws_smithy_types::retry::RetryConfig;
use serde_json::Value;

pub const REGION: &str = "eu-west-1";
pub const ACCOUNT: &str = "123456789012";

struct Server {
    port: u16,
    _child: Child,
    _stdin: ChildStdin,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::new(());

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn start() -> Server {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = manifest_dir().join("tests/support/emulator.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {python} {}: {e}; run scripts/test, which installs moto",
                script.display()
            )
        });
    let stdout = child.stdout.take().expect("piped stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("emulator output");
    let port = first
        .trim()
        .strip_prefix("PRIVLINK_EMULATOR_PORT=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("emulator did not start (said {first:?}); is moto[server] installed? run scripts/test"));
    let stdin = child.stdin.take().expect("piped stdin");
    Server {
        port,
        _child: child,
        _stdin: stdin,
    }
}

/// One test's exclusive use of the emulator, reset to empty.
pub struct Emulator {
    pub port: u16,
    _serial: MutexGuard<'static, ()>,
    home: tempfile::TempDir,
}

impl Emulator {
    pub fn start() -> Emulator {
        let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let port = SERVER.get_or_init(start).port;
        let emulator = Emulator {
            port,
            _serial: serial,
            home: tempfile::tempdir().expect("temp dir"),
        };
        emulator.control("/_privlink/reset", &serde_json::json!({}));
        emulator
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// POSTs JSON to a control route of the launcher.
    pub fn control(&self, path: &str, body: &Value) -> Value {
        http(self.port, "POST", path, &body.to_string())
    }

    /// GETs a control route of the launcher.
    pub fn get(&self, path: &str) -> Value {
        http(self.port, "GET", path, "")
    }

    /// The real binary, with an environment that reaches nothing but the emulator: no
    /// inherited AWS settings, empty config files, IMDS off, one attempt per request.
    pub fn binary(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.process())
    }

    /// The real binary as a process to spawn (and to interrupt or kill).
    pub fn process(&self) -> Command {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("privlink-restart"));
        command.env_clear();
        self.isolated_env(&mut command);
        command
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env("AWS_ENDPOINT_URL", self.url());
        command
    }

    /// The binary's home directory (its default state directory lives under it).
    pub fn home(&self) -> &std::path::Path {
        self.home.path()
    }

    /// Like [`binary`](Self::binary) but with no credentials anywhere.
    pub fn binary_without_credentials(&self) -> assert_cmd::Command {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("privlink-restart"));
        command.env_clear();
        self.isolated_env(&mut command);
        command
            .env("AWS_REGION", REGION)
            .env("AWS_ENDPOINT_URL", self.url());
        assert_cmd::Command::from_std(command)
    }

    fn isolated_env(&self, command: &mut Command) {
        let home = self.home.path();
        let config = home.join("config");
        let credentials = home.join("credentials");
        std::fs::write(&config, "").expect("config file");
        std::fs::write(&credentials, "").expect("credentials file");
        command
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("NO_COLOR", "1");
    }

    fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.url())
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                    "testing", "testing", None, None, "tests",
                )),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .build()
    }

    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk_config())
    }

    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.sdk_config())
    }

    pub fn autoscaling(&self) -> aws_sdk_autoscaling::Client {
        aws_sdk_autoscaling::Client::new(&self.sdk_config())
    }

    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.sdk_config())
    }
}

/// A minimal HTTP/1.1 client for the launcher's control routes.
fn http(port: u16, method: &str, path: &str, body: &str) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to emulator");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send control request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read control response");
    let (head, payload) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{path}: {head}"
    );
    serde_json::from_str(payload).unwrap_or(Value::Null)
}
