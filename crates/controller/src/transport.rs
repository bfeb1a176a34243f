//! How the CONTROLLER listener's connections are secured, in both directions.
//!
//! This crate knows no TLS or SASL: the broker builds the handshakes (TLS from the controller
//! listener's `ssl.*` settings, a SASL/PLAIN login) and hands them in as a [`Transport`];
//! without one the connections are plain TCP. `Controller::open_with` refuses a transport whose
//! protocol is not the listener's, so a secured controller listener never talks in the clear.

use std::future::Future;
use std::io;
use std::pin::Pin;

use strom_config::SecurityProtocol;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A connection's byte stream once its handshake is done.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub type Conn = Box<dyn Io>;
pub type Handshake<'a> = Pin<Box<dyn Future<Output = io::Result<Conn>> + Send + 'a>>;

pub trait Transport: Send + Sync + 'static {
    /// The security protocol the connections get: it must be the controller listener's.
    fn protocol(&self) -> SecurityProtocol;
    /// The client side over a connected `stream` to `host` (for host name verification).
    fn connect<'a>(&'a self, host: &'a str, stream: TcpStream) -> Handshake<'a>;
    /// The server side over an accepted `stream`; the caller bounds it with a timeout.
    fn accept(&self, stream: TcpStream) -> Handshake<'static>;
}

/// Plain TCP: a PLAINTEXT controller listener.
pub struct Plaintext;

impl Transport for Plaintext {
    fn protocol(&self) -> SecurityProtocol {
        SecurityProtocol::Plaintext
    }

    fn connect<'a>(&'a self, _host: &'a str, stream: TcpStream) -> Handshake<'a> {
        Box::pin(async move { Ok(Box::new(stream) as Conn) })
    }

    fn accept(&self, stream: TcpStream) -> Handshake<'static> {
        Box::pin(async move { Ok(Box::new(stream) as Conn) })
    }
}
