use std::collections::{BTreeMap, BTreeSet};

use super::*;

fn host(id: &str, cpu: i64, memory: i64) -> Host {
    Host {
        instance_id: id.into(),
        accepts_tasks: true,
        cpu,
        memory,
        ports: BTreeSet::new(),
        enis: None,
        attributes: BTreeMap::from([(
            "ecs.availability-zone".to_string(),
            "eu-west-1a".to_string(),
        )]),
        services: BTreeSet::new(),
    }
}

fn service(name: &str, running: u32) -> Service {
    Service {
        name: name.into(),
        daemon: false,
        minimum_healthy_percent: 50,
        maximum_percent: 200,
        running,
        distinct_instance: false,
        member_of: Vec::new(),
    }
}

fn task(n: u32, service: &str, cpu: i64, memory: i64) -> MovingTask {
    MovingTask {
        task_arn: format!("task/{n}"),
        service: service.into(),
        cpu,
        memory,
        host_ports: Vec::new(),
        awsvpc: false,
    }
}

fn services(list: Vec<Service>) -> BTreeMap<String, Service> {
    list.into_iter().map(|s| (s.name.clone(), s)).collect()
}

#[test]
fn fitting_is_a_placement_not_a_sum() {
    // 1,024 CPU free in total, but in two halves: one 1,024-CPU task fits nowhere.
    let hosts = [
        host("i-here", 0, 0),
        host("i-a", 512, 4096),
        host("i-b", 512, 4096),
    ];
    let check = check_drain(
        "i-here",
        &[task(1, "web", 1024, 512)],
        &services(vec![service("web", 3)]),
        &hosts,
    );
    assert!(!check.may_drain());
    assert!(
        check.blocking[0].contains("not enough CPU on 2"),
        "{:?}",
        check.blocking
    );
    assert!(check.blocking[0].contains("service web"));
    // Two 512-CPU tasks do fit, one on each.
    let moving = [task(1, "web", 512, 512), task(2, "web", 512, 512)];
    assert!(check_drain(
        "i-here",
        &moving,
        &services(vec![service("web", 3)]),
        &hosts
    )
    .may_drain());
    // A third does not: the first two took the room.
    let moving = [
        task(1, "web", 512, 512),
        task(2, "web", 512, 512),
        task(3, "web", 512, 512),
    ];
    assert!(!check_drain(
        "i-here",
        &moving,
        &services(vec![service("web", 4)]),
        &hosts
    )
    .may_drain());
}

#[test]
fn constraints_ports_enis_and_unavailable_hosts_decide_where_a_task_may_go() {
    struct Case {
        name: &'static str,
        change_host: fn(&mut Host),
        change_task: fn(&mut MovingTask),
        change_service: fn(&mut Service),
        fits: bool,
    }
    let cases = [
        Case {
            name: "plain",
            change_host: |_| {},
            change_task: |_| {},
            change_service: |_| {},
            fits: true,
        },
        Case {
            name: "port taken",
            change_host: |h| {
                h.ports.insert(80);
            },
            change_task: |t| t.host_ports = vec![80],
            change_service: |_| {},
            fits: false,
        },
        Case {
            name: "other port",
            change_host: |h| {
                h.ports.insert(8080);
            },
            change_task: |t| t.host_ports = vec![80],
            change_service: |_| {},
            fits: true,
        },
        Case {
            name: "no ENI",
            change_host: |h| h.enis = Some(0),
            change_task: |t| t.awsvpc = true,
            change_service: |_| {},
            fits: false,
        },
        Case {
            name: "ENI unknown",
            change_host: |h| h.enis = None,
            change_task: |t| t.awsvpc = true,
            change_service: |_| {},
            fits: true,
        },
        Case {
            name: "distinct, taken",
            change_host: |h| {
                h.services.insert("web".into());
            },
            change_task: |_| {},
            change_service: |s| s.distinct_instance = true,
            fits: false,
        },
        Case {
            name: "memberOf ok",
            change_host: |_| {},
            change_task: |_| {},
            change_service: |s| {
                s.member_of =
                    vec!["attribute:ecs.availability-zone in [eu-west-1a, eu-west-1b]".into()]
            },
            fits: true,
        },
        Case {
            name: "memberOf no",
            change_host: |_| {},
            change_task: |_| {},
            change_service: |s| {
                s.member_of = vec!["attribute:ecs.availability-zone == eu-west-1c".into()]
            },
            fits: false,
        },
        Case {
            name: "draining host",
            change_host: |h| h.accepts_tasks = false,
            change_task: |_| {},
            change_service: |_| {},
            fits: false,
        },
        Case {
            name: "short of memory",
            change_host: |h| h.memory = 100,
            change_task: |_| {},
            change_service: |_| {},
            fits: false,
        },
    ];
    for case in cases {
        let mut target = host("i-a", 2048, 4096);
        (case.change_host)(&mut target);
        let mut moving = task(1, "web", 256, 512);
        (case.change_task)(&mut moving);
        let mut web = service("web", 3);
        (case.change_service)(&mut web);
        let check = check_drain(
            "i-here",
            &[moving],
            &services(vec![web]),
            &[host("i-here", 0, 0), target],
        );
        assert_eq!(
            check.may_drain(),
            case.fits,
            "{}: {:?}",
            case.name,
            check.blocking
        );
    }
}

#[test]
fn services_that_cannot_drain_or_would_go_down_are_named() {
    let hosts = [host("i-here", 0, 0), host("i-a", 4096, 8192)];
    let mut rigid = service("billing", 4);
    rigid.minimum_healthy_percent = 100;
    rigid.maximum_percent = 100;
    let check = check_drain(
        "i-here",
        &[task(1, "billing", 128, 128)],
        &services(vec![rigid]),
        &hosts,
    );
    assert!(check.blocking[0]
        .contains("service billing has minimumHealthyPercent 100 and maximumPercent 100"));
    let check = check_drain(
        "i-here",
        &[task(1, "solo", 128, 128), task(2, "solo", 128, 128)],
        &services(vec![service("solo", 2)]),
        &hosts,
    );
    assert!(check.may_drain());
    assert!(
        check.warnings[0].contains("every task of service solo (2)"),
        "{:?}",
        check.warnings
    );
}

#[test]
fn daemon_tasks_stay_and_unknown_services_block() {
    let hosts = [host("i-here", 0, 0)];
    let mut agent = service("log-agent", 5);
    agent.daemon = true;
    // Nowhere to go, but a daemon task does not move.
    assert!(check_drain(
        "i-here",
        &[task(1, "log-agent", 128, 128)],
        &services(vec![agent]),
        &hosts
    )
    .may_drain());
    let check = check_drain(
        "i-here",
        &[task(1, "ghost", 128, 128)],
        &BTreeMap::new(),
        &hosts,
    );
    assert!(
        check.blocking[0].contains("service ghost"),
        "fail closed: {:?}",
        check.blocking
    );
}

#[test]
fn member_of_expressions_as_a_table() {
    let attributes = BTreeMap::from([
        (
            "ecs.availability-zone".to_string(),
            "eu-west-1b".to_string(),
        ),
        ("ecs.instance-type".to_string(), "m5.large".to_string()),
        ("team".to_string(), "payments".to_string()),
    ]);
    let cases = [
        ("attribute:ecs.instance-type == m5.large", Ok(true)),
        ("attribute:ecs.instance-type != m5.large", Ok(false)),
        ("attribute:ecs.instance-type =~ m5.*", Ok(true)),
        ("attribute:ecs.instance-type =~ t3.*", Ok(false)),
        (
            "attribute:ecs.availability-zone in [eu-west-1a, eu-west-1b]",
            Ok(true),
        ),
        (
            "attribute:ecs.availability-zone not_in [eu-west-1a, eu-west-1b]",
            Ok(false),
        ),
        ("attribute:team exists", Ok(true)),
        ("attribute:gpu exists", Ok(false)),
        ("attribute:gpu not_exists", Ok(true)),
        (
            "attribute:team == payments and attribute:ecs.instance-type =~ t3.*",
            Ok(false),
        ),
        (
            "attribute:team == search or attribute:ecs.instance-type =~ m5.*",
            Ok(true),
        ),
        ("task:group == service:web", Err(())),
        ("attribute:team matches payments", Err(())),
        ("attribute:ecs.availability-zone in eu-west-1a", Err(())),
    ];
    for (expression, expected) in cases {
        let got = member_of(expression, &attributes).map_err(|_| ());
        assert_eq!(got, expected, "{expression}");
    }
}

#[test]
fn an_expression_it_cannot_read_blocks() {
    let mut picky = service("web", 3);
    picky.member_of = vec!["task:group == service:api".into()];
    let check = check_drain(
        "i-here",
        &[task(1, "web", 1, 1)],
        &services(vec![picky]),
        &[host("i-here", 0, 0), host("i-a", 10, 10)],
    );
    assert!(
        check.blocking[0].contains("memberOf expression cannot be checked"),
        "{:?}",
        check.blocking
    );
}
