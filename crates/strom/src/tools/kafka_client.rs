//! A small Kafka protocol client for the admin requests librdkafka has no API for: the
//! transaction ones (ListTransactions, DescribeTransactions, DescribeProducers, WriteTxnMarkers)
//! and the FindCoordinator of a transactional id that leads to them. Used by `strom transactions`.
//!
//! It speaks the wire protocol with kafka-protocol's codecs, as the broker's follower client does
//! (`strom_broker::replication::client`, crate-private there and tied to a replica's identity):
//! one TCP connection per broker, opened when first needed, one request in flight on it, a
//! 4-byte length before every frame, and the correlation id checked on every response. There is
//! no ApiVersions exchange: the tool asks for versions every Strom broker serves (and Kafka 3.x),
//! and a broker without them answers with an error the tool reports.
//!
//! Metadata (of the bootstrap broker, then of whichever broker answers) gives the brokers'
//! addresses and the partitions' leaders; callers re-ask after NOT_LEADER_OR_FOLLOWER or
//! NOT_COORDINATOR, as the Java admin client does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    FindCoordinatorRequest, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use strom_broker::sasl::client::ScramClient;
use strom_broker::sasl::scram::ScramMechanism;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::client_security::{Login, Mechanism, Security};
use tokio::net::TcpStream;

/// No admin response comes near this; a bigger length prefix means the stream is not Kafka's.
const MAX_FRAME: usize = 100 * 1024 * 1024;

/// Metadata v12 (KIP-516 topic ids, flexible), FindCoordinator v4 (KIP-699 batched keys): what
/// Kafka 3.x admin clients send, and what Strom serves.
const METADATA_VERSION: i16 = 12;
const FIND_COORDINATOR_VERSION: i16 = 4;
/// FindCoordinator's key type of a transactional id (0 is a group).
const KEY_TYPE_TRANSACTION: i8 = 1;
const KEY_TYPE_GROUP: i8 = 0;
/// How long to wait before asking again after a retriable error (a coordinator still loading).
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// What a tool's `--command-config` says about its connections.
#[derive(Clone, Debug)]
pub struct Settings {
    pub client_id: String,
    /// The wait for one response; also the tool's whole budget for retrying one question.
    pub timeout: Duration,
    /// TLS and SASL, as `security.protocol` asks (`client_security.rs`).
    pub security: Security,
}

impl Settings {
    /// Reads `client.id`, `request.timeout.ms` and the security settings of a properties file,
    /// as Kafka's tools take them. Security this client cannot speak is refused by name, never
    /// ignored.
    pub fn read(tool: &str, command_config: Option<&std::path::Path>, timeout: Duration) -> anyhow::Result<Settings> {
        let mut s = Settings { client_id: tool.to_string(), timeout, security: Security::default() };
        let Some(path) = command_config else { return Ok(s) };
        let props: BTreeMap<String, String> = super::read_properties("--command-config", path)?.into_iter().collect();
        for (k, v) in &props {
            match k.as_str() {
                "client.id" => s.client_id = v.clone(),
                "request.timeout.ms" => s.timeout = Duration::from_millis(v.parse().with_context(|| format!("request.timeout.ms must be a number of ms, not {v}"))?),
                _ => {}
            }
        }
        s.security = Security::read(&props).with_context(|| format!("--command-config {}", path.display()))?;
        Ok(s)
    }
}

/// A connection's byte stream: TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection to one broker.
struct Conn {
    addr: String,
    stream: Box<dyn Io>,
    correlation_id: i32,
}

impl Conn {
    async fn connect(addr: &str, settings: &Settings) -> anyhow::Result<Conn> {
        let timeout = settings.timeout;
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("cannot connect to {addr} within {} s", timeout.as_secs()))?
            .with_context(|| format!("cannot connect to {addr}"))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = match &settings.security.tls {
            Some(config) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let name = strom_broker::tls::server_name(host)?;
                let tls = tokio::time::timeout(timeout, tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp))
                    .await
                    .map_err(|_| anyhow!("{addr}: no TLS handshake within {} s", timeout.as_secs()))?
                    .with_context(|| format!("{addr}: TLS handshake failed"))?;
                Box::new(tls)
            }
            None => Box::new(tcp),
        };
        let mut conn = Conn { addr: addr.to_string(), stream, correlation_id: 0 };
        if let Some(login) = &settings.security.sasl {
            conn.authenticate(&StrBytes::from_string(settings.client_id.clone()), login, timeout).await?;
        }
        Ok(conn)
    }

    /// SaslHandshake v1 and SaslAuthenticate v2: PLAIN's one token (RFC 4616), or SCRAM's two
    /// rounds with the server's signature checked (Strom's inter-broker SASL client).
    async fn authenticate(&mut self, client_id: &StrBytes, login: &Login, timeout: Duration) -> anyhow::Result<()> {
        let name = match login.mechanism {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(ScramMechanism::Sha256) => "SCRAM-SHA-256",
            Mechanism::Scram(ScramMechanism::Sha512) => "SCRAM-SHA-512",
        };
        let hs = self.call(client_id, 1, &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(name)), timeout).await?;
        if let Some(e) = error(hs.error_code) {
            bail!("{}: SASL handshake refused: {e:?} (the listener offers {:?})", self.addr, hs.mechanisms.iter().map(|m| m.to_string()).collect::<Vec<_>>());
        }
        match login.mechanism {
            Mechanism::Plain => {
                self.sasl_round(client_id, strom_broker::sasl::client::plain_token(&login.username, &login.password), timeout).await?;
            }
            Mechanism::Scram(m) => {
                let rng = ring::rand::SystemRandom::new();
                let mut scram = ScramClient::new(m, &login.username, &login.password, &rng)?;
                let server_first = self.sasl_round(client_id, scram.client_first(), timeout).await?;
                let client_final = scram.client_final(&server_first).with_context(|| format!("{}: SCRAM", self.addr))?;
                let server_final = self.sasl_round(client_id, client_final, timeout).await?;
                scram.verify_server_final(&server_final).with_context(|| format!("{}: SCRAM", self.addr))?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate: our token out, the server's back.
    async fn sasl_round(&mut self, client_id: &StrBytes, token: Vec<u8>, timeout: Duration) -> anyhow::Result<bytes::Bytes> {
        let auth = self.call(client_id, 2, &SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from(token)), timeout).await?;
        if error(auth.error_code).is_some() {
            bail!("{}: {}", self.addr, auth.error_message.as_deref().unwrap_or("SASL authentication failed"));
        }
        Ok(auth.auth_bytes)
    }

    /// Sends `req` at `version` and waits up to `timeout` for its response. After an error the
    /// connection's state is unknown (half a frame may be in flight): the caller drops it.
    async fn call<R: Request>(&mut self, client_id: &StrBytes, version: i16, req: &R, timeout: Duration) -> anyhow::Result<R::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(client_id.clone()));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, R::header_version(version)).context("encoding the request header")?;
        req.encode(&mut buf, version).with_context(|| format!("encoding a request of API {} v{version}", R::KEY))?;
        let size = i32::try_from(buf.len() - 4).context("request too big")?;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        let addr = &self.addr;
        let stream = &mut self.stream;
        let exchange = async {
            stream.write_all(&buf).await?;
            let len = stream.read_i32().await?;
            let len = usize::try_from(len).ok().filter(|l| *l >= 4 && *l <= MAX_FRAME);
            let len = len.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad response frame size"))?;
            let mut frame = BytesMut::zeroed(len);
            stream.read_exact(&mut frame).await?;
            Ok::<_, std::io::Error>(frame.freeze())
        };
        let mut frame = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| anyhow!("{addr} did not answer within {} s", timeout.as_secs()))?
            .with_context(|| format!("connection to {addr}"))?;
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let header = ResponseHeader::decode(&mut frame, header_version).with_context(|| format!("bad response header from {addr}"))?;
        if header.correlation_id != self.correlation_id {
            bail!("{addr} answered request {} while request {} was waiting", header.correlation_id, self.correlation_id);
        }
        let response = R::Response::decode(&mut frame, version).with_context(|| format!("bad response to API {} v{version} from {addr}", R::KEY))?;
        if frame.has_remaining() {
            tracing::debug!(addr = %self.addr, left = frame.remaining(), "response had trailing bytes");
        }
        Ok(response)
    }
}

/// A broker's error code, or None for 0.
pub fn error(code: i16) -> Option<ResponseError> {
    ResponseError::try_from_code(code)
}

/// A broker's error as the person at the terminal should read it (`super::error_text`): Kafka's
/// name of the code and, for the codes these requests return, the message Java's exception
/// carries. kafka-protocol's own Display is only the Rust variant's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerError(pub ResponseError);

impl std::fmt::Display for BrokerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = self.0;
        let message = match e {
            ResponseError::UnknownTopicOrPartition => Some("This server does not host this topic-partition."),
            ResponseError::LeaderNotAvailable => Some("There is no leader for this topic-partition as we are in the middle of a leadership election."),
            ResponseError::NotLeaderOrFollower => Some("This server is not the leader (or a replica) of the partition."),
            ResponseError::TransactionalIdNotFound => Some("The transactionalId could not be found."),
            ResponseError::CoordinatorNotAvailable => Some("The coordinator is not available."),
            ResponseError::NotCoordinator => Some("This is not the correct coordinator."),
            ResponseError::CoordinatorLoadInProgress => Some("The coordinator is loading and hence can't process requests."),
            ResponseError::InvalidProducerEpoch => Some("Producer attempted to produce with an old epoch."),
            ResponseError::TransactionCoordinatorFenced => Some("The transaction coordinator sending the marker is no longer the current coordinator for the producer."),
            ResponseError::UnsupportedVersion => Some("The version of API is not supported."),
            ResponseError::ClusterAuthorizationFailed => Some("Cluster authorization failed."),
            // librdkafka's description of the code (these responses carry no message).
            _ => None,
        };
        f.write_str(&super::error_text(i32::from(e.code()), message))
    }
}

impl std::error::Error for BrokerError {}

/// The cluster as the tool sees it: the brokers from the last Metadata, and a connection to each
/// broker asked so far.
pub struct Cluster {
    bootstrap: String,
    client_id: StrBytes,
    settings: Settings,
    /// The wait for one response; also the tool's whole budget for retrying one question.
    pub timeout: Duration,
    /// node id -> host:port, from the last Metadata response.
    pub brokers: BTreeMap<i32, String>,
    conns: BTreeMap<i32, Conn>,
    /// The connection Metadata goes over: the bootstrap broker's until a broker fails it.
    any: Option<Conn>,
}

impl Cluster {
    /// Connects to the first of the comma-separated `bootstrap` brokers that answers Metadata.
    pub async fn connect(bootstrap: &str, settings: &Settings) -> anyhow::Result<Cluster> {
        let mut c = Cluster {
            bootstrap: bootstrap.to_string(),
            client_id: StrBytes::from_string(settings.client_id.clone()),
            settings: settings.clone(),
            timeout: settings.timeout,
            brokers: BTreeMap::new(),
            conns: BTreeMap::new(),
            any: None,
        };
        c.metadata(Some(&[])).await?;
        Ok(c)
    }

    /// Metadata of `topics` (None: every topic, internal ones included; never auto-created), and
    /// the brokers it lists remembered for `call`. Goes to a connected broker, or the bootstrap
    /// list's first that answers.
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> anyhow::Result<MetadataResponse> {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| ts.iter().map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.clone()))))).collect()))
            .with_allow_auto_topic_creation(false);
        let mut last_error = None;
        if let Some(conn) = self.any.as_mut() {
            match conn.call(&self.client_id, METADATA_VERSION, &req, self.timeout).await {
                Ok(md) => return self.accept(md),
                Err(e) => {
                    self.any = None;
                    last_error = Some(e);
                }
            }
        }
        // The brokers known from earlier metadata first, then the bootstrap list.
        let mut candidates: Vec<String> = self.brokers.values().cloned().collect();
        candidates.extend(self.bootstrap.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()));
        for addr in candidates {
            let mut conn = match Conn::connect(&addr, &self.settings).await {
                Ok(c) => c,
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
            match conn.call(&self.client_id, METADATA_VERSION, &req, self.timeout).await {
                Ok(md) => {
                    self.any = Some(conn);
                    return self.accept(md);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(match last_error {
            Some(e) => e.context(format!("cannot reach the cluster at {}", self.bootstrap)),
            None => anyhow!("cannot reach the cluster at {}: no broker address", self.bootstrap),
        })
    }

    fn accept(&mut self, md: MetadataResponse) -> anyhow::Result<MetadataResponse> {
        if let Some(e) = error(md.error_code) {
            return Err(anyhow::Error::new(BrokerError(e)).context("Metadata"));
        }
        self.brokers = md.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port))).collect();
        Ok(md)
    }

    /// Sends `req` to broker `node` (connecting first if need be); a failed connection is dropped,
    /// so the next call connects again.
    pub async fn call<R: Request>(&mut self, node: i32, version: i16, req: &R) -> anyhow::Result<R::Response> {
        if !self.conns.contains_key(&node) {
            let addr = self.brokers.get(&node).cloned().ok_or_else(|| anyhow!("broker {node} is not in the cluster's metadata"))?;
            let conn = Conn::connect(&addr, &self.settings).await?;
            self.conns.insert(node, conn);
        }
        let Some(conn) = self.conns.get_mut(&node) else { bail!("no connection to broker {node}") };
        let result = conn.call(&self.client_id, version, req, self.timeout).await;
        if result.is_err() {
            self.conns.remove(&node);
        }
        result
    }

    /// The broker coordinating `transactional_id` (FindCoordinator, key type 1). Retries what is
    /// worth retrying (no coordinator yet, the transaction log still loading) until the timeout:
    /// the first FindCoordinator for a transactional id may create `__transaction_state`.
    pub async fn transaction_coordinator(&mut self, transactional_id: &str) -> anyhow::Result<i32> {
        self.coordinator(transactional_id, KEY_TYPE_TRANSACTION, "transactional id").await
    }

    /// The broker coordinating group `group_id` (FindCoordinator, key type 0), retried as above.
    pub async fn group_coordinator(&mut self, group_id: &str) -> anyhow::Result<i32> {
        self.coordinator(group_id, KEY_TYPE_GROUP, "group").await
    }

    async fn coordinator(&mut self, id: &str, key_type: i8, what: &str) -> anyhow::Result<i32> {
        let deadline = Instant::now() + self.timeout;
        let key = StrBytes::from_string(id.to_string());
        let req = FindCoordinatorRequest::default().with_key_type(key_type).with_coordinator_keys(vec![key]);
        loop {
            if self.any.is_none() {
                self.metadata(Some(&[])).await?;
            }
            let Some(conn) = self.any.as_mut() else { bail!("no connection to the cluster") };
            let resp = match conn.call(&self.client_id, FIND_COORDINATOR_VERSION, &req, self.timeout).await {
                Ok(r) => r,
                Err(e) => {
                    self.any = None;
                    return Err(e.context(format!("FindCoordinator for {what} {id}")));
                }
            };
            let Some(c) = resp.coordinators.first() else { bail!("FindCoordinator for {what} {id}: empty response") };
            match error(c.error_code) {
                None => {
                    let node = c.node_id.0;
                    self.brokers.entry(node).or_insert_with(|| format!("{}:{}", c.host, c.port));
                    return Ok(node);
                }
                Some(e) if e.is_retriable() && Instant::now() < deadline => tokio::time::sleep(RETRY_BACKOFF).await,
                Some(e) => return Err(BrokerError(e).into()),
            }
        }
    }

    /// Sends a cluster-wide request (one any broker answers, forwarding what needs the active
    /// controller) over the connection Metadata uses: a broker that just answered, as Java's
    /// admin client picks its least loaded node, rather than one the metadata merely lists (it
    /// may be fenced or frozen).
    pub async fn call_any<R: Request>(&mut self, version: i16, req: &R) -> anyhow::Result<R::Response> {
        if self.any.is_none() {
            self.metadata(Some(&[])).await?;
        }
        let Some(conn) = self.any.as_mut() else { bail!("no connection to the cluster") };
        let result = conn.call(&self.client_id, version, req, self.timeout).await;
        if result.is_err() {
            self.any = None;
        }
        result
    }

    /// Whether there is time left for another try of something begun at `start`.
    pub fn may_retry(&self, start: Instant) -> bool {
        start.elapsed() < self.timeout
    }
}

/// Waits a little before a retry.
pub async fn backoff() {
    tokio::time::sleep(RETRY_BACKOFF).await;
}
