//! Topics: the list (with a form to create one), and one topic's partitions (leader,
//! replicas, ISR, offsets, sizes), configs, rate chart and deletion.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};

use super::history::Kind;
use super::html::{bytes, esc, link, url, Page};
use super::overview::ids;
use super::{check_form, token_field, viewer, Console};

#[derive(serde::Deserialize, Default)]
pub struct Notice {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

fn notices(page: &mut Page, n: &Notice) {
    if let Some(d) = &n.done {
        page.notice(true, d);
    }
    if let Some(e) = &n.error {
        page.notice(false, e);
    }
}

/// The latest records-per-second of a topic, from the charts' samples.
fn rate(console: &Console, topic: &str) -> String {
    console.history.series(Kind::TopicRate, topic).last().map_or("-".into(), |(_, r)| format!("{r:.1}"))
}

pub async fn list(State(console): State<Arc<Console>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, Query(n): Query<Notice>) -> Response {
    let v = match viewer(&console, &headers, peer).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let md = v.metadata().await;
    let mut page = Page::new("Topics", "/topics");
    page.h1("Topics");
    notices(&mut page, &n);
    let mut topics: Vec<_> = md.topics.iter().filter_map(|t| Some((t.name.as_ref()?.to_string(), t))).collect();
    topics.sort_by(|a, b| a.0.cmp(&b.0));
    let rows: Vec<Vec<String>> = topics
        .iter()
        .map(|(name, t)| {
            let under = t.partitions.iter().filter(|p| p.isr_nodes.len() < p.replica_nodes.len()).count();
            let rf = t.partitions.first().map_or(0, |p| p.replica_nodes.len());
            let size: u64 = v.broker.replicas.partitions_of(name).iter().filter_map(|p| p.size_bytes().ok()).sum();
            vec![
                link("/topic", "name", name, name),
                t.partitions.len().to_string(),
                rf.to_string(),
                if under > 0 { format!("<span class=\"bad\">{under}</span>") } else { "0".into() },
                bytes(size),
                rate(&console, name),
                if t.is_internal { "internal".into() } else { String::new() },
            ]
        })
        .collect();
    page.table("topics", &["Topic", "Partitions", "Replicas", "Under-replicated", "Size here", "Records/s", ""], &rows);
    let _ = write!(
        page.body,
        "<h2>Create a topic</h2><form method=\"post\" action=\"/topics\" class=\"inline\" id=\"create-topic\">{}\
         <label>Name <input name=\"name\" required pattern=\"[a-zA-Z0-9._\\-]+\"></label>\
         <label>Partitions <input name=\"partitions\" type=\"number\" min=\"1\" value=\"1\" size=\"4\"></label>\
         <label>Replication factor <input name=\"replication_factor\" type=\"number\" min=\"-1\" value=\"-1\" size=\"4\" title=\"-1: the broker's default.replication.factor\"></label>\
         <label>Configs <textarea name=\"configs\" rows=\"1\" placeholder=\"cleanup.policy=compact\"></textarea></label>\
         <button type=\"submit\">Create</button></form>",
        token_field(&console)
    );
    super::html(page.finish(&v.session.principal))
}

#[derive(serde::Deserialize)]
pub struct CreateForm {
    /// Missing: refused by `check_form` with 403, like a wrong one.
    #[serde(default)]
    token: String,
    name: String,
    #[serde(default)]
    partitions: String,
    #[serde(default)]
    replication_factor: String,
    #[serde(default)]
    configs: String,
}

pub async fn create(State(console): State<Arc<Console>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<CreateForm>) -> Response {
    let v = match viewer(&console, &headers, peer).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = check_form(&console, &headers, &f.token) {
        return r;
    }
    let outcome = async {
        let partitions = match f.partitions.trim() {
            "" => -1,
            p => p.parse::<i32>().map_err(|_| format!("partitions: '{p}' is not a number"))?,
        };
        let rf = match f.replication_factor.trim() {
            "" => -1,
            r => r.parse::<i16>().map_err(|_| format!("replication factor: '{r}' is not a number"))?,
        };
        let mut configs = Vec::new();
        for line in f.configs.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (k, val) = line.split_once('=').ok_or_else(|| format!("config '{line}' is not key=value"))?;
            configs.push((k.trim().to_string(), val.trim().to_string()));
        }
        v.create_topic(f.name.trim(), partitions, rf, &configs).await
    }
    .await;
    match outcome {
        Ok(()) => Redirect::to(&format!("/topic?name={}&done={}", url(f.name.trim()), url("created"))).into_response(),
        Err(e) => Redirect::to(&format!("/topics?error={}", url(&format!("{}: {e}", f.name.trim())))).into_response(),
    }
}

#[derive(serde::Deserialize)]
pub struct TopicQuery {
    name: String,
    #[serde(flatten)]
    notice: Notice,
}

pub async fn page(State(console): State<Arc<Console>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, Query(q): Query<TopicQuery>) -> Response {
    let v = match viewer(&console, &headers, peer).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let md = v.metadata().await;
    let name = q.name;
    let mut page = Page::new(&format!("Topic {name}"), "/topics");
    page.h1(&format!("Topic {name}"));
    notices(&mut page, &q.notice);
    // Metadata lists only topics the viewer may describe: one it may not is "unknown" too.
    let Some(t) = md.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == name)) else {
        page.notice(false, "unknown topic (or not authorized to describe it)");
        return super::html(page.finish(&v.session.principal));
    };
    let _ = write!(
        page.body,
        "<p class=\"facts\">Topic id <code>{}</code> · {} partitions · <a href=\"/topic/messages?name={}\" id=\"browse\">Browse messages</a></p>",
        t.topic_id,
        t.partitions.len(),
        esc(&url(&name))
    );
    let mut parts: Vec<_> = t.partitions.iter().collect();
    parts.sort_by_key(|p| p.partition_index);
    let rows: Vec<Vec<String>> = parts
        .iter()
        .map(|p| {
            let local = v.broker.replicas.partition(&name, p.partition_index);
            let start = local.as_ref().and_then(|l| l.log_start_offset().ok());
            let end = local.as_ref().map(|l| l.high_watermark());
            let size = local.as_ref().and_then(|l| l.size_bytes().ok());
            let isr_class = if p.isr_nodes.len() < p.replica_nodes.len() { " class=\"bad\"" } else { "" };
            vec![
                p.partition_index.to_string(),
                if p.leader_id.0 < 0 { "<span class=\"bad\">none</span>".into() } else { p.leader_id.0.to_string() },
                ids(&p.replica_nodes),
                format!("<span{isr_class}>{}</span>", ids(&p.isr_nodes)),
                start.map_or("-".into(), |s| s.to_string()),
                end.map_or("-".into(), |s| s.to_string()),
                size.map_or("-".into(), bytes),
            ]
        })
        .collect();
    page.body.push_str("<h2>Partitions</h2>");
    page.table("partitions", &["Partition", "Leader", "Replicas", "ISR", "Start offset", "High watermark", "Size here"], &rows);
    page.chart("chart-topic", "Records in per second (last hour)", &format!("kind=topic-rate&name={}", url(&name)));
    page.body.push_str("<h2>Configs</h2>");
    match v.topic_configs(&name) {
        Ok(configs) => {
            let mut configs = configs;
            configs.sort_by(|a, b| a.name.cmp(&b.name));
            let rows: Vec<Vec<String>> = configs
                .iter()
                .map(|c| {
                    // Source 1 is a topic's own setting (DYNAMIC_TOPIC_CONFIG).
                    let own = c.config_source == 1;
                    let value = if c.is_sensitive { "(hidden)".to_string() } else { c.value.as_ref().map_or("null".into(), |v| v.to_string()) };
                    vec![
                        if own { format!("<b>{}</b>", esc(c.name.as_str())) } else { esc(c.name.as_str()) },
                        esc(&value),
                        if own { "topic".into() } else { "default".into() },
                    ]
                })
                .collect();
            page.table("configs", &["Key", "Value", "Source"], &rows);
        }
        Err(e) => page.notice(false, &e),
    }
    if !t.is_internal {
        let _ = write!(
            page.body,
            "<h2>Delete</h2><form method=\"post\" action=\"/topic/delete\" class=\"inline\" id=\"delete-topic\">{}<input type=\"hidden\" name=\"name\" value=\"{}\">\
             <label>Type the topic's name to confirm <input name=\"confirm\" autocomplete=\"off\"></label><button type=\"submit\" class=\"danger\">Delete topic</button></form>",
            token_field(&console),
            esc(&name)
        );
    }
    super::html(page.finish(&v.session.principal))
}

#[derive(serde::Deserialize)]
pub struct DeleteForm {
    /// Missing: refused by `check_form` with 403, like a wrong one.
    #[serde(default)]
    token: String,
    name: String,
    #[serde(default)]
    confirm: String,
}

pub async fn delete(State(console): State<Arc<Console>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<DeleteForm>) -> Response {
    let v = match viewer(&console, &headers, peer).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = check_form(&console, &headers, &f.token) {
        return r;
    }
    if f.confirm.trim() != f.name {
        return Redirect::to(&format!("/topic?name={}&error={}", url(&f.name), url("type the topic's name to confirm its deletion"))).into_response();
    }
    match v.delete_topic(&f.name).await {
        Ok(()) => Redirect::to(&format!("/topics?done={}", url(&format!("deleted {}", f.name)))).into_response(),
        Err(e) => Redirect::to(&format!("/topic?name={}&error={}", url(&f.name), url(&e))).into_response(),
    }
}
