"""The fault tests' checker on synthetic histories (no broker): each anomaly is detected and
named, and a clean history reports zeros."""
from checker import check, decode, encode


def clean_history(partitions=3, per_partition=10):
    """Every record acknowledged at offset = seq, read once in order; the final read equal."""
    log = [(p, s, encode(p, s, 20)) for p in range(partitions) for s in range(per_partition)]
    return log, list(log), list(log)


def test_values_round_trip():
    assert decode(encode(2, 41, 100)) == (2, 41)
    assert len(encode(2, 41, 100)) == 100
    assert decode(b"something else") is None and decode(None) is None


def test_a_clean_run_reports_zeros():
    acked, reads, final = clean_history()
    r = check(acked, reads, final)
    assert r["acked"] == r["read"] == 30 and r["final_records"] == 30
    for k in ("lost", "unread", "duplicated", "reread", "stored_twice", "moved", "divergent",
              "reordered", "misplaced", "unacked_read", "no_offset"):
        assert r[k] == 0, (k, r["summary"])
    assert r["summary"].startswith("acked=30 read=30 lost=0 duplicated=0 reordered=0 moved=0 divergent=0")
    assert set(r["partitions"]) == {0, 1, 2} and r["partitions"][1]["acked"] == 10


def test_a_lost_record_is_detected():
    acked, reads, final = clean_history()
    gone = (1, 4, encode(1, 4, 20))
    reads.remove(gone)
    final.remove(gone)
    r = check(acked, reads, final)
    assert r["lost"] == 1 and r["unread"] == 1 and r["partitions"][1]["lost"] == 1
    assert r["examples"]["lost"] == [(1, 4, 4)]
    assert r["reordered"] == 0 and r["duplicated"] == 0


def test_without_a_final_read_lost_means_never_read():
    acked, reads, _ = clean_history()
    reads.remove((0, 0, encode(0, 0, 20)))
    r = check(acked, reads)
    assert r["lost"] == 1 and not r["final_read"] and "no_final_read" in r["summary"]


def test_a_record_read_then_truncated_away_is_lost_and_its_offset_divergent():
    """The group consumer read (2, 9) from a leader that then lost it; the final log holds
    another record at that offset."""
    acked, reads, final = clean_history()
    final.remove((2, 9, encode(2, 9, 20)))
    final.append((2, 9, encode(2, 10, 20)))  # an unacknowledged record took its offset
    r = check(acked, reads, final)
    assert r["lost"] == 1 and r["unread"] == 0
    assert r["divergent"] == 1 and r["examples"]["divergent"] == [(2, 9, [9, 10])]
    assert r["unacked_read"] == 1


def test_a_rebalance_re_read_is_a_duplicate_not_a_reordering():
    acked, reads, final = clean_history()
    # The consumer read partition 0 up to offset 7, restarted from the committed offset 5.
    p0 = [r for r in reads if r[0] == 0]
    reads = p0[:8] + p0[5:] + [r for r in reads if r[0] != 0]
    r = check(acked, reads, final)
    assert r["duplicated"] == 3 and r["reread"] == 3 and r["stored_twice"] == 0
    assert r["reordered"] == 0 and r["lost"] == 0


def test_a_record_stored_twice_is_a_duplicate():
    """A retried produce appended again: the same value at offsets 3 and 10 of partition 0."""
    acked, reads, final = clean_history()
    again = (0, 10, encode(0, 3, 20))
    reads.append(again)
    final.append(again)
    r = check(acked, reads, final)
    assert r["stored_twice"] == 1 and r["duplicated"] == 1 and r["reread"] == 0
    assert r["reordered"] == 0  # the twice-stored record is left out of the order check
    assert r["examples"]["stored_twice"] == [(3, [(0, 3), (0, 10)])]


def test_a_reordering_is_detected_by_offsets_whatever_the_delivery_order():
    """Sequence numbers 4 and 5 of partition 2 sit at swapped offsets."""
    acked, reads, final = clean_history()

    def swap(rows):
        out = []
        for p, o, v in rows:
            if p == 2 and o in (4, 5):
                v = encode(2, 9 - o, 20)
            out.append((p, o, v))
        return out
    acked, reads, final = swap(acked), swap(reads), swap(final)
    r = check(acked, reads, final)
    assert r["reordered"] == 1 and r["partitions"][2]["reordered"] == 1
    assert r["examples"]["reordered"] == [(2, 4, 5, 5, 4)]
    assert r["lost"] == 0 and r["duplicated"] == 0 and r["moved"] == 0
    # Delivered in any order (here backwards), judged by offset all the same.
    assert check(acked, list(reversed(reads)), final)["reordered"] == 1


def test_a_record_acknowledged_at_one_offset_and_found_at_another_is_moved():
    acked, reads, final = clean_history()
    acked = [(p, o + 1 if (p, o) == (1, 2) else o, v) for p, o, v in acked]
    r = check(acked, reads, final)
    assert r["moved"] == 1 and r["lost"] == 0
    assert r["examples"]["moved"] == [(1, 3, 2, [(1, 2)])]


def test_an_acknowledgement_without_an_offset_is_checked_for_loss_not_for_its_offset():
    """librdkafka reports offset None for a batch it knows persisted only from a later ack."""
    acked, reads, final = clean_history()
    acked = [(p, None if (p, o) in ((0, 3), (1, 1)) else o, v) for p, o, v in acked]
    r = check(acked, reads, final)
    assert r["no_offset"] == 2 and r["moved"] == 0 and r["lost"] == 0
    final.remove((1, 1, encode(1, 1, 20)))
    assert check(acked, reads, final)["lost"] == 1


def test_a_record_read_from_the_wrong_partition_is_misplaced():
    acked, reads, final = clean_history()
    reads.append((0, 10, encode(1, 99, 20)))
    r = check(acked, reads, final)
    assert r["misplaced"] == 1 and r["unacked_read"] == 1


def test_acknowledged_but_unread_is_reported_apart_from_lost():
    """The log has it (final read), the group consumer never delivered it."""
    acked, reads, final = clean_history()
    reads.remove((0, 9, encode(0, 9, 20)))
    r = check(acked, reads, final)
    assert r["unread"] == 1 and r["lost"] == 0


def test_records_after_a_fault_are_counted():
    acked, reads, final = clean_history()
    after = {v for p, o, v in acked if o >= 8}
    reads = [r for r in reads if not (r[0] == 0 and r[1] == 9)]
    r = check(acked, reads, final, after=after)
    assert r["acked_after"] == 6 and r["read_after"] == 5
    assert "acked_after=6 read_after=5" in r["summary"]


def test_an_empty_run_reports_nothing_acked():
    r = check([], [], [], partitions=range(3))
    assert r["acked"] == 0 and r["lost"] == 0 and set(r["partitions"]) == {0, 1, 2}


# --- check_eos: the exactly-once checker ---------------------------------------------------------

from checker import check_eos, out_value, txn_fates  # noqa: E402


def eos_history():
    """Two input partitions of 6 records. Instance a: transaction a.1 transforms seq 0-2 of both
    partitions and commits; a.2 transforms seq 3-4 and is killed before committing. Instance b
    redoes seq 3-5 in b.1 and commits. Output offsets: a.1 at 0-2 (marker 3), a.2 at 4-5 (its
    abort marker comes later), b.1 at 6-8."""
    inputs = [(p, s, encode(p, s)) for p in range(2) for s in range(6)]
    uncommitted, committed = [], []
    for p in range(2):
        for o, s, tag in [(0, 0, "a.1"), (1, 1, "a.1"), (2, 2, "a.1"), (4, 3, "a.2"), (5, 4, "a.2"),
                          (6, 3, "b.1"), (7, 4, "b.1"), (8, 5, "b.1")]:
            rec = (p, o, out_value(encode(p, s), tag))
            uncommitted.append(rec)
            if tag != "a.2":
                committed.append(rec)
    journal = ["init a", "begin a.1", "commit-start a.1 6", "commit-ok a.1", "begin a.2",
               "init b", "begin b.1", "commit-start b.1 6", "commit-ok b.1"]
    return inputs, committed, uncommitted, journal


def test_eos_a_clean_run_reports_zeros():
    inputs, committed, uncommitted, journal = eos_history()
    r = check_eos(inputs, committed, uncommitted, journal)
    assert r["summary"].startswith("in=12 committed_out=12 duplicates=0 missing=0 aborted_seen=0 "
                                   "(partial_txns=0 hidden_committed=0 phantom=0 reordered=0 misplaced=0 unexpected=0;")
    assert r["not_visible"] == 4 and r["uncommitted_out"] == 16
    assert (r["txns_committed"], r["txns_aborted"], r["txns_uncertain"]) == (2, 1, 0)


def test_eos_fates_from_the_journal():
    fates = txn_fates(["begin x.1", "commit-start x.1 3", "commit-ok x.1", "begin x.2", "commit-start x.2 3",
                       "abort-ok x.2", "begin x.3", "begin x.4", "commit-start x.4 2", "fatal x.4 _FENCED"])
    assert fates == {"x.1": "committed", "x.2": "aborted", "x.3": "aborted", "x.4": "uncertain"}


def test_eos_an_aborted_record_seen_is_counted_and_duplicates_its_input():
    inputs, committed, uncommitted, journal = eos_history()
    leaked = [r for r in uncommitted if r[0] == 1 and r[1] == 4]
    r = check_eos(inputs, committed + leaked, uncommitted, journal)
    assert r["aborted_seen"] == 1 and r["duplicates"] == 1 and r["partial_txns"] == 1
    assert r["examples"]["aborted_seen"] == [(1, 4, "a.2")]


def test_eos_missing_and_hidden_committed_records():
    inputs, committed, uncommitted, journal = eos_history()
    r = check_eos(inputs, [c for c in committed if not (c[0] == 0 and c[1] == 8)], uncommitted, journal)
    assert r["missing"] == 1 and r["hidden_committed"] == 1 and r["partial_txns"] == 1
    assert r["examples"]["missing"] == [encode(0, 5)]


def test_eos_an_uncertain_transaction_must_be_all_or_nothing():
    inputs, committed, uncommitted, journal = eos_history()
    journal = [l for l in journal if l != "commit-ok b.1"]  # b died while committing
    assert check_eos(inputs, committed, uncommitted, journal)["txns_uncertain"] == 1
    r = check_eos(inputs, committed, uncommitted, journal)
    assert r["partial_txns"] == 0 and r["missing"] == 0  # it did commit, wholly
    half = [c for c in committed if not (c[0] == 1 and c[1] == 8)]
    assert check_eos(inputs, half, uncommitted, journal)["partial_txns"] == 1


def test_eos_order_placement_phantoms_and_strangers():
    inputs, committed, uncommitted, journal = eos_history()
    swapped = [(p, {1: 2, 2: 1}.get(o, o) if p == 0 else o, v) for p, o, v in committed]
    r = check_eos(inputs, swapped, swapped + [u for u in uncommitted if u not in committed], journal)
    assert r["reordered"] == 1 and r["examples"]["reordered"] == [(0, 1, 2, 2, 1)]
    moved = [(1 - p, o + 100, v) if (p, o) == (0, 0) else (p, o, v) for p, o, v in committed]
    r = check_eos(inputs, moved, uncommitted, journal)
    assert r["misplaced"] == 1 and r["phantom"] == 1
    r = check_eos(inputs, committed + [(0, 9, b"out-9:9:|a.1"), (0, 10, b"junk"),
                                       (0, 11, out_value(encode(0, 0), "zz.1"))], uncommitted, journal)
    assert r["unexpected"] == 3
