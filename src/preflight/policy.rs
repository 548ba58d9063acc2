//! Endpoint policies: would a VPC endpoint's policy deny what the agent, ECR layer pulls or
//! agent updates need?
//!
//! This is a deliberately small evaluator of the policy language (Allow/Deny, Action and
//! NotAction, Resource and NotResource, `*`/`?` wildcards). A statement with a Condition or
//! a principal other than everyone cannot be decided from here, so it makes the answer
//! "may deny" — a warning with the statement named, never silence.

use serde_json::Value;

use std::collections::BTreeSet;

use super::endpoints::endpoints_for;
use super::workloads::is_private_ecr;
use super::{ids, Finding};
use crate::iam::partition_of;
use crate::inventory::{EndpointKind, Inventory, Vpc};

/// What a policy says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Allowed,
    Denied,
    /// Depends on a condition or principal that only AWS can evaluate.
    Uncertain(String),
}

/// Evaluates `policy` (a JSON policy document) for `action` on `resource`.
pub(crate) fn evaluate(policy: &str, action: &str, resource: &str) -> Result<Decision, String> {
    let document: Value =
        serde_json::from_str(policy).map_err(|e| format!("policy is not JSON: {e}"))?;
    let statements = match document.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(single @ Value::Object(_)) => vec![single.clone()],
        _ => return Err("policy has no Statement".into()),
    };
    let mut allowed = false;
    let mut conditional_allow: Option<String> = None;
    let mut conditional_deny: Option<String> = None;
    for (index, statement) in statements.iter().enumerate() {
        if !applies(statement, action, resource) {
            continue;
        }
        let sid = statement
            .get("Sid")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{}", index + 1), str::to_string);
        let conditional = statement.get("Condition").is_some() || !principal_is_everyone(statement);
        match (statement.get("Effect").and_then(Value::as_str), conditional) {
            (Some("Deny"), false) => return Ok(Decision::Denied),
            (Some("Deny"), true) => {
                conditional_deny.get_or_insert(format!(
                    "statement {sid} may deny it (condition or principal)"
                ));
            }
            (Some("Allow"), false) => allowed = true,
            (Some("Allow"), true) => {
                conditional_allow.get_or_insert(format!(
                    "statement {sid} allows it only under a condition or for some principals"
                ));
            }
            _ => {}
        }
    }
    Ok(match (allowed, conditional_allow, conditional_deny) {
        (false, None, _) => Decision::Denied,
        (_, _, Some(deny)) => Decision::Uncertain(deny),
        (true, _, None) => Decision::Allowed,
        (false, Some(allow), None) => Decision::Uncertain(allow),
    })
}

fn applies(statement: &Value, action: &str, resource: &str) -> bool {
    let action_matches = match (statement.get("Action"), statement.get("NotAction")) {
        (Some(actions), _) => strings(actions)
            .iter()
            .any(|p| wildcard(&p.to_ascii_lowercase(), &action.to_ascii_lowercase())),
        (None, Some(actions)) => !strings(actions)
            .iter()
            .any(|p| wildcard(&p.to_ascii_lowercase(), &action.to_ascii_lowercase())),
        (None, None) => false,
    };
    let resource_matches = match (statement.get("Resource"), statement.get("NotResource")) {
        (Some(resources), _) => strings(resources).iter().any(|p| wildcard(p, resource)),
        (None, Some(resources)) => !strings(resources).iter().any(|p| wildcard(p, resource)),
        (None, None) => false,
    };
    action_matches && resource_matches
}

fn principal_is_everyone(statement: &Value) -> bool {
    if statement.get("NotPrincipal").is_some() {
        return false;
    }
    match statement.get("Principal") {
        None => true,
        Some(Value::String(s)) => s == "*",
        Some(Value::Object(map)) => map
            .get("AWS")
            .is_some_and(|aws| strings(aws).iter().any(|p| p == "*")),
        Some(_) => false,
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => vec![],
    }
}

/// IAM wildcard match: `*` any run of characters, `?` one character.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// One request an endpoint's policy must let through.
struct Need {
    /// Short endpoint service name.
    service: &'static str,
    kind: EndpointKind,
    action: &'static str,
    resource: String,
    purpose: &'static str,
}

impl Need {
    fn new(
        service: &'static str,
        action: &'static str,
        resource: String,
        purpose: &'static str,
    ) -> Need {
        let kind = if service == "s3" {
            EndpointKind::Gateway
        } else {
            EndpointKind::Interface
        };
        Need {
            service,
            kind,
            action,
            resource,
            purpose,
        }
    }
}

/// The requests the agent, image pulls and agent updates send through each endpoint. A
/// container instance of the VPC stands in for "any of them" in ARN-scoped statements.
fn needs(inventory: &Inventory, vpc: &Vpc, container_instance_arn: &str) -> Vec<Need> {
    let region = &inventory.cluster.region;
    let partition = partition_of(region);
    let instance = container_instance_arn.to_string();
    let mut needs = vec![
        Need::new(
            "ecs",
            "ecs:DiscoverPollEndpoint",
            instance.clone(),
            "the agent's endpoint discovery",
        ),
        Need::new(
            "ecs-agent",
            "ecs:Poll",
            instance.clone(),
            "the agent's ACS session",
        ),
        Need::new(
            "ecs-telemetry",
            "ecs:StartTelemetrySession",
            instance,
            "the agent's telemetry session",
        ),
        Need::new(
            "ecr.api",
            "ecr:GetAuthorizationToken",
            "*".into(),
            "ECR image pulls",
        ),
        Need::new(
            "s3",
            "s3:GetObject",
            format!("arn:{partition}:s3:::prod-{region}-starport-layer-bucket/layer"),
            "ECR image layer pulls",
        ),
        Need::new(
            "s3",
            "s3:GetObject",
            format!("arn:{partition}:s3:::amazon-ecs-agent/ecs-agent.tar"),
            "agent updates",
        ),
        Need::new(
            "s3",
            "s3:GetObject",
            format!("arn:{partition}:s3:::amazon-ecs-agent-{region}/ecs-agent.tar"),
            "agent updates",
        ),
    ];
    for repository in private_repositories(inventory, vpc) {
        for action in ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"] {
            needs.push(Need::new(
                "ecr.dkr",
                action,
                repository.clone(),
                "image pulls of running tasks",
            ));
        }
    }
    needs
}

/// Repository ARNs of the private ECR images that running tasks in `vpc` use.
fn private_repositories(inventory: &Inventory, vpc: &Vpc) -> BTreeSet<String> {
    let region = &inventory.cluster.region;
    let partition = partition_of(region);
    let Ok(definitions) = &inventory.task_definitions else {
        return BTreeSet::new();
    };
    definitions
        .iter()
        .filter(|d| d.vpc_ids.contains(&vpc.id))
        .flat_map(|d| &d.containers)
        .filter(|c| is_private_ecr(&c.image, region))
        .filter_map(|c| {
            let (host, path) = c.image.split_once('/')?;
            let account = host.split('.').next()?;
            let name = path.split(['@', ':']).next()?;
            Some(format!(
                "arn:{partition}:ecr:{region}:{account}:repository/{name}"
            ))
        })
        .collect()
}

pub(super) fn check(inventory: &Inventory, vpc: &Vpc, findings: &mut Vec<Finding>) {
    let Ok(endpoints) = &vpc.endpoints else {
        return;
    };
    let Some(sample) = inventory
        .container_instances
        .iter()
        .find(|ci| inventory.ec2_of(ci).is_some_and(|ec2| ec2.vpc_id == vpc.id))
    else {
        return;
    };
    let region = &inventory.cluster.region;
    for need in needs(inventory, vpc, &sample.arn) {
        let Need {
            service,
            kind,
            action,
            resource,
            purpose,
        } = need;
        for endpoint in endpoints_for(endpoints, region, service, kind) {
            let Some(policy) = &endpoint.policy else {
                continue;
            };
            let verdict = match evaluate(policy, action, &resource) {
                Ok(Decision::Allowed) => continue,
                Ok(Decision::Denied) => format!("denies {action} on {resource}"),
                Ok(Decision::Uncertain(why)) => format!("may deny {action} on {resource}: {why}"),
                Err(why) => {
                    format!("could not be read ({why}); it may deny {action} on {resource}")
                }
            };
            findings.push(
                Finding::new(
                    ids::ENDPOINT_POLICY,
                    format!(
                        "the policy of {service} endpoint {} {verdict}, needed for {purpose}",
                        endpoint.id
                    ),
                )
                .in_vpc(&vpc.id)
                .resources([endpoint.id.clone()])
                .fix(format!(
                    "allow {action} on {resource} in the endpoint policy (aws ec2 modify-vpc-endpoint \
                     --region {region} --vpc-endpoint-id {} --policy-document file://policy.json)",
                    endpoint.id
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{run, PreflightOptions};
    use super::*;

    const POLL: &str = "ecs:Poll";
    const CI: &str = "arn:aws:ecs:eu-west-1:123456789012:container-instance/prod/abc";

    #[test]
    fn evaluation_table() {
        let cases = [
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#,
                Decision::Allowed,
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"ecs:*","Resource":"*"}}"#,
                Decision::Allowed,
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":["ecs:Describe*"],"Resource":"*"}]}"#,
                Decision::Denied,
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"ecs:Poll","Resource":"*"}]}"#,
                Decision::Denied,
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:ecs:*:*:container-instance/prod/*"}]}"#,
                Decision::Allowed,
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:ecs:*:*:container-instance/staging/*"}]}"#,
                Decision::Denied,
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","NotAction":"ecs:Poll","Resource":"*"}]}"#,
                Decision::Denied,
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"ECS:POLL","NotResource":"arn:aws:s3:::*"}]}"#,
                Decision::Allowed,
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"ecs:P?ll","Resource":"*"}]}"#,
                Decision::Allowed,
            ),
        ];
        for (policy, expected) in cases {
            assert_eq!(evaluate(policy, POLL, CI), Ok(expected), "{policy}");
        }
    }

    #[test]
    fn conditions_and_principals_make_it_uncertain() {
        let conditional_allow = r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":"1"}}}]}"#;
        let principal_allow = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"*","Resource":"*"}]}"#;
        let conditional_deny = r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"Fence","Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"x":"y"}}}]}"#;
        for policy in [conditional_allow, principal_allow, conditional_deny] {
            assert!(
                matches!(evaluate(policy, POLL, CI), Ok(Decision::Uncertain(_))),
                "{policy}"
            );
        }
        let Ok(Decision::Uncertain(why)) = evaluate(conditional_deny, POLL, CI) else {
            unreachable!()
        };
        assert!(why.contains("Fence"), "{why}");
    }

    #[test]
    fn malformed_policy_is_an_error() {
        assert!(evaluate("not json", POLL, CI).is_err());
        assert!(evaluate("{}", POLL, CI).is_err());
    }

    #[test]
    fn wildcard_table() {
        for (pattern, text, expected) in [
            ("*", "", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbb", false),
            (
                "arn:aws:s3:::prod-*-starport-layer-bucket/*",
                "arn:aws:s3:::prod-eu-west-1-starport-layer-bucket/x",
                true,
            ),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
        ] {
            assert_eq!(wildcard(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn restrictive_s3_policy_warns_for_layers_and_agent_updates() {
        let mut inventory = ready_inventory();
        endpoint_mut(&mut inventory, "s3").policy = Some(
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::prod-eu-west-1-starport-layer-bucket/*"}]}"#.into(),
        );
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(preflight.is_ready(), "policy findings are warnings");
        let policy: Vec<&Finding> = preflight
            .findings
            .iter()
            .filter(|f| f.id == ids::ENDPOINT_POLICY)
            .collect();
        assert_eq!(policy.len(), 2, "{policy:#?}");
        assert!(policy
            .iter()
            .all(|f| f.summary.contains("agent updates")
                && f.resources == vec!["vpce-s3".to_string()]));
    }

    #[test]
    fn not_principal_is_never_taken_for_everyone() {
        let policy = r#"{"Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::1:root"},"Action":"*","Resource":"*"}]}"#;
        assert!(matches!(
            evaluate(policy, POLL, CI),
            Ok(Decision::Uncertain(_))
        ));
    }

    #[test]
    fn ecr_dkr_policy_is_checked_for_the_repositories_tasks_pull_from() {
        let mut inventory = ready_inventory();
        endpoint_mut(&mut inventory, "ecr.dkr").policy = Some(
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"arn:aws:ecr:eu-west-1:123456789012:repository/other"}]}"#.into(),
        );
        let findings = run(&inventory, PreflightOptions::default()).findings;
        let policy: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.id == ids::ENDPOINT_POLICY)
            .collect();
        assert_eq!(policy.len(), 2, "{policy:#?}");
        assert!(
            policy.iter().all(|f| f.summary.contains("repository/web")),
            "{policy:#?}"
        );
    }

    #[test]
    fn ecs_endpoint_policy_denying_discovery_warns() {
        let mut inventory = ready_inventory();
        endpoint_mut(&mut inventory, "ecs").policy = Some(
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecs:Describe*","Resource":"*"}]}"#.into(),
        );
        let findings = run(&inventory, PreflightOptions::default()).findings;
        assert!(find(&findings, ids::ENDPOINT_POLICY)
            .summary
            .contains("ecs:DiscoverPollEndpoint"));
    }

    #[test]
    fn s3_arns_follow_the_partition() {
        let mut inventory = ready_inventory();
        inventory.cluster.region = "cn-north-1".into();
        let vpc = inventory.vpcs[0].clone();
        let needs = needs(&inventory, &vpc, CI);
        assert!(needs
            .iter()
            .filter(|n| n.service == "s3")
            .all(|n| n.resource.starts_with("arn:aws-cn:s3:::")));
    }

    #[test]
    fn agent_endpoint_policy_denying_poll_warns() {
        let mut inventory = ready_inventory();
        endpoint_mut(&mut inventory, "ecs-agent").policy =
            Some(r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"ecs:Poll","Resource":"*"},{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#.into());
        let findings = run(&inventory, PreflightOptions::default()).findings;
        let policy = find(&findings, ids::ENDPOINT_POLICY);
        assert!(
            policy.summary.contains("denies ecs:Poll"),
            "{}",
            policy.summary
        );
    }
}
