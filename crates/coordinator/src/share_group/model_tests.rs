//! A proptest model of one share partition: members acquire, accept, release and reject
//! records, locks expire, members leave, the log grows and the broker restarts (the partition
//! rebuilt from its persisted snapshot), against a plain model of who holds what.
//!
//! Checked after every step: a record is never acquired by two members at once; an accepted or
//! rejected record is never delivered again; each delivery's count is one more than the last;
//! an acknowledgement of a record the member does not hold is refused and changes nothing; the
//! persisted state replays to the same state; the start offset never passes a record still in
//! flight. At the end, after the locks expire, every record that is not finished and has not
//! reached the delivery limit is delivered again, and none that has.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::partition::{AckType, Limits, LogBatch, SharePartition};

const LIMITS: Limits = Limits { lock_duration_ms: 100, delivery_count_limit: 3, max_record_locks: 8 };
const MEMBERS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    Produce(i64),
    Acquire { member: usize, max: usize },
    /// Acknowledge the `pick`-th held range of `member` (or, when it holds none, an offset it
    /// does not hold).
    Ack { member: usize, pick: usize, ty: u8, whole: bool },
    Wait(i64),
    Leave(usize),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1i64..6).prop_map(Op::Produce),
        4 => (0..3usize, 1..6usize).prop_map(|(member, max)| Op::Acquire { member, max }),
        4 => (0..3usize, 0..4usize, 1u8..4, any::<bool>()).prop_map(|(member, pick, ty, whole)| Op::Ack { member, pick, ty, whole }),
        2 => (1i64..80).prop_map(Op::Wait),
        1 => (0..3usize).prop_map(Op::Leave),
        1 => Just(Op::Restart),
    ]
}

/// The log: batches of up to three offsets, every fifth batch a control batch (a transaction
/// marker, which share consumers never get).
fn batches_from(from: i64, log_end: i64) -> Vec<LogBatch> {
    let mut out = Vec::new();
    let mut base = 0;
    let mut n = 0;
    while base < log_end {
        let last = (base + 2).min(log_end - 1);
        let control = n % 5 == 4;
        let (first, last) = if control { (base, base) } else { (base, last) };
        if last >= from {
            out.push(LogBatch { first_offset: first, last_offset: last, control });
        }
        base = last + 1;
        n += 1;
    }
    out
}

fn is_control(offset: i64, log_end: i64) -> bool {
    batches_from(0, log_end).iter().any(|b| b.control && b.first_offset <= offset && offset <= b.last_offset)
}

#[derive(Default)]
struct Model {
    /// Who holds each offset now, and until when.
    held: BTreeMap<i64, (usize, i64)>,
    /// Accepted or rejected: never delivered again.
    done: BTreeSet<i64>,
    /// Deliveries so far of each offset.
    count: BTreeMap<i64, i16>,
}

fn check_delivery(m: &mut Model, member: usize, first: i64, last: i64, dc: i16, now: i64) -> Result<(), TestCaseError> {
    for o in first..=last {
        prop_assert!(!m.done.contains(&o), "offset {o} delivered after it was accepted or rejected");
        if let Some((other, until)) = m.held.get(&o) {
            prop_assert!(*until <= now, "offset {o} acquired by {member} while {other} holds it");
        }
        let before = m.count.get(&o).copied().unwrap_or(0);
        prop_assert_eq!(dc, before + 1, "delivery count of {}", o);
        prop_assert!(before < LIMITS.delivery_count_limit, "offset {o} delivered past the limit");
        m.count.insert(o, dc);
        m.held.insert(o, (member, now + LIMITS.lock_duration_ms));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn share_partition_model(ops in prop::collection::vec(op(), 1..80)) {
        let mut p = SharePartition::new(0);
        let mut m = Model::default();
        let mut now = 1_000i64;
        let mut log_end = 6i64;
        for op in ops {
            match op {
                Op::Produce(n) => log_end += n,
                Op::Acquire { member, max } => {
                    let from = p.next_fetch_offset(now);
                    let got = p.acquire(MEMBERS[member], &batches_from(from, log_end), max, now, &LIMITS);
                    let n: i64 = got.iter().map(|a| a.last_offset - a.first_offset + 1).sum();
                    prop_assert!(n as usize <= max);
                    for a in got {
                        prop_assert!(a.last_offset < log_end);
                        for o in a.first_offset..=a.last_offset {
                            prop_assert!(!is_control(o, log_end), "control record {o} delivered");
                        }
                        check_delivery(&mut m, member, a.first_offset, a.last_offset, a.delivery_count, now)?;
                    }
                }
                Op::Ack { member, pick, ty, whole } => {
                    let ty = match ty { 1 => AckType::Accept, 2 => AckType::Release, _ => AckType::Reject };
                    let mine: Vec<i64> = m.held.iter().filter(|(_, (h, until))| *h == member && *until > now).map(|(o, _)| *o).collect();
                    let before = p.clone();
                    if mine.is_empty() {
                        // Someone else's (or nobody's) record: refused, nothing changes.
                        let o = m.held.keys().next().copied().unwrap_or(0);
                        prop_assert!(p.acknowledge(MEMBERS[member], o, o, &[ty], now, &LIMITS).is_err());
                        prop_assert_eq!(&p, &before);
                        continue;
                    }
                    let first = mine[pick % mine.len()];
                    let last = if whole { *mine.iter().rev().find(|o| **o >= first && (first..=**o).all(|x| mine.contains(&x))).unwrap_or(&first) } else { first };
                    p.acknowledge(MEMBERS[member], first, last, &[ty], now, &LIMITS).map_err(|e| TestCaseError::fail(format!("ack {first}..={last} refused: {e:?}")))?;
                    for o in first..=last {
                        m.held.remove(&o);
                        if ty != AckType::Release {
                            m.done.insert(o);
                        }
                    }
                    // Acknowledging again is refused: the member no longer holds them.
                    let again = p.clone();
                    prop_assert!(p.acknowledge(MEMBERS[member], first, last, &[AckType::Accept], now, &LIMITS).is_err());
                    prop_assert_eq!(&p, &again);
                }
                Op::Wait(ms) => {
                    now += ms;
                    p.expire_locks(now, &LIMITS);
                    m.held.retain(|_, (_, until)| *until > now);
                }
                Op::Leave(member) => {
                    p.release_member(MEMBERS[member], &LIMITS);
                    m.held.retain(|_, (h, _)| *h != member);
                }
                Op::Restart => {
                    p = SharePartition::from_snapshot(&p.snapshot());
                    m.held.clear();
                }
            }
            // The persisted state replays to the same state.
            prop_assert_eq!(SharePartition::from_snapshot(&p.snapshot()).snapshot(), p.snapshot());
            // Nothing below the start offset is still in flight; done records are finished.
            prop_assert!(p.start_offset() <= p.end_offset());
            for o in m.held.keys() {
                prop_assert!(*o >= p.start_offset());
                prop_assert!(!p.is_finished(*o));
            }
            for o in &m.done {
                prop_assert!(p.is_finished(*o));
            }
            prop_assert!(p.in_flight() <= LIMITS.max_record_locks);
        }
        // Liveness: once every lock has expired, a member fetching until nothing comes gets every
        // record that is neither finished nor at the delivery limit, once.
        now += LIMITS.lock_duration_ms + 1;
        p.expire_locks(now, &LIMITS);
        m.held.clear();
        let mut redelivered = BTreeSet::new();
        loop {
            let from = p.next_fetch_offset(now);
            let got = p.acquire("drain", &batches_from(from, log_end), 1000, now, &LIMITS);
            if got.is_empty() {
                break;
            }
            for a in got {
                check_delivery(&mut m, 0, a.first_offset, a.last_offset, a.delivery_count, now)?;
                redelivered.extend(a.first_offset..=a.last_offset);
            }
            // Accept them all, which frees the record locks for the rest.
            let held: Vec<i64> = m.held.keys().copied().collect();
            for o in held {
                p.acknowledge("drain", o, o, &[AckType::Accept], now, &LIMITS).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                m.held.remove(&o);
                m.done.insert(o);
            }
        }
        for o in 0..log_end {
            let finished = m.done.contains(&o) || is_control(o, log_end) || m.count.get(&o).is_some_and(|c| *c >= LIMITS.delivery_count_limit);
            prop_assert!(finished, "offset {o} (count {:?}) was never finished nor redelivered", m.count.get(&o));
        }
        prop_assert_eq!(p.start_offset(), log_end);
    }
}

/// A fetch that acquired records but could not answer with them (their state could not be
/// stored) undoes the acquisitions: however often that happens, the records are delivered at
/// their next real delivery with count 1, and are never archived for it.
#[test]
fn acquisitions_no_client_saw_never_count_towards_the_limit() {
    let mut p = SharePartition::new(0);
    let log = [LogBatch { first_offset: 0, last_offset: 2, control: false }];
    for round in 0..(LIMITS.delivery_count_limit as i64 * 3) {
        let got = p.acquire("a", &log, 10, round, &LIMITS);
        assert_eq!(got.iter().map(|a| (a.first_offset, a.last_offset, a.delivery_count)).collect::<Vec<_>>(), vec![(0, 2, 1)], "round {round}");
        assert!(p.unacquire_ranges("a", &got));
        assert_eq!(p.owner(0, round), None);
    }
    // Only the member that acquired them can undo an acquisition.
    let got = p.acquire("a", &log, 10, 100, &LIMITS);
    assert!(!p.unacquire_ranges("b", &got));
    assert_eq!(p.owner(1, 100), Some("a"));
    assert_eq!(p.delivery_count(1), Some(1));
    assert_eq!(p.snapshot().ranges, vec![(0, 2, 1)]);
}
