//! `strom configs --entity-type brokers --entity-default --alter` (or `--broker-defaults`): the
//! cluster-wide dynamic broker configs, Kafka's broker resource with the empty name.
//!
//! librdkafka routes a broker resource to the broker its name designates and refuses a name that
//! is not an integer, so it cannot send this one; the IncrementalAlterConfigs is spoken with
//! kafka-protocol's codecs through `kafka_client.rs` instead, to any broker (each one applies a
//! cluster-wide change through the metadata log).

use anyhow::{bail, Context};
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::IncrementalAlterConfigsRequest;
use kafka_protocol::protocol::StrBytes;

use super::super::admin_ffi::Op;
use super::super::kafka_client::{Cluster, Settings};
use super::Args;

/// Kafka's ConfigResource type of a broker, and IncrementalAlterConfigs' operations.
const RESOURCE_BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;

pub fn alter(a: &Args, ops: &[Op]) -> anyhow::Result<()> {
    incremental_alter(a, RESOURCE_BROKER, "", ops)
}

/// IncrementalAlterConfigs of one resource (`resource_type`, `name`), the deletes and sets of
/// `ops` in one request, to any broker, through the tools' own protocol client; a resource-level
/// error is an `Err` with Kafka's error name and the broker's message. Also used for group
/// configs (`groups.rs`), which librdkafka cannot address either.
pub(super) fn incremental_alter(a: &Args, resource_type: i8, name: &str, ops: &[Op]) -> anyhow::Result<()> {
    let settings = Settings::read("strom-configs", a.connection.command_config.as_deref(), super::super::TIMEOUT)?;
    let configs = ops
        .iter()
        .map(|op| match op {
            Op::Set(k, v) => AlterableConfig::default().with_name(StrBytes::from_string(k.to_string())).with_config_operation(SET).with_value(Some(StrBytes::from_string(v.to_string()))),
            Op::Delete(k) => AlterableConfig::default().with_name(StrBytes::from_string(k.to_string())).with_config_operation(DELETE),
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default().with_resource_type(resource_type).with_resource_name(StrBytes::from_string(name.to_string())).with_configs(configs)]);
    let bootstrap = a.connection.bootstrap_server.clone();
    super::super::block_on(async move {
        let mut cluster = Cluster::connect(&bootstrap, &settings).await?;
        let resp = cluster.call_any(1, &req).await.context("IncrementalAlterConfigs")?;
        for r in &resp.responses {
            if r.error_code != 0 {
                bail!("{}", super::super::error_text(i32::from(r.error_code), r.error_message.as_deref()));
            }
        }
        Ok(())
    })?
}
