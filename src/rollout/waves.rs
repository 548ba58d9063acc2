//! Waves: which instances restart together. Pure: the candidates and the policy in, the
//! waves out; the orchestrator takes them in the plan's order, each as wide as the room
//! left (`next_wave`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// `--max-unavailable N|P%`: how many instances may be away at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxUnavailable {
    Count(u32),
    Percent(u32),
}

impl MaxUnavailable {
    /// The bound for a rollout over `total` instances: at least 1.
    pub fn resolve(self, total: usize) -> usize {
        let n = match self {
            MaxUnavailable::Count(n) => n as usize,
            MaxUnavailable::Percent(p) => total * p as usize / 100,
        };
        n.max(1)
    }

    pub fn parse(raw: &str) -> Result<MaxUnavailable, String> {
        let bad = || format!("\"{raw}\" is not a count or a percentage (e.g. 5 or 10%)");
        match raw.strip_suffix('%') {
            Some(percent) => match percent.parse::<u32>() {
                Ok(p) if (1..=100).contains(&p) => Ok(MaxUnavailable::Percent(p)),
                _ => Err(bad()),
            },
            None => match raw.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(MaxUnavailable::Count(n)),
                _ => Err(bad()),
            },
        }
    }
}

impl fmt::Display for MaxUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxUnavailable::Count(n) => write!(f, "{n}"),
            MaxUnavailable::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// How waves are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavePolicy {
    pub max_unavailable: MaxUnavailable,
    /// Instances in the first wave, alone; 0 for none.
    pub canary: usize,
    /// Keep every wave inside one Availability Zone.
    pub by_az: bool,
}

/// An instance the rollout may restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub instance_id: String,
    pub availability_zone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wave {
    pub canary: bool,
    pub instance_ids: Vec<String>,
}

/// Cuts the candidates into waves: the canary first, alone; then waves no wider than
/// `max-unavailable` of all candidates. Without `--by-az` each wave takes instances from
/// the zones in turn, so no wave is one zone's worth; with it, zone after zone.
pub fn plan_waves(candidates: &[Candidate], policy: WavePolicy) -> Vec<Wave> {
    let width = policy.max_unavailable.resolve(candidates.len());
    let mut by_zone: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for candidate in candidates {
        by_zone
            .entry(&candidate.availability_zone)
            .or_default()
            .push(candidate);
    }
    for zone in by_zone.values_mut() {
        zone.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    }
    let zones: Vec<Vec<&Candidate>> = if policy.by_az {
        by_zone.into_values().collect()
    } else {
        vec![round_robin(by_zone.into_values().collect())]
    };
    let mut waves = Vec::new();
    let mut canary_left = policy.canary.min(width);
    for zone in zones {
        let mut rest: &[&Candidate] = &zone;
        if canary_left > 0 && !rest.is_empty() {
            let take = canary_left.min(rest.len());
            waves.push(Wave {
                canary: true,
                instance_ids: ids(&rest[..take]),
            });
            canary_left = 0;
            rest = &rest[take..];
        }
        for chunk in rest.chunks(width) {
            waves.push(Wave {
                canary: false,
                instance_ids: ids(chunk),
            });
        }
    }
    waves
}

/// The next wave from candidates in plan order (the order [`plan_waves`] puts them in):
/// the first `take` of them, and with `--by-az` only those in the first one's zone. Taken
/// wave by wave from what is left, this gives the planned waves as long as nothing
/// changes, and fewer at once when less room is left.
pub fn next_wave(ordered: &[Candidate], take: usize, by_az: bool) -> Vec<String> {
    let Some(first) = ordered.first() else {
        return Vec::new();
    };
    ordered
        .iter()
        .take_while(|c| !by_az || c.availability_zone == first.availability_zone)
        .take(take.max(1))
        .map(|c| c.instance_id.clone())
        .collect()
}

fn round_robin(zones: Vec<Vec<&Candidate>>) -> Vec<&Candidate> {
    let longest = zones.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| zones.iter().filter_map(move |zone| zone.get(i).copied()))
        .collect()
}

fn ids(candidates: &[&Candidate]) -> Vec<String> {
    candidates.iter().map(|c| c.instance_id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(per_zone: &[(&str, usize)]) -> Vec<Candidate> {
        per_zone
            .iter()
            .flat_map(|(zone, n)| {
                (0..*n).map(move |i| Candidate {
                    instance_id: format!("i-{zone}-{i:03}"),
                    availability_zone: zone.to_string(),
                })
            })
            .collect()
    }

    fn policy(max_unavailable: MaxUnavailable, canary: usize, by_az: bool) -> WavePolicy {
        WavePolicy {
            max_unavailable,
            canary,
            by_az,
        }
    }

    #[test]
    fn max_unavailable_parsing_and_resolution() {
        assert_eq!(
            MaxUnavailable::parse("10%"),
            Ok(MaxUnavailable::Percent(10))
        );
        assert_eq!(MaxUnavailable::parse("3"), Ok(MaxUnavailable::Count(3)));
        for bad in ["0", "0%", "101%", "-1", "x", "5.5", ""] {
            assert!(MaxUnavailable::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(MaxUnavailable::Percent(10).resolve(1000), 100);
        assert_eq!(MaxUnavailable::Percent(10).resolve(5), 1, "at least one");
        assert_eq!(MaxUnavailable::Count(3).resolve(2), 3);
    }

    #[test]
    fn canary_first_then_waves_no_wider_than_the_bound() {
        let candidates = fleet(&[("a", 10), ("b", 10), ("c", 10)]);
        let waves = plan_waves(&candidates, policy(MaxUnavailable::Percent(20), 1, false));
        assert!(waves[0].canary && waves[0].instance_ids.len() == 1);
        assert!(waves[1..]
            .iter()
            .all(|w| !w.canary && w.instance_ids.len() <= 6));
        // 1 canary + ceil(29 / 6) = 5 waves after it.
        assert_eq!(waves.len(), 6);
        let mut all: Vec<String> = waves.iter().flat_map(|w| w.instance_ids.clone()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 30, "every candidate exactly once");
    }

    #[test]
    fn without_by_az_waves_mix_zones() {
        let candidates = fleet(&[("a", 4), ("b", 4)]);
        let waves = plan_waves(&candidates, policy(MaxUnavailable::Count(2), 0, false));
        for wave in &waves {
            assert!(
                wave.instance_ids.iter().any(|i| i.contains("-a-"))
                    && wave.instance_ids.iter().any(|i| i.contains("-b-")),
                "{wave:?}"
            );
        }
    }

    #[test]
    fn by_az_keeps_each_wave_in_one_zone() {
        let candidates = fleet(&[("a", 5), ("b", 3), ("c", 1)]);
        let waves = plan_waves(&candidates, policy(MaxUnavailable::Count(2), 1, true));
        for wave in &waves {
            let zones: std::collections::BTreeSet<&str> = wave
                .instance_ids
                .iter()
                .map(|i| i.split('-').nth(1).unwrap())
                .collect();
            assert_eq!(zones.len(), 1, "{wave:?}");
        }
        let sizes: Vec<usize> = waves.iter().map(|w| w.instance_ids.len()).collect();
        assert_eq!(sizes, vec![1, 2, 2, 2, 1, 1]);
    }

    #[test]
    fn canary_is_capped_by_the_bound_and_zero_means_none() {
        let candidates = fleet(&[("a", 6)]);
        let waves = plan_waves(&candidates, policy(MaxUnavailable::Count(2), 5, false));
        assert_eq!(waves[0].instance_ids.len(), 2);
        let waves = plan_waves(&candidates, policy(MaxUnavailable::Count(2), 0, false));
        assert!(waves.iter().all(|w| !w.canary));
        assert!(plan_waves(&[], policy(MaxUnavailable::Count(2), 1, false)).is_empty());
    }
}
