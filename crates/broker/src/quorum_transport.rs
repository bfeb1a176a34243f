//! The CONTROLLER listener's security, handed to `strom-controller` (which knows no TLS or
//! SASL) as its `Transport`, for the listener's protocol:
//!
//! - TLS (SSL, SASL_SSL) with the listener's `ssl.*` settings, both sides; on SSL client
//!   certificates are required (the config insists): the handshake is how a voter knows its
//!   peer is one of the cluster's nodes;
//! - SASL/PLAIN (SASL_PLAINTEXT, SASL_SSL), Strom's own framing since the controller protocol
//!   is Strom's: the client sends one frame `[u32 length][RFC 4616 token]` (its
//!   `sasl.mechanism.controller.protocol` login), the server checks it against the listener's
//!   `user_<name>` entries and answers one byte, 0, before the first request; a refused login
//!   gets its connection closed.

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_config::{ClientTls, SaslLogin, Secret, SecurityProtocol, TlsSettings};
use strom_controller::transport::{Conn, Handshake, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tls::TlsError;

/// The largest login frame a server reads (a PLAIN token is a name and a password).
const MAX_LOGIN: usize = 4096;

pub struct QuorumTransport {
    protocol: SecurityProtocol,
    tls: Option<(Arc<crate::tls::TlsListener>, crate::tls::ClientTlsRotating)>,
    /// This node's login, and the logins it accepts.
    sasl: Option<(SaslLogin, BTreeMap<String, Secret>)>,
}

impl QuorumTransport {
    /// `server`/`client`: the listener's TLS settings, both set when it uses TLS; `login` and
    /// `users` when it uses SASL.
    pub fn new(
        protocol: SecurityProtocol,
        tls: Option<(&TlsSettings, &ClientTls)>,
        sasl: Option<(SaslLogin, BTreeMap<String, Secret>)>,
    ) -> Result<QuorumTransport, TlsError> {
        // Never a transport that claims more than it does.
        if protocol.uses_tls() != tls.is_some() || protocol.uses_sasl() != sasl.is_some() {
            return Err(TlsError::Invalid { key: "controller.listener.names".into(), reason: format!("{} needs both its TLS and SASL settings", protocol.name()) });
        }
        let tls = match tls {
            Some((server, client)) => Some((
                Arc::new(crate::tls::TlsListener::new(server.clone())?),
                crate::tls::ClientTlsRotating::new(client, "controller quorum client")?,
            )),
            None => None,
        };
        Ok(QuorumTransport { protocol, tls, sasl })
    }
}

/// A login refused: said at most once a minute (a peer retries every few milliseconds).
static REFUSED: crate::log_limit::RateLimit = crate::log_limit::RateLimit::new(60_000);

impl Transport for QuorumTransport {
    fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }

    fn connect<'a>(&'a self, host: &'a str, stream: TcpStream) -> Handshake<'a> {
        Box::pin(async move {
            let mut conn: Conn = match &self.tls {
                Some((_, connector)) => {
                    let name = crate::tls::server_name(host).map_err(std::io::Error::other)?;
                    Box::new(connector.connector().connect(name, stream).await?)
                }
                None => Box::new(stream),
            };
            if let Some((login, _)) = &self.sasl {
                let token = crate::sasl::client::plain_token(&login.username, &login.password.0);
                let mut frame = Vec::with_capacity(token.len() + 4);
                frame.extend_from_slice(&(token.len() as u32).to_be_bytes());
                frame.extend_from_slice(&token);
                conn.write_all(&frame).await?;
                let accepted = conn.read_u8().await.map(|b| b == 0).unwrap_or(false);
                if !accepted {
                    if let Some(left_out) = REFUSED.allow(crate::clock::now_ms()) {
                        tracing::warn!(host, user = %login.username, left_out, "a controller refused this node's SASL/PLAIN login (check sasl.mechanism.controller.protocol's JAAS username and password)");
                    }
                    return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "controller login refused"));
                }
            }
            Ok(conn)
        })
    }

    fn accept(&self, stream: TcpStream) -> Handshake<'static> {
        let acceptor = self.tls.as_ref().map(|(listener, _)| {
            // The quorum's listener has no reload timer of its own: look at the files here.
            listener.reload_if_due("controller quorum listener");
            listener.acceptor()
        });
        let users = self.sasl.as_ref().map(|(_, users)| users.clone());
        Box::pin(async move {
            let mut conn: Conn = match acceptor {
                Some(a) => Box::new(a.accept(stream).await?),
                None => Box::new(stream),
            };
            if let Some(users) = users {
                let len = conn.read_u32().await? as usize;
                if len > MAX_LOGIN {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "login frame too large"));
                }
                let mut token = vec![0; len];
                conn.read_exact(&mut token).await?;
                if let Err(why) = crate::sasl::check_plain(&users, &token) {
                    return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, why));
                }
                conn.write_all(&[0]).await?;
            }
            Ok(conn)
        })
    }
}
