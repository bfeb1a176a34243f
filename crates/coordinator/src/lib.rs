//! Strom's coordinators as pure, deterministic state machines. Each takes the time as an
//! argument and returns what the outside world must do (records to append, parked requests to
//! answer) as effects; the broker runs them behind its own locks and does the I/O.
//!
//! - [`group`]: Kafka's classic consumer-group protocol.

pub mod group;
