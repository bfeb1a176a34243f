//! Where this node sits in a cluster: KRaft's property names, Strom's rules.

use std::collections::BTreeMap;

use crate::broker::Listener;
use crate::resolve::{invalid, Resolver};
use crate::ConfigError;

#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// Controller voters by node id. Without `controller.quorum.voters` this node alone.
    pub voters: BTreeMap<i32, (String, u16)>,
    /// The listener controllers talk to each other on; `None` for a cluster of one.
    pub controller_listener: Option<Listener>,
    pub rack: Option<String>,
    pub broker_heartbeat_interval_ms: u64,
    pub broker_session_timeout_ms: u64,
}

impl ClusterSettings {
    /// A cluster of one needs no controller network at all.
    pub fn is_single_node(&self) -> bool {
        self.controller_listener.is_none()
    }
}

pub(crate) fn cluster_settings(r: &Resolver, node_id: i32, controller_listener: Option<Listener>) -> Result<ClusterSettings, ConfigError> {
    let get = |k: &str| r.text(k);
    let roles = get("process.roles")?.unwrap_or_default();
    let mut roles_set: Vec<&str> = roles.split(',').map(str::trim).filter(|r| !r.is_empty()).collect();
    roles_set.sort_unstable();
    roles_set.dedup();
    match roles_set.as_slice() {
        ["broker", "controller"] => {}
        ["broker"] | ["controller"] => {
            return Err(invalid(
                "process.roles",
                roles,
                "Strom runs every node as broker and controller (combined mode); dedicated roles are not supported yet".into(),
            ))
        }
        _ => return Err(invalid("process.roles", roles, "expected `broker,controller`".into())),
    }
    let mut voters = BTreeMap::new();
    if let Some(v) = get("controller.quorum.voters")?.filter(|v| !v.trim().is_empty()) {
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = |why: &str| invalid("controller.quorum.voters", v, format!("`{item}`: {why}"));
            let (id, addr) = item.split_once('@').ok_or_else(|| bad("expected id@host:port"))?;
            let id: i32 = id.parse().map_err(|_| bad("the node id must be a number"))?;
            let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("expected id@host:port"))?;
            let port: u16 = port.parse().map_err(|_| bad("port must be a number 1-65535"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
            if voters.insert(id, (host, port)).is_some() {
                return Err(bad(&format!("node id {id} appears twice")));
            }
        }
        if !voters.contains_key(&node_id) {
            return Err(invalid("controller.quorum.voters", v, format!("this node (node.id={node_id}) is not among the voters")));
        }
        if controller_listener.is_none() {
            return Err(invalid(
                "controller.listener.names",
                get("controller.listener.names")?.unwrap_or_default(),
                "no listener of that name in `listeners`; controllers need one to reach each other".into(),
            ));
        }
    }
    // A cluster of one: a CONTROLLER listener, if configured, is simply not needed.
    let controller_listener = if voters.len() > 1 { controller_listener } else { None };
    let interval: u64 = r.int("broker.heartbeat.interval.ms")?;
    let session: u64 = r.int("broker.session.timeout.ms")?;
    if session <= interval {
        return Err(invalid("broker.session.timeout.ms", &session.to_string(), format!("must be above broker.heartbeat.interval.ms ({interval})")));
    }
    Ok(ClusterSettings {
        voters,
        controller_listener,
        rack: get("broker.rack")?.map(str::to_string).filter(|r| !r.is_empty()),
        broker_heartbeat_interval_ms: interval,
        broker_session_timeout_ms: session,
    })
}

