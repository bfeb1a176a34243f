//! How the CONTROLLER listener's connections are secured, in both directions.
//!
//! This crate knows no TLS library: the binary's broker builds the TLS handshakes from the
//! controller listener's `ssl.*` settings and hands them in as a [`Transport`]; without one the
//! connections are plain TCP. `Controller::open_with` refuses a transport weaker than the
//! listener's security protocol, so an SSL controller listener never talks in the clear.

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A connection's byte stream once its handshake is done.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub type Conn = Box<dyn Io>;
pub type Handshake<'a> = Pin<Box<dyn Future<Output = io::Result<Conn>> + Send + 'a>>;

pub trait Transport: Send + Sync + 'static {
    /// Whether the connections are encrypted and the peers authenticated (mutual TLS).
    fn secured(&self) -> bool;
    /// The client side over a connected `stream` to `host` (for host name verification).
    fn connect<'a>(&'a self, host: &'a str, stream: TcpStream) -> Handshake<'a>;
    /// The server side over an accepted `stream`; the caller bounds it with a timeout.
    fn accept(&self, stream: TcpStream) -> Handshake<'static>;
}

/// Plain TCP: a PLAINTEXT controller listener.
pub struct Plaintext;

impl Transport for Plaintext {
    fn secured(&self) -> bool {
        false
    }

    fn connect<'a>(&'a self, _host: &'a str, stream: TcpStream) -> Handshake<'a> {
        Box::pin(async move { Ok(Box::new(stream) as Conn) })
    }

    fn accept(&self, stream: TcpStream) -> Handshake<'static> {
        Box::pin(async move { Ok(Box::new(stream) as Conn) })
    }
}
