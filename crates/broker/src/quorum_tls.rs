//! TLS on the CONTROLLER listener, handed to `strom-controller` (which knows no TLS library) as
//! its `Transport`: the server side with the listener's `ssl.*` settings (client certificates
//! required, which the config insists on: the handshake is how a voter knows its peer is one
//! of the cluster's nodes), the client side with the same keystore and truststore.


use strom_config::{ClientTls, TlsSettings};
use strom_controller::transport::{Conn, Handshake, Transport};
use tokio::net::TcpStream;

use crate::tls::TlsError;

pub struct QuorumTls {
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
}

impl QuorumTls {
    pub fn new(server: &TlsSettings, client: &ClientTls) -> Result<QuorumTls, TlsError> {
        Ok(QuorumTls {
            acceptor: tokio_rustls::TlsAcceptor::from(crate::tls::server_config(server)?),
            connector: tokio_rustls::TlsConnector::from(crate::tls::client_config(client)?),
        })
    }
}

impl Transport for QuorumTls {
    fn secured(&self) -> bool {
        true
    }

    fn connect<'a>(&'a self, host: &'a str, stream: TcpStream) -> Handshake<'a> {
        Box::pin(async move {
            let name = crate::tls::server_name(host).map_err(std::io::Error::other)?;
            Ok(Box::new(self.connector.connect(name, stream).await?) as Conn)
        })
    }

    fn accept(&self, stream: TcpStream) -> Handshake<'static> {
        let acceptor = self.acceptor.clone();
        Box::pin(async move { Ok(Box::new(acceptor.accept(stream).await?) as Conn) })
    }
}
