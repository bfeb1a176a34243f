//! One client connection: read a size-prefixed frame, decode it, hand it to its handler, write the
//! response. Requests on a connection are answered strictly in order, one at a time, as Kafka does
//! (clients rely on it: they pipeline and match responses by order and correlation id).
//!
//! Anything malformed closes the connection with a log line; nothing a client sends can take down
//! the broker or touch another connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::AsyncWriteExt;

use crate::broker::Broker;
use crate::frames::{self, FrameReader};
use crate::handlers::{self, Body, Reply, Request};
use crate::old_versions::{self, Decoded};
use crate::sasl::{Authenticator, Gate, Verdict};
use crate::session::Session;
use crate::transport::{ReadHalf, Stream, WriteHalf};
use crate::zero_copy;

#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("frame of {size} bytes is outside {min}..={max} (socket.request.max.bytes)")]
    Size { size: i32, min: i32, max: usize },
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("{0:?} v{1} is not supported")]
    UnsupportedVersion(ApiKey, i16),
    #[error("cannot decode {0:?} v{1}: {2}")]
    Decode(ApiKey, i16, String),
    #[error("cannot encode the response to {0:?} v{1}: {2}")]
    Encode(ApiKey, i16, String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<frames::FrameError> for FrameError {
    fn from(e: frames::FrameError) -> FrameError {
        match e {
            frames::FrameError::Size { size, min, max } => FrameError::Size { size, min, max },
            frames::FrameError::Io(e) => FrameError::Io(e),
        }
    }
}

/// Requests decoded ahead of the one being handled. Reading the next request while the current
/// one appends lets socket copies and file writes overlap on different cores; the bound caps the
/// memory one connection can pin (at most this many frames of `socket.request.max.bytes`).
const READ_AHEAD: usize = 4;

/// Serves one client on `listener` (its name: Metadata answers with every broker's endpoint of
/// the listener the client came through, as Kafka does).
///
/// On a SASL listener (`sasl` set) nothing reaches a handler before the client authenticated
/// (`sasl::Authenticator` decides what may pass until then).
/// `principal`: who the TLS handshake says the client is (its certificate), if anyone; SASL,
/// when the listener has it, decides instead.
pub async fn serve(broker: Arc<Broker>, stream: Stream, peer: SocketAddr, listener: Arc<str>, principal: Option<String>, sasl: Option<Arc<Authenticator>>) {
    let (r, mut w) = stream.split();
    let (tx, mut rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    let reader_broker = broker.clone();
    // Set once authenticated, so the reader knows that a SaslHandshake v0 arriving before it is
    // followed by a bare token frame (the client waits for each answer, so no frame is read
    // under a stale value).
    let authenticated = Arc::new(AtomicBool::new(sasl.is_none()));
    let reader_authenticated = authenticated.clone();
    let mut gate = Gate::Handshake;
    let mut session = Session::anonymous(peer, listener.clone());
    // KIP-368: when the authenticated session ends (`connections.max.reauth.ms`), the mechanism
    // it was proven with, and during a re-authentication who the connection was before.
    let mut session_ends: Option<tokio::time::Instant> = None;
    let mut mechanism: Option<strom_config::SaslMechanism> = None;
    let mut reauth_of: Option<(String, Option<strom_config::SaslMechanism>)> = None;
    if let Some(p) = principal.filter(|_| sasl.is_none()) {
        session.principal = Arc::from(p.as_str());
    }
    // After each bare token (SaslHandshake v0) the handler side says whether another bare token
    // follows (SCRAM's client-final) or requests resume. The client waits for each answer, so
    // the reader waiting for this loses no read-ahead.
    let (raw_more_tx, mut raw_more_rx) = tokio::sync::mpsc::channel::<bool>(1);
    let _counted = crate::metrics::ConnectionGauge::open(&listener);
    let reader = tokio::spawn(async move {
        let mut reader = FrameReader::new(r);
        let mut raw_next = false;
        loop {
            let raw = std::mem::take(&mut raw_next);
            let next = if raw { next_raw_token(&reader_broker, &mut reader).await } else { next_request(&reader_broker, &mut reader).await };
            if let Ok(Some(Incoming::Request { api_key: ApiKey::SaslHandshake, version: 0, .. })) = &next {
                raw_next = !reader_authenticated.load(Ordering::SeqCst);
            }
            let stop = !matches!(next, Ok(Some(_)));
            // The handler side is gone: the connection is closing anyway.
            if tx.send(next).await.is_err() || stop {
                return;
            }
            if raw {
                match raw_more_rx.recv().await {
                    Some(more) => raw_next = more,
                    None => return,
                }
            }
        }
    });
    let mut out = BytesMut::with_capacity(64 * 1024);
    while let Some(next) = rx.recv().await {
        match next {
            Ok(None) => break,
            Ok(Some(Incoming::Request { api_key, version, header, request })) => {
                // A fetch may long-poll and a join may park: never hold earlier responses back
                // behind them.
                if handlers::may_wait(api_key) && !out.is_empty() {
                    if let Err(e) = flush(&mut w, &mut out).await {
                        if !is_disconnect(&e) {
                            tracing::debug!(%peer, error = %e, "write failed");
                        }
                        break;
                    }
                }
                // KIP-368. A session past its lifetime serves nothing but a new authentication;
                // a SaslHandshake (v1+) from an authenticated client starts one, which must end
                // with the same principal and mechanism.
                if let (Some(auth), Gate::Authenticated { principal, .. }) = (&sasl, &gate) {
                    let rehandshake = matches!(&*request, Request::Kafka(RequestKind::SaslHandshake(_)));
                    if auth.reauth_ms() > 0 && rehandshake && version >= 1 {
                        reauth_of = Some((principal.clone(), mechanism));
                        gate = Gate::Handshake;
                    } else if session_ends.is_some_and(|end| tokio::time::Instant::now() >= end) {
                        tracing::debug!(%peer, listener = %listener, ?api_key, "SASL session expired (connections.max.reauth.ms): closing");
                        break;
                    }
                }
                let (reply, request_throttle) = match (&sasl, &gate) {
                    (Some(auth), g) if !matches!(g, Gate::Authenticated { .. }) => {
                        let verdict = match &*request {
                            Request::Kafka(kind) => auth.before_auth(&mut gate, api_key, version, kind),
                            Request::Old(_) => Verdict::Close("request not allowed before SASL authentication completes"),
                        };
                        if let Gate::Token { mechanism: m, .. } = &gate {
                            mechanism = Some(*m);
                        }
                        let mut verdict = verdict;
                        if let Gate::Authenticated { principal, .. } = &gate {
                            match reauth_of.take() {
                                // Kafka refuses a re-authentication that changes who the
                                // connection is, or how it proves it.
                                Some((before, m)) if before != *principal || m != mechanism => {
                                    verdict = Verdict::ReplyAndClose(ResponseKind::SaslAuthenticate(
                                        kafka_protocol::messages::SaslAuthenticateResponse::default()
                                            .with_error_code(kafka_protocol::error::ResponseError::SaslAuthenticationFailed.code())
                                            .with_error_message(Some(kafka_protocol::protocol::StrBytes::from_static_str(
                                                "Cannot change principals or SASL mechanisms during re-authentication",
                                            ))),
                                    ));
                                }
                                _ => {
                                    tracing::debug!(%peer, %principal, "authenticated");
                                    session.principal = Arc::from(principal.as_str());
                                    authenticated.store(true, Ordering::SeqCst);
                                    let lifetime = auth.session_lifetime_ms(&gate, crate::clock::now_ms());
                                    session_ends = (lifetime > 0).then(|| tokio::time::Instant::now() + std::time::Duration::from_millis(lifetime));
                                }
                            }
                        }
                        match verdict {
                            Verdict::Dispatch => handle_metered(&broker, &header, *request, &session).await,
                            Verdict::Reply(r) => (Some(Reply { body: Body::Kafka(r), files: Vec::new() }), 0),
                            Verdict::ReplyAndClose(r) => {
                                crate::sasl::report_failure(peer, &listener, crate::clock::now_ms());
                                if encode_response(&mut out, api_key, version, header.correlation_id, &Body::Kafka(r)).is_ok() {
                                    let _ = flush(&mut w, &mut out).await;
                                }
                                break;
                            }
                            Verdict::Close(why) => {
                                tracing::debug!(%peer, listener = %listener, ?api_key, why, "closing connection");
                                break;
                            }
                        }
                    }
                    _ => handle_metered(&broker, &header, *request, &session).await,
                };
                // A client over its quota (KIP-219): answered at once, then nothing more is read
                // from it until the throttle time it was told has passed. (A response without a
                // throttle time field, or none at all, an acks=0 produce, does not tell it, but
                // the wait is the same: Kafka mutes the channel all the same.)
                let throttle_ms = match reply.as_ref().map(|r| &r.body) {
                    Some(Body::Kafka(r)) => crate::quotas::throttle::get(r).max(request_throttle),
                    Some(Body::Old(_)) | None => request_throttle,
                };
                match reply {
                    None => {
                        if throttle_ms > 0 {
                            if flush(&mut w, &mut out).await.is_err() {
                                break;
                            }
                            tokio::time::sleep(std::time::Duration::from_millis(throttle_ms as u64)).await;
                        }
                    }
                    Some(Reply { body, files }) if files.is_empty() => {
                        if let Err(e) = encode_response(&mut out, api_key, version, header.correlation_id, &body) {
                            tracing::error!(%peer, error = %e, "closing connection");
                            break;
                        }
                        if throttle_ms > 0 {
                            if flush(&mut w, &mut out).await.is_err() {
                                break;
                            }
                            tokio::time::sleep(std::time::Duration::from_millis(throttle_ms as u64)).await;
                        }
                    }
                    Some(Reply { body, files }) => {
                        // Record bytes go from the segment files to the socket by sendfile; the
                        // earlier responses were flushed above, so order is kept.
                        let Body::Kafka(ResponseKind::Fetch(body)) = body else {
                            tracing::error!(%peer, "file ranges attached to a response that is not a fetch");
                            break;
                        };
                        let parts = match encode_scattered(api_key, version, header.correlation_id, &body, files) {
                            Ok(parts) => parts,
                            Err(e) => {
                                tracing::error!(%peer, error = %e, "closing connection");
                                break;
                            }
                        };
                        if let Err(e) = zero_copy::write_parts(&mut w, parts).await {
                            if !is_disconnect(&e) {
                                tracing::warn!(%peer, error = %e, "closing connection during a fetch response");
                            }
                            break;
                        }
                        if throttle_ms > 0 {
                            tokio::time::sleep(std::time::Duration::from_millis(throttle_ms as u64)).await;
                        }
                        continue;
                    }
                }
            }
            Ok(Some(Incoming::RawToken(token))) => {
                let answer = match &sasl {
                    Some(auth) => auth.raw_token(&mut gate, &token),
                    None => Err("a bare SASL token on a listener without SASL".to_string()),
                };
                match answer {
                    Ok(server_token) => {
                        if let Gate::Authenticated { principal, .. } = &gate {
                            tracing::debug!(%peer, %principal, "authenticated");
                            session.principal = Arc::from(principal.as_str());
                            authenticated.store(true, Ordering::SeqCst);
                            // A v0 client cannot re-authenticate: its connection closes once
                            // the session is over (KIP-368).
                            let lifetime = sasl.as_ref().map_or(0, |a| a.session_lifetime_ms(&gate, crate::clock::now_ms()));
                            session_ends = (lifetime > 0).then(|| tokio::time::Instant::now() + std::time::Duration::from_millis(lifetime));
                        }
                        if raw_more_tx.send(gate.expects_raw_token()).await.is_err() {
                            break;
                        }
                        out.put_i32(server_token.len() as i32);
                        out.extend_from_slice(&server_token);
                    }
                    Err(why) => {
                        tracing::debug!(%peer, listener = %listener, why, "SASL authentication failed (v0 handshake)");
                        crate::sasl::report_failure(peer, &listener, crate::clock::now_ms());
                        break;
                    }
                }
            }
            Ok(Some(Incoming::UnsupportedApiVersions { correlation_id })) => {
                // Kafka's rule (KIP-511): answer an ApiVersions version we do not know with a v0
                // response carrying UNSUPPORTED_VERSION and our ranges, so the client can downgrade.
                let response = Body::Kafka(ResponseKind::ApiVersions(handlers::api_versions::unsupported()));
                if let Err(e) = encode_response(&mut out, ApiKey::ApiVersions, 0, correlation_id, &response) {
                    tracing::error!(%peer, error = %e, "closing connection");
                    break;
                }
            }
            Err(FrameError::Io(e)) if is_disconnect(&e) => break,
            Err(e) => {
                // A client's malformed or unsupported request: at most one line per 10 s.
                static LIMIT: crate::log_limit::RateLimit = crate::log_limit::RateLimit::new(10_000);
                if let Some(suppressed) = LIMIT.allow(crate::clock::now_ms()) {
                    tracing::warn!(%peer, error = %e, similar_since_last = suppressed, "closing connection");
                }
                break;
            }
        }
        // Batch the responses of pipelined requests into one write when more are already waiting.
        if !out.is_empty() && (rx.is_empty() || out.len() >= 1024 * 1024) {
            if let Err(e) = flush(&mut w, &mut out).await {
                if !is_disconnect(&e) {
                    tracing::debug!(%peer, error = %e, "write failed");
                }
                break;
            }
        }
    }
    if !out.is_empty() {
        let _ = w.write_all(&out).await;
        let _ = w.flush().await;
    }
    reader.abort();
}

/// Handles a request under the request quota (`request_percentage`, `quotas.rs`): the time its
/// handler ran is recorded for the client, and a throttle time over the quota is put in the
/// response (the larger of it and a byte rate's). Returns the reply and the request quota's
/// throttle time, which the connection waits out even where no response field carries it.
async fn handle_metered(broker: &Arc<Broker>, header: &RequestHeader, request: Request, session: &Session) -> (Option<Reply>, i32) {
    use crate::quotas::throttle;
    let exempt = match &request {
        Request::Kafka(k) => throttle::exempt(k),
        Request::Old(_) => false,
    };
    let (mut reply, busy) = throttle::timed(handlers::handle(broker, header, request, session)).await;
    if exempt {
        return (reply, 0);
    }
    let image = broker.metadata.image();
    let client_id = header.client_id.as_deref().unwrap_or("");
    let ms = broker.quotas.record(&image.quotas, crate::quotas::Kind::Request, &session.principal, client_id, throttle::percent_seconds(busy), crate::clock::now_ms());
    if let Some(Reply { body: Body::Kafka(r), .. }) = &mut reply {
        throttle::raise(r, ms);
    }
    (reply, ms)
}

async fn flush(w: &mut WriteHalf, out: &mut BytesMut) -> std::io::Result<()> {
    w.write_all(out).await?;
    // TLS keeps encrypted bytes buffered until flushed; a plain socket's flush is free.
    w.flush().await?;
    out.clear();
    // Do not keep a huge buffer alive after one big fetch response.
    if out.capacity() > 8 * 1024 * 1024 {
        *out = BytesMut::with_capacity(64 * 1024);
    }
    Ok(())
}

fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), UnexpectedEof | ConnectionReset | BrokenPipe | ConnectionAborted)
}

/// A bare SASL token frame (after a SaslHandshake v0): size-prefixed bytes with no header.
async fn next_raw_token(broker: &Broker, reader: &mut FrameReader<ReadHalf>) -> Result<Option<Incoming>, FrameError> {
    Ok(reader.next(0, broker.config.socket_request_max_bytes).await?.map(Incoming::RawToken))
}

enum Incoming {
    /// Boxed: decoded requests are large and travel through the read-ahead channel.
    Request { api_key: ApiKey, version: i16, header: RequestHeader, request: Box<Request> },
    UnsupportedApiVersions { correlation_id: i32 },
    RawToken(Bytes),
}

async fn next_request(broker: &Broker, reader: &mut FrameReader<ReadHalf>) -> Result<Option<Incoming>, FrameError> {
    // At least a request header's fixed part: key, version, correlation id.
    match reader.next(8, broker.config.socket_request_max_bytes).await? {
        Some(frame) => decode_frame(frame).map(Some),
        None => Ok(None),
    }
}

/// Decodes one request frame (without its size prefix); the caller guarantees at least 8 bytes.
fn decode_frame(mut frame: Bytes) -> Result<Incoming, FrameError> {
    // The header's first fields are fixed-width in every header version: key, version, correlation id.
    let mut peek = frame.clone();
    let raw_key = peek.get_i16();
    let version = peek.get_i16();
    let correlation_id = peek.get_i32();
    let api_key = ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApi(raw_key))?;
    let Some(range) = handlers::supported_range(api_key) else {
        return Err(FrameError::UnknownApi(raw_key));
    };
    if !(range.0..=range.1).contains(&version) {
        if api_key == ApiKey::ApiVersions {
            return Ok(Incoming::UnsupportedApiVersions { correlation_id });
        }
        return Err(FrameError::UnsupportedVersion(api_key, version));
    }
    let header = RequestHeader::decode(&mut frame, old_versions::request_header_version(api_key, version))
        .map_err(|e| FrameError::Decode(api_key, version, e.to_string()))?;
    let request = if old_versions::is_old(api_key, version) {
        match old_versions::decode_request(api_key, version, &mut frame).map_err(|e| FrameError::Decode(api_key, version, e))? {
            Decoded::Kafka(r) => Request::Kafka(r),
            Decoded::Old(r) => Request::Old(r),
        }
    } else {
        Request::Kafka(RequestKind::decode(api_key, &mut frame, version).map_err(|e| FrameError::Decode(api_key, version, e.to_string()))?)
    };
    Ok(Incoming::Request { api_key, version, header, request: Box::new(request) })
}

fn encode_scattered(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &kafka_protocol::messages::FetchResponse,
    files: Vec<strom_storage::FileSlice>,
) -> Result<Vec<zero_copy::Part>, FrameError> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    let err = |e: String| FrameError::Encode(api_key, version, e);
    let size = header.compute_size(header_version).map_err(|e| err(e.to_string()))?
        + response.compute_size(version).map_err(|e| err(e.to_string()))?;
    let size = i32::try_from(size).map_err(|_| err(format!("response of {size} bytes")))?;
    let mut buf = zero_copy::ScatterBuf::new(files);
    buf.put_i32(size);
    header.encode(&mut buf, header_version).map_err(|e| err(e.to_string()))?;
    response.encode(&mut buf, version).map_err(|e| err(e.to_string()))?;
    match buf.finish() {
        Some((parts, len)) if len == size as usize + 4 => Ok(parts),
        _ => Err(err("record placeholders did not match the file ranges".into())),
    }
}

fn encode_response(
    out: &mut BytesMut,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &Body,
) -> Result<(), FrameError> {
    let start = out.len();
    out.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let encoded = header.encode(out, old_versions::response_header_version(api_key, version)).map_err(|e| e.to_string()).and_then(|()| match response {
        Body::Kafka(r) if old_versions::is_old(api_key, version) => old_versions::encode_response(api_key, version, r, out),
        Body::Kafka(r) => r.encode(out, version).map_err(|e| e.to_string()),
        Body::Old(r) => old_versions::encode_old_response(r, out),
    });
    if let Err(e) = encoded {
        // Never let a half-written frame reach the socket with the responses before it.
        out.truncate(start);
        return Err(FrameError::Encode(api_key, version, e));
    }
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(api_key: i16, version: i16, body: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(api_key);
        b.put_i16(version);
        b.put_i32(7);
        b.put_i16(-1); // null client id
        b.extend_from_slice(body);
        b.freeze()
    }

    #[test]
    fn unknown_api_key_is_rejected() {
        assert!(matches!(decode_frame(frame(9999, 0, &[])), Err(FrameError::UnknownApi(9999))));
    }

    #[test]
    fn unsupported_api_versions_version_gets_v0_answer() {
        assert!(matches!(decode_frame(frame(18, 99, &[])), Ok(Incoming::UnsupportedApiVersions { correlation_id: 7 })));
    }

    #[test]
    fn huge_array_count_is_an_error_not_an_abort() {
        // Metadata v1: topics array claiming i32::MAX entries, then nothing.
        // kafka-protocol pre-allocates from the count; the guard allocator (installed in this
        // test binary below) makes that allocation lazy so the decode fails cleanly.
        let r = decode_frame(frame(3, 1, &i32::MAX.to_be_bytes()));
        assert!(matches!(r, Err(FrameError::Decode(..))), "{}", r.err().map(|e| e.to_string()).unwrap_or_default());
    }

    /// Every API we advertise, at every version we advertise, goes through its real handler and
    /// the real encoder without error. kafka-protocol refuses to encode a field that a version
    /// lacks (ListOffsets v2 with a leader epoch once slipped through), and such a failure only
    /// shows with the client that picks that version, so check them all here.
    #[tokio::test]
    async fn every_advertised_version_encodes() {
        use kafka_protocol::messages::*;
        use kafka_protocol::protocol::StrBytes;
        use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

        let dir = tempfile::tempdir().unwrap();
        let mut props = std::collections::BTreeMap::new();
        props.insert("log.dirs".to_string(), dir.path().display().to_string());
        props.insert("offsets.topic.num.partitions".to_string(), "3".to_string());
        let broker = crate::Broker::open(crate::BrokerConfig::from_props(&props).unwrap()).await.unwrap();
        broker.metadata.register(vec![]).await;
        broker.topics.create_topic("t", 1, 1, Default::default(), false).await.unwrap();
        let group = || GroupId(StrBytes::from_static_str("g"));
        let name = || TopicName(StrBytes::from_static_str("t"));
        let txn_id = || TransactionalId(StrBytes::from_static_str("tx"));
        let record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 1000,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        };
        let mut batch = BytesMut::new();
        RecordBatchEncoder::encode(&mut batch, [&record], &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
        let batch = batch.freeze();

        let requests = |key: ApiKey| -> Vec<RequestKind> {
            match key {
                ApiKey::Produce => vec![RequestKind::Produce(ProduceRequest::default().with_acks(1).with_topic_data(vec![
                    produce_request::TopicProduceData::default().with_name(name()).with_partition_data(vec![
                        produce_request::PartitionProduceData::default().with_index(0).with_records(Some(batch.clone())),
                        produce_request::PartitionProduceData::default().with_index(7).with_records(Some(batch.clone())),
                    ]),
                ]))],
                ApiKey::Fetch => vec![RequestKind::Fetch(FetchRequest::default().with_max_bytes(1 << 20).with_topics(vec![
                    fetch_request::FetchTopic::default().with_topic(name()).with_partitions(vec![
                        fetch_request::FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20),
                        fetch_request::FetchPartition::default().with_partition(0).with_fetch_offset(99),
                    ]),
                ]))],
                ApiKey::ListOffsets => vec![RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![
                    list_offsets_request::ListOffsetsTopic::default().with_name(name()).with_partitions(
                        [-1, -2, -3, 0, 5000].iter().map(|ts| list_offsets_request::ListOffsetsPartition::default().with_timestamp(*ts)).collect(),
                    ),
                ]))],
                ApiKey::Metadata => vec![
                    RequestKind::Metadata(MetadataRequest::default().with_topics(None)),
                    RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                        metadata_request::MetadataRequestTopic::default().with_name(Some(name())),
                        metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str("bad name")))),
                    ]))),
                ],
                ApiKey::CreateTopics => vec![RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
                    create_topics_request::CreatableTopic::default().with_name(name()).with_num_partitions(1).with_replication_factor(1),
                    create_topics_request::CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("u")))
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                ]).with_validate_only(true))],
                ApiKey::DescribeConfigs => vec![RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("t")),
                    describe_configs_request::DescribeConfigsResource::default().with_resource_type(4).with_resource_name(StrBytes::from_static_str("1")),
                ]))],
                ApiKey::InitProducerId => vec![RequestKind::InitProducerId(InitProducerIdRequest::default())],
                ApiKey::ApiVersions => vec![RequestKind::ApiVersions(ApiVersionsRequest::default())],
                ApiKey::DeleteTopics => vec![RequestKind::DeleteTopics(DeleteTopicsRequest::default())],
                ApiKey::DeleteRecords => vec![RequestKind::DeleteRecords(DeleteRecordsRequest::default().with_topics(vec![
                    delete_records_request::DeleteRecordsTopic::default().with_name(name()).with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default().with_partition_index(0).with_offset(0),
                    ]),
                ]))],
                ApiKey::AlterConfigs => vec![RequestKind::AlterConfigs(AlterConfigsRequest::default().with_validate_only(true))],
                ApiKey::IncrementalAlterConfigs => {
                    vec![RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default().with_validate_only(true))]
                }
                ApiKey::CreatePartitions => vec![RequestKind::CreatePartitions(CreatePartitionsRequest::default().with_validate_only(true))],
                ApiKey::DescribeCluster => vec![RequestKind::DescribeCluster(DescribeClusterRequest::default())],
                ApiKey::FindCoordinator => vec![RequestKind::FindCoordinator(
                    FindCoordinatorRequest::default()
                        .with_key(StrBytes::from_static_str("g"))
                        .with_coordinator_keys(vec![StrBytes::from_static_str("g"), StrBytes::from_static_str("")]),
                )],
                // Only requests that answer at once: a join that parks would stall the test.
                ApiKey::JoinGroup => vec![
                    RequestKind::JoinGroup(JoinGroupRequest::default().with_session_timeout_ms(10_000)),
                    RequestKind::JoinGroup(
                        JoinGroupRequest::default()
                            .with_group_id(group())
                            .with_member_id(StrBytes::from_static_str("unknown"))
                            .with_session_timeout_ms(10_000)
                            .with_protocol_type(StrBytes::from_static_str("consumer"))
                            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
                                .with_name(StrBytes::from_static_str("range"))]),
                    ),
                ],
                ApiKey::SyncGroup => vec![RequestKind::SyncGroup(SyncGroupRequest::default().with_group_id(group()).with_generation_id(1))],
                ApiKey::Heartbeat => vec![RequestKind::Heartbeat(HeartbeatRequest::default().with_group_id(group()))],
                ApiKey::LeaveGroup => vec![RequestKind::LeaveGroup(
                    LeaveGroupRequest::default().with_group_id(group()).with_member_id(StrBytes::from_static_str("m")).with_members(vec![
                        leave_group_request::MemberIdentity::default().with_member_id(StrBytes::from_static_str("m")),
                    ]),
                )],
                ApiKey::OffsetCommit => vec![RequestKind::OffsetCommit(
                    OffsetCommitRequest::default().with_group_id(group()).with_generation_id_or_member_epoch(-1).with_topics(vec![
                        offset_commit_request::OffsetCommitRequestTopic::default().with_name(name()).with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default().with_committed_offset(1),
                            offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(9),
                        ]),
                    ]),
                )],
                ApiKey::OffsetFetch => vec![
                    RequestKind::OffsetFetch(
                        OffsetFetchRequest::default()
                            .with_group_id(group())
                            .with_topics(None)
                            .with_groups(vec![offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(group()).with_topics(None)]),
                    ),
                    RequestKind::OffsetFetch(
                        OffsetFetchRequest::default()
                            .with_group_id(group())
                            .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default()
                                .with_name(name())
                                .with_partition_indexes(vec![0, 1])]))
                            .with_groups(vec![offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(group()).with_topics(
                                Some(vec![offset_fetch_request::OffsetFetchRequestTopics::default()
                                    .with_name(name())
                                    .with_partition_indexes(vec![0, 1])]),
                            )]),
                    ),
                ],
                ApiKey::ListGroups => vec![RequestKind::ListGroups(ListGroupsRequest::default())],
                ApiKey::DescribeGroups => vec![RequestKind::DescribeGroups(
                    DescribeGroupsRequest::default().with_groups(vec![group(), GroupId(StrBytes::from_static_str("none"))]),
                )],
                ApiKey::DeleteGroups => vec![RequestKind::DeleteGroups(
                    DeleteGroupsRequest::default().with_groups_names(vec![GroupId(StrBytes::from_static_str("none"))]),
                )],
                ApiKey::OffsetDelete => vec![RequestKind::OffsetDelete(OffsetDeleteRequest::default().with_group_id(group()).with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default().with_name(name()).with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default(),
                    ]),
                ]))],
                ApiKey::OffsetForLeaderEpoch => vec![RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default().with_topics(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderTopic::default().with_topic(name()).with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default().with_partition(0).with_leader_epoch(0),
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default().with_partition(7).with_leader_epoch(0),
                    ]),
                ]))],
                ApiKey::AlterPartitionReassignments => vec![RequestKind::AlterPartitionReassignments(
                    AlterPartitionReassignmentsRequest::default().with_topics(vec![
                        alter_partition_reassignments_request::ReassignableTopic::default().with_name(name()).with_partitions(vec![
                            alter_partition_reassignments_request::ReassignablePartition::default().with_partition_index(0).with_replicas(Some(vec![BrokerId(1), BrokerId(1)])),
                            alter_partition_reassignments_request::ReassignablePartition::default().with_partition_index(0),
                            alter_partition_reassignments_request::ReassignablePartition::default().with_partition_index(9).with_replicas(Some(vec![BrokerId(1)])),
                        ]),
                    ]),
                )],
                ApiKey::ListPartitionReassignments => vec![
                    RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default()),
                    RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
                        list_partition_reassignments_request::ListPartitionReassignmentsTopics::default().with_name(name()).with_partition_indexes(vec![0]),
                    ]))),
                ],
                // Transactions: an unknown transactional id and producer answer with errors, which
                // must encode in every version too.
                ApiKey::AddPartitionsToTxn => vec![
                    RequestKind::AddPartitionsToTxn(
                        AddPartitionsToTxnRequest::default()
                            .with_v3_and_below_transactional_id(txn_id())
                            .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(name()).with_partitions(vec![0])]),
                    ),
                    RequestKind::AddPartitionsToTxn(AddPartitionsToTxnRequest::default().with_transactions(vec![
                        add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default().with_transactional_id(txn_id()).with_verify_only(true).with_topics(vec![
                            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(name()).with_partitions(vec![0, 1]),
                        ]),
                    ])),
                ],
                ApiKey::AddOffsetsToTxn => vec![RequestKind::AddOffsetsToTxn(AddOffsetsToTxnRequest::default().with_transactional_id(txn_id()).with_group_id(group()))],
                ApiKey::EndTxn => vec![RequestKind::EndTxn(EndTxnRequest::default().with_transactional_id(txn_id()).with_committed(true))],
                ApiKey::TxnOffsetCommit => vec![RequestKind::TxnOffsetCommit(TxnOffsetCommitRequest::default().with_transactional_id(txn_id()).with_group_id(group()).with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default().with_name(name()).with_partitions(vec![
                        txn_offset_commit_request::TxnOffsetCommitRequestPartition::default().with_committed_offset(3),
                    ]),
                ]))],
                ApiKey::WriteTxnMarkers => vec![RequestKind::WriteTxnMarkers(WriteTxnMarkersRequest::default().with_markers(vec![
                    write_txn_markers_request::WritableTxnMarker::default().with_producer_id(ProducerId(5)).with_topics(vec![
                        write_txn_markers_request::WritableTxnMarkerTopic::default().with_name(name()).with_partition_indexes(vec![0, 7]),
                    ]),
                ]))],
                ApiKey::DescribeTransactions => vec![RequestKind::DescribeTransactions(DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id()]))],
                ApiKey::ListTransactions => vec![RequestKind::ListTransactions(
                    ListTransactionsRequest::default().with_state_filters(vec![StrBytes::from_static_str("Ongoing"), StrBytes::from_static_str("Nope")]),
                )],
                ApiKey::DescribeProducers => vec![RequestKind::DescribeProducers(DescribeProducersRequest::default().with_topics(vec![
                    describe_producers_request::TopicRequest::default().with_name(name()).with_partition_indexes(vec![0, 7]),
                ]))],
                ApiKey::SaslHandshake => vec![RequestKind::SaslHandshake(SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")))],
                ApiKey::SaslAuthenticate => vec![RequestKind::SaslAuthenticate(SaslAuthenticateRequest::default())],
                ApiKey::DescribeAcls => vec![RequestKind::DescribeAcls(DescribeAclsRequest::default().with_resource_type_filter(2).with_pattern_type_filter(3))],
                ApiKey::CreateAcls => vec![RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![
                    create_acls_request::AclCreation::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("t")).with_resource_pattern_type(3),
                ]))],
                ApiKey::DeleteAcls => vec![RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![
                    delete_acls_request::DeleteAclsFilter::default().with_resource_type_filter(1).with_pattern_type_filter(3),
                ]))],
                ApiKey::DescribeUserScramCredentials => vec![
                    RequestKind::DescribeUserScramCredentials(kafka_protocol::messages::DescribeUserScramCredentialsRequest::default()),
                    RequestKind::DescribeUserScramCredentials(kafka_protocol::messages::DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                        kafka_protocol::messages::describe_user_scram_credentials_request::UserName::default().with_name(StrBytes::from_static_str("nobody")),
                    ]))),
                ],
                ApiKey::AlterUserScramCredentials => {
                    use kafka_protocol::messages::alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion};
                    vec![RequestKind::AlterUserScramCredentials(
                        kafka_protocol::messages::AlterUserScramCredentialsRequest::default()
                            .with_deletions(vec![ScramCredentialDeletion::default().with_name(StrBytes::from_static_str("nobody")).with_mechanism(1)])
                            .with_upsertions(vec![
                                ScramCredentialUpsertion::default().with_name(StrBytes::from_static_str("u")).with_mechanism(2).with_iterations(4096).with_salt(Bytes::from_static(b"salt")),
                                ScramCredentialUpsertion::default().with_name(StrBytes::from_static_str("bad")).with_mechanism(9).with_iterations(1),
                            ]),
                    )]
                }
                ApiKey::DescribeClientQuotas => {
                    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
                    vec![
                        RequestKind::DescribeClientQuotas(kafka_protocol::messages::DescribeClientQuotasRequest::default()),
                        RequestKind::DescribeClientQuotas(kafka_protocol::messages::DescribeClientQuotasRequest::default().with_components(vec![
                            ComponentData::default().with_entity_type(StrBytes::from_static_str("user")).with_match_type(7),
                        ])),
                    ]
                }
                ApiKey::AlterClientQuotas => {
                    use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
                    vec![RequestKind::AlterClientQuotas(kafka_protocol::messages::AlterClientQuotasRequest::default().with_entries(vec![
                        EntryData::default()
                            .with_entity(vec![EntityData::default().with_entity_type(StrBytes::from_static_str("client-id")).with_entity_name(None)])
                            .with_ops(vec![OpData::default().with_key(StrBytes::from_static_str("producer_byte_rate")).with_value(1024.0)]),
                        EntryData::default().with_entity(vec![EntityData::default().with_entity_type(StrBytes::from_static_str("nope"))]),
                    ]))]
                }
                // KIP-848: a join (with an assignment once the coordinator is loaded), a fenced
                // heartbeat, and the description of a consumer group and of a classic one.
                ApiKey::ConsumerGroupHeartbeat => vec![
                    RequestKind::ConsumerGroupHeartbeat(
                        ConsumerGroupHeartbeatRequest::default()
                            .with_group_id(GroupId(StrBytes::from_static_str("cg")))
                            .with_member_id(StrBytes::from_static_str("m"))
                            .with_rebalance_timeout_ms(1000)
                            .with_subscribed_topic_names(Some(vec![name()]))
                            .with_topic_partitions(Some(vec![])),
                    ),
                    RequestKind::ConsumerGroupHeartbeat(
                        ConsumerGroupHeartbeatRequest::default()
                            .with_group_id(GroupId(StrBytes::from_static_str("cg")))
                            .with_member_id(StrBytes::from_static_str("m"))
                            .with_member_epoch(99),
                    ),
                ],
                ApiKey::ConsumerGroupDescribe => vec![RequestKind::ConsumerGroupDescribe(
                    ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(StrBytes::from_static_str("cg")), group()]),
                )],
                // KIP-932: a share join, a share session opened with a fetch and an
                // acknowledgement of a record nobody holds, a description, the offsets APIs.
                ApiKey::ShareGroupHeartbeat => vec![RequestKind::ShareGroupHeartbeat(
                    ShareGroupHeartbeatRequest::default()
                        .with_group_id(GroupId(StrBytes::from_static_str("sg")))
                        .with_member_id(StrBytes::from_static_str("sm"))
                        .with_subscribed_topic_names(Some(vec![name()])),
                )],
                ApiKey::ShareGroupDescribe => vec![RequestKind::ShareGroupDescribe(
                    ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(StrBytes::from_static_str("sg")), group()]),
                )],
                ApiKey::ShareFetch | ApiKey::ShareAcknowledge => {
                    let id = broker.metadata.image().topics.get("t").map_or(uuid::Uuid::nil(), |t| t.id);
                    let sg = Some(GroupId(StrBytes::from_static_str("sg")));
                    let sm = Some(StrBytes::from_static_str("sm"));
                    if key == ApiKey::ShareFetch {
                        use kafka_protocol::messages::share_fetch_request::{FetchPartition, FetchTopic};
                        vec![RequestKind::ShareFetch(
                            ShareFetchRequest::default()
                                .with_group_id(sg)
                                .with_member_id(sm)
                                .with_max_records(10)
                                .with_topics(vec![FetchTopic::default().with_topic_id(id).with_partitions(vec![FetchPartition::default().with_partition_index(0)])]),
                        )]
                    } else {
                        use kafka_protocol::messages::share_acknowledge_request::{AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch};
                        let batch = AcknowledgementBatch::default().with_first_offset(0).with_last_offset(0).with_acknowledge_types(vec![1]);
                        vec![RequestKind::ShareAcknowledge(
                            ShareAcknowledgeRequest::default().with_group_id(sg).with_member_id(sm).with_share_session_epoch(1).with_topics(vec![
                                AcknowledgeTopic::default().with_topic_id(id).with_partitions(vec![AcknowledgePartition::default().with_partition_index(0).with_acknowledgement_batches(vec![batch])]),
                            ]),
                        )]
                    }
                }
                ApiKey::DescribeShareGroupOffsets => {
                    use kafka_protocol::messages::describe_share_group_offsets_request::{DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic};
                    vec![RequestKind::DescribeShareGroupOffsets(DescribeShareGroupOffsetsRequest::default().with_groups(vec![
                        DescribeShareGroupOffsetsRequestGroup::default().with_group_id(GroupId(StrBytes::from_static_str("sg"))),
                        DescribeShareGroupOffsetsRequestGroup::default()
                            .with_group_id(GroupId(StrBytes::from_static_str("sg")))
                            .with_topics(Some(vec![DescribeShareGroupOffsetsRequestTopic::default().with_topic_name(name()).with_partitions(vec![0, 7])])),
                    ]))]
                }
                ApiKey::AlterShareGroupOffsets => {
                    use kafka_protocol::messages::alter_share_group_offsets_request::{AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic};
                    vec![RequestKind::AlterShareGroupOffsets(
                        AlterShareGroupOffsetsRequest::default().with_group_id(GroupId(StrBytes::from_static_str("sg"))).with_topics(vec![AlterShareGroupOffsetsRequestTopic::default()
                            .with_topic_name(name())
                            .with_partitions(vec![AlterShareGroupOffsetsRequestPartition::default().with_partition_index(0).with_start_offset(0)])]),
                    )]
                }
                ApiKey::DeleteShareGroupOffsets => {
                    use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
                    vec![RequestKind::DeleteShareGroupOffsets(
                        DeleteShareGroupOffsetsRequest::default()
                            .with_group_id(GroupId(StrBytes::from_static_str("sg")))
                            .with_topics(vec![DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(name())]),
                    )]
                }
                // Between brokers: a state never written, and a write of one.
                ApiKey::ReadShareGroupState => {
                    use kafka_protocol::messages::read_share_group_state_request::{PartitionData, ReadStateData};
                    let id = broker.metadata.image().topics.get("t").map_or(uuid::Uuid::nil(), |t| t.id);
                    vec![RequestKind::ReadShareGroupState(
                        ReadShareGroupStateRequest::default()
                            .with_group_id(StrBytes::from_static_str("sg"))
                            .with_topics(vec![ReadStateData::default().with_topic_id(id).with_partitions(vec![PartitionData::default().with_partition(0).with_leader_epoch(0)])]),
                    )]
                }
                ApiKey::WriteShareGroupState => {
                    use kafka_protocol::messages::write_share_group_state_request::{PartitionData, StateBatch, WriteStateData};
                    let id = broker.metadata.image().topics.get("t").map_or(uuid::Uuid::nil(), |t| t.id);
                    let batch = StateBatch::default().with_first_offset(0).with_last_offset(0).with_delivery_state(0).with_delivery_count(1);
                    vec![RequestKind::WriteShareGroupState(WriteShareGroupStateRequest::default().with_group_id(StrBytes::from_static_str("sg")).with_topics(vec![
                        WriteStateData::default().with_topic_id(id).with_partitions(vec![PartitionData::default().with_partition(0).with_leader_epoch(0).with_state_batches(vec![batch])]),
                    ]))]
                }
                // The operators' APIs: everything and a named partition not hosted; elections
                // needing none, of an unknown topic, of an unknown type; pages with a cursor,
                // a bad cursor; the quorum, and a partition that is not its log.
                ApiKey::DescribeLogDirs => {
                    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
                    vec![
                        RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(None)),
                        RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(Some(vec![
                            DescribableLogDirTopic::default().with_topic(name()).with_partitions(vec![0, 9]),
                        ]))),
                    ]
                }
                ApiKey::ElectLeaders => {
                    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
                    let named = || Some(vec![TopicPartitions::default().with_topic(name()).with_partitions(vec![0, 5])]);
                    vec![
                        RequestKind::ElectLeaders(ElectLeadersRequest::default().with_topic_partitions(None)),
                        RequestKind::ElectLeaders(ElectLeadersRequest::default().with_election_type(1).with_topic_partitions(named())),
                        RequestKind::ElectLeaders(ElectLeadersRequest::default().with_election_type(9).with_topic_partitions(named())),
                    ]
                }
                ApiKey::DescribeTopicPartitions => {
                    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
                    let topics = || vec![TopicRequest::default().with_name(name()), TopicRequest::default().with_name(TopicName(StrBytes::from_static_str("gone")))];
                    vec![
                        RequestKind::DescribeTopicPartitions(DescribeTopicPartitionsRequest::default().with_response_partition_limit(2000)),
                        RequestKind::DescribeTopicPartitions(
                            DescribeTopicPartitionsRequest::default()
                                .with_topics(topics())
                                .with_response_partition_limit(1)
                                .with_cursor(Some(Cursor::default().with_topic_name(name()).with_partition_index(0))),
                        ),
                        RequestKind::DescribeTopicPartitions(
                            DescribeTopicPartitionsRequest::default().with_topics(topics()).with_cursor(Some(Cursor::default().with_topic_name(name()).with_partition_index(-1))),
                        ),
                    ]
                }
                ApiKey::DescribeQuorum => {
                    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
                    let quorum = |topic: &'static str| {
                        DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                            .with_topic_name(TopicName(StrBytes::from_static_str(topic)))
                            .with_partitions(vec![PartitionData::default().with_partition_index(0)])])
                    };
                    vec![RequestKind::DescribeQuorum(quorum("__cluster_metadata")), RequestKind::DescribeQuorum(quorum("t"))]
                }
                other => panic!("SUPPORTED lists {other:?} but this test does not cover it: add it"),
            }
        };
        // The old versions whose requests do not fit kafka-protocol's structs.
        let as_version = |key: ApiKey, version: i16, r: RequestKind| -> Request {
            use crate::old_versions::{ListOffsetsV0Partition, ListOffsetsV0Request, OldRequest};
            match (key, version, r) {
                (ApiKey::ListOffsets, 0, RequestKind::ListOffsets(r)) => Request::Old(OldRequest::ListOffsetsV0(ListOffsetsV0Request {
                    replica_id: -1,
                    topics: r
                        .topics
                        .into_iter()
                        .map(|t| {
                            let ps = t.partitions.iter().map(|p| ListOffsetsV0Partition { partition: p.partition_index, timestamp: p.timestamp, max_num_offsets: 3 });
                            (t.name, ps.collect())
                        })
                        .collect(),
                })),
                (ApiKey::OffsetCommit, 1, RequestKind::OffsetCommit(r)) => {
                    let commit_timestamps = r.topics.iter().map(|t| vec![1_000; t.partitions.len()]).collect();
                    Request::Old(OldRequest::OffsetCommitV1 { request: r, commit_timestamps })
                }
                (_, _, r) => Request::Kafka(r),
            }
        };
        let mut checked = 0;
        let expected: usize = handlers::SUPPORTED.iter().map(|(k, lo, hi)| (hi - lo + 1) as usize * requests(*k).len()).sum();
        for (key, lo, hi) in handlers::SUPPORTED {
            for version in *lo..=*hi {
                for request in requests(*key) {
                    let header = RequestHeader::default().with_request_api_key(*key as i16).with_request_api_version(version);
                    let peer: SocketAddr = ([127, 0, 0, 1], 1).into();
                    let request = as_version(*key, version, request);
                    let Some(Reply { body, files }) = handlers::handle(&broker, &header, request, &Session::anonymous(peer, Arc::from("PLAINTEXT"))).await else { continue };
                    let r = if let (false, Body::Kafka(ResponseKind::Fetch(f))) = (files.is_empty(), &body) {
                        encode_scattered(*key, version, 1, f, files).map(|_| ())
                    } else {
                        encode_response(&mut BytesMut::new(), *key, version, 1, &body)
                    };
                    assert!(r.is_ok(), "{key:?} v{version}: {}", r.err().map(|e| e.to_string()).unwrap_or_default());
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, expected, "every combination must produce a response");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn arbitrary_frames_never_panic(key in 0i16..80, version in -1i16..20, body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frame(frame(key, version, &body));
        }

        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 8..300)) {
            let _ = decode_frame(Bytes::from(raw));
        }
    }
}
