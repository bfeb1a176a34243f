//! Kafka's transaction states with their on-disk codes and allowed transitions (`TransactionState`), and the
//! transaction protocol versions (`TransactionVersion`, the `transaction.version` feature).

/// The state of a transactional id's current transaction. The byte codes are the `TransactionStatus` field of
/// `__transaction_state` values; the names are what DescribeTransactions and ListTransactions report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    /// No transaction: after InitProducerId, or an id that never had one.
    Empty,
    /// Partitions were added; EndTxn or the timeout ends it.
    Ongoing,
    /// EndTxn(commit) is persisted: markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a fencing InitProducerId is persisted: markers are being written.
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    /// Being expired (`transactional.id.expiration.ms`). Kafka never persists it (a tombstone is written instead);
    /// it is decoded, never produced.
    Dead,
    /// A producer is being fenced on the way to PrepareAbort. Never persisted either.
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// The on-disk code (`TransactionStatus`).
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Kafka's name, as DescribeTransactions/ListTransactions report it and ListTransactions filters by it.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Kafka's `validPreviousStates` (as of transactions v2, which lets an Empty or completed transaction go to
    /// PrepareAbort: a TV2 client may abort without knowing whether its transaction started).
    pub fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence, Empty, CompleteCommit, CompleteAbort],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    pub fn can_transition_to(self, to: TxnState) -> bool {
        to.valid_previous().contains(&self)
    }

    /// Whether `transactional.id.expiration.ms` may remove the id in this state (no transaction in flight).
    pub fn expiration_allowed(self) -> bool {
        matches!(self, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort)
    }

    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    pub fn is_complete(self) -> bool {
        matches!(self, TxnState::CompleteCommit | TxnState::CompleteAbort)
    }
}

/// Kafka's `transaction.version` feature levels (KIP-890).
///
/// Two places use one: the cluster's finalized level ([`super::TxnConfig::transaction_version`]) picks the record
/// format (value version 1, flexible, from TV1) and the rules of the aborts the coordinator starts itself (a timeout,
/// a fencing InitProducerId); a client's level, derived from its request's version as Kafka does
/// ([`TransactionVersion::for_end_txn`], [`TransactionVersion::for_add_partitions_to_txn`]), picks the rules of
/// its own EndTxn: with TV2 every EndTxn bumps the producer epoch and the response carries the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum TransactionVersion {
    #[default]
    Tv0,
    /// Flexible `__transaction_state` records.
    Tv1,
    /// An epoch bump at every EndTxn; partitions are added by the broker on Produce/TxnOffsetCommit.
    Tv2,
}

impl TransactionVersion {
    /// The feature's name in ApiVersions (`SupportedFeatures`, `FinalizedFeatures`).
    pub const FEATURE: &'static str = "transaction.version";

    /// The highest level this coordinator implements, which Strom finalizes for every cluster, as
    /// Kafka 4.x does for new ones: clients that know transactions v2 use it; older clients keep
    /// speaking v1, whose requests the coordinator still serves by their own rules.
    pub const FINALIZED: TransactionVersion = TransactionVersion::Tv2;

    pub fn feature_level(self) -> i16 {
        match self {
            TransactionVersion::Tv0 => 0,
            TransactionVersion::Tv1 => 1,
            TransactionVersion::Tv2 => 2,
        }
    }

    /// The level a record carries (`ClientTransactionVersion`); levels above the highest known mean the highest.
    pub fn from_feature_level(level: i16) -> TransactionVersion {
        match level {
            i16::MIN..=0 => TransactionVersion::Tv0,
            1 => TransactionVersion::Tv1,
            _ => TransactionVersion::Tv2,
        }
    }

    /// The `__transaction_state` value version this level writes: 1 (flexible) from TV1, else 0.
    pub fn log_value_version(self) -> i16 {
        if self >= TransactionVersion::Tv1 {
            1
        } else {
            0
        }
    }

    pub fn supports_epoch_bump(self) -> bool {
        self >= TransactionVersion::Tv2
    }

    /// Kafka's `transactionVersionForEndTxn`: EndTxn v5+ comes from a TV2 client.
    pub fn for_end_txn(request_version: i16) -> TransactionVersion {
        if request_version > 4 {
            TransactionVersion::Tv2
        } else {
            TransactionVersion::Tv0
        }
    }

    /// Kafka's `transactionVersionForAddPartitionsToTxn`: v4+ comes from a TV2 client or from a broker adding
    /// partitions on a Produce. AddOffsetsToTxn always passes [`TransactionVersion::Tv0`].
    pub fn for_add_partitions_to_txn(request_version: i16) -> TransactionVersion {
        if request_version > 3 {
            TransactionVersion::Tv2
        } else {
            TransactionVersion::Tv0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_have_kafkas_codes_names_and_transitions() {
        use TxnState::*;
        for (s, id, name) in [
            (Empty, 0, "Empty"),
            (Ongoing, 1, "Ongoing"),
            (PrepareCommit, 2, "PrepareCommit"),
            (PrepareAbort, 3, "PrepareAbort"),
            (CompleteCommit, 4, "CompleteCommit"),
            (CompleteAbort, 5, "CompleteAbort"),
            (Dead, 6, "Dead"),
            (PrepareEpochFence, 7, "PrepareEpochFence"),
        ] {
            assert_eq!((s.id(), s.name(), TxnState::from_id(id), TxnState::from_name(name)), (id, name, Some(s), Some(s)));
        }
        assert!(Ongoing.can_transition_to(PrepareCommit) && !Empty.can_transition_to(PrepareCommit));
        assert!(Empty.can_transition_to(PrepareAbort), "transactions v2 abort an Empty transaction");
        assert!(!CompleteCommit.can_transition_to(CompleteAbort) && PrepareAbort.can_transition_to(CompleteAbort));
        assert!(!Ongoing.can_transition_to(Dead) && CompleteAbort.can_transition_to(Dead));
        assert_eq!(TransactionVersion::for_end_txn(4), TransactionVersion::Tv0);
        assert_eq!(TransactionVersion::for_end_txn(5), TransactionVersion::Tv2);
        assert_eq!(TransactionVersion::for_add_partitions_to_txn(4), TransactionVersion::Tv2);
        assert_eq!((TransactionVersion::Tv0.log_value_version(), TransactionVersion::Tv1.log_value_version()), (0, 1));
    }
}
