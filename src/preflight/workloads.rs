//! What the running tasks still need a way out for once the NAT gateway goes: awslogs,
//! secrets, images from outside this region's private ECR, and S3 environment files. Read
//! from the task definitions of the tasks that run on the cluster's EC2 instances.

use std::collections::BTreeMap;

use super::endpoints::endpoints_for;
use super::{ids, some_of, Finding};
use crate::inventory::{EndpointKind, Inventory, TaskDefinition, VpcEndpoint};

pub(super) fn check(inventory: &Inventory, findings: &mut Vec<Finding>) {
    let Ok(definitions) = &inventory.task_definitions else {
        return;
    };
    let region = &inventory.cluster.region;
    for vpc in &inventory.vpcs {
        let Ok(endpoints) = &vpc.endpoints else {
            continue;
        };
        let has = |service: &str| {
            !endpoints_for(endpoints, region, service, EndpointKind::Interface).is_empty()
        };
        let running_here: Vec<&TaskDefinition> = definitions
            .iter()
            .filter(|d| d.vpc_ids.contains(&vpc.id))
            .collect();
        let mut needs = Needs::default();
        for definition in &running_here {
            needs.collect(definition, region);
        }
        let fix_for = |service: &str| create_command(region, &vpc.id, service, endpoints);
        if !has("logs") && !needs.awslogs.is_empty() {
            findings.push(
                Finding::new(
                    ids::TASK_LOGS,
                    format!(
                        "task definitions log with awslogs but {} has no logs endpoint: {}",
                        vpc.id,
                        some_of(&needs.awslogs)
                    ),
                )
                .in_vpc(&vpc.id)
                .resources(needs.awslogs.clone())
                .fix(fix_for("logs")),
            );
        }
        for (service, definitions) in &needs.secrets {
            if has(service) {
                continue;
            }
            findings.push(
                Finding::new(
                    ids::TASK_SECRETS,
                    format!(
                        "task definitions read secrets through {service} but {} has no {service} endpoint: {}",
                        vpc.id,
                        some_of(definitions)
                    ),
                )
                .in_vpc(&vpc.id)
                .resources(definitions.clone())
                .fix(fix_for(service)),
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
                        "images from outside {region}'s private ECR need a way out (NAT, proxy or a pull-through \
                         cache): {}",
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
                        "environment files come from S3: the S3 gateway endpoint reaches them only if the bucket is \
                         in {region} and the endpoint policy allows it: {}",
                        some_of(&named)
                    ),
                )
                .in_vpc(&vpc.id)
                .resources(needs.env_files.iter().map(|(d, _)| d.clone()))
                .fix("keep the buckets in this region and allow s3:GetObject on them in the S3 gateway endpoint policy"),
            );
        }
    }
}

/// Task definition ARNs grouped by what they need.
#[derive(Default)]
struct Needs {
    awslogs: Vec<String>,
    /// endpoint service (`secretsmanager`, `ssm`) → task definitions.
    secrets: BTreeMap<&'static str, Vec<String>>,
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
                push_once(&mut self.awslogs);
            }
            for secret in &container.secrets {
                push_once(self.secrets.entry(secret_service(secret)).or_default());
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

/// `ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]/…`: reached through the ecr.dkr endpoint.
fn is_private_ecr(image: &str, region: &str) -> bool {
    let host = image.split('/').next().unwrap_or_default();
    let mut labels = host.split('.');
    let account = labels.next().unwrap_or_default();
    account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && labels.next() == Some("dkr")
        && matches!(labels.next(), Some("ecr" | "ecr-fips"))
        && labels.next() == Some(region)
        && labels.next() == Some("amazonaws")
}

fn create_command(region: &str, vpc_id: &str, service: &str, endpoints: &[VpcEndpoint]) -> String {
    let like = endpoints.iter().find(|e| e.kind == EndpointKind::Interface);
    let subnets = like.map_or_else(|| "<subnet per AZ>".to_string(), |e| e.subnet_ids.join(" "));
    let groups = like
        .filter(|e| !e.security_group_ids.is_empty())
        .map_or_else(
            || "<security group that admits TCP 443>".to_string(),
            |e| e.security_group_ids.join(" "),
        );
    format!(
        "aws ec2 create-vpc-endpoint --region {region} --vpc-id {vpc_id} --vpc-endpoint-type Interface \
         --service-name {}{region}.{service} --subnet-ids {subnets} --security-group-ids {groups} --private-dns-enabled",
        super::endpoints::service_prefix(region)
    )
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
