//! The smallest Kafka client a follower needs: one connection to a leader's client listener, one
//! request in flight, kafka-protocol's codecs. Followers speak the same wire protocol as every
//! other client (as Kafka replicas do), so the leader needs no second server.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection to {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: timed out")]
    Timeout(String),
    #[error("{0}: {1}")]
    Protocol(String, String),
}

/// A leader never sends a follower more than this in one response (fetch max_bytes is far below).
const MAX_FRAME: usize = 256 * 1024 * 1024;

pub struct Client {
    addr: String,
    stream: TcpStream,
    correlation_id: i32,
    client_id: StrBytes,
}

impl Client {
    pub async fn connect(addr: &str, me: i32, timeout: Duration) -> Result<Client, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(addr.to_string()))?
            .map_err(|e| ClientError::Io(addr.to_string(), e))?;
        let _ = stream.set_nodelay(true);
        Ok(Client {
            addr: addr.to_string(),
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_string(format!("strom-replica-{me}")),
        })
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
