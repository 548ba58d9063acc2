#!/usr/bin/env python3
"""Builds (and then repairs) the walkthrough's ECS cluster "demo" in the AWS emulator.

    python3 examples/walkthrough/cluster.py build   # a cluster with ONE thing broken
    python3 examples/walkthrough/cluster.py fix     # repair that one thing

It does what the end-to-end tests do (tests/emulator/scenario.rs `build`,
tests/emulator/cutover.rs `script_results`), with boto3 instead of the Rust SDK:
a VPC across eu-west-1a/b/c, the interface endpoints, an S3 gateway, three EC2
instances registered with ECS, and a running task. What is broken: the VPC has no
`ecs-agent` interface endpoint, so every agent's ACS websocket would stay on the
public path. `check` reports it; `fix` creates the endpoint.

Nothing runs on emulated instances, so what their SSM commands would print is
scripted through the emulator's control routes (tests/support/emulator.py):
the restart script's evidence line, and the path probe's record before and after
a restart. Run it only through run.sh, which points AWS_ENDPOINT_URL at the
emulator on 127.0.0.1; this script refuses any other address.
"""
import json
import os
import sys
import urllib.parse
import urllib.request

import boto3

CLUSTER = "demo"
REGION = os.environ.get("AWS_REGION", "eu-west-1")
ACCOUNT = "123456789012"  # moto's account id
AMI = "ami-1e749f67"
# The interface endpoints tests/emulator/scenario.rs creates (logs: for awslogs).
SERVICES = ["ecs-agent", "ecs-telemetry", "ecs", "ecr.api", "ecr.dkr",
            "ssm", "ssmmessages", "ec2messages", "logs"]
# The one endpoint `build` leaves out and `fix` creates ("" for none: a ready cluster, as
# scripts/versus-cli uses it), and how many instances (spread over the three AZs).
BROKEN = os.environ.get("PRIVLINK_BROKEN", "ecs-agent")
INSTANCES = int(os.environ.get("PRIVLINK_INSTANCES", "3"))

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "")
if urllib.parse.urlparse(ENDPOINT).hostname not in ("127.0.0.1", "localhost", "::1"):
    sys.exit(f"cluster.py: AWS_ENDPOINT_URL must be the local emulator, not {ENDPOINT!r}")


def client(service):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name=REGION)


ec2, ecs = client("ec2"), client("ecs")


def control(path, body):
    """POSTs JSON to one of the emulator's /_privlink/... control routes."""
    request = urllib.request.Request(ENDPOINT + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)


def by_vpc(vpc):
    return [{"Name": "vpc-id", "Values": [vpc]}]


def create_interface_endpoint(vpc, service, subnets, group):
    """One interface endpoint, an ENI in every subnet, private DNS on (what the agents need)."""
    return ec2.create_vpc_endpoint(
        VpcId=vpc, VpcEndpointType="Interface", ServiceName=f"com.amazonaws.{REGION}.{service}",
        SubnetIds=subnets, SecurityGroupIds=[group], PrivateDnsEnabled=True,
    )["VpcEndpoint"]["VpcEndpointId"]


# ---- what the instances would print -------------------------------------------------
EVIDENCE = ("PRIVLINK-EVIDENCE v=1 result=ok reason=none method=systemd supervisor=systemd "
            "agent_version=1.80.0 restart_at=1800000000 agent_started=1800000004 "
            "acs_connected=1800000007 credentials_before=404 credentials_after=404 boot_id=demo")


def probe_record(addresses, on_endpoints):
    """The line the path probe prints (Scenario::probe_record): which addresses the ECS names
    resolve to and where the agent's websockets end. A name without an endpoint resolves
    publicly (52.94.0.1)."""
    first = lambda service: (addresses.get(service) or ["52.94.0.1"])[0]  # noqa: E731
    if on_endpoints:  # after a restart: ACS/TCS on the ecs-agent/ecs-telemetry ENIs
        peers, host = f"{first('ecs-agent')},{first('ecs-telemetry')}", f"ecs-t.{REGION}.amazonaws.com"
    else:  # before: on the numbered public hosts the agent cached
        peers, host = "54.239.36.10,54.239.36.11", f"ecs-t-1.{REGION}.amazonaws.com"
    return (f"PRIVLINK-PROBE v=1 agent=2345 proxy=none no_proxy=169.254.169.254,169.254.170.2 "
            f"dns.ecs={first('ecs')} dns.ecs-a={first('ecs-agent')} dns.ecs-t={first('ecs-telemetry')} "
            f"dns.ecr-api={first('ecr.api')} dns.ecr-dkr={first('ecr.dkr')} peers={peers} "
            f"ws_host={host} ws_at=2026-11-27T01:02:03Z")


def endpoint_addresses(vpc):
    """Short service name -> the private addresses of its interface endpoint's ENIs."""
    addresses = {}
    for endpoint in ec2.describe_vpc_endpoints(Filters=by_vpc(vpc))["VpcEndpoints"]:
        enis = endpoint.get("NetworkInterfaceIds") or []
        if enis:
            service = endpoint["ServiceName"].removeprefix(f"com.amazonaws.{REGION}.")
            found = ec2.describe_network_interfaces(NetworkInterfaceIds=enis)["NetworkInterfaces"]
            addresses[service] = [eni["PrivateIpAddress"] for eni in found]
    return addresses


def serve_probes(vpc, instances):
    """Before a restart each probe shows the public path; once the emulator has seen a
    successful restart command on the instance, the endpoints (outputAfterRestart)."""
    addresses = endpoint_addresses(vpc)
    control("/_privlink/ssm/probe-results", {i: {
        "status": "Success",
        "output": probe_record(addresses, on_endpoints=False),
        "outputAfterRestart": probe_record(addresses, on_endpoints=True),
    } for i in instances})


# ---- build -------------------------------------------------------------------------
def build():
    control("/_privlink/reset", {})  # start from an empty emulator
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "privlink-demo"}]}])["Vpc"]["VpcId"]
    # Endpoint private DNS needs both DNS attributes and the Amazon-provided resolver.
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    options = ec2.create_dhcp_options(DhcpConfigurations=[
        {"Key": "domain-name-servers", "Values": ["AmazonProvidedDNS"]}])["DhcpOptions"]["DhcpOptionsId"]
    ec2.associate_dhcp_options(DhcpOptionsId=options, VpcId=vpc)

    # One subnet per AZ; the first has its own route table, the others use the main one.
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24",
                                 AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
               for n, zone in enumerate("abc", start=1)]
    explicit = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=explicit, SubnetId=subnets[0])
    main = ec2.describe_route_tables(Filters=by_vpc(vpc) + [
        {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]["RouteTableId"]

    # The endpoints admit HTTPS (443) from the instances' security group.
    group = lambda name: ec2.create_security_group(  # noqa: E731
        VpcId=vpc, GroupName=name, Description=name)["GroupId"]
    instance_sg, endpoint_sg = group("ecs-instances"), group("vpc-endpoints")
    ec2.authorize_security_group_ingress(GroupId=endpoint_sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
        "UserIdGroupPairs": [{"GroupId": instance_sg}]}])

    for service in SERVICES:
        if service != BROKEN:  # <- the broken part: no ecs-agent endpoint
            create_interface_endpoint(vpc, service, subnets, endpoint_sg)
    # Image layers come from S3: the gateway endpoint on every route table instances use.
    ec2.create_vpc_endpoint(VpcId=vpc, VpcEndpointType="Gateway",
                            ServiceName=f"com.amazonaws.{REGION}.s3", RouteTableIds=[explicit, main])

    # EC2 instances spread over the AZs (three by default), registered with ECS.
    instances = [ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=subnets[n % 3],
                                   SecurityGroupIds=[instance_sg])["Instances"][0]["InstanceId"]
                 for n in range(INSTANCES)]
    ecs.create_cluster(clusterName=CLUSTER)
    for instance in instances:
        ecs.register_container_instance(
            cluster=CLUSTER, instanceIdentityDocument=json.dumps({"instanceId": instance}))
    # What moto does not model: a current agent (PrivateLink needs >= 1.25.1) and SSM
    # managing each instance (the restarts and probes go over SSM Run Command).
    control("/_privlink/ecs/agent-state", {i: {"agentVersion": "1.80.0"} for i in instances})
    control("/_privlink/ssm/managed-instances", {"instances": [
        {"InstanceId": i, "PingStatus": "Online", "PlatformType": "Linux",
         "PlatformName": "Amazon Linux"} for i in instances]})

    # A running task whose image is in this region's private ECR (reachable via ecr.dkr + S3).
    ecs.register_task_definition(family="web", networkMode="bridge", containerDefinitions=[{
        "name": "web", "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/web:1", "memory": 256,
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": "/ecs/web", "awslogs-region": REGION}}}])
    first = ecs.list_container_instances(cluster=CLUSTER)["containerInstanceArns"][0]
    ecs.start_task(cluster=CLUSTER, taskDefinition="web", containerInstances=[first])

    # Each restart command "prints" the evidence line the real script prints on success.
    control("/_privlink/ssm/command-results", {i: {"status": "Success", "output": EVIDENCE}
                                              for i in instances})
    serve_probes(vpc, instances)
    broken = f"no {BROKEN} endpoint" if BROKEN else "ready"
    print(f"built cluster {CLUSTER}: {vpc}, {len(instances)} instances, {broken}")


# ---- fix ---------------------------------------------------------------------------
def fix():
    """Creates the missing endpoint, as `check`'s fix line says (aws ec2 create-vpc-endpoint ...)."""
    vpc = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["privlink-demo"]}])["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets(Filters=by_vpc(vpc))["Subnets"]]
    endpoint_sg = ec2.describe_security_groups(Filters=by_vpc(vpc) + [
        {"Name": "group-name", "Values": ["vpc-endpoints"]}])["SecurityGroups"][0]["GroupId"]
    endpoint = create_interface_endpoint(vpc, BROKEN, subnets, endpoint_sg)
    # New ENIs, new addresses: a restarted agent's ACS now ends on them, so the probe
    # records (which name those addresses) are served again.
    arns = ecs.list_container_instances(cluster=CLUSTER)["containerInstanceArns"]
    described = ecs.describe_container_instances(cluster=CLUSTER, containerInstances=arns)
    serve_probes(vpc, [ci["ec2InstanceId"] for ci in described["containerInstances"]])
    print(f"created {BROKEN} endpoint {endpoint} in {vpc} (private DNS on, {len(subnets)} subnets)")


if __name__ == "__main__":
    commands = {"build": build, "fix": fix}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} build|fix")
    commands[sys.argv[1]]()
