//! The first page (the cluster at a glance: brokers, topics, groups with their lag, the
//! records coming in) and the brokers page (each broker, the controller, partition health).

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use kafka_protocol::messages::MetadataResponse;

use super::html::{esc, link, Page};
use super::{groups, html, viewer, Console};

/// Partitions of a Metadata answer: (total, under-replicated, without a leader).
pub fn partition_health(md: &MetadataResponse) -> (usize, usize, usize) {
    let mut out = (0, 0, 0);
    for t in &md.topics {
        for p in &t.partitions {
            out.0 += 1;
            if p.isr_nodes.len() < p.replica_nodes.len() {
                out.1 += 1;
            }
            if p.leader_id.0 < 0 {
                out.2 += 1;
            }
        }
    }
    out
}

pub async fn page(State(console): State<Arc<Console>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let v = match viewer(&console, &headers, peer).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let md = v.metadata().await;
    let cluster = v.describe_cluster();
    let (partitions, under_replicated, offline) = partition_health(&md);
    let mut page = Page::new("Overview", "/");
    page.h1("Overview");
    let _ = write!(
        page.body,
        "<section class=\"cards\">\
         <div class=\"card\"><span class=\"label\">Cluster</span><span class=\"value small\" id=\"cluster-id\">{}</span></div>\
         <div class=\"card\"><span class=\"label\">Brokers</span><span class=\"value\" id=\"broker-count\">{}</span></div>\
         <div class=\"card\"><span class=\"label\">Controller</span><span class=\"value\">{}</span></div>\
         <div class=\"card\"><span class=\"label\">Topics</span><span class=\"value\" id=\"topic-count\">{}</span></div>\
         <div class=\"card\"><span class=\"label\">Partitions</span><span class=\"value\">{}</span></div>\
         <div class=\"card{}\"><span class=\"label\">Under-replicated</span><span class=\"value\" id=\"under-replicated\">{}</span></div>\
         <div class=\"card{}\"><span class=\"label\">Offline</span><span class=\"value\">{}</span></div>\
         </section>",
        esc(cluster.cluster_id.as_str()),
        cluster.brokers.len(),
        cluster.controller_id.0,
        md.topics.len(),
        partitions,
        if under_replicated > 0 { " warn" } else { "" },
        under_replicated,
        if offline > 0 { " warn" } else { "" },
        offline
    );
    page.chart("chart-total", "Records in per second, all topics (last hour)", "kind=total-rate");
    page.body.push_str("<h2>Consumer groups</h2>");
    match groups::summaries(&v) {
        Ok(list) => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|g| {
                    vec![
                        link("/group", "id", &g.id, &g.id),
                        esc(&g.kind),
                        esc(&g.state),
                        g.members.to_string(),
                        g.lag.map_or("-".into(), |l| l.to_string()),
                        g.lag_seconds.map_or("-".into(), html::seconds),
                    ]
                })
                .collect();
            page.table("groups", &["Group", "Type", "State", "Members", "Lag (records)", "Lag (time)"], &rows);
        }
        Err(e) => page.notice(false, &e),
    }
    super::html(page.finish(&v.session.principal))
}

pub async fn brokers(State(console): State<Arc<Console>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let v = match viewer(&console, &headers, peer).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let cluster = v.describe_cluster();
    let md = v.metadata().await;
    let mut page = Page::new("Brokers", "/brokers");
    page.h1("Brokers");
    if cluster.error_code != 0 {
        page.notice(false, &super::kafka::error_text(cluster.error_code, cluster.error_message.as_ref()));
    }
    // Per broker: partitions it leads and replicas it holds, from the topics the viewer sees.
    let mut leads = std::collections::BTreeMap::<i32, (usize, usize)>::new();
    for t in &md.topics {
        for p in &t.partitions {
            leads.entry(p.leader_id.0).or_default().0 += 1;
            for r in &p.replica_nodes {
                leads.entry(r.0).or_default().1 += 1;
            }
        }
    }
    let rows: Vec<Vec<String>> = cluster
        .brokers
        .iter()
        .map(|b| {
            let (led, replicas) = leads.get(&b.broker_id.0).copied().unwrap_or_default();
            vec![
                b.broker_id.0.to_string(),
                format!("{}:{}", esc(b.host.as_str()), b.port),
                b.rack.as_ref().map_or("-".into(), |r| esc(r.as_str())),
                if b.broker_id.0 == cluster.controller_id.0 { "active controller".into() } else { String::new() },
                if b.is_fenced { "<span class=\"bad\">fenced</span>".into() } else { "<span class=\"good\">serving</span>".into() },
                led.to_string(),
                replicas.to_string(),
            ]
        })
        .collect();
    page.table("brokers", &["Id", "Endpoint", "Rack", "Role", "State", "Leads", "Replicas"], &rows);
    page.body.push_str("<h2>Partitions needing attention</h2>");
    let mut trouble = Vec::new();
    for t in &md.topics {
        let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
        for p in &t.partitions {
            if p.leader_id.0 < 0 || p.isr_nodes.len() < p.replica_nodes.len() {
                trouble.push(vec![
                    link("/topic", "name", &name, &name),
                    p.partition_index.to_string(),
                    if p.leader_id.0 < 0 { "<span class=\"bad\">none</span>".into() } else { p.leader_id.0.to_string() },
                    ids(&p.replica_nodes),
                    ids(&p.isr_nodes),
                ]);
            }
        }
    }
    page.table("trouble", &["Topic", "Partition", "Leader", "Replicas", "ISR"], &trouble);
    super::html(page.finish(&v.session.principal))
}

pub fn ids(ids: &[kafka_protocol::messages::BrokerId]) -> String {
    ids.iter().map(|b| b.0.to_string()).collect::<Vec<_>>().join(", ")
}
