//! Property test: random interleavings of producers, appends that succeed or fail, markers, timers and partition
//! reloads against the transaction coordinator, with Kafka's guarantees checked after every step and at the end.
//!
//! Each transactional id has two producers: the current one and a zombie (an older instance that kept its producer
//! id and epoch). The broker side is modelled too: appends and marker jobs are queued and completed in any order,
//! a completed append lands in the partition's log, and a reload (a leadership change) may or may not find the
//! appends that were in flight in the log. Invariants:
//!
//! - one thing in flight per id (an append or a marker job) per load;
//! - epochs never go back: per producer id in the log, per producer id handed to clients, in memory within a load;
//! - a producer that was fenced (by a newer InitProducerId, a timeout, a fencing InitProducerId) cannot start a
//!   Prepare* or add partitions: only the (producer id, epoch) the coordinator last handed out can;
//! - records round-trip: replaying a partition's log gives the state in memory;
//! - liveness: once appends stop failing, every Prepare* in the log gets its Complete*, and no transaction stays
//!   Ongoing past its timeout, whatever the clients did.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError as E;
use proptest::prelude::*;

use super::*;

const IDS: [&str; 3] = ["t0", "t1", "t2"];
const TIMEOUT: i32 = 10_000;
const EXPIRATION: i64 = 200_000;

/// Producer ids from a counter.
fn counter(next: &mut i64) -> impl FnMut() -> Result<i64, E> + '_ {
    move || {
        *next += 1;
        Ok(*next)
    }
}

fn partition_of(id: usize) -> i32 {
    (id % 2) as i32
}

#[derive(Debug, Clone)]
enum Op {
    /// What a well-behaved producer does next: InitProducerId, add a partition, or commit (some abort).
    Act(usize, u8),
    Init(usize, usize, bool),
    Add(usize, usize, u8),
    End(usize, usize, bool),
    /// Complete the n-th append in flight: replicated, or failed.
    Complete(usize, bool),
    Markers(usize),
    Tick(i64),
    /// Move a partition's leadership away and back; whether the appends in flight made it into the log.
    Reload(i32, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0..IDS.len();
    let slot = prop_oneof![4 => Just(0usize), 1 => Just(1usize)];
    prop_oneof![
        8 => (id.clone(), any::<u8>()).prop_map(|(i, r)| Op::Act(i, r)),
        2 => (id.clone(), slot.clone(), any::<bool>()).prop_map(|(i, s, e)| Op::Init(i, s, e)),
        4 => (id.clone(), slot.clone(), 0..4u8).prop_map(|(i, s, p)| Op::Add(i, s, p)),
        3 => (id, slot, any::<bool>()).prop_map(|(i, s, c)| Op::End(i, s, c)),
        8 => (0..4usize, prop::bool::weighted(0.85)).prop_map(|(n, ok)| Op::Complete(n, ok)),
        4 => (0..3usize).prop_map(Op::Markers),
        3 => (0..4_000i64).prop_map(Op::Tick),
        1 => (0..30_000i64).prop_map(Op::Tick),
        1 => (0..2i32, any::<bool>()).prop_map(|(p, land)| Op::Reload(p, land)),
    ]
}

#[derive(Debug, Clone, Copy, Default)]
struct Producer {
    /// -1 before InitProducerId succeeded.
    pid: i64,
    epoch: i16,
    /// It added a partition since its last EndTxn.
    in_txn: bool,
}

/// Who waits for an append.
#[derive(Debug, Clone)]
enum Origin {
    Init { id: usize, slot: usize, then: InitProducerIdResponse },
    Add { id: usize, slot: usize },
    End { id: usize, slot: usize, then: EndTxnResponse },
    Internal,
}

#[derive(Debug, Clone)]
struct Markers {
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
}

struct Model {
    c: TransactionCoordinator,
    tv: TransactionVersion,
    now: i64,
    next_pid: i64,
    epochs: [i32; 2],
    producers: Vec<[Producer; 2]>,
    appends: Vec<(TxnAppend, Origin)>,
    markers: Vec<Markers>,
    log: [Vec<(TxnLogKey, Option<TxnLogValue>)>; 2],
    /// The (producer id, epoch) last handed to a client per id, and whether the coordinator aborted since.
    issued: Vec<Option<(i64, i16)>>,
    revoked: Vec<bool>,
    /// Producer ids handed out per id, with the last epoch handed out with each.
    handed: Vec<BTreeMap<i64, i16>>,
    /// The (producer id, epoch) seen in memory, per id, within the current load.
    seen: BTreeMap<String, (i64, i16)>,
    /// What happened, for `TXN_MODEL_STATS=1` (is the model reaching the interesting states?).
    stats: BTreeMap<&'static str, u32>,
}

impl Model {
    /// `near_max`: every id starts a few epochs short of running out, so that rotations happen.
    fn new(tv: TransactionVersion, near_max: bool) -> Model {
        let config = TxnConfig { transaction_version: tv, transactional_id_expiration_ms: EXPIRATION, ..TxnConfig::default() };
        let mut c = TransactionCoordinator::new(config);
        let mut log: [Vec<(TxnLogKey, Option<TxnLogValue>)>; 2] = [Vec::new(), Vec::new()];
        if near_max {
            for (i, id) in IDS.iter().enumerate() {
                let v = TxnLogValue {
                    producer_id: 50 + i as i64,
                    previous_producer_id: -1,
                    next_producer_id: -1,
                    producer_epoch: i16::MAX - 4,
                    timeout_ms: TIMEOUT,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    last_update_ms: 0,
                    start_ms: -1,
                    client_transaction_version: TransactionVersion::Tv0,
                };
                log[partition_of(i) as usize].push((TxnLogKey::new(id), Some(v)));
            }
        }
        c.load_partition(0, 1, log[0].clone(), 0);
        c.load_partition(1, 1, log[1].clone(), 0);
        Model {
            c,
            tv,
            now: 0,
            next_pid: 100,
            epochs: [1, 1],
            producers: vec![[Producer { pid: -1, epoch: -1, in_txn: false }; 2]; IDS.len()],
            appends: Vec::new(),
            markers: Vec::new(),
            log,
            issued: vec![None; IDS.len()],
            revoked: vec![false; IDS.len()],
            handed: vec![BTreeMap::new(); IDS.len()],
            seen: BTreeMap::new(),
            stats: BTreeMap::new(),
        }
    }

    fn client_tv(&self) -> TransactionVersion {
        // A client speaks transactions v2 only on a cluster that finalized it.
        self.tv
    }

    fn index(id: &str) -> usize {
        IDS.iter().position(|i| *i == id).unwrap_or(0)
    }

    /// The coordinator agreed to change a transaction on behalf of `(id, slot)`: it must be the producer last handed
    /// out, not aborted by the coordinator since.
    fn check_legit(&self, id: usize, slot: usize, what: &str) -> Result<(), TestCaseError> {
        let p = self.producers[id][slot];
        prop_assert!(!self.revoked[id], "{what} accepted from {:?} after the coordinator aborted {}", p, IDS[id]);
        prop_assert_eq!(self.issued[id], Some((p.pid, p.epoch)), "{} accepted from a fenced producer of {}", what, IDS[id]);
        Ok(())
    }

    fn hand_out(&mut self, id: usize, slot: usize, pid: i64, epoch: i16, init: bool) -> Result<(), TestCaseError> {
        if let Some(last) = self.handed[id].get(&pid) {
            if init {
                prop_assert!(epoch > *last, "InitProducerId handed out {pid}/{epoch} after {last}");
            } else {
                prop_assert!(epoch >= *last, "EndTxn handed out {pid}/{epoch} after {last}");
            }
        } else {
            prop_assert!(!self.handed.iter().enumerate().any(|(i, h)| i != id && h.contains_key(&pid)), "producer id {pid} reused");
        }
        let rotated = self.producers[id][slot].pid != pid;
        self.handed[id].insert(pid, epoch);
        self.producers[id][slot] = Producer { pid, epoch, in_txn: false };
        self.issued[id] = Some((pid, epoch));
        // A new InitProducerId makes the other instance a zombie. A TV2 EndTxn(abort) at the end of the epochs is
        // also answered with the rotated producer id when the coordinator aborted first (Kafka treats it as a
        // retry of the abort): the producer goes on under the new id.
        if init || rotated {
            self.revoked[id] = false;
        }
        Ok(())
    }

    fn queue(&mut self, fx: Vec<TxnEffect>) -> Result<(), TestCaseError> {
        for e in fx {
            match e {
                TxnEffect::Append(a) => self.park(a, Origin::Internal)?,
                TxnEffect::WriteMarkers { transactional_id, producer_id, producer_epoch, coordinator_epoch, partitions, .. } => {
                    prop_assert!(!partitions.is_empty(), "markers for no partition");
                    self.markers.push(Markers { transactional_id, producer_id, producer_epoch, coordinator_epoch });
                }
            }
        }
        self.check_in_flight()
    }

    fn park(&mut self, a: TxnAppend, origin: Origin) -> Result<(), TestCaseError> {
        self.appends.push((a, origin));
        self.check_in_flight()
    }

    fn current(&self, partition: i32, epoch: i32) -> bool {
        self.epochs.get(partition as usize) == Some(&epoch)
    }

    fn check_in_flight(&self) -> Result<(), TestCaseError> {
        let mut busy = BTreeSet::new();
        for (a, _) in &self.appends {
            if self.current(a.partition, a.coordinator_epoch) {
                prop_assert!(busy.insert(a.transactional_id.clone()), "two things in flight for {}", a.transactional_id);
            }
        }
        for m in &self.markers {
            let p = partition_of(Self::index(&m.transactional_id));
            if self.current(p, m.coordinator_epoch) {
                prop_assert!(busy.insert(m.transactional_id.clone()), "markers and more in flight for {}", m.transactional_id);
            }
        }
        Ok(())
    }

    /// Report an append's outcome and deliver the answer.
    fn complete(&mut self, a: TxnAppend, origin: Origin, ok: bool) -> Result<(), TestCaseError> {
        // The broker cannot append for a load it no longer has.
        let landed = ok && self.current(a.partition, a.coordinator_epoch);
        if landed {
            self.log[a.partition as usize].push((a.key.clone(), a.value.clone()));
                if a.value.as_ref().is_some_and(|v| v.producer_epoch == 0 && v.previous_producer_id != v.producer_id && v.previous_producer_id >= 0) {
                *self.stats.entry("rotations").or_default() += 1;
            }
            let what = match a.value.as_ref().map(|v| v.state) {
                None => "expired",
                Some(TxnState::CompleteCommit) => "committed",
                Some(TxnState::CompleteAbort) => "aborted",
                Some(TxnState::PrepareAbort) if matches!(origin, Origin::Internal | Origin::Init { .. }) => "coordinator aborts",
                Some(_) => "other records",
            };
            *self.stats.entry(what).or_default() += 1;
        }
        let result = if landed { Ok(()) } else if ok { Err(E::NotCoordinator) } else { Err(E::CoordinatorNotAvailable) };
        let out = self.c.append_completed(&a, result, self.now);
        prop_assert_eq!(out.result.is_ok(), landed, "append outcome {:?} for {:?}", out.result, result);
        let coordinator_abort = landed
            && a.value.as_ref().is_some_and(|v| v.state == TxnState::PrepareAbort)
            && matches!(origin, Origin::Internal | Origin::Init { .. });
        if coordinator_abort {
            self.revoked[Self::index(&a.transactional_id)] = true;
        }
        match origin {
            Origin::Init { id, slot, then } => {
                let r = out.reply(then);
                if r.error.is_none() {
                    self.hand_out(id, slot, r.producer_id, r.producer_epoch, true)?;
                }
            }
            Origin::Add { id, slot } => {
                if out.result.is_ok() {
                    self.producers[id][slot].in_txn = true;
                }
            }
            Origin::End { id, slot, then } => {
                self.producers[id][slot].in_txn = false;
                let r = out.reply(then);
                if r.error.is_none() && r.producer_id >= 0 {
                    self.hand_out(id, slot, r.producer_id, r.producer_epoch, false)?;
                }
            }
            Origin::Internal => {}
        }
        self.queue(out.effects)
    }

    fn reload(&mut self, p: i32, land: bool) -> Result<(), TestCaseError> {
        let (mine, rest): (Vec<_>, Vec<_>) = self.appends.drain(..).partition(|(a, _)| a.partition == p);
        self.appends = rest;
        self.markers.retain(|m| partition_of(Self::index(&m.transactional_id)) != p);
        self.check_round_trip(p)?;
        if land {
            for (a, _) in &mine {
                if self.current(a.partition, a.coordinator_epoch) {
                    self.log[p as usize].push((a.key.clone(), a.value.clone()));
                }
            }
        }
        self.epochs[p as usize] += 1;
        let records = self.replay_log(p)?;
        let fx = self.c.load_partition(p, self.epochs[p as usize], records, self.now);
        self.seen.retain(|id, _| partition_of(Self::index(id)) != p);
        // The requests of the old load are answered NOT_COORDINATOR (their record may or may not be in the log).
        for (a, origin) in mine {
            let out = self.c.append_completed(&a, Ok(()), self.now);
            prop_assert_eq!(&out.result, &Err(E::NotCoordinator));
            prop_assert!(out.effects.is_empty());
            if land {
                if let Some(v) = &a.value {
                    if v.state == TxnState::PrepareAbort && matches!(origin, Origin::Internal | Origin::Init { .. }) {
                        self.revoked[Self::index(&a.transactional_id)] = true;
                    }
                }
            }
        }
        self.queue(fx)
    }

    /// The partition's log through the batch codec, as a load reads it.
    fn replay_log(&self, p: i32) -> Result<Vec<(TxnLogKey, Option<TxnLogValue>)>, TestCaseError> {
        let mut out = Vec::new();
        for (k, v) in &self.log[p as usize] {
            let bytes = match v {
                Some(v) => (k.encode(), Some(v.encode(self.tv.log_value_version()))),
                None => (k.encode(), None),
            };
            let batch = crate::batch::encode(&[bytes], None, self.now).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for (key, value, _) in decode_batch(batch.freeze()).map_err(|e| TestCaseError::fail(e.to_string()))? {
                let r = decode_record(&key, value.as_deref()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                out.push(r);
            }
        }
        Ok(out)
    }

    /// What memory holds of a settled id equals what its log replays to.
    fn check_round_trip(&self, p: i32) -> Result<(), TestCaseError> {
        let mut fresh = TransactionCoordinator::new(self.c.config().clone());
        fresh.load_partition(p, 0, self.replay_log(p)?, self.now);
        for id in IDS.iter().filter(|id| partition_of(Self::index(id)) == p) {
            let Some(mem) = self.c.snapshot(id) else {
                prop_assert!(fresh.snapshot(id).is_none(), "{id} is in the log but not in memory");
                continue;
            };
            if mem.pending.is_some() || mem.has_failed_epoch_fence || mem.producer_epoch == -1 {
                continue;
            }
            let log = fresh.snapshot(id);
            prop_assert!(log.is_some(), "{id} is in memory but not in the log");
            if let Some(mut log) = log {
                // Not persisted by Kafka: the last epoch; and value version 0 has no tagged fields.
                log.last_producer_epoch = mem.last_producer_epoch;
                log.partition = mem.partition;
                if self.tv.log_value_version() == 0 {
                    log.previous_producer_id = mem.previous_producer_id;
                    log.next_producer_id = mem.next_producer_id;
                    log.client_transaction_version = mem.client_transaction_version;
                }
                prop_assert_eq!(log, mem);
            }
        }
        Ok(())
    }

    fn check_memory(&mut self) -> Result<(), TestCaseError> {
        for id in IDS {
            if let Some(s) = self.c.snapshot(id) {
                if let Some((pid, epoch)) = self.seen.get(id) {
                    if *pid == s.producer_id {
                        prop_assert!(s.producer_epoch >= *epoch, "{id}: epoch went back from {epoch} to {}", s.producer_epoch);
                    }
                }
                self.seen.insert(id.to_string(), (s.producer_id, s.producer_epoch));
            }
        }
        Ok(())
    }

    fn check_log(&self, settled: bool) -> Result<(), TestCaseError> {
        for log in &self.log {
            let mut by_id: BTreeMap<&str, Vec<&TxnLogValue>> = BTreeMap::new();
            for (k, v) in log {
                if let Some(v) = v {
                    by_id.entry(&k.transactional_id).or_default().push(v);
                }
            }
            for (id, values) in by_id {
                let mut last: BTreeMap<i64, i16> = BTreeMap::new();
                let mut retired = BTreeSet::new();
                let mut current = None;
                for v in &values {
                    if current != Some(v.producer_id) {
                        if let Some(old) = current {
                            retired.insert(old);
                        }
                        prop_assert!(!retired.contains(&v.producer_id), "{id}: producer id {} came back", v.producer_id);
                        current = Some(v.producer_id);
                    }
                    let e = last.entry(v.producer_id).or_insert(v.producer_epoch);
                    prop_assert!(v.producer_epoch >= *e, "{id}: logged epoch went back from {} to {}", e, v.producer_epoch);
                    *e = v.producer_epoch;
                }
                if settled {
                    let open = values.iter().rposition(|v| v.state.is_prepare());
                    let done = values.iter().rposition(|v| v.state.is_complete());
                    prop_assert!(open.is_none() || done > open, "{id}: a Prepare* without its Complete*");
                }
            }
        }
        Ok(())
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        let tv = self.client_tv();
        match op {
            Op::Act(id, r) => {
                let p = self.producers[id][0];
                let next = if p.pid < 0 {
                    Op::Init(id, 0, false)
                } else if !p.in_txn || r % 4 == 0 {
                    Op::Add(id, 0, r % 4)
                } else {
                    Op::End(id, 0, r % 8 != 1)
                };
                return self.step(next);
            }
            Op::Init(id, slot, recover) => {
                let p = self.producers[id][slot];
                let expected = (recover && p.pid >= 0).then_some((p.pid, p.epoch));
                let r = {
                    let mut alloc = counter(&mut self.next_pid);
                    self.c.init_producer_id(IDS[id], TIMEOUT, expected, partition_of(id), self.now, &mut alloc)
                };
                match r {
                    TxnReply::Now(r) => prop_assert!(r.error.is_some(), "InitProducerId answered OK without an append"),
                    TxnReply::AfterAppend { append, then } => self.park(append, Origin::Init { id, slot, then })?,
                }
            }
            Op::Add(id, slot, partition) => {
                let p = self.producers[id][slot];
                if p.pid < 0 {
                    return Ok(());
                }
                let tp = TopicPartition::new(if partition % 2 == 0 { "a" } else { "b" }, i32::from(partition));
                let add_tv = if tv.supports_epoch_bump() { TransactionVersion::for_add_partitions_to_txn(5) } else { TransactionVersion::Tv0 };
                match self.c.add_partitions(IDS[id], p.pid, p.epoch, [tp], add_tv, self.now) {
                    TxnReply::Now(None) => self.check_legit(id, slot, "AddPartitions")?,
                    TxnReply::Now(Some(_)) => {}
                    TxnReply::AfterAppend { append, .. } => {
                        self.check_legit(id, slot, "AddPartitions")?;
                        self.park(append, Origin::Add { id, slot })?;
                    }
                }
            }
            Op::End(id, slot, commit) => {
                let p = self.producers[id][slot];
                if p.pid < 0 {
                    return Ok(());
                }
                let r = {
                    let mut alloc = counter(&mut self.next_pid);
                    self.c.end_txn(IDS[id], p.pid, p.epoch, commit, tv, self.now, &mut alloc)
                };
                match r {
                    TxnReply::Now(r) => {
                        self.producers[id][slot].in_txn = false;
                        if r.error.is_none() && r.producer_id >= 0 {
                            self.hand_out(id, slot, r.producer_id, r.producer_epoch, false)?;
                        }
                    }
                    TxnReply::AfterAppend { append, then } => {
                        self.check_legit(id, slot, "EndTxn")?;
                        self.park(append, Origin::End { id, slot, then })?;
                    }
                }
            }
            Op::Complete(n, ok) => {
                if !self.appends.is_empty() {
                    let (a, origin) = self.appends.remove(n % self.appends.len());
                    self.complete(a, origin, ok)?;
                }
            }
            Op::Markers(n) => {
                if !self.markers.is_empty() {
                    let m = self.markers.remove(n % self.markers.len());
                    let fx = self.c.markers_written(&m.transactional_id, m.producer_id, m.producer_epoch, m.coordinator_epoch, self.now);
                    self.queue(fx)?;
                }
            }
            Op::Tick(dt) => {
                self.now += dt;
                let fx = {
                    let mut alloc = counter(&mut self.next_pid);
                    self.c.tick(self.now, &mut alloc)
                };
                self.queue(fx)?;
            }
            Op::Reload(p, land) => self.reload(p, land)?,
        }
        self.check_memory()?;
        self.check_log(false)
    }

    /// Let every append succeed and every marker be written, with time running, until nothing is left to do.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..50 {
            while let Some((a, origin)) = self.appends.pop() {
                self.complete(a, origin, true)?;
            }
            while let Some(m) = self.markers.pop() {
                let fx = self.c.markers_written(&m.transactional_id, m.producer_id, m.producer_epoch, m.coordinator_epoch, self.now);
                self.queue(fx)?;
            }
            self.now += i64::from(TIMEOUT) + 1;
            let fx = {
                let mut alloc = counter(&mut self.next_pid);
                self.c.tick(self.now, &mut alloc)
            };
            if fx.is_empty() && self.appends.is_empty() && self.markers.is_empty() {
                return Ok(());
            }
            self.queue(fx)?;
        }
        Err(TestCaseError::fail("the coordinator never settled"))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn transaction_coordinator_invariants(tv2 in any::<bool>(), near_max in prop::bool::weighted(0.3), ops in proptest::collection::vec(op(), 1..120)) {
        let tv = if tv2 { TransactionVersion::Tv2 } else { TransactionVersion::Tv0 };
        let mut m = Model::new(tv, near_max);
        for op in ops {
            m.step(op)?;
        }
        m.settle()?;
        for id in IDS {
            if let Some(s) = m.c.snapshot(id) {
                prop_assert!(s.pending.is_none(), "{id} still pending: {s:?}");
                prop_assert!(!s.state.is_prepare() && s.state != TxnState::Ongoing, "{id} left {:?}", s.state);
            }
        }
        m.check_log(true)?;
        if std::env::var_os("TXN_MODEL_STATS").is_some() {
            eprintln!("STAT {:?} reloads={}", m.stats, m.epochs.iter().sum::<i32>() - 2);
        }
        for p in 0..2 {
            m.check_round_trip(p)?;
        }
        // Far in the future every id has expired.
        m.now += EXPIRATION + 1;
        let fx = {
            let mut alloc = counter(&mut m.next_pid);
            m.c.tick(m.now, &mut alloc)
        };
        m.queue(fx)?;
        m.settle()?;
        prop_assert_eq!(m.c.transactional_ids().count(), 0);
    }
}

