//! The one place the broker reads the wall clock. Everything below the runtime glue (the
//! partition, its leader state, the coordinators, the controller's rules) takes the time as an
//! argument, which is what lets the simulation (`strom-sim`) drive it with a clock of its own.

/// Milliseconds since the Unix epoch (Kafka's timestamps, retention and group timers).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
