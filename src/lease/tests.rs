use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use super::*;
use crate::clock::SimClock;
use crate::fleet::sim::{Latencies, SimFleet, SimInstance};

const EVERY: Duration = Duration::from_secs(30);

fn sim() -> SimFleet {
    SimFleet::new(
        vec![SimInstance::healthy("i-1", "eu-west-1a")],
        Latencies::default(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    )
    // Reads and writes take time, so racing runs interleave between read and write.
    .with_record_latency(Duration::from_millis(300))
}

fn owner(user: &str) -> Owner {
    Owner {
        user: user.into(),
        host: format!("{user}-laptop"),
        pid: 42,
        run: RunId::new(1_800_000_000, u32::from(user.as_bytes()[0])),
    }
}

fn terms() -> LeaseTerms {
    LeaseTerms { renew_every: EVERY }
}

fn clock() -> SimClock {
    SimClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

#[tokio::test(start_paused = true)]
async fn a_second_run_is_refused_with_the_holder_named() {
    let (sim, clock) = (sim(), clock());
    let held = acquire(&sim, &clock, "sim", owner("alice"), terms(), false)
        .await
        .unwrap();
    assert_eq!(held.record().owner, owner("alice"));
    let error = acquire(&sim, &clock, "sim", owner("bob"), terms(), false)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, LeaseError::Held { .. }), "{message}");
    assert!(
        message.contains("alice@alice-laptop (pid 42") && message.contains("--break-lease"),
        "{message}"
    );
}

/// An attempt that created the lease lost its answer; the retry finds the parameter
/// there, holding this run's own record: the lease is this run's, not another's.
#[tokio::test(start_paused = true)]
async fn a_create_whose_answer_was_lost_finds_its_own_record_and_holds_the_lease() {
    let sim = SimFleet::new(
        vec![SimInstance::healthy("i-1", "eu-west-1a")],
        Latencies::default(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    );
    let clock = clock();
    let now = unix_seconds(clock.now());
    let written = LeaseRecord {
        schema: LEASE_SCHEMA,
        owner: owner("alice"),
        started: now,
        renewed: now,
        expires: now + terms().lifetime(),
        renew_every: EVERY.as_secs(),
    };
    let value = serde_json::to_string(&written).unwrap();
    assert!(sim
        .write_record("sim", Record::Lease, &value, false)
        .await
        .unwrap());
    let held = acquire(&sim, &clock, "sim", owner("alice"), terms(), false)
        .await
        .unwrap();
    assert_eq!(held.record(), &written);
    // Another run is still refused.
    let error = acquire(&sim, &clock, "sim", owner("bob"), terms(), false)
        .await
        .unwrap_err();
    assert!(matches!(error, LeaseError::Held { .. }), "{error}");
}

#[tokio::test(start_paused = true)]
async fn only_a_lease_expired_by_two_intervals_can_be_broken() {
    let (sim, clock) = (sim(), clock());
    let alice = acquire(&sim, &clock, "sim", owner("alice"), terms(), false)
        .await
        .unwrap();
    // Expired (three intervals), but not yet by two more.
    tokio::time::sleep(EVERY * 4).await;
    let early = acquire(&sim, &clock, "sim", owner("bob"), terms(), true).await;
    assert!(
        matches!(early, Err(LeaseError::NotBreakable { .. })),
        "{early:?}"
    );
    tokio::time::sleep(EVERY).await;
    let bob = acquire(&sim, &clock, "sim", owner("bob"), terms(), true)
        .await
        .unwrap();
    assert_eq!(bob.record().owner, owner("bob"));
    // Alice wakes up: her renewal finds Bob and she is told so.
    let mut alice = alice;
    let lost = alice.renew(&sim, &clock).await.unwrap_err();
    assert!(lost.to_string().contains("bob@bob-laptop"), "{lost}");
    // Her release leaves Bob's lease alone; his own release removes it.
    alice.release(&sim).await.unwrap();
    assert!(sim.parameter("/privlink-restart/lease/sim").is_some());
    bob.release(&sim).await.unwrap();
    assert!(sim.parameter("/privlink-restart/lease/sim").is_none());
}

/// A run that may start work: it holds a lease whose confirmed expiry lies ahead.
fn acting(status: &RefCell<Option<LeaseStatus>>, clock: &SimClock) -> bool {
    status
        .borrow()
        .as_ref()
        .is_some_and(|s| s.refusal(unix_seconds(clock.now())).is_none())
}

/// Keeps trying to take the lease (breaking it when allowed) from `start` on, then keeps
/// it.
async fn contender(
    sim: &SimFleet,
    clock: &SimClock,
    who: &str,
    start: Duration,
    status: &RefCell<Option<LeaseStatus>>,
) {
    tokio::time::sleep(start).await;
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if let Ok(lease) = acquire(sim, clock, "sim", owner(who), terms(), true).await {
            *status.borrow_mut() = Some(LeaseStatus::Held {
                until: lease.record().expires,
            });
            let lease = RefCell::new(lease);
            let kept = RefCell::new(LeaseStatus::Held {
                until: lease.borrow().record().expires,
            });
            // Mirror the keeper's view into the shared one while keeping it.
            let mirror = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    *status.borrow_mut() = Some(kept.borrow().clone());
                }
            };
            tokio::select! {
                () = keep(&lease, &kept, sim, clock) => {}
                () = mirror => {}
            }
        }
    }
}

/// Checks every tenth of a second that never both runs may start work, for `span`.
async fn watch(
    clock: &SimClock,
    a: &RefCell<Option<LeaseStatus>>,
    b: &RefCell<Option<LeaseStatus>>,
    span: Duration,
) -> (usize, usize) {
    let (mut a_acted, mut b_acted) = (0, 0);
    let steps = span.as_millis() / 100;
    for _ in 0..steps {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (a_now, b_now) = (acting(a, clock), acting(b, clock));
        assert!(!(a_now && b_now), "both runs may act at {:?}", clock.now());
        a_acted += usize::from(a_now);
        b_acted += usize::from(b_now);
    }
    (a_acted, b_acted)
}

#[tokio::test(start_paused = true)]
async fn a_stalled_holder_and_a_contender_never_act_at_once() {
    let (sim, clock) = (sim(), clock());
    let alice_lease = acquire(&sim, &clock, "sim", owner("alice"), terms(), false)
        .await
        .unwrap();
    let alice = RefCell::new(Some(LeaseStatus::Held {
        until: alice_lease.record().expires,
    }));
    let bob = RefCell::new(None);
    // Alice renews on time for 100 s, stalls for five minutes (asleep), then tries again.
    let alice_runs = async {
        let mut lease = alice_lease;
        let mut elapsed = Duration::ZERO;
        loop {
            tokio::time::sleep(EVERY).await;
            elapsed += EVERY;
            if elapsed > Duration::from_secs(100) && elapsed < Duration::from_secs(400) {
                continue;
            }
            match lease.renew(&sim, &clock).await {
                Ok(()) => {
                    *alice.borrow_mut() = Some(LeaseStatus::Held {
                        until: lease.record().expires,
                    })
                }
                Err(lost) => {
                    *alice.borrow_mut() = Some(LeaseStatus::Lost {
                        reason: lost.to_string(),
                    });
                    return std::future::pending().await;
                }
            }
        }
    };
    let (alice_acted, bob_acted) = tokio::select! {
        counts = watch(&clock, &alice, &bob, Duration::from_secs(900)) => counts,
        () = alice_runs => unreachable!(),
        () = contender(&sim, &clock, "bob", Duration::from_secs(2), &bob) => unreachable!(),
    };
    assert!(
        alice_acted > 0 && bob_acted > 0,
        "{alice_acted} {bob_acted}"
    );
    assert!(matches!(*alice.borrow(), Some(LeaseStatus::Lost { .. })));
}

#[tokio::test(start_paused = true)]
async fn two_runs_breaking_one_dead_lease_at_once_end_with_one_holder() {
    // Every phase between the two runs' attempts, in steps shorter than one AWS call.
    for offset in 0..30u64 {
        let (sim, clock) = (sim(), clock());
        // A holder that died without releasing.
        acquire(&sim, &clock, "sim", owner("carol"), terms(), false)
            .await
            .unwrap();
        let (alice, bob) = (RefCell::new(None), RefCell::new(None));
        let bob_start = Duration::from_millis(offset * 100);
        let (alice_acted, bob_acted) = tokio::select! {
            counts = watch(&clock, &alice, &bob, Duration::from_secs(400)) => counts,
            () = contender(&sim, &clock, "alice", Duration::ZERO, &alice) => unreachable!(),
            () = contender(&sim, &clock, "bob", bob_start, &bob) => unreachable!(),
        };
        assert!(
            alice_acted + bob_acted > 0,
            "somebody took the dead lease over"
        );
    }
}

#[test]
fn a_lease_that_cannot_be_renewed_says_why_once_it_expires() {
    let failing = LeaseStatus::Failing {
        until: 1_800_000_090,
        error: "ssm:PutParameter was denied on /privlink-restart/lease/prod".into(),
    };
    assert_eq!(failing.refusal(1_800_000_000), None, "still held");
    let why = failing.refusal(1_800_000_090).unwrap();
    assert!(
        why.contains("expired at 2027-01-15T08:01:30Z (ssm:PutParameter was denied")
            && why.ends_with("mend that, then --resume"),
        "{why}"
    );
}
