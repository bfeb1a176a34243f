//! SaslAuthenticate outside an authentication in progress (see `sasl_handshake.rs`): Kafka's
//! ILLEGAL_SASL_STATE, with its message.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::SaslAuthenticateResponse;
use kafka_protocol::protocol::StrBytes;

pub fn handle() -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(Some(StrBytes::from_static_str("SaslAuthenticate request received after successful authentication")))
}
