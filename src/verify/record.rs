//! The probe's one-line record, as the instance printed it, parsed into plain data (and
//! rendered back, for the simulated fleet and the tests).
//!
//! Every field says whether the probe could look at all: `unknown` (a tool missing, a
//! file unreadable), `none` (it looked and found nothing), or what it saw. The verdict
//! treats "could not look" as a reason for `unknown`, never as "nothing there".

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use super::probe::PROBE_MARKER;

/// One field of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading<T> {
    /// The probe could not look (a tool missing, a file unreadable).
    Unknown,
    /// It looked and found nothing.
    Nothing,
    Seen(T),
}

impl<T> Reading<T> {
    pub fn seen(&self) -> Option<&T> {
        match self {
            Reading::Seen(value) => Some(value),
            _ => None,
        }
    }
}

/// The names whose resolution the probe reports, by their key in the record.
pub const PROBED_NAMES: [&str; 5] = ["ecs", "ecs-a", "ecs-t", "ecr-api", "ecr-dkr"];

/// What the probe saw on one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRecord {
    pub agent_pid: Reading<u32>,
    /// Proxy variables set for the agent: (variable, value).
    pub proxy: Reading<Vec<(String, String)>>,
    pub no_proxy: Reading<String>,
    /// How each of [`PROBED_NAMES`] resolves on the instance.
    pub dns: BTreeMap<String, Reading<Vec<Ipv4Addr>>>,
    /// Remote addresses of the agent's established connections to port 443.
    pub peers: Reading<Vec<Ipv4Addr>>,
    /// The host and time of the newest "Websocket connection established" log line.
    pub websocket_host: Reading<String>,
    pub websocket_at: Reading<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the probe printed no record")]
    Missing,
    #[error("the probe's record is malformed: {0}")]
    Malformed(String),
}

impl ProbeRecord {
    /// Reads the last record line in a command's output.
    pub fn parse(output: &str) -> Result<ProbeRecord, RecordError> {
        let line = output
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix(PROBE_MARKER))
            .ok_or(RecordError::Missing)?;
        let fields: BTreeMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .collect();
        if fields.get("v") != Some(&"1") {
            return Err(RecordError::Malformed(format!(
                "version {:?}",
                fields.get("v")
            )));
        }
        let field = |key: &str| -> Result<Reading<&str>, RecordError> {
            match fields.get(key) {
                None => Err(RecordError::Malformed(format!("no {key}"))),
                Some(&"unknown") => Ok(Reading::Unknown),
                Some(&"none") | Some(&"") => Ok(Reading::Nothing),
                Some(value) => Ok(Reading::Seen(*value)),
            }
        };
        let list = |key: &str| -> Result<Reading<Vec<Ipv4Addr>>, RecordError> {
            Ok(match field(key)? {
                Reading::Seen(raw) => Reading::Seen(
                    raw.split(',')
                        .map(|a| {
                            a.parse().map_err(|_| {
                                RecordError::Malformed(format!("{key}: {a:?} is not an address"))
                            })
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Reading::Unknown => Reading::Unknown,
                Reading::Nothing => Reading::Nothing,
            })
        };
        let text = |key: &str| -> Result<Reading<String>, RecordError> {
            Ok(match field(key)? {
                Reading::Seen(raw) => Reading::Seen(raw.to_string()),
                Reading::Unknown => Reading::Unknown,
                Reading::Nothing => Reading::Nothing,
            })
        };
        let agent_pid = match field("agent")? {
            Reading::Seen(raw) => Reading::Seen(
                raw.parse()
                    .map_err(|_| RecordError::Malformed(format!("agent pid {raw:?}")))?,
            ),
            Reading::Unknown => Reading::Unknown,
            Reading::Nothing => Reading::Nothing,
        };
        let proxy = match field("proxy")? {
            Reading::Seen(raw) => Reading::Seen(
                raw.split(',')
                    .map(|item| match item.split_once(':') {
                        Some((var, value)) => (var.to_string(), value.to_string()),
                        None => (item.to_string(), String::new()),
                    })
                    .collect(),
            ),
            Reading::Unknown => Reading::Unknown,
            Reading::Nothing => Reading::Nothing,
        };
        let mut dns = BTreeMap::new();
        for name in PROBED_NAMES {
            dns.insert(name.to_string(), list(&format!("dns.{name}"))?);
        }
        Ok(ProbeRecord {
            agent_pid,
            proxy,
            no_proxy: text("no_proxy")?,
            dns,
            peers: list("peers")?,
            websocket_host: text("ws_host")?,
            websocket_at: text("ws_at")?,
        })
    }

    /// A record of a probe that could not look at anything.
    pub fn blind() -> ProbeRecord {
        ProbeRecord {
            agent_pid: Reading::Unknown,
            proxy: Reading::Unknown,
            no_proxy: Reading::Unknown,
            dns: PROBED_NAMES
                .iter()
                .map(|n| (n.to_string(), Reading::Unknown))
                .collect(),
            peers: Reading::Unknown,
            websocket_host: Reading::Unknown,
            websocket_at: Reading::Unknown,
        }
    }
}

fn write_reading<T>(
    f: &mut fmt::Formatter<'_>,
    key: &str,
    reading: &Reading<T>,
    show: impl Fn(&T) -> String,
) -> fmt::Result {
    match reading {
        Reading::Unknown => write!(f, " {key}=unknown"),
        Reading::Nothing => write!(f, " {key}=none"),
        Reading::Seen(value) => write!(f, " {key}={}", show(value)),
    }
}

fn addresses(list: &[Ipv4Addr]) -> String {
    list.iter()
        .map(Ipv4Addr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for ProbeRecord {
    /// The record line exactly as the probe script prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PROBE_MARKER}v=1")?;
        write_reading(f, "agent", &self.agent_pid, u32::to_string)?;
        write_reading(f, "proxy", &self.proxy, |items| {
            items
                .iter()
                .map(|(var, value)| format!("{var}:{value}"))
                .collect::<Vec<_>>()
                .join(",")
        })?;
        write_reading(f, "no_proxy", &self.no_proxy, String::clone)?;
        for name in PROBED_NAMES {
            let reading = self.dns.get(name).unwrap_or(&Reading::Unknown);
            write_reading(f, &format!("dns.{name}"), reading, |l| addresses(l))?;
        }
        write_reading(f, "peers", &self.peers, |l| addresses(l))?;
        write_reading(f, "ws_host", &self.websocket_host, String::clone)?;
        write_reading(f, "ws_at", &self.websocket_at, String::clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "PRIVLINK-PROBE v=1 agent=2345 proxy=none no_proxy=169.254.169.254,169.254.170.2 \
        dns.ecs=10.0.1.102,10.0.2.102 dns.ecs-a=10.0.1.100 dns.ecs-t=10.0.1.101 dns.ecr-api=unknown \
        dns.ecr-dkr=none peers=10.0.1.100,10.0.1.101 ws_host=ecs-t.eu-west-1.amazonaws.com \
        ws_at=2026-11-27T01:02:03Z";

    #[test]
    fn a_record_parses_and_renders_back_the_same() {
        let output = format!("some noise\n{LINE}\n");
        let record = ProbeRecord::parse(&output).unwrap();
        assert_eq!(record.agent_pid, Reading::Seen(2345));
        assert_eq!(record.proxy, Reading::Nothing);
        assert_eq!(
            record.peers,
            Reading::Seen(vec![
                "10.0.1.100".parse().unwrap(),
                "10.0.1.101".parse().unwrap()
            ])
        );
        assert_eq!(record.dns["ecr-api"], Reading::Unknown);
        assert_eq!(record.dns["ecr-dkr"], Reading::Nothing);
        assert_eq!(
            record.websocket_host,
            Reading::Seen("ecs-t.eu-west-1.amazonaws.com".into())
        );
        assert_eq!(record.to_string(), LINE);
    }

    #[test]
    fn proxies_keep_their_variable_and_url() {
        let line = LINE.replace(
            "proxy=none",
            "proxy=HTTPS_PROXY:http://10.0.0.5:3128,HTTP_PROXY:http://10.0.0.5:3128",
        );
        let record = ProbeRecord::parse(&line).unwrap();
        assert_eq!(
            record.proxy,
            Reading::Seen(vec![
                ("HTTPS_PROXY".into(), "http://10.0.0.5:3128".into()),
                ("HTTP_PROXY".into(), "http://10.0.0.5:3128".into()),
            ])
        );
        assert_eq!(record.to_string(), line);
    }

    #[test]
    fn missing_and_malformed_records_are_errors() {
        assert_eq!(
            ProbeRecord::parse("nothing here"),
            Err(RecordError::Missing)
        );
        let cases = [
            LINE.replace("v=1", "v=2"),
            LINE.replace(" peers=10.0.1.100,10.0.1.101", ""),
            LINE.replace("peers=10.0.1.100", "peers=10.0.1.300"),
            LINE.replace("agent=2345", "agent=12ab"),
        ];
        for line in cases {
            assert!(
                matches!(ProbeRecord::parse(&line), Err(RecordError::Malformed(_))),
                "{line}"
            );
        }
    }

    #[test]
    fn a_blind_record_renders_every_field_unknown() {
        let line = ProbeRecord::blind().to_string();
        assert_eq!(ProbeRecord::parse(&line).unwrap(), ProbeRecord::blind());
        assert_eq!(line.matches("=unknown").count(), 11, "{line}");
    }
}
