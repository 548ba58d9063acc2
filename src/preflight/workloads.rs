//! What the running tasks still need a way out for once the NAT gateway goes: awslogs,
//! secrets, images from outside this region's private ECR, and S3 environment files. Read
//! from the task definitions of the tasks that run on the cluster's EC2 instances.

use std::collections::BTreeMap;

use super::endpoints::interface_gap;
use super::{ids, some_of, Finding, HostedInstances};
use crate::inventory::{Inventory, TaskDefinition, Vpc};

pub(super) fn check(
    inventory: &Inventory,
    vpc: &Vpc,
    hosted: &HostedInstances,
    findings: &mut Vec<Finding>,
) {
    let (Ok(definitions), Ok(endpoints)) = (&inventory.task_definitions, &vpc.endpoints) else {
        return;
    };
    let region = &inventory.cluster.region;
    let gap = |service: &str| interface_gap(region, vpc, hosted, endpoints, service);
    let mut needs = Needs::default();
    for definition in definitions.iter().filter(|d| d.vpc_ids.contains(&vpc.id)) {
        needs.collect(definition, region);
    }
    if let (Some((what, fix)), false) = (gap("logs"), needs.awslogs.is_empty()) {
        findings.push(
            Finding::new(
                ids::TASK_LOGS,
                format!(
                    "task definitions log with awslogs but {}'s logs endpoint is not usable, {what}: {}",
                    vpc.id,
                    some_of(&needs.awslogs)
                ),
            )
            .in_vpc(&vpc.id)
            .resources(needs.awslogs.clone())
            .fix(fix),
        );
    }
    for (service, definitions) in &needs.secrets {
        let Some((what, fix)) = gap(service) else {
            continue;
        };
        findings.push(
            Finding::new(
                ids::TASK_SECRETS,
                format!(
                    "task definitions read secrets through {service} but {}'s {service} endpoint is \
                     not usable, {what}: {}",
                    vpc.id,
                    some_of(definitions)
                ),
            )
            .in_vpc(&vpc.id)
            .resources(definitions.clone())
            .fix(fix),
        );
    }
    if !needs.cross_region.is_empty() {
        let named: Vec<String> = needs
            .cross_region
            .iter()
            .map(|(d, what)| format!("{what} ({d})"))
            .collect();
        findings.push(
            Finding::new(
                ids::TASK_CROSS_REGION,
                format!(
                    "running tasks use secrets or logs in another region, which no endpoint in {region} \
                     serves: {}",
                    some_of(&named)
                ),
            )
            .in_vpc(&vpc.id)
            .resources(needs.cross_region.iter().map(|(d, _)| d.clone()))
            .fix(format!(
                "move the secrets or log groups to {region}, or keep a way out (NAT or proxy) for them"
            )),
        );
    }
    if !needs.foreign_images.is_empty() {
        let named: Vec<String> = needs
            .foreign_images
            .iter()
            .map(|(d, image)| format!("{image} ({d})"))
            .collect();
        findings.push(
            Finding::new(
                ids::TASK_IMAGE,
                format!(
                    "images from outside {region}'s private ECR need a way out (NAT, proxy or a \
                     pull-through cache): {}",
                    some_of(&named)
                ),
            )
            .in_vpc(&vpc.id)
            .resources(needs.foreign_images.iter().map(|(d, _)| d.clone()))
            .fix(format!(
                "copy the images into ECR in {region}, or set up an ECR pull-through cache rule \
                 (aws ecr create-pull-through-cache-rule)"
            )),
        );
    }
    if !needs.env_files.is_empty() {
        let named: Vec<String> = needs
            .env_files
            .iter()
            .map(|(d, file)| format!("{file} ({d})"))
            .collect();
        findings.push(
            Finding::new(
                ids::TASK_ENV_FILES,
                format!(
                    "environment files come from S3: the S3 gateway endpoint reaches them only if the \
                     bucket is in {region} and the endpoint policy allows it: {}",
                    some_of(&named)
                ),
            )
            .in_vpc(&vpc.id)
            .resources(needs.env_files.iter().map(|(d, _)| d.clone()))
            .fix(
                "keep the buckets in this region and allow s3:GetObject on them in the S3 gateway \
                 endpoint policy",
            ),
        );
    }
}

/// Task definition ARNs grouped by what they need.
#[derive(Default)]
struct Needs {
    awslogs: Vec<String>,
    /// endpoint service (`secretsmanager`, `ssm`) → task definitions.
    secrets: BTreeMap<&'static str, Vec<String>>,
    /// (task definition, the secret or log region it needs elsewhere).
    cross_region: Vec<(String, String)>,
    foreign_images: Vec<(String, String)>,
    env_files: Vec<(String, String)>,
}

impl Needs {
    fn collect(&mut self, definition: &TaskDefinition, region: &str) {
        let arn = &definition.arn;
        let push_once = |list: &mut Vec<String>| {
            if list.last() != Some(arn) {
                list.push(arn.clone());
            }
        };
        for container in &definition.containers {
            if container.log_driver.as_deref() == Some("awslogs") {
                match container.log_region.as_deref() {
                    Some(other) if other != region => self
                        .cross_region
                        .push((arn.clone(), format!("awslogs in {other}"))),
                    _ => push_once(&mut self.awslogs),
                }
            }
            for secret in &container.secrets {
                match arn_region(secret) {
                    Some(other) if other != region => {
                        self.cross_region.push((arn.clone(), secret.clone()))
                    }
                    _ => push_once(self.secrets.entry(secret_service(secret)).or_default()),
                }
            }
            if !is_private_ecr(&container.image, region) {
                self.foreign_images
                    .push((arn.clone(), container.image.clone()));
            }
            for file in &container.s3_environment_files {
                self.env_files.push((arn.clone(), file.clone()));
            }
        }
    }
}

/// Secrets Manager ARNs go through `secretsmanager`; SSM parameters (ARN or name) through `ssm`.
fn secret_service(value_from: &str) -> &'static str {
    if value_from.starts_with("arn:") && value_from.split(':').nth(2) == Some("secretsmanager") {
        "secretsmanager"
    } else {
        "ssm"
    }
}

/// The region field of an ARN, when the value is one.
fn arn_region(value: &str) -> Option<&str> {
    value
        .strip_prefix("arn:")
        .and_then(|rest| rest.split(':').nth(2))
        .filter(|r| !r.is_empty())
}

/// Private ECR in this region, reached through the ecr.dkr endpoint:
/// `ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]/…` or the dual-stack
/// `ACCOUNT.dkr-ecr[-fips].REGION.on.aws/…`.
pub(crate) fn is_private_ecr(image: &str, region: &str) -> bool {
    let host = image.split('/').next().unwrap_or_default();
    let labels: Vec<&str> = host.split('.').collect();
    let account_ok = labels
        .first()
        .is_some_and(|a| a.len() == 12 && a.chars().all(|c| c.is_ascii_digit()));
    let rest: Vec<&str> = labels.iter().skip(1).copied().collect();
    let classic = matches!(
        rest.as_slice(),
        ["dkr", "ecr" | "ecr-fips", r, "amazonaws", "com"] | ["dkr", "ecr" | "ecr-fips", r, "amazonaws", "com", "cn"]
            if *r == region
    );
    let dual_stack = matches!(
        rest.as_slice(),
        ["dkr-ecr" | "dkr-ecr-fips", r, "on", "aws"] if *r == region
    );
    account_ok && (classic || dual_stack)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{run, PreflightOptions};
    use super::*;
    use crate::inventory::ContainerDefinition;

    fn with_container(container: ContainerDefinition) -> Inventory {
        let mut inventory = ready_inventory();
        inventory.task_definitions.as_mut().unwrap()[0]
            .containers
            .push(container);
        inventory
    }

    fn container(image: &str) -> ContainerDefinition {
        ContainerDefinition {
            name: "sidecar".into(),
            image: image.into(),
            log_driver: None,
            log_region: None,
            secrets: vec![],
            s3_environment_files: vec![],
        }
    }

    #[test]
    fn private_ecr_table() {
        for (image, expected) in [
            ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:1", true),
            (
                "123456789012.dkr.ecr-fips.eu-west-1.amazonaws.com/web@sha256:abc",
                true,
            ),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1", false),
            ("public.ecr.aws/nginx/nginx:latest", false),
            ("nginx:latest", false),
            ("docker.io/library/redis", false),
            ("12345.dkr.ecr.eu-west-1.amazonaws.com/web", false),
            ("123456789012.dkr-ecr.eu-west-1.on.aws/web:1", true),
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example/web",
                false,
            ),
        ] {
            assert_eq!(is_private_ecr(image, REGION), expected, "{image}");
        }
    }

    #[test]
    fn awslogs_without_logs_endpoint_warns() {
        let mut inventory = ready_inventory();
        assert!(!run(&inventory, PreflightOptions::default())
            .findings
            .iter()
            .any(|f| f.id == ids::TASK_LOGS));
        remove_endpoint(&mut inventory, "logs");
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(preflight.is_ready());
        let logs = find(&preflight.findings, ids::TASK_LOGS);
        assert!(logs.resources[0].ends_with("task-definition/web:3"));
        assert!(logs
            .fix
            .as_deref()
            .unwrap()
            .contains("com.amazonaws.eu-west-1.logs"));
    }

    #[test]
    fn secrets_need_their_endpoint() {
        let mut sidecar = container("123456789012.dkr.ecr.eu-west-1.amazonaws.com/side:1");
        sidecar.secrets = vec![
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf".into(),
            "/prod/api-key".into(),
        ];
        let mut inventory = with_container(sidecar);
        let findings = run(&inventory, PreflightOptions::default()).findings;
        let secrets = find(&findings, ids::TASK_SECRETS);
        assert!(
            secrets.summary.contains("through secretsmanager"),
            "ssm endpoint exists: {}",
            secrets.summary
        );
        remove_endpoint(&mut inventory, "ssm");
        let findings = run(&inventory, PreflightOptions::default()).findings;
        assert_eq!(
            findings
                .iter()
                .filter(|f| f.id == ids::TASK_SECRETS)
                .count(),
            2
        );
    }

    #[test]
    fn secrets_and_logs_in_another_region_need_a_way_out() {
        let mut sidecar = container("123456789012.dkr.ecr.eu-west-1.amazonaws.com/side:1");
        sidecar.secrets =
            vec!["arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf".into()];
        sidecar.log_driver = Some("awslogs".into());
        sidecar.log_region = Some("us-east-1".into());
        let inventory = with_container(sidecar);
        let findings = run(&inventory, PreflightOptions::default()).findings;
        let cross = find(&findings, ids::TASK_CROSS_REGION);
        assert!(
            cross.summary.contains("awslogs in us-east-1"),
            "{}",
            cross.summary
        );
        assert!(
            cross.summary.contains("secretsmanager:us-east-1"),
            "{}",
            cross.summary
        );
        assert!(
            !findings.iter().any(|f| f.id == ids::TASK_SECRETS),
            "{findings:#?}"
        );
    }

    #[test]
    fn logs_endpoint_without_private_dns_does_not_count() {
        let mut inventory = ready_inventory();
        endpoint_mut(&mut inventory, "logs").private_dns_enabled = false;
        let findings = run(&inventory, PreflightOptions::default()).findings;
        assert!(find(&findings, ids::TASK_LOGS)
            .summary
            .contains("private DNS off"));
    }

    #[test]
    fn foreign_images_and_env_files_warn_naming_them() {
        let mut sidecar = container("nginx:latest");
        sidecar.s3_environment_files = vec!["arn:aws:s3:::config-bucket/web.env".into()];
        let inventory = with_container(sidecar);
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(preflight.is_ready());
        assert!(find(&preflight.findings, ids::TASK_IMAGE)
            .summary
            .contains("nginx:latest"));
        assert!(find(&preflight.findings, ids::TASK_ENV_FILES)
            .summary
            .contains("config-bucket/web.env"));
    }

    #[test]
    fn task_definitions_only_count_in_the_vpcs_they_run_in() {
        let mut inventory = ready_inventory();
        inventory.task_definitions.as_mut().unwrap()[0].vpc_ids = vec!["vpc-elsewhere".into()];
        inventory.task_definitions.as_mut().unwrap()[0]
            .containers
            .push(container("nginx:latest"));
        let findings = run(&inventory, PreflightOptions::default()).findings;
        assert!(!findings.iter().any(|f| f.id == ids::TASK_IMAGE));
    }
}
