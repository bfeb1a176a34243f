//! Consumer groups: the list with each group's lag, and one group's members, assignments, lag
//! per partition (records and seconds), charts of its lag and consumption over the last hour,
//! and the offset reset of `kafka-consumer-groups.sh --reset-offsets --execute`. A share
//! group's page is `share_groups.rs`.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::HeaderMap;
use axum::response::{Redirect, IntoResponse, Response};
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;

use super::html::{esc, link, url, Page};
use super::kafka::{Viewer, EARLIEST, LATEST};
use super::{check_form, html, token_field, viewer, Console};
use crate::clock::now_ms;
use crate::http::lag;

/// Groups listed with their lag at most; more are counted, not shown.
const MAX_GROUPS: usize = 500;

pub struct Summary {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub members: usize,
    /// Total records behind, over the partitions whose high watermark is known here.
    pub lag: Option<i64>,
    /// The largest lag in seconds among its partitions.
    pub lag_seconds: Option<f64>,
}

/// One partition's committed offset and lag.
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub end: Option<i64>,
    pub lag: Option<i64>,
    pub seconds: Option<f64>,
}

fn partition_lags(v: &Viewer, id: &str) -> Result<Vec<PartitionLag>, String> {
    let now = now_ms();
    Ok(v.committed(id)?
        .into_iter()
        .map(|(topic, partition, committed)| {
            let end = v.broker.replicas.partition(&topic, partition).map(|p| p.high_watermark());
            let lag = lag::records(&v.broker, &topic, partition, committed);
            let seconds = lag.and_then(|l| lag::seconds(&v.broker, &topic, partition, committed, l, now));
            PartitionLag { topic, partition, committed, end, lag, seconds }
        })
        .collect())
}

fn members(v: &Viewer, id: &str, kind: &str) -> usize {
    if kind == "consumer" {
        v.describe_consumer(id).members.len()
    } else if kind == "share" {
        v.describe_share(id).members.len()
    } else {
        v.describe_classic(id).members.len()
    }
}

/// The groups the viewer may describe, by id, with their lag.
pub fn summaries(v: &Viewer) -> Result<Vec<Summary>, String> {
    let mut listed = v.list_groups()?;
    listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    listed.truncate(MAX_GROUPS);
    Ok(listed
        .into_iter()
        .map(|g| {
            let id = g.group_id.to_string();
            let kind = g.group_type.to_string();
            // A share group's lag runs from its start offsets (it commits none); no age is kept.
            let (lag, lag_seconds) = if kind == "share" {
                let lags = super::share_groups::lags(v, &id).unwrap_or_default();
                (lags.iter().filter_map(|l| l.lag).reduce(|a, b| a + b), None)
            } else {
                let lags = partition_lags(v, &id).unwrap_or_default();
                (lags.iter().filter_map(|l| l.lag).reduce(|a, b| a + b), lags.iter().filter_map(|l| l.seconds).reduce(f64::max))
            };
            Summary { members: members(v, &id, &kind), id, kind, state: g.group_state.to_string(), lag, lag_seconds }
        })
        .collect())
}

/// The groups table of the overview and the groups page.
pub fn table(page: &mut Page, list: &[Summary]) {
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

pub async fn list(State(console): State<Arc<Console>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let v = match viewer(&console, &headers, peer).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut page = Page::new("Consumer groups", "/groups");
    page.h1("Consumer groups");
    match summaries(&v) {
        Ok(list) => {
            if list.len() == MAX_GROUPS {
                page.notice(true, &format!("the first {MAX_GROUPS} groups by id are shown"));
            }
            table(&mut page, &list);
        }
        Err(e) => page.notice(false, &e),
    }
    super::html(page.finish(&v.session.principal))
}

#[derive(serde::Deserialize)]
pub struct GroupQuery {
    id: String,
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// A classic member's assignment (the consumer protocol's bytes), as `topic: p, p`.
fn classic_assignment(bytes: &[u8]) -> String {
    let mut buf = bytes::Bytes::copy_from_slice(bytes);
    if buf.len() < 2 {
        return String::new();
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::advance(&mut buf, 2);
    match ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) {
        Ok(a) => a.assigned_partitions.iter().map(|t| format!("{}: {}", t.topic.as_str(), join(&t.partitions))).collect::<Vec<_>>().join("; "),
        Err(_) => "(not the consumer protocol)".into(),
    }
}

fn join(ps: &[i32]) -> String {
    ps.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
}

pub async fn page(State(console): State<Arc<Console>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, Query(q): Query<GroupQuery>) -> Response {
    let v = match viewer(&console, &headers, peer).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let id = q.id;
    let mut page = Page::new(&format!("Group {id}"), "/groups");
    let share = v.describe_share(&id);
    page.h1(&format!("{} group {id}", if share.error_code == 0 { "Share" } else { "Consumer" }));
    if let Some(done) = &q.done {
        page.notice(true, done);
    }
    if let Some(error) = &q.error {
        page.notice(false, error);
    }
    if share.error_code == 0 {
        super::share_groups::render(&mut page, &v, &id, &share);
        return super::html(page.finish(&v.session.principal));
    }
    let consumer = v.describe_consumer(&id);
    let (kind, state, detail, member_rows) = if consumer.error_code == 0 {
        let rows: Vec<Vec<String>> = consumer
            .members
            .iter()
            .map(|m| {
                let assigned = m.assignment.topic_partitions.iter().map(|t| format!("{}: {}", t.topic_name.as_str(), join(&t.partitions))).collect::<Vec<_>>().join("; ");
                vec![esc(m.member_id.as_str()), esc(m.client_id.as_str()), esc(m.client_host.as_str()), m.member_epoch.to_string(), esc(&assigned)]
            })
            .collect();
        ("consumer", consumer.group_state.to_string(), format!("group epoch {}, assignor {}", consumer.group_epoch, consumer.assignor_name.as_str()), rows)
    } else {
        let g = v.describe_classic(&id);
        if g.error_code != 0 {
            page.notice(false, &super::kafka::error_text(g.error_code, g.error_message.as_ref()));
            return super::html(page.finish(&v.session.principal));
        }
        let rows: Vec<Vec<String>> = g
            .members
            .iter()
            .map(|m| vec![esc(m.member_id.as_str()), esc(m.client_id.as_str()), esc(m.client_host.as_str()), "-".into(), esc(&classic_assignment(&m.member_assignment))])
            .collect();
        ("classic", g.group_state.to_string(), format!("protocol {} {}", g.protocol_type.as_str(), g.protocol_data.as_str()), rows)
    };
    let _ = write!(
        page.body,
        "<p class=\"facts\">Type <b id=\"group-type\">{}</b> · state <b id=\"group-state\">{}</b> · {}</p>",
        esc(kind),
        esc(&state),
        esc(&detail)
    );
    page.body.push_str("<h2>Members</h2>");
    let has_members = !member_rows.is_empty();
    page.table("members", &["Member", "Client id", "Host", "Epoch", "Assignment"], &member_rows);
    page.body.push_str("<h2>Offsets and lag</h2>");
    let lags = match partition_lags(&v, &id) {
        Ok(l) => l,
        Err(e) => {
            page.notice(false, &e);
            Vec::new()
        }
    };
    let rows: Vec<Vec<String>> = lags
        .iter()
        .map(|l| {
            vec![
                link("/topic", "name", &l.topic, &l.topic),
                l.partition.to_string(),
                l.committed.to_string(),
                l.end.map_or("-".into(), |e| e.to_string()),
                l.lag.map_or("-".into(), |e| e.to_string()),
                l.seconds.map_or("-".into(), html::seconds),
            ]
        })
        .collect();
    page.table("offsets", &["Topic", "Partition", "Committed", "End offset", "Lag (records)", "Lag (time)"], &rows);
    let q = format!("name={}", url(&id));
    page.body.push_str("<div class=\"charts\">");
    page.chart("chart-lag", "Lag in records (last hour)", &format!("kind=group-lag&{q}"));
    page.chart("chart-consumed", "Records consumed per second (last hour)", &format!("kind=group-rate&{q}"));
    page.body.push_str("</div><h2>Reset offsets</h2>");
    if has_members {
        page.body.push_str("<p>Offsets can be reset only while the group has no members, as <code>kafka-consumer-groups.sh --reset-offsets</code> requires: stop its consumers first.</p>");
    } else {
        let mut topics: Vec<&str> = lags.iter().map(|l| l.topic.as_str()).collect();
        topics.dedup();
        let options: String = topics.iter().map(|t| format!("<option value=\"{0}\">{0}</option>", esc(t))).collect();
        let _ = write!(
            page.body,
            "<form method=\"post\" action=\"/group/reset-offsets\" class=\"inline\" id=\"reset-form\">{}<input type=\"hidden\" name=\"id\" value=\"{}\">\
             <label>Topic <select name=\"topic\">{options}</select></label>\
             <label>Partition <input name=\"partition\" placeholder=\"all\" size=\"5\"></label>\
             <label>To <select name=\"strategy\"><option value=\"earliest\">earliest</option><option value=\"latest\">latest</option>\
             <option value=\"offset\">offset</option><option value=\"datetime\">date and time (UTC)</option><option value=\"shift\">shift by</option></select></label>\
             <label>Value <input name=\"value\" placeholder=\"offset, 2026-01-31T12:00 or -10\"></label>\
             <button type=\"submit\">Reset</button></form>",
            token_field(&console),
            esc(&id)
        );
    }
    super::html(page.finish(&v.session.principal))
}

#[derive(serde::Deserialize)]
pub struct ResetForm {
    /// Missing: refused by `check_form` with 403, like a wrong one.
    #[serde(default)]
    token: String,
    id: String,
    topic: String,
    #[serde(default)]
    partition: String,
    strategy: String,
    #[serde(default)]
    value: String,
}

pub async fn reset(State(console): State<Arc<Console>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<ResetForm>) -> Response {
    let v = match viewer(&console, &headers, peer).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = check_form(&console, &headers, &f.token) {
        return r;
    }
    let back = |key: &str, text: &str| Redirect::to(&format!("/group?id={}&{key}={}", url(&f.id), url(text))).into_response();
    match reset_offsets(&v, &f).await {
        Ok(n) => back("done", &format!("reset {n} partition(s) of {}", f.topic)),
        Err(e) => back("error", &e),
    }
}

/// Computes the targets as `kafka-consumer-groups.sh` does (clamped to the log's bounds) and
/// commits them.
async fn reset_offsets(v: &Viewer, f: &ResetForm) -> Result<usize, String> {
    let md = v.metadata().await;
    let count = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == f.topic))
        .map(|t| t.partitions.len() as i32)
        .ok_or_else(|| format!("unknown topic {}", f.topic))?;
    let partitions: Vec<i32> = match f.partition.trim() {
        "" => (0..count).collect(),
        p => vec![p.parse::<i32>().ok().filter(|p| (0..count).contains(p)).ok_or_else(|| format!("{} has no partition {p}", f.topic))?],
    };
    let number = || f.value.trim().parse::<i64>().map_err(|_| format!("'{}' is not a number", f.value));
    let bounds = |ts: i64| -> Result<Vec<i64>, String> { v.list_offsets(&f.topic, &partitions, ts).into_iter().map(|(_, r)| r).collect() };
    let earliest = bounds(EARLIEST)?;
    let latest = bounds(LATEST)?;
    let targets: Vec<i64> = match f.strategy.as_str() {
        "earliest" => earliest.clone(),
        "latest" => latest.clone(),
        "offset" => vec![number()?; partitions.len()],
        "shift" => {
            let by = number()?;
            let current: std::collections::BTreeMap<i32, i64> = v.committed(&f.id)?.into_iter().filter(|(t, _, _)| *t == f.topic).map(|(_, p, o)| (p, o)).collect();
            partitions.iter().zip(&latest).map(|(p, l)| current.get(p).copied().unwrap_or(*l).saturating_add(by)).collect()
        }
        "datetime" => {
            let ts = html::parse_timestamp(&f.value).ok_or_else(|| format!("'{}' is not a date and time like 2026-01-31T12:00", f.value))?;
            // No record at or after the time: the end of the log, as Kafka's tool.
            v.list_offsets(&f.topic, &partitions, ts).into_iter().zip(&latest).map(|((_, r), l)| r.map(|o| if o < 0 { *l } else { o })).collect::<Result<_, _>>()?
        }
        other => return Err(format!("unknown strategy {other}")),
    };
    let offsets: Vec<(i32, i64)> = partitions.iter().zip(targets).zip(earliest.iter().zip(&latest)).map(|((p, t), (lo, hi))| (*p, t.clamp(*lo, *hi))).collect();
    v.commit(&f.id, &f.topic, &offsets).await?;
    Ok(offsets.len())
}
