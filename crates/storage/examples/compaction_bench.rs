//! The log cleaner's throughput: writes a compacted partition of `--gb` GiB (1 KiB values,
//! `--unique-percent` distinct keys, 100 records per batch, uncompressed), then times
//! plan + execute + install of one full compaction pass, and the pass after it (which finds
//! nothing left to remove).
//!
//! `cargo run --release -p strom-storage --example compaction_bench -- [--gb 1] [--unique-percent 10] [--dir DIR]`
//!
//! The data directory defaults to a fresh one under the system temp dir and is removed at the
//! end. Page cache is warm for the read side (just written): figures are the cleaner's CPU and
//! write cost, the disk's cold-read speed is not in them.

use std::time::Instant;

use strom_storage::{CleanupPolicy, LogConfig, PartitionLog};

const VALUE_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut gb = 1.0f64;
    let mut unique_percent = 10.0f64;
    let mut dir: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--gb" => gb = value()?.parse()?,
            "--unique-percent" => unique_percent = value()?.parse()?,
            "--dir" => dir = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let owned_dir = dir.is_none();
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join(format!("strom-compaction-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir)?;

    let config = LogConfig {
        segment_bytes: 128 << 20,
        segment_ms: i64::MAX,
        retention_ms: -1,
        retention_bytes: -1,
        index_interval_bytes: 4096,
        max_message_bytes: 8 << 20,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: 86_400_000,
        min_cleanable_dirty_ratio: 0.5,
        message_timestamp_before_max_ms: i64::MAX,
        message_timestamp_after_max_ms: i64::MAX,
    };
    let mut log = PartitionLog::open(&dir, config)?;
    let total_records = ((gb * (1u64 << 30) as f64) / VALUE_BYTES as f64) as u64;
    let unique = ((total_records as f64 * unique_percent / 100.0) as u64).max(1);
    let value = vec![b'v'; VALUE_BYTES];
    let started = Instant::now();
    let mut written = 0u64;
    let mut key_counter = 0u64;
    while written < total_records {
        let n = RECORDS_PER_BATCH.min((total_records - written) as usize);
        let records: Vec<(Vec<u8>, &[u8])> = (0..n)
            .map(|_| {
                // A multiplicative step spreads each key's versions over the whole log.
                key_counter = (key_counter + 7_919) % unique;
                (format!("key-{key_counter:012}").into_bytes(), &value[..])
            })
            .collect();
        let mut batch = build_batch(1_700_000_000_000, &records);
        log.append(&mut batch, 0, 1_700_000_000_000, None)?;
        written += n as u64;
    }
    log.flush()?;
    let size_before = log.size_bytes();
    let write_s = started.elapsed().as_secs_f64();
    println!(
        "wrote {written} records ({unique} distinct keys), {:.0} MiB in {write_s:.1} s",
        size_before as f64 / (1 << 20) as f64
    );
    // The active segment (the last 128 MiB at most) is never cleaned, as in Kafka; its keys
    // still supersede older records.
    for pass in 1..=2 {
        let t = Instant::now();
        let due = log.compaction_due(1_700_000_000_000, i64::MAX);
        let plan = log.compaction_plan(1_700_000_000_000, 86_400_000, i64::MAX)?;
        let result = plan.execute()?;
        let stats = log.install_compaction(result)?;
        let s = t.elapsed().as_secs_f64();
        println!(
            "pass {pass} (due: {due}): {:.1} s, read {:.0} MiB at {:.0} MB/s, wrote {:.0} MiB, removed {} records, {} segments cleaned",
            s,
            stats.bytes_before as f64 / (1 << 20) as f64,
            stats.bytes_before as f64 / 1e6 / s,
            stats.bytes_after as f64 / (1 << 20) as f64,
            stats.records_removed,
            stats.segments_cleaned,
        );
    }
    println!("log size {:.0} MiB -> {:.0} MiB", size_before as f64 / (1 << 20) as f64, log.size_bytes() as f64 / (1 << 20) as f64);
    drop(log);
    if owned_dir {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// A v2 record batch, uncompressed, no producer id: the bytes a plain producer sends.
fn build_batch(timestamp: i64, records: &[(Vec<u8>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::with_capacity(records.len() * (VALUE_BYTES + 32));
    for (i, (key, value)) in records.iter().enumerate() {
        let mut rec = Vec::with_capacity(VALUE_BYTES + 32);
        rec.push(0); // attributes
        varint(&mut rec, 0); // timestamp delta
        varint(&mut rec, i as i64); // offset delta
        varint(&mut rec, key.len() as i64);
        rec.extend_from_slice(key);
        varint(&mut rec, value.len() as i64);
        rec.extend_from_slice(value);
        varint(&mut rec, 0); // headers
        varint(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let mut after_crc = Vec::with_capacity(40 + body.len());
    after_crc.extend_from_slice(&0i16.to_be_bytes()); // attributes
    after_crc.extend_from_slice(&(records.len() as i32 - 1).to_be_bytes()); // lastOffsetDelta
    after_crc.extend_from_slice(&timestamp.to_be_bytes());
    after_crc.extend_from_slice(&timestamp.to_be_bytes());
    after_crc.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    after_crc.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    after_crc.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    after_crc.extend_from_slice(&(records.len() as i32).to_be_bytes());
    after_crc.extend_from_slice(&body);
    let mut batch = Vec::with_capacity(21 + after_crc.len());
    batch.extend_from_slice(&0i64.to_be_bytes()); // base offset, assigned on append
    batch.extend_from_slice(&((9 + after_crc.len()) as i32).to_be_bytes()); // batchLength
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&crc32c::crc32c(&after_crc).to_be_bytes());
    batch.extend_from_slice(&after_crc);
    batch
}

/// Kafka's zig-zag varint.
fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}
