//! The wire format of request versions Kafka 3.9 served and Kafka 4.0 dropped (KIP-896), which
//! kafka-protocol 0.18 (built from Kafka 4.1's schemas) cannot decode or encode: Produce v0-2,
//! Fetch v0-3, ListOffsets v0, CreateTopics v0-1, DeleteTopics v0, DescribeConfigs v0,
//! OffsetCommit v0-1, OffsetFetch v0, OffsetForLeaderEpoch v0-1, WriteTxnMarkers v0, DescribeLogDirs
//! v0, and the ACL APIs' v0 (`acls`). Deployed clients still send them (Burrow's ListOffsets v0, sarama's
//! OffsetCommit v1 and DescribeConfigs v0, segmentio kafka-go's Produce v2 and Fetch v2).
//! Produce v0-2 and Fetch v0-3 carry message formats v0/v1; the handlers convert the records
//! (`strom_storage::up_convert`, `down_convert`), this module only codes the requests around them.
//!
//! Every one of them is a non-flexible version (request header v1, response header v0), and
//! each maps onto the crate's structs: a request decodes into the struct of the lowest version
//! the crate knows, with Kafka's defaults for the fields the old version lacks; a response is
//! written from the struct the handler filled, leaving out what the old version lacks. Two old
//! requests carry fields the crate's structs have no room for (ListOffsets v0's
//! `max_num_offsets`, OffsetCommit v1's per-partition `commit_timestamp`), and ListOffsets v0's
//! answer (`old_style_offsets`, a list per partition) has no counterpart at all: those travel as
//! [`OldRequest`] and [`OldResponse`]. The layouts follow Kafka 3.9's message schemas
//! (`clients/src/main/resources/common/message/*.json`).
//!
//! Counts and lengths come from the wire: nothing is allocated from a count before the bytes it
//! claims have been read, and running out of bytes is a decode error (the connection closes).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, DescribeConfigsRequest, FetchRequest, GroupId, OffsetCommitRequest,
    OffsetForLeaderEpochRequest, ProduceRequest, ProducerId, RequestKind, ResponseKind, TopicName, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

mod acls;

/// Kafka's ConfigSource DEFAULT_CONFIG: DescribeConfigs v0 has only `is_default`.
const DEFAULT_CONFIG: i8 = 5;

/// The (API, lowest, highest) versions this module codes; kafka-protocol codes the rest.
pub const OLD_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 2),
    (ApiKey::Fetch, 0, 3),
    (ApiKey::ListOffsets, 0, 0),
    (ApiKey::CreateTopics, 0, 1),
    (ApiKey::DeleteTopics, 0, 0),
    (ApiKey::DescribeConfigs, 0, 0),
    (ApiKey::OffsetCommit, 0, 1),
    (ApiKey::OffsetFetch, 0, 0),
    (ApiKey::OffsetForLeaderEpoch, 0, 1),
    (ApiKey::WriteTxnMarkers, 0, 0),
    (ApiKey::DescribeAcls, 0, 0),
    (ApiKey::CreateAcls, 0, 0),
    (ApiKey::DeleteAcls, 0, 0),
    (ApiKey::DescribeLogDirs, 0, 0),
];

pub fn is_old(key: ApiKey, version: i16) -> bool {
    OLD_VERSIONS.iter().any(|(k, lo, hi)| *k == key && (*lo..=*hi).contains(&version))
}

/// Every old version is non-flexible: request header v1 (client id, no tagged fields).
/// kafka-protocol's own answer is wrong for some (it gives WriteTxnMarkers header v2 always).
pub fn request_header_version(key: ApiKey, version: i16) -> i16 {
    if is_old(key, version) { 1 } else { key.request_header_version(version) }
}

/// Response header v0 (correlation id only) for every old version.
pub fn response_header_version(key: ApiKey, version: i16) -> i16 {
    if is_old(key, version) { 0 } else { key.response_header_version(version) }
}

/// An old request whose fields do not all fit the crate's struct.
#[derive(Debug)]
pub enum OldRequest {
    ListOffsetsV0(ListOffsetsV0Request),
    /// OffsetCommit v1 as the crate's struct (v2 and later), with each partition's
    /// `commit_timestamp` beside it: `commit_timestamps[t][p]` for `topics[t].partitions[p]`.
    OffsetCommitV1 { request: OffsetCommitRequest, commit_timestamps: Vec<Vec<i64>> },
}

#[derive(Debug, Default)]
pub struct ListOffsetsV0Request {
    pub replica_id: i32,
    pub topics: Vec<(TopicName, Vec<ListOffsetsV0Partition>)>,
}

#[derive(Debug, Clone, Copy)]
pub struct ListOffsetsV0Partition {
    pub partition: i32,
    pub timestamp: i64,
    pub max_num_offsets: i32,
}

/// An old response with no counterpart in the crate.
#[derive(Debug)]
pub enum OldResponse {
    ListOffsetsV0(ListOffsetsV0Response),
}

#[derive(Debug, Default)]
pub struct ListOffsetsV0Response {
    pub topics: Vec<(TopicName, Vec<ListOffsetsV0PartitionResponse>)>,
}

#[derive(Debug, Default)]
pub struct ListOffsetsV0PartitionResponse {
    pub partition: i32,
    pub error_code: i16,
    pub old_style_offsets: Vec<i64>,
}

/// A decoded old request: into the crate's struct where it fits, else an [`OldRequest`].
pub enum Decoded {
    Kafka(RequestKind),
    Old(OldRequest),
}

/// Decodes the body of an old request (`is_old(key, version)` must hold).
pub fn decode_request(key: ApiKey, version: i16, body: &mut Bytes) -> Result<Decoded, String> {
    let r = &mut Reader(body);
    let decoded = match (key, version) {
        // v1 and v2 differ from v0 in their responses only (throttle time, log append time).
        // The records are a message set of format v0 (Produce v0-1) or v1 (v2), or any format
        // at all: Kafka checks the magic only from v3 on.
        (ApiKey::Produce, 0..=2) => {
            let acks = r.i16()?;
            let timeout_ms = r.i32()?;
            let topic_data = r.array(|r| {
                let name = r.topic()?;
                let partitions = r.array(|r| Ok(PartitionProduceData::default().with_index(r.i32()?).with_records(r.nullable_bytes()?)))?;
                Ok(TopicProduceData::default().with_name(name).with_partition_data(partitions))
            })?;
            Decoded::Kafka(RequestKind::Produce(ProduceRequest::default().with_acks(acks).with_timeout_ms(timeout_ms).with_topic_data(topic_data)))
        }
        // v3 adds max_bytes (before it, no response limit: Kafka's default i32::MAX); v4 the
        // isolation level (read_uncommitted before).
        (ApiKey::Fetch, 0..=3) => {
            let replica_id = r.i32()?;
            let max_wait_ms = r.i32()?;
            let min_bytes = r.i32()?;
            let max_bytes = if version >= 3 { r.i32()? } else { i32::MAX };
            let topics = r.array(|r| {
                let topic = r.topic()?;
                let partitions = r.array(|r| {
                    Ok(FetchPartition::default().with_partition(r.i32()?).with_fetch_offset(r.i64()?).with_partition_max_bytes(r.i32()?))
                })?;
                Ok(FetchTopic::default().with_topic(topic).with_partitions(partitions))
            })?;
            Decoded::Kafka(RequestKind::Fetch(
                FetchRequest::default()
                    .with_replica_id(BrokerId(replica_id))
                    .with_max_wait_ms(max_wait_ms)
                    .with_min_bytes(min_bytes)
                    .with_max_bytes(max_bytes)
                    .with_isolation_level(0)
                    .with_topics(topics),
            ))
        }
        (ApiKey::ListOffsets, 0) => {
            let replica_id = r.i32()?;
            let topics = r.array(|r| {
                let name = r.topic()?;
                let partitions = r.array(|r| {
                    Ok(ListOffsetsV0Partition { partition: r.i32()?, timestamp: r.i64()?, max_num_offsets: r.i32()? })
                })?;
                Ok((name, partitions))
            })?;
            Decoded::Old(OldRequest::ListOffsetsV0(ListOffsetsV0Request { replica_id, topics }))
        }
        (ApiKey::CreateTopics, 0 | 1) => {
            let topics = r.array(|r| {
                let name = r.topic()?;
                let num_partitions = r.i32()?;
                let replication_factor = r.i16()?;
                let assignments = r.array(|r| {
                    let partition_index = r.i32()?;
                    let broker_ids = r.array(|r| Ok(BrokerId(r.i32()?)))?;
                    Ok(CreatableReplicaAssignment::default().with_partition_index(partition_index).with_broker_ids(broker_ids))
                })?;
                let configs = r.array(|r| {
                    let name = r.string()?;
                    Ok(CreatableTopicConfig::default().with_name(name).with_value(r.nullable_string()?))
                })?;
                Ok(CreatableTopic::default()
                    .with_name(name)
                    .with_num_partitions(num_partitions)
                    .with_replication_factor(replication_factor)
                    .with_assignments(assignments)
                    .with_configs(configs))
            })?;
            let timeout_ms = r.i32()?;
            // validate_only exists from v1; v0 always creates.
            let validate_only = if version >= 1 { r.bool()? } else { false };
            Decoded::Kafka(RequestKind::CreateTopics(
                CreateTopicsRequest::default().with_topics(topics).with_timeout_ms(timeout_ms).with_validate_only(validate_only),
            ))
        }
        // v0's request is v1's (v1 added the response's throttle time only).
        (ApiKey::DeleteTopics, 0) => Decoded::Kafka(crate_decode(key, 1, r.0)?),
        (ApiKey::DescribeConfigs, 0) => {
            let resources = r.array(|r| {
                let resource_type = r.i8()?;
                let resource_name = r.string()?;
                let keys = r.nullable_array(|r| r.string())?;
                Ok(DescribeConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(resource_name)
                    .with_configuration_keys(keys))
            })?;
            // include_synonyms came with v1 (false before); v0 answers have no synonyms anyway.
            Decoded::Kafka(RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(resources)))
        }
        (ApiKey::OffsetCommit, 0 | 1) => {
            let group_id = GroupId(r.string()?);
            // v0 has no generation or member: Kafka's defaults (-1, "").
            let (generation, member_id) = if version == 1 { (r.i32()?, r.string()?) } else { (-1, StrBytes::default()) };
            let mut commit_timestamps = Vec::new();
            let topics = r.array(|r| {
                let name = r.topic()?;
                let mut timestamps = Vec::new();
                let partitions = r.array(|r| {
                    let partition_index = r.i32()?;
                    let committed_offset = r.i64()?;
                    if version == 1 {
                        timestamps.push(r.i64()?);
                    }
                    let metadata = r.nullable_string()?;
                    Ok(OffsetCommitRequestPartition::default()
                        .with_partition_index(partition_index)
                        .with_committed_offset(committed_offset)
                        .with_committed_metadata(metadata))
                })?;
                commit_timestamps.push(timestamps);
                Ok(OffsetCommitRequestTopic::default().with_name(name).with_partitions(partitions))
            })?;
            let request = OffsetCommitRequest::default()
                .with_group_id(group_id)
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(member_id)
                .with_retention_time_ms(-1)
                .with_topics(topics);
            if version == 1 {
                Decoded::Old(OldRequest::OffsetCommitV1 { request, commit_timestamps })
            } else {
                Decoded::Kafka(RequestKind::OffsetCommit(request))
            }
        }
        // v0's request is v1's: v1 only moved the offsets from ZooKeeper to Kafka.
        (ApiKey::OffsetFetch, 0) => Decoded::Kafka(crate_decode(key, 1, r.0)?),
        // v0's request is v1's (v1 changed only when the throttle time applies).
        (ApiKey::DescribeLogDirs, 0) => Decoded::Kafka(crate_decode(key, 1, r.0)?),
        // v1's request is v0's; v2 added current_leader_epoch (-1: unknown) and v3 replica_id
        // (-2 before: Kafka's "debugging" replica).
        (ApiKey::OffsetForLeaderEpoch, 0 | 1) => {
            let topics = r.array(|r| {
                let topic = r.topic()?;
                let partitions = r.array(|r| {
                    let partition = r.i32()?;
                    Ok(OffsetForLeaderPartition::default().with_partition(partition).with_current_leader_epoch(-1).with_leader_epoch(r.i32()?))
                })?;
                Ok(OffsetForLeaderTopic::default().with_topic(topic).with_partitions(partitions))
            })?;
            Decoded::Kafka(RequestKind::OffsetForLeaderEpoch(
                OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-2)).with_topics(topics),
            ))
        }
        (ApiKey::WriteTxnMarkers, 0) => {
            let markers = r.array(|r| {
                let producer_id = ProducerId(r.i64()?);
                let producer_epoch = r.i16()?;
                let transaction_result = r.bool()?;
                let topics = r.array(|r| {
                    let name = r.topic()?;
                    Ok(WritableTxnMarkerTopic::default().with_name(name).with_partition_indexes(r.array(|r| r.i32())?))
                })?;
                Ok(WritableTxnMarker::default()
                    .with_producer_id(producer_id)
                    .with_producer_epoch(producer_epoch)
                    .with_transaction_result(transaction_result)
                    .with_topics(topics)
                    .with_coordinator_epoch(r.i32()?))
            })?;
            Decoded::Kafka(RequestKind::WriteTxnMarkers(WriteTxnMarkersRequest::default().with_markers(markers)))
        }
        (ApiKey::DescribeAcls, 0) => Decoded::Kafka(acls::decode_describe(r)?),
        (ApiKey::CreateAcls, 0) => Decoded::Kafka(acls::decode_create(r)?),
        (ApiKey::DeleteAcls, 0) => Decoded::Kafka(acls::decode_delete(r)?),
        _ => return Err(format!("{key:?} v{version} is not an old version")),
    };
    Ok(decoded)
}

fn crate_decode(key: ApiKey, version: i16, body: &mut Bytes) -> Result<RequestKind, String> {
    RequestKind::decode(key, body, version).map_err(|e| e.to_string())
}

/// Writes the body of the response to an old request (`is_old(key, version)` must hold).
pub fn encode_response(key: ApiKey, version: i16, response: &ResponseKind, out: &mut BytesMut) -> Result<(), String> {
    let w = &mut Writer(out);
    match (key, version, response) {
        (ApiKey::Produce, 0..=2, ResponseKind::Produce(r)) => {
            w.array(&r.responses, |w, t| {
                w.string(&t.name.0)?;
                w.array(&t.partition_responses, |w, p| {
                    w.i32(p.index);
                    w.i16(p.error_code);
                    w.i64(p.base_offset);
                    if version >= 2 {
                        w.i64(p.log_append_time_ms);
                    }
                    Ok(())
                })
            })?;
            if version >= 1 {
                w.i32(r.throttle_time_ms);
            }
            Ok(())
        }
        // The records must be bytes here (down-converted), never zero-copy placeholders.
        (ApiKey::Fetch, 0..=3, ResponseKind::Fetch(r)) => {
            if version >= 1 {
                w.i32(r.throttle_time_ms);
            }
            w.array(&r.responses, |w, t| {
                w.string(&t.topic.0)?;
                w.array(&t.partitions, |w, p| {
                    w.i32(p.partition_index);
                    w.i16(p.error_code);
                    w.i64(p.high_watermark);
                    w.nullable_bytes(p.records.as_deref())
                })
            })
        }
        (ApiKey::CreateTopics, 0 | 1, ResponseKind::CreateTopics(r)) => w.array(&r.topics, |w, t| {
            w.string(&t.name.0)?;
            w.i16(t.error_code);
            if version >= 1 {
                w.nullable_string(t.error_message.as_ref())?;
            }
            Ok(())
        }),
        (ApiKey::DeleteTopics, 0, ResponseKind::DeleteTopics(r)) => w.array(&r.responses, |w, t| {
            // Names are non-null before v6; a name-less result cannot come from a v0 request.
            w.string(t.name.as_ref().map(|n| &n.0).ok_or("a DeleteTopics v0 result without a name")?)?;
            w.i16(t.error_code);
            Ok(())
        }),
        (ApiKey::DescribeConfigs, 0, ResponseKind::DescribeConfigs(r)) => {
            w.i32(r.throttle_time_ms);
            w.array(&r.results, |w, res| {
                w.i16(res.error_code);
                w.nullable_string(res.error_message.as_ref())?;
                w.i8(res.resource_type);
                w.string(&res.resource_name)?;
                w.array(&res.configs, |w, c| {
                    w.string(&c.name)?;
                    w.nullable_string(c.value.as_ref())?;
                    w.bool(c.read_only);
                    // v0 has a flag where v1 has the source: "true if the configuration is not
                    // set", in the schema's words, which Kafka 0.11-2.6 wrote as source ==
                    // DEFAULT_CONFIG. Kafka 2.7-3.9 always write false (their generated
                    // response never sets it), so v0 clients such as sarama's ListTopics take
                    // every default for an override; Strom keeps the documented meaning.
                    w.bool(c.config_source == DEFAULT_CONFIG);
                    w.bool(c.is_sensitive);
                    Ok(())
                })
            })
        }
        // v0 and v1 answer alike, as v2 does (v3 added the throttle time).
        (ApiKey::OffsetCommit, 0 | 1, ResponseKind::OffsetCommit(r)) => w.array(&r.topics, |w, t| {
            w.string(&t.name.0)?;
            w.array(&t.partitions, |w, p| {
                w.i32(p.partition_index);
                w.i16(p.error_code);
                Ok(())
            })
        }),
        // v0 answers as v1 does.
        (ApiKey::OffsetFetch, 0, ResponseKind::OffsetFetch(r)) => r.encode(w.0, 1).map_err(|e| e.to_string()),
        // v0 answers as v1 does.
        (ApiKey::DescribeLogDirs, 0, ResponseKind::DescribeLogDirs(r)) => r.encode(w.0, 1).map_err(|e| e.to_string()),
        (ApiKey::OffsetForLeaderEpoch, 0 | 1, ResponseKind::OffsetForLeaderEpoch(r)) => w.array(&r.topics, |w, t| {
            w.string(&t.topic.0)?;
            w.array(&t.partitions, |w, p| {
                w.i16(p.error_code);
                w.i32(p.partition);
                // The epoch the end offset belongs to came with v1.
                if version >= 1 {
                    w.i32(p.leader_epoch);
                }
                w.i64(p.end_offset);
                Ok(())
            })
        }),
        (ApiKey::WriteTxnMarkers, 0, ResponseKind::WriteTxnMarkers(r)) => w.array(&r.markers, |w, m| {
            w.i64(m.producer_id.0);
            w.array(&m.topics, |w, t| {
                w.string(&t.name.0)?;
                w.array(&t.partitions, |w, p| {
                    w.i32(p.partition_index);
                    w.i16(p.error_code);
                    Ok(())
                })
            })
        }),
        (ApiKey::DescribeAcls | ApiKey::CreateAcls | ApiKey::DeleteAcls, 0, r) => {
            acls::encode(w, r).unwrap_or_else(|| Err(format!("{key:?} v0 answered with another API's response")))
        }
        _ => Err(format!("no old encoding of this response for {key:?} v{version}")),
    }
}

/// Writes the body of an [`OldResponse`].
pub fn encode_old_response(response: &OldResponse, out: &mut BytesMut) -> Result<(), String> {
    let w = &mut Writer(out);
    match response {
        OldResponse::ListOffsetsV0(r) => w.array(&r.topics, |w, (name, partitions)| {
            w.string(&name.0)?;
            w.array(partitions, |w, p| {
                w.i32(p.partition);
                w.i16(p.error_code);
                w.array(&p.old_style_offsets, |w, o| {
                    w.i64(*o);
                    Ok(())
                })
            })
        }),
    }
}

struct Reader<'a>(&'a mut Bytes);

impl Reader<'_> {
    fn need(&self, n: usize) -> Result<(), String> {
        if self.0.remaining() < n {
            return Err(format!("{n} bytes wanted, {} left", self.0.remaining()));
        }
        Ok(())
    }
    fn i8(&mut self) -> Result<i8, String> {
        self.need(1)?;
        Ok(self.0.get_i8())
    }
    fn bool(&mut self) -> Result<bool, String> {
        Ok(self.i8()? != 0)
    }
    fn i16(&mut self) -> Result<i16, String> {
        self.need(2)?;
        Ok(self.0.get_i16())
    }
    fn i32(&mut self) -> Result<i32, String> {
        self.need(4)?;
        Ok(self.0.get_i32())
    }
    fn i64(&mut self) -> Result<i64, String> {
        self.need(8)?;
        Ok(self.0.get_i64())
    }
    fn nullable_string(&mut self) -> Result<Option<StrBytes>, String> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        self.need(len as usize)?;
        let bytes = self.0.split_to(len as usize);
        StrBytes::from_utf8(bytes).map(Some).map_err(|e| e.to_string())
    }
    fn string(&mut self) -> Result<StrBytes, String> {
        self.nullable_string()?.ok_or_else(|| "null where a string is required".to_string())
    }
    /// Shares the frame's buffer (no copy), after checking the bytes are there.
    fn nullable_bytes(&mut self) -> Result<Option<Bytes>, String> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        self.need(len as usize)?;
        Ok(Some(self.0.split_to(len as usize)))
    }
    fn topic(&mut self) -> Result<TopicName, String> {
        self.string().map(TopicName)
    }
    /// Items are pushed as they decode, never pre-allocated from the count: a count larger
    /// than the frame fails on the bytes, not on memory.
    fn nullable_array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Result<T, String>) -> Result<Option<Vec<T>>, String> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(item(self)?);
        }
        Ok(Some(out))
    }
    fn array<T>(&mut self, item: impl FnMut(&mut Self) -> Result<T, String>) -> Result<Vec<T>, String> {
        self.nullable_array(item)?.ok_or_else(|| "null where an array is required".to_string())
    }
}

struct Writer<'a>(&'a mut BytesMut);

impl Writer<'_> {
    fn i8(&mut self, v: i8) {
        self.0.put_i8(v);
    }
    fn bool(&mut self, v: bool) {
        self.0.put_i8(v as i8);
    }
    fn i16(&mut self, v: i16) {
        self.0.put_i16(v);
    }
    fn i32(&mut self, v: i32) {
        self.0.put_i32(v);
    }
    fn i64(&mut self, v: i64) {
        self.0.put_i64(v);
    }
    fn nullable_string(&mut self, s: Option<&StrBytes>) -> Result<(), String> {
        match s {
            None => {
                self.i16(-1);
                Ok(())
            }
            Some(s) => self.string(s),
        }
    }
    fn string(&mut self, s: &StrBytes) -> Result<(), String> {
        let len = i16::try_from(s.len()).map_err(|_| format!("a string of {} bytes", s.len()))?;
        self.i16(len);
        self.0.put_slice(s.as_bytes());
        Ok(())
    }
    fn nullable_bytes(&mut self, b: Option<&[u8]>) -> Result<(), String> {
        match b {
            None => self.i32(-1),
            Some(b) => {
                let len = i32::try_from(b.len()).map_err(|_| format!("{} bytes of records", b.len()))?;
                self.i32(len);
                self.0.put_slice(b);
            }
        }
        Ok(())
    }
    fn array<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T) -> Result<(), String>) -> Result<(), String> {
        let n = i32::try_from(items.len()).map_err(|_| format!("an array of {} items", items.len()))?;
        self.i32(n);
        for i in items {
            item(self, i)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Vec<u8> {
        let mut b = (v.len() as i16).to_be_bytes().to_vec();
        b.extend_from_slice(v.as_bytes());
        b
    }

    /// Every advertised version is coded by exactly one side: kafka-protocol or this module.
    #[test]
    fn every_supported_version_has_exactly_one_codec() {
        for (key, lo, hi) in crate::handlers::SUPPORTED {
            let known = key.valid_versions();
            for v in *lo..=*hi {
                let by_crate = (known.min..=known.max).contains(&v);
                assert!(by_crate != is_old(*key, v), "{key:?} v{v}: kafka-protocol {by_crate}, old_versions {}", is_old(*key, v));
            }
        }
        for (key, lo, hi) in OLD_VERSIONS {
            let served = crate::handlers::supported_range(*key).is_some_and(|(slo, shi)| slo <= *lo && *hi <= shi);
            assert!(served, "{key:?} v{lo}-{hi} is coded but not advertised");
        }
    }

    #[test]
    fn list_offsets_v0_keeps_max_num_offsets() {
        let mut body = Vec::new();
        body.extend(&(-1i32).to_be_bytes());
        body.extend(&1i32.to_be_bytes());
        body.extend(s("t"));
        body.extend(&1i32.to_be_bytes());
        body.extend(&3i32.to_be_bytes());
        body.extend(&(-2i64).to_be_bytes());
        body.extend(&7i32.to_be_bytes());
        let Ok(Decoded::Old(OldRequest::ListOffsetsV0(r))) = decode_request(ApiKey::ListOffsets, 0, &mut Bytes::from(body)) else {
            panic!("ListOffsets v0 must decode")
        };
        assert_eq!(r.replica_id, -1);
        assert_eq!(r.topics[0].0 .0.as_str(), "t");
        let p = r.topics[0].1[0];
        assert_eq!((p.partition, p.timestamp, p.max_num_offsets), (3, -2, 7));
    }

    #[test]
    fn huge_counts_and_short_bodies_fail_cleanly() {
        for (key, version) in OLD_VERSIONS.iter().flat_map(|(k, lo, hi)| (*lo..=*hi).map(move |v| (*k, v))) {
            // DescribeAcls has no array: those 16 bytes are a valid filter (null strings).
            let mut huge = Bytes::from(i32::MAX.to_be_bytes().repeat(4));
            assert!(key == ApiKey::DescribeAcls || decode_request(key, version, &mut huge).is_err(), "{key:?} v{version}");
            assert!(decode_request(key, version, &mut Bytes::new()).is_err(), "{key:?} v{version}");
        }
    }

    #[test]
    fn offset_commit_v1_has_timestamps_and_v0_defaults() {
        let mut v1 = s("g");
        v1.extend(&5i32.to_be_bytes());
        v1.extend(s("m"));
        v1.extend(&1i32.to_be_bytes());
        v1.extend(s("t"));
        v1.extend(&1i32.to_be_bytes());
        v1.extend(&0i32.to_be_bytes());
        v1.extend(&42i64.to_be_bytes());
        v1.extend(&1234i64.to_be_bytes());
        v1.extend(&(-1i16).to_be_bytes());
        let Ok(Decoded::Old(OldRequest::OffsetCommitV1 { request, commit_timestamps })) =
            decode_request(ApiKey::OffsetCommit, 1, &mut Bytes::from(v1))
        else {
            panic!("OffsetCommit v1 must decode")
        };
        assert_eq!((request.generation_id_or_member_epoch, request.member_id.as_str()), (5, "m"));
        assert_eq!(request.topics[0].partitions[0].committed_offset, 42);
        assert_eq!(request.topics[0].partitions[0].committed_metadata, None);
        assert_eq!(commit_timestamps, vec![vec![1234]]);
    }
}
