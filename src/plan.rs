//! Turns the command line into validated plans. Nothing downstream sees clap; the value
//! checks here run inside clap's parsers so a bad value is a usage error (exit 2) that
//! points at the option.

use crate::fleet::AwsSettings;
use crate::iam::PolicyScope;
use crate::preflight::PreflightOptions;
use crate::report::OutputFormat;

/// `privlink-restart check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckPlan {
    pub cluster: String,
    pub aws: AwsSettings,
    pub preflight: PreflightOptions,
    pub output: OutputFormat,
    pub verbose: bool,
}

/// `privlink-restart iam-policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamPolicyPlan {
    pub scope: PolicyScope,
}

/// Region names look like `eu-west-1`, `us-gov-west-1`, `cn-north-1`, `us-isob-east-1`.
/// The SDK accepts any string and fails later with a DNS error; this catches typos first.
pub fn parse_region(raw: &str) -> Result<String, String> {
    let parts: Vec<&str> = raw.split('-').collect();
    let well_formed = parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok_and(|n| n > 0);
    if well_formed {
        Ok(raw.to_string())
    } else {
        Err(format!(
            "\"{raw}\" is not a region name like eu-west-1 or us-gov-west-1"
        ))
    }
}

/// An endpoint URL must be `http(s)://host[:port][/path]`.
pub fn parse_endpoint_url(raw: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!("\"{raw}\" is not an endpoint URL ({why}); expected e.g. https://ecs.eu-west-1.amazonaws.com or http://127.0.0.1:5000"))
    };
    let Some(rest) = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
    else {
        return bad("it must start with http:// or https://");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            (host, Some(port))
        }
        _ => (authority, None),
    };
    if host.is_empty() {
        return bad("no host");
    }
    if raw.chars().any(char::is_whitespace) {
        return bad("it contains spaces");
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return bad("the port is not a number from 1 to 65535");
        }
    }
    Ok(raw.to_string())
}

/// `--max-unavailable`: a count (`5`) or a percentage (`10%`).
pub fn parse_max_unavailable(raw: &str) -> Result<crate::rollout::waves::MaxUnavailable, String> {
    crate::rollout::waves::MaxUnavailable::parse(raw)
}

/// Durations like `90`, `90s`, `5m`, `1h` (a bare number is seconds).
pub fn parse_duration(raw: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("\"{raw}\" is not a duration like 90s, 5m or 1h");
    let (number, unit) = raw
        .find(|c: char| !c.is_ascii_digit())
        .map_or((raw, "s"), |at| raw.split_at(at));
    let value: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => Some(value),
        "m" => value.checked_mul(60),
        "h" => value.checked_mul(3600),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(std::time::Duration::from_secs(seconds))
}

/// `--agent-timeout`: at least 30 seconds (a restart takes longer than that to prove),
/// at most 48 hours (SSM's longest execution timeout).
pub fn parse_agent_timeout(raw: &str) -> Result<std::time::Duration, String> {
    let timeout = parse_duration(raw)?;
    if (30..=172_800).contains(&timeout.as_secs()) {
        Ok(timeout)
    } else {
        Err(format!(
            "\"{raw}\" is outside 30s..48h (SSM runs a command for at most 48 hours)"
        ))
    }
}

/// `--drain-timeout`, `--reboot-timeout`: 1 minute to 24 hours.
pub fn parse_step_timeout(raw: &str) -> Result<std::time::Duration, String> {
    let timeout = parse_duration(raw)?;
    if (60..=86_400).contains(&timeout.as_secs()) {
        Ok(timeout)
    } else {
        Err(format!("\"{raw}\" is outside 1m..24h"))
    }
}

/// `--lease-interval`: 1 second to 10 minutes.
pub fn parse_lease_interval(raw: &str) -> Result<std::time::Duration, String> {
    let interval = parse_duration(raw)?;
    if (1..=600).contains(&interval.as_secs()) {
        Ok(interval)
    } else {
        Err(format!("\"{raw}\" is outside 1s..10m"))
    }
}

/// The demo's speed-up: a positive number.
pub fn parse_speed(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(speed) if speed.is_finite() && (0.1..=10_000.0).contains(&speed) => Ok(speed),
        _ => Err(format!("\"{raw}\" is not a speed from 0.1 to 10000")),
    }
}

/// AWS account ids are twelve digits.
pub fn parse_account(raw: &str) -> Result<String, String> {
    if raw.len() == 12 && raw.chars().all(|c| c.is_ascii_digit()) {
        Ok(raw.to_string())
    } else {
        Err(format!(
            "\"{raw}\" is not an AWS account id (twelve digits)"
        ))
    }
}

/// ECS cluster names: 1–255 letters, digits, hyphens and underscores; an ARN is taken as is.
pub fn parse_cluster(raw: &str) -> Result<String, String> {
    let valid_name = !raw.is_empty()
        && raw.len() <= 255
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid_name || raw.starts_with("arn:") {
        Ok(raw.to_string())
    } else {
        Err(format!(
            "\"{raw}\" is not an ECS cluster name (letters, digits, - and _) or ARN"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_table() {
        for ok in [
            "eu-west-1",
            "us-gov-west-1",
            "cn-north-1",
            "ap-southeast-2",
            "us-isob-east-1",
            "il-central-1",
        ] {
            assert_eq!(parse_region(ok).as_deref(), Ok(ok));
        }
        for bad in [
            "",
            "eu-west",
            "euwest1",
            "EU-WEST-1",
            "eu-west-1a",
            "eu--1",
            "e-west-1",
            "eu-west-0",
            "eu west 1",
        ] {
            assert!(parse_region(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn endpoint_url_table() {
        for ok in [
            "http://127.0.0.1:5000",
            "https://ecs.eu-west-1.amazonaws.com",
            "http://localhost:4566/",
            "http://[::1]:5000",
        ] {
            assert_eq!(parse_endpoint_url(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "127.0.0.1:5000",
            "ftp://x",
            "http://",
            "http://:80",
            "http://host:notaport",
            "http://host:0",
            "http://a b",
        ] {
            assert!(parse_endpoint_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn duration_and_speed_table() {
        use std::time::Duration;
        for (raw, seconds) in [
            ("90", 90),
            ("90s", 90),
            ("5m", 300),
            ("1h", 3600),
            ("0s", 0),
        ] {
            assert_eq!(
                parse_duration(raw),
                Ok(Duration::from_secs(seconds)),
                "{raw}"
            );
        }
        for bad in ["", "m", "5x", "1.5m", "-3s", "5 m", "99999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_agent_timeout("5m").is_ok());
        assert!(parse_step_timeout("15m").is_ok());
        for bad in ["30s", "25h", "soon"] {
            assert!(parse_step_timeout(bad).is_err(), "{bad}");
        }
        for bad in ["0s", "10s", "49h"] {
            assert!(parse_agent_timeout(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_speed("10"), Ok(10.0));
        for bad in ["0", "-1", "nan", "inf", "fast"] {
            assert!(parse_speed(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn account_and_cluster_table() {
        assert!(parse_account("123456789012").is_ok());
        for bad in ["12345678901", "1234567890123", "12345678901a"] {
            assert!(parse_account(bad).is_err(), "{bad}");
        }
        assert!(parse_cluster("prod_eu-1").is_ok());
        assert!(parse_cluster("arn:aws:ecs:eu-west-1:123456789012:cluster/prod").is_ok());
        for bad in ["", "prod cluster", "prod/1"] {
            assert!(parse_cluster(bad).is_err(), "{bad:?}");
        }
    }
}
