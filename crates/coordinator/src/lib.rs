//! Strom's coordinators as pure, deterministic state machines. Each takes the time as an
//! argument and returns what the outside world must do (records to append, parked requests to
//! answer) as effects; the broker runs them behind its own locks and does the I/O.
//!
//! - [`group`]: Kafka's classic consumer-group protocol.
//! - [`consumer_group`]: KIP-848 consumer groups (the broker assigns, members reconcile).
//! - [`share_group`]: KIP-932 share groups (queues): membership, share partitions, their state.
//! - [`txn`]: Kafka's transaction coordinator (KIP-98, KIP-360, KIP-890).
//! - [`batch`]: the RecordBatch v2 codec of the coordinators' logs (plain, transactional, markers).

pub mod batch;
pub mod consumer_group;
pub mod group;
pub mod share_group;
pub mod txn;

/// The partition of a coordinator topic (`__consumer_offsets`, `__transaction_state`) that owns `key` (a group id
/// or a transactional id): Kafka's `Utils.abs(key.hashCode) % partitions`, with Java's `String.hashCode` over UTF-16
/// code units, so a key maps to the same partition number as on a Kafka cluster with the same partition count.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    let hash = key.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    // Kafka's Utils.abs maps MIN_VALUE to 0.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::partition_for;

    #[test]
    fn partition_matches_java_string_hashcode() {
        // Java: "test-group".hashCode() == 627841412; "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(partition_for("test-group", 50), 12);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("é", 50), 233 % 50);
    }
}
