//! SaslHandshake on a connection that needs no authentication, or has authenticated already
//! (the handshake before authentication is `sasl.rs`'s, run by the connection): Kafka answers
//! ILLEGAL_SASL_STATE (re-authentication, KIP-368, is not served yet).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::SaslHandshakeResponse;

pub fn handle() -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}
