//! The invariants, checked after every step of a run:
//!
//! 1. At most one replica leads a partition in any one leader epoch.
//! 2. A leader's high watermark never goes back while it leads in one epoch.
//! 3. No acknowledged record is lost: the leader the committed image names, once it leads in
//!    that image's epoch, has every batch acknowledged so far, at its offset.
//! 4. Replicas never disagree below the high watermark: below the smaller of a replica's and
//!    that leader's high watermarks, both hold the same batches.
//!
//! And once every fault has healed and the producer has stopped, the replicas converge: each
//! holds the leader's log exactly, and every replica is back in the ISR.

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_broker::partition::Partition;
use strom_metadata::MetadataImage;
use strom_storage::BatchHeader;

use crate::cluster::{Node, TOPIC};

/// A broken invariant: the seed and the step replay it exactly.
#[derive(Debug, Clone)]
pub struct Violation {
    pub seed: u64,
    pub step: usize,
    pub now_ms: i64,
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} broke an invariant at step {} (t={} ms): {}\nreplay: STROM_SIM_SEED={} cargo test --release -p strom-sim --test simulation replay -- --nocapture",
            self.seed, self.step, self.now_ms, self.what, self.seed
        )
    }
}

#[derive(Default)]
pub(crate) struct Checker {
    /// Acknowledged batches per partition: base offset -> CRC (unique per batch: unique values).
    acked: BTreeMap<i32, BTreeMap<i64, u32>>,
    /// The highest high watermark seen per (node, incarnation, partition, leader epoch) while it led.
    hw_seen: BTreeMap<(i32, u128, i32, i32), i64>,
    /// Per (node, partition): leading, in which epoch, at the last check.
    roles: BTreeMap<(i32, i32), (bool, i32)>,
    pub leader_changes: u64,
}

/// A replica's batches: base offset -> CRC, read from its segment files.
fn batches(p: &Partition) -> Result<BTreeMap<i64, u32>, String> {
    let slices = p.read_to_end(0, usize::MAX).map_err(|e| format!("reading {}-{}: {e}", p.topic, p.index))?;
    let mut buf = Vec::with_capacity(slices.len);
    for s in &slices.slices {
        s.read_into(&mut buf).map_err(|e| format!("reading {}-{}: {e}", p.topic, p.index))?;
    }
    let mut out = BTreeMap::new();
    let mut pos = 0;
    while pos < buf.len() {
        let h = BatchHeader::parse(&buf, pos).map_err(|e| format!("{}-{} at byte {pos}: {e}", p.topic, p.index))?;
        out.insert(h.base_offset, h.crc);
        pos = h.end_position();
    }
    Ok(out)
}

impl Checker {
    pub fn acked(&mut self, key: i32, base: i64, crc: u32) {
        self.acked.entry(key).or_default().insert(base, crc);
    }

    /// The replica the committed image makes leader, once it leads in the image's epoch.
    fn current_leader<'a>(image: &MetadataImage, nodes: &'a BTreeMap<i32, Node>, key: i32) -> Option<(i32, &'a Arc<Partition>)> {
        let a = image.topic(TOPIC)?.partition(key)?;
        let p = nodes.get(&a.leader).filter(|n| n.is_running())?.partitions.get(&key)?;
        (p.is_leader() && p.leader_epoch() == a.leader_epoch).then_some((a.leader, p))
    }

    pub fn check(&mut self, image: &MetadataImage, nodes: &BTreeMap<i32, Node>) -> Result<(), String> {
        let Some(topic) = image.topic(TOPIC) else { return Ok(()) };
        for key in 0..topic.partition_count() {
            // 1 and 2.
            let mut leaders: BTreeMap<i32, i32> = BTreeMap::new();
            for n in nodes.values().filter(|n| n.is_running()) {
                let Some(p) = n.partitions.get(&key) else { continue };
                let role = (p.is_leader(), p.leader_epoch());
                if self.roles.insert((n.id, key), role).is_some_and(|before| before.0 != role.0 || (role.0 && before.1 != role.1)) {
                    self.leader_changes += 1;
                }
                if !p.is_leader() {
                    continue;
                }
                if let Some(other) = leaders.insert(p.leader_epoch(), n.id) {
                    return Err(format!("partition {key}: nodes {other} and {} both lead in epoch {}", n.id, p.leader_epoch()));
                }
                let hw = p.high_watermark();
                let seen = self.hw_seen.entry((n.id, n.incarnation.as_u128(), key, p.leader_epoch())).or_insert(hw);
                if hw < *seen {
                    return Err(format!("partition {key}: the high watermark of leader {} in epoch {} went back from {} to {hw}", n.id, p.leader_epoch(), *seen));
                }
                *seen = hw;
            }
            // 3 and 4.
            let Some((leader, lp)) = Self::current_leader(image, nodes, key) else { continue };
            let on_leader = batches(lp)?;
            if let Some(acked) = self.acked.get(&key) {
                for (base, crc) in acked {
                    if on_leader.get(base) != Some(crc) {
                        return Err(format!(
                            "partition {key}: the batch acknowledged at offset {base} is missing on leader {leader} (epoch {}, log end {:?})",
                            lp.leader_epoch(),
                            lp.log_end_offset()
                        ));
                    }
                }
            }
            for n in nodes.values().filter(|n| n.is_running() && n.id != leader) {
                let Some(p) = n.partitions.get(&key) else { continue };
                let below = p.high_watermark().min(lp.high_watermark());
                let ours = batches(p)?;
                let theirs: Vec<_> = on_leader.range(..below).collect();
                let mine: Vec<_> = ours.range(..below).collect();
                if theirs != mine {
                    return Err(format!("partition {key}: replica {} disagrees with leader {leader} below offset {below}", n.id));
                }
            }
        }
        Ok(())
    }

    /// After the faults healed and the cluster was quiet: every replica holds its leader's log.
    pub fn converged(&mut self, image: &MetadataImage, nodes: &BTreeMap<i32, Node>) -> Result<(), String> {
        self.check(image, nodes)?;
        let Some(topic) = image.topic(TOPIC) else { return Err("the topic is gone".into()) };
        for (key, a) in topic.partitions.iter().enumerate() {
            let key = key as i32;
            let Some((leader, lp)) = Self::current_leader(image, nodes, key) else {
                return Err(format!("partition {key}: no leader after the faults healed (image: leader {}, epoch {}, isr {:?})", a.leader, a.leader_epoch, a.isr));
            };
            let on_leader = batches(lp)?;
            for n in nodes.values().filter(|n| n.id != leader) {
                let Some(p) = n.partitions.get(&key) else { return Err(format!("partition {key}: node {} has no replica", n.id)) };
                if batches(p)? != on_leader {
                    return Err(format!(
                        "partition {key}: replica {} did not converge on leader {leader} (log ends {:?} and {:?})",
                        n.id,
                        p.log_end_offset(),
                        lp.log_end_offset()
                    ));
                }
            }
            if a.isr.len() != a.replicas.len() {
                return Err(format!("partition {key}: the ISR {:?} did not grow back to the replicas {:?}", a.isr, a.replicas));
            }
        }
        Ok(())
    }
}
