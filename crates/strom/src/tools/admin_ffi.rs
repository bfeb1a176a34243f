//! librdkafka's admin requests whose answers the `rdkafka` crate does not hand on whole, called
//! through `rdkafka-sys`: DescribeConfigs and IncrementalAlterConfigs (`strom configs`: the crate
//! has no IncrementalAlterConfigs and drops config synonyms), and CreateTopics, CreatePartitions
//! and DeleteTopics (`strom topics`: the crate keeps each topic's error code but drops the
//! message the broker sent with it, and that message is what says *why*).
//!
//! All `unsafe` of the tools' admin calls is here. Ownership, as librdkafka documents it: the
//! application creates and destroys the request objects (ConfigResource, NewTopic, DeleteTopic,
//! NewPartitions) and the AdminOptions (the request call copies them all), creates and destroys
//! its own queue, and destroys the result event; every string and array read from the event
//! belongs to the event, so it is copied into Rust values before the event is destroyed.

use std::ffi::{c_char, c_int, CStr, CString};
use std::ptr::NonNull;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use rdkafka::client::{Client, ClientContext};
use rdkafka_sys as rd;

use super::error_text;

// The functions whose results come from the wire are declared again here with plain `int`
// results: bindgen types them as Rust enums, and an error code or config source that
// librdkafka 2.12's enums do not list (a newer broker's, or a hostile one's; librdkafka
// stores the wire value as it is) would be an invalid enum value, which is undefined
// behaviour in Rust. The symbols are the same; C returns these enums as `int`.
extern "C" {
    #[link_name = "rd_kafka_event_error"]
    fn event_error(rkev: *mut rd::rd_kafka_event_t) -> c_int;
    #[link_name = "rd_kafka_ConfigResource_error"]
    fn resource_error(config: *const rd::rd_kafka_ConfigResource_t) -> c_int;
    #[link_name = "rd_kafka_ConfigEntry_source"]
    fn entry_source(entry: *const rd::rd_kafka_ConfigEntry_t) -> c_int;
    #[link_name = "rd_kafka_topic_result_error"]
    fn topic_result_error(topicres: *const rd::rd_kafka_topic_result_t) -> c_int;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Topic,
    Broker,
}

#[derive(Debug)]
pub enum Op<'a> {
    Set(&'a str, &'a str),
    Delete(&'a str),
}

#[derive(Debug)]
pub struct Synonym {
    pub name: String,
    pub value: Option<String>,
    pub source: i32,
}

/// One config of a DescribeConfigs answer; `source` is Kafka's ConfigSource id.
#[derive(Debug)]
pub struct Entry {
    pub name: String,
    pub value: Option<String>,
    pub source: i32,
    pub sensitive: bool,
    pub synonyms: Vec<Synonym>,
}

/// The resource's configs, with their synonyms. A resource-level error (an unknown topic,
/// say) is an `Err` with the broker's message and Kafka's error name.
pub fn describe(client: &Client<impl ClientContext>, kind: ResourceKind, name: &str, timeout: Duration) -> anyhow::Result<Vec<Entry>> {
    request(client, kind, name, None, timeout)
}

/// One IncrementalAlterConfigs request with the operations in order.
pub fn incremental_alter(
    client: &Client<impl ClientContext>,
    kind: ResourceKind,
    name: &str,
    ops: &[Op<'_>],
    timeout: Duration,
) -> anyhow::Result<()> {
    request(client, kind, name, Some(ops), timeout).map(drop)
}

/// An owned librdkafka object, destroyed with its destructor on drop.
struct Owned<T> {
    ptr: NonNull<T>,
    destroy: unsafe extern "C" fn(*mut T),
}

impl<T> Owned<T> {
    /// `None` for a null pointer. `ptr` must be owned by the caller and `destroy` its destructor.
    fn new(ptr: *mut T, destroy: unsafe extern "C" fn(*mut T)) -> Option<Self> {
        NonNull::new(ptr).map(|ptr| Owned { ptr, destroy })
    }

    fn ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` is non-null, owned by us (see `new`) and destroyed exactly once, here.
        unsafe { (self.destroy)(self.ptr.as_ptr()) }
    }
}

/// Sends DescribeConfigs (`ops` is `None`) or IncrementalAlterConfigs for one resource and
/// returns the resource's configs (none for IncrementalAlterConfigs) or its error.
fn request(
    client: &Client<impl ClientContext>,
    kind: ResourceKind,
    name: &str,
    ops: Option<&[Op<'_>]>,
    timeout: Duration,
) -> anyhow::Result<Vec<Entry>> {
    let restype = match kind {
        ResourceKind::Topic => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
        ResourceKind::Broker => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_BROKER,
    };
    let c_name = CString::new(name).context("a resource name must not contain NUL")?;
    // SAFETY: `c_name` is NUL-terminated and outlives the call; librdkafka copies it.
    let resource = Owned::new(unsafe { rd::rd_kafka_ConfigResource_new(restype, c_name.as_ptr()) }, rd::rd_kafka_ConfigResource_destroy)
        .ok_or_else(|| anyhow!("librdkafka refused the config resource {name:?}"))?;
    for op in ops.unwrap_or(&[]) {
        let (key, value, op_type) = match op {
            Op::Set(k, v) => (*k, Some(*v), rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET),
            Op::Delete(k) => (*k, None, rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE),
        };
        let c_key = CString::new(key).context("a config key must not contain NUL")?;
        let c_value = value.map(CString::new).transpose().context("a config value must not contain NUL")?;
        let value_ptr = c_value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: `resource` is live and ours; key and value (null for DELETE, which
        // librdkafka allows) are NUL-terminated and copied by librdkafka.
        let err = unsafe { rd::rd_kafka_ConfigResource_add_incremental_config(resource.ptr(), c_key.as_ptr(), op_type, value_ptr) };
        if let Some(err) = Owned::new(err, rd::rd_kafka_error_destroy) {
            // SAFETY: `err` is a live error object; its string lives as long as it does.
            let msg = unsafe { string(rd::rd_kafka_error_string(err.ptr())) };
            bail!("cannot add `{key}` to the request: {}", msg.unwrap_or_default());
        }
    }
    let api = match ops {
        None => rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS,
        Some(_) => rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
    };
    let mut resources = [resource.ptr()];
    let event = call(client, api, timeout, false, |rk, options, queue| {
        // SAFETY: all four objects are live (see `call`); the array holds exactly the one
        // resource whose count is passed; librdkafka copies the resources and the options.
        unsafe {
            match ops {
                None => rd::rd_kafka_DescribeConfigs(rk, resources.as_mut_ptr(), resources.len(), options, queue),
                Some(_) => rd::rd_kafka_IncrementalAlterConfigs(rk, resources.as_mut_ptr(), resources.len(), options, queue),
            }
        }
    })?;
    let mut n: usize = 0;
    // SAFETY: `event` is live. Each `*_result` is null if the event is of another type,
    // which is checked; the array returned and its `n` elements belong to the event.
    let list = unsafe {
        match ops {
            None => {
                let result = rd::rd_kafka_event_DescribeConfigs_result(event.ptr());
                if result.is_null() {
                    bail!("librdkafka answered with an unexpected event");
                }
                rd::rd_kafka_DescribeConfigs_result_resources(result, &mut n)
            }
            Some(_) => {
                let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event.ptr());
                if result.is_null() {
                    bail!("librdkafka answered with an unexpected event");
                }
                rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut n)
            }
        }
    };
    // SAFETY: `list` is null or holds `n` pointers, owned by the live `event`.
    let resource = match unsafe { array(list, n) } {
        [r] if !r.is_null() => *r,
        other => bail!("the broker answered for {} resources, 1 was asked for", other.len()),
    };
    // SAFETY: `resource` belongs to the live `event`; so does its error string.
    let code = unsafe { resource_error(resource) };
    if code != 0 {
        let msg = unsafe { string(rd::rd_kafka_ConfigResource_error_string(resource)) };
        bail!("{}", error_text(code, msg.as_deref()));
    }
    // SAFETY: as above; `entries` copies everything before `event` is dropped below.
    Ok(unsafe { entries(resource) })
}

/// What `strom topics` asks of one topic.
#[derive(Debug)]
pub enum TopicOp<'a> {
    /// CreateTopics; -1 partitions or replication factor: the broker's default. With an
    /// `assignment` (the replicas of partitions 0..n-1) both are -1.
    Create { partitions: i32, replication_factor: i32, assignment: Option<&'a [Vec<i32>]>, configs: &'a [(String, String)] },
    /// CreatePartitions, to this many in total; `assignment`: the new partitions' replicas.
    AddPartitions { total: usize, assignment: Option<&'a [Vec<i32>]> },
    /// DeleteTopics.
    Delete,
}

/// A topic-level error of CreateTopics, CreatePartitions or DeleteTopics: the code and the
/// message the broker sent (librdkafka's description of the code when it sent none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicError {
    pub code: i32,
    pub message: Option<String>,
}

impl std::fmt::Display for TopicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&error_text(self.code, self.message.as_deref()))
    }
}

/// Sends `op` for `topic`, with `timeout` as both the request and the operation timeout (the
/// broker answers once the change is done, or with REQUEST_TIMED_OUT). The outer error is the
/// request's (no answer, say), the inner one the broker's answer for the topic.
pub fn topic_request(client: &Client<impl ClientContext>, topic: &str, op: TopicOp<'_>, timeout: Duration) -> anyhow::Result<Result<(), TopicError>> {
    let c_topic = CString::new(topic).context("a topic name must not contain NUL")?;
    let mut errstr = [0 as c_char; 512];
    let event = match op {
        TopicOp::Create { partitions, replication_factor, assignment, configs } => {
            // librdkafka wants the partition count of an assignment here (and sends -1 for both).
            let partitions = assignment.map_or(partitions, |a| a.len() as i32);
            // SAFETY: `c_topic` is NUL-terminated and copied; `errstr` is writable for its length.
            let new = unsafe { rd::rd_kafka_NewTopic_new(c_topic.as_ptr(), partitions, replication_factor, errstr.as_mut_ptr(), errstr.len()) };
            let new = Owned::new(new, rd::rd_kafka_NewTopic_destroy).ok_or_else(|| anyhow!("{}", c_error(&errstr)))?;
            for (i, replicas) in assignment.unwrap_or_default().iter().enumerate() {
                let mut ids = replicas.clone();
                // SAFETY: `new` is live and ours; `ids` holds `ids.len()` i32s, which librdkafka copies.
                let err = unsafe {
                    rd::rd_kafka_NewTopic_set_replica_assignment(new.ptr(), i as i32, ids.as_mut_ptr(), ids.len(), errstr.as_mut_ptr(), errstr.len())
                };
                if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    bail!("cannot add the replicas of partition {i} to the request: {}", c_error(&errstr));
                }
            }
            for (k, v) in configs {
                let c_key = CString::new(k.as_str()).context("a config key must not contain NUL")?;
                let c_value = CString::new(v.as_str()).context("a config value must not contain NUL")?;
                // SAFETY: `new` is live and ours; key and value are NUL-terminated and copied.
                let err = unsafe { rd::rd_kafka_NewTopic_set_config(new.ptr(), c_key.as_ptr(), c_value.as_ptr()) };
                if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    bail!("cannot add config `{k}` to the request: {}", error_text(err as i32, None));
                }
            }
            let mut list = [new.ptr()];
            call(client, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout, true, |rk, options, queue| {
                // SAFETY: all objects are live; the array holds exactly `list.len()` NewTopics,
                // which librdkafka copies together with the options.
                unsafe { rd::rd_kafka_CreateTopics(rk, list.as_mut_ptr(), list.len(), options, queue) }
            })?
        }
        TopicOp::AddPartitions { total, assignment } => {
            // SAFETY: as for NewTopic above.
            let new = unsafe { rd::rd_kafka_NewPartitions_new(c_topic.as_ptr(), total, errstr.as_mut_ptr(), errstr.len()) };
            let new = Owned::new(new, rd::rd_kafka_NewPartitions_destroy).ok_or_else(|| anyhow!("{}", c_error(&errstr)))?;
            for (i, replicas) in assignment.unwrap_or_default().iter().enumerate() {
                let mut ids = replicas.clone();
                // SAFETY: as for the NewTopic's assignment above.
                let err = unsafe {
                    rd::rd_kafka_NewPartitions_set_replica_assignment(new.ptr(), i as i32, ids.as_mut_ptr(), ids.len(), errstr.as_mut_ptr(), errstr.len())
                };
                if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    bail!("cannot add the replicas of new partition {i} to the request: {}", c_error(&errstr));
                }
            }
            let mut list = [new.ptr()];
            call(client, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEPARTITIONS, timeout, true, |rk, options, queue| {
                // SAFETY: as for CreateTopics.
                unsafe { rd::rd_kafka_CreatePartitions(rk, list.as_mut_ptr(), list.len(), options, queue) }
            })?
        }
        TopicOp::Delete => {
            // SAFETY: `c_topic` is NUL-terminated and copied.
            let del = Owned::new(unsafe { rd::rd_kafka_DeleteTopic_new(c_topic.as_ptr()) }, rd::rd_kafka_DeleteTopic_destroy)
                .ok_or_else(|| anyhow!("librdkafka refused the topic name {topic:?}"))?;
            let mut list = [del.ptr()];
            call(client, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DELETETOPICS, timeout, true, |rk, options, queue| {
                // SAFETY: as for CreateTopics.
                unsafe { rd::rd_kafka_DeleteTopics(rk, list.as_mut_ptr(), list.len(), options, queue) }
            })?
        }
    };
    let mut n: usize = 0;
    // SAFETY: `event` is live. Each `*_result` is null if the event is of another type, which
    // is checked; the array returned and its `n` elements belong to the event.
    let list = unsafe {
        let ev = event.ptr();
        let (create, partitions, delete) =
            (rd::rd_kafka_event_CreateTopics_result(ev), rd::rd_kafka_event_CreatePartitions_result(ev), rd::rd_kafka_event_DeleteTopics_result(ev));
        if !create.is_null() {
            rd::rd_kafka_CreateTopics_result_topics(create, &mut n)
        } else if !partitions.is_null() {
            rd::rd_kafka_CreatePartitions_result_topics(partitions, &mut n)
        } else if !delete.is_null() {
            rd::rd_kafka_DeleteTopics_result_topics(delete, &mut n)
        } else {
            bail!("librdkafka answered with an unexpected event");
        }
    };
    // SAFETY: `list` is null or holds `n` pointers, owned by the live `event`.
    let result = match unsafe { array(list, n) } {
        [r] if !r.is_null() => *r,
        other => bail!("the broker answered for {} topics, 1 was asked for", other.len()),
    };
    // SAFETY: `result` belongs to the live `event`; so does its error string, copied at once.
    let code = unsafe { topic_result_error(result) };
    if code == 0 {
        return Ok(Ok(()));
    }
    let message = unsafe { string(rd::rd_kafka_topic_result_error_string(result)) };
    Ok(Err(TopicError { code, message }))
}

/// Each named topic's id, as Kafka's tools print it (Java's `Uuid.toString`: base64 with the
/// URL-safe alphabet, no padding; librdkafka's `rd_kafka_Uuid_base64str` uses the standard
/// alphabet, so the two bit halves are read and encoded here), from DescribeTopics.
/// Topics the broker answered with an error for, and the zero id (what a broker without topic
/// ids sends), are left out, as `kafka-topics.sh` leaves the field out for the zero id.
pub fn topic_ids(client: &Client<impl ClientContext>, topics: &[&str], timeout: Duration) -> anyhow::Result<Vec<(String, String)>> {
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    let names = topics.iter().map(|t| CString::new(*t)).collect::<Result<Vec<_>, _>>().context("a topic name must not contain NUL")?;
    let mut ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    // SAFETY: `ptrs` holds `ptrs.len()` NUL-terminated names that outlive the call; librdkafka
    // copies them.
    let collection = Owned::new(unsafe { rd::rd_kafka_TopicCollection_of_topic_names(ptrs.as_mut_ptr(), ptrs.len()) }, rd::rd_kafka_TopicCollection_destroy)
        .ok_or_else(|| anyhow!("librdkafka refused the topic names"))?;
    let event = call(client, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS, timeout, false, |rk, options, queue| {
        // SAFETY: all objects are live; librdkafka copies the collection and the options.
        unsafe { rd::rd_kafka_DescribeTopics(rk, collection.ptr(), options, queue) }
    })?;
    let mut n: usize = 0;
    // SAFETY: `event` is live; the result is null if the event is of another type, which is
    // checked; the array and its `n` elements belong to the event.
    let list = unsafe {
        let result = rd::rd_kafka_event_DescribeTopics_result(event.ptr());
        if result.is_null() {
            bail!("librdkafka answered with an unexpected event");
        }
        rd::rd_kafka_DescribeTopics_result_topics(result, &mut n)
    };
    let mut out = Vec::with_capacity(n);
    // SAFETY: `list` is null or holds `n` pointers owned by the live `event`; every string and
    // the id read from a description belong to it too and are copied at once.
    for &desc in unsafe { array(list, n) } {
        if desc.is_null() || !unsafe { rd::rd_kafka_TopicDescription_error(desc) }.is_null() {
            continue;
        }
        let id = unsafe { rd::rd_kafka_TopicDescription_topic_id(desc) };
        if id.is_null() {
            continue;
        }
        let (msb, lsb) = unsafe { (rd::rd_kafka_Uuid_most_significant_bits(id), rd::rd_kafka_Uuid_least_significant_bits(id)) };
        if (msb, lsb) == (0, 0) {
            continue;
        }
        if let Some(name) = unsafe { string(rd::rd_kafka_TopicDescription_name(desc)) } {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&msb.to_be_bytes());
            bytes[8..].copy_from_slice(&lsb.to_be_bytes());
            out.push((name, base64_url(&bytes)));
        }
    }
    Ok(out)
}

/// Runs one admin request on a queue of our own and waits for its result event: makes the
/// options (request timeout, and with `operation_timeout` the same as the operation timeout)
/// and the queue, hands them to `send` with the client's handle, and returns the event once
/// its request-level error (if any) is checked.
///
/// The private queue keeps the rdkafka crate's admin polling thread (which polls the
/// AdminClient's own queue) out of it, so the event comes back here and nowhere else.
fn call(
    client: &Client<impl ClientContext>,
    api: rd::rd_kafka_admin_op_t,
    timeout: Duration,
    operation_timeout: bool,
    send: impl FnOnce(*mut rd::rd_kafka_t, *mut rd::rd_kafka_AdminOptions_t, *mut rd::rd_kafka_queue_t),
) -> anyhow::Result<Owned<rd::rd_kafka_event_t>> {
    let rk = client.native_ptr();
    if rk.is_null() {
        bail!("the admin client has no librdkafka handle");
    }
    // SAFETY: `rk` is the live handle of `client`, which is borrowed for this whole call.
    let options = Owned::new(unsafe { rd::rd_kafka_AdminOptions_new(rk, api) }, rd::rd_kafka_AdminOptions_destroy)
        .ok_or_else(|| anyhow!("librdkafka refused the admin options"))?;
    let timeout_ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
    let mut errstr = [0 as c_char; 512];
    // SAFETY: `options` is live; `errstr` is writable for its length, which is passed.
    let err = unsafe { rd::rd_kafka_AdminOptions_set_request_timeout(options.ptr(), timeout_ms, errstr.as_mut_ptr(), errstr.len()) };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        bail!("cannot set the request timeout: {}", c_error(&errstr));
    }
    if operation_timeout {
        // SAFETY: as above.
        let err = unsafe { rd::rd_kafka_AdminOptions_set_operation_timeout(options.ptr(), timeout_ms, errstr.as_mut_ptr(), errstr.len()) };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            bail!("cannot set the operation timeout: {}", c_error(&errstr));
        }
    }
    // SAFETY: `rk` is live (see above).
    let queue = Owned::new(unsafe { rd::rd_kafka_queue_new(rk) }, rd::rd_kafka_queue_destroy)
        .ok_or_else(|| anyhow!("librdkafka could not create a queue"))?;
    send(rk, options.ptr(), queue.ptr());
    // librdkafka answers within the request timeout (with a timeout error at worst); the
    // margin only guards against waiting forever.
    let wait_ms = timeout_ms.saturating_add(5_000);
    // SAFETY: `queue` is live; the event returned, if any, is ours to destroy.
    let event = Owned::new(unsafe { rd::rd_kafka_queue_poll(queue.ptr(), wait_ms) }, rd::rd_kafka_event_destroy)
        .ok_or_else(|| anyhow!("no answer from the cluster within {} s", wait_ms / 1000))?;
    // SAFETY: `event` is live; the error string belongs to it and is copied at once.
    let code = unsafe { event_error(event.ptr()) };
    if code != 0 {
        let msg = unsafe { string(rd::rd_kafka_event_error_string(event.ptr())) };
        bail!("{}", error_text(code, msg.as_deref()));
    }
    Ok(event)
}

/// librdkafka's description of an error code ("Broker: Unknown topic or partition"), for the
/// codes whose responses carry no message. `None` for a code librdkafka does not list.
pub fn description(code: i32) -> Option<String> {
    let err = rd::rd_kafka_resp_err_t::try_from(code).ok()?;
    // SAFETY: rd_kafka_err2str returns a pointer to a static NUL-terminated string for any
    // code, listed or not.
    unsafe { string(rd::rd_kafka_err2str(err)) }
}

/// Base64 with the URL-safe alphabet and no padding (RFC 4648 section 5), as Java's
/// `Base64.getUrlEncoder().withoutPadding()`.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        // A chunk of k bytes carries k + 1 sextets.
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// What librdkafka wrote into an `errstr` buffer (up to its first NUL; all of it if none).
fn c_error(errstr: &[c_char]) -> String {
    let bytes: Vec<u8> = errstr.iter().map(|&c| c as u8).collect();
    let text = bytes.iter().position(|&b| b == 0).map_or(&bytes[..], |end| &bytes[..end]);
    String::from_utf8_lossy(text).into_owned()
}

/// Copies a result resource's config entries and their synonyms.
///
/// # Safety
/// `resource` must point to a ConfigResource owned by a live result event.
unsafe fn entries(resource: *const rd::rd_kafka_ConfigResource_t) -> Vec<Entry> {
    let mut n: usize = 0;
    let list = rd::rd_kafka_ConfigResource_configs(resource, &mut n);
    array(list, n)
        .iter()
        .filter(|e| !e.is_null())
        .map(|&e| {
            let mut m: usize = 0;
            let synonyms = rd::rd_kafka_ConfigEntry_synonyms(e, &mut m);
            Entry {
                name: string(rd::rd_kafka_ConfigEntry_name(e)).unwrap_or_default(),
                value: string(rd::rd_kafka_ConfigEntry_value(e)),
                source: entry_source(e),
                sensitive: rd::rd_kafka_ConfigEntry_is_sensitive(e) != 0,
                synonyms: array(synonyms, m)
                    .iter()
                    .filter(|s| !s.is_null())
                    .map(|&s| Synonym {
                        name: string(rd::rd_kafka_ConfigEntry_name(s)).unwrap_or_default(),
                        value: string(rd::rd_kafka_ConfigEntry_value(s)),
                        source: entry_source(s),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A librdkafka array as a slice (empty for null).
///
/// # Safety
/// `list` must be null or point to `n` initialized pointers that outlive `'a`.
unsafe fn array<'a, T>(list: *mut *const T, n: usize) -> &'a [*const T] {
    if list.is_null() || n == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(list as *const *const T, n)
    }
}

/// A copy of a C string (`None` for null).
///
/// # Safety
/// `s` must be null or a NUL-terminated string that is live for the call.
unsafe fn string(s: *const c_char) -> Option<String> {
    (!s.is_null()).then(|| CStr::from_ptr(s).to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::base64_url;

    #[test]
    fn base64_url_is_javas_url_encoder_without_padding() {
        // RFC 4648's test vectors, unpadded.
        for (input, want) in [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64_url(input.as_bytes()), want);
        }
        // The URL-safe alphabet: 0xfb 0xff is `+/8` in the standard one.
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
        // A topic id is 16 bytes: 22 characters.
        assert_eq!(base64_url(&[0u8; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
    }
}
