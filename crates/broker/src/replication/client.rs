//! The smallest Kafka client a broker needs to reach another: one connection to the peer's
//! inter-broker listener, one request in flight, kafka-protocol's codecs. Followers speak the
//! same wire protocol as every other client (as Kafka replicas do), so the leader needs no
//! second server.
//!
//! The connection is as secure as the inter-broker listener says (`Connector`, built once from
//! the config): TLS with the listener's truststore (and keystore as the client certificate),
//! then SASL (PLAIN or SCRAM, the broker's own `username`/`password`) before the first request,
//! as Kafka's inter-broker client does. The peer then authorizes this broker's principal like
//! any other (CLUSTER_ACTION for replication and markers).

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use strom_config::{InterBroker, SaslLogin, SaslMechanism};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::sasl::client::{plain_token, ScramClient};
use crate::sasl::scram::ScramMechanism;
use crate::tls::TlsError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection to {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: timed out")]
    Timeout(String),
    #[error("{0}: {1}")]
    Protocol(String, String),
    #[error("{0}: TLS: {1}")]
    Tls(String, String),
    #[error("{0}: SASL login as {1} failed: {2}")]
    Authentication(String, String, String),
}

impl ClientError {
    /// A failure the operator must fix (certificates, credentials), not a peer that is down.
    pub fn is_security(&self) -> bool {
        matches!(self, ClientError::Tls(..) | ClientError::Authentication(..))
    }
}

/// A leader never sends a follower more than this in one response (fetch max_bytes is far below).
const MAX_FRAME: usize = 256 * 1024 * 1024;

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// How this broker opens connections to the other brokers' inter-broker listener.
pub struct Connector {
    tls: Option<crate::tls::ClientTlsRotating>,
    sasl: Option<SaslLogin>,
    /// The listener to connect to, by name, in the peers' registrations.
    pub listener: String,
}

impl Connector {
    /// From the resolved inter-broker settings; reads the key and certificate files.
    pub fn new(inter_broker: &InterBroker) -> Result<Connector, TlsError> {
        let tls = match &inter_broker.tls {
            Some(t) => Some(crate::tls::ClientTlsRotating::new(t, "inter-broker client")?),
            None => None,
        };
        Ok(Connector { tls, sasl: inter_broker.sasl.clone(), listener: inter_broker.listener.clone() })
    }

    /// Presents and checks `inter_broker`'s stores on new connections from now on: the
    /// inter-broker listener's keystore or truststore was altered as a dynamic broker config
    /// (Kafka reconfigures its replica fetchers' TLS the same way). Only the stores change here;
    /// a protocol that stops or starts using TLS takes a restart, as in Kafka.
    pub fn replace_tls(&self, inter_broker: &InterBroker) -> Result<(), TlsError> {
        match (&self.tls, &inter_broker.tls) {
            (Some(rotating), Some(tls)) => rotating.replace(tls),
            _ => Ok(()),
        }
    }

    /// No security at all (tests, and a cluster of one).
    pub fn plaintext(listener: &str) -> Connector {
        Connector { tls: None, sasl: None, listener: listener.to_string() }
    }
}

/// The peer's refusal of a login, named as one.
fn auth_error(login: &SaslLogin, e: ClientError) -> ClientError {
    match e {
        ClientError::Protocol(addr, why) if why.starts_with("SASL:") => ClientError::Authentication(addr, login.username.clone(), why),
        other => other,
    }
}

pub struct Client {
    addr: String,
    stream: Box<dyn Io>,
    correlation_id: i32,
    client_id: StrBytes,
}

impl Client {
    /// Connects to `addr` (`host:port`), completing TLS and SASL as `connector` says, all within
    /// `timeout`.
    pub async fn connect(addr: &str, me: i32, timeout: Duration, connector: &Connector) -> Result<Client, ClientError> {
        tokio::time::timeout(timeout, Self::open(addr, me, timeout, connector)).await.map_err(|_| ClientError::Timeout(addr.to_string()))?
    }

    async fn open(addr: &str, me: i32, timeout: Duration, connector: &Connector) -> Result<Client, ClientError> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| ClientError::Io(addr.to_string(), e))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = match &connector.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let name = crate::tls::server_name(host).map_err(|e| ClientError::Tls(addr.to_string(), e.to_string()))?;
                Box::new(tls.connector().connect(name, tcp).await.map_err(|e| ClientError::Tls(addr.to_string(), e.to_string()))?)
            }
        };
        let mut client = Client { addr: addr.to_string(), stream, correlation_id: 0, client_id: StrBytes::from_string(format!("strom-replica-{me}")) };
        if let Some(login) = &connector.sasl {
            client.login(login, timeout).await?;
        }
        Ok(client)
    }

    /// SaslHandshake v1 then SaslAuthenticate v2 (KIP-152), as Kafka's clients log in.
    async fn login(&mut self, login: &SaslLogin, timeout: Duration) -> Result<(), ClientError> {
        let addr = self.addr.clone();
        let fail = |why: String| ClientError::Authentication(addr.clone(), login.username.clone(), why);
        let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(login.mechanism.name()));
        let r = self.call(1, &handshake, timeout).await?;
        if r.error_code != 0 {
            let offered: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(fail(format!("the peer does not offer {} (it offers {})", login.mechanism.name(), offered.join(", "))));
        }
        let password = &login.password.0;
        let scram = match login.mechanism {
            SaslMechanism::Plain => None,
            SaslMechanism::ScramSha256 => Some(ScramMechanism::Sha256),
            SaslMechanism::ScramSha512 => Some(ScramMechanism::Sha512),
            // The config refuses it for brokers (no token source); never a silent downgrade.
            SaslMechanism::OAuthBearer => return Err(fail("OAUTHBEARER is not served between brokers".into())),
        };
        match scram {
            None => {
                self.authenticate(plain_token(&login.username, password), timeout).await.map_err(|e| auth_error(login, e))?;
            }
            Some(m) => {
                let rng = ring::rand::SystemRandom::new();
                let mut scram = ScramClient::new(m, &login.username, password, &rng).map_err(|e| fail(e.to_string()))?;
                let server_first = self.authenticate(scram.client_first(), timeout).await.map_err(|e| auth_error(login, e))?;
                let client_final = scram.client_final(&server_first).map_err(|e| fail(e.to_string()))?;
                let server_final = self.authenticate(client_final, timeout).await.map_err(|e| auth_error(login, e))?;
                scram.verify_server_final(&server_final).map_err(|e| fail(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate round: the server's bytes, or its error as `Protocol("SASL: ...")`.
    async fn authenticate(&mut self, token: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, ClientError> {
        let r = self.call(2, &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)), timeout).await?;
        if r.error_code != 0 {
            let message = r.error_message.as_ref().map_or("", |m| m.as_str());
            return Err(ClientError::Protocol(self.addr.clone(), format!("SASL: error {}: {message}", r.error_code)));
        }
        Ok(r.auth_bytes.to_vec())
    }

    /// Sends `req` at `version` and waits up to `timeout` for its response. After an error the
    /// connection is in an unknown state: drop it and connect again.
    pub async fn call<R: Request>(&mut self, version: i16, req: &R, timeout: Duration) -> Result<R::Response, ClientError> {
        let protocol = |e: String| ClientError::Protocol(self.addr.clone(), e);
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, R::header_version(version)).map_err(|e| protocol(e.to_string()))?;
        req.encode(&mut buf, version).map_err(|e| protocol(e.to_string()))?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        let addr = self.addr.clone();
        let io = |e| ClientError::Io(addr.clone(), e);
        let exchange = async {
            self.stream.write_all(&buf).await.map_err(io)?;
            let len = self.stream.read_i32().await.map_err(io)?;
            let len = usize::try_from(len).ok().filter(|l| *l >= 4 && *l <= MAX_FRAME);
            let len = len.ok_or_else(|| ClientError::Protocol(addr.clone(), "bad response frame size".into()))?;
            let mut frame = BytesMut::zeroed(len);
            self.stream.read_exact(&mut frame).await.map_err(io)?;
            Ok::<_, ClientError>(frame.freeze())
        };
        let mut frame = tokio::time::timeout(timeout, exchange).await.map_err(|_| ClientError::Timeout(self.addr.clone()))??;
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let header = kafka_protocol::messages::ResponseHeader::decode(&mut frame, header_version).map_err(|e| protocol(e.to_string()))?;
        if header.correlation_id != self.correlation_id {
            return Err(protocol(format!("response to request {} while waiting for {}", header.correlation_id, self.correlation_id)));
        }
        let response = R::Response::decode(&mut frame, version).map_err(|e| protocol(e.to_string()))?;
        if frame.has_remaining() {
            tracing::debug!(addr = %self.addr, left = frame.remaining(), "response had trailing bytes");
        }
        Ok(response)
    }
}
