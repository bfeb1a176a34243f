//! The message browser: one partition's records from an offset, from a time, or the latest
//! ones, with keys, values and headers shown as text, JSON or hex. Bounded: at most
//! `MAX_RECORDS` records from one read of at most `MAX_BYTES`, and at most `MAX_SHOWN` bytes of
//! each key or value on the page.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use strom_storage::browse::{browse_batches, BrowsedBatch};

use super::html::{self, esc, url, Page};
use super::kafka::{EARLIEST, LATEST};
use super::{viewer, Console};

const MAX_RECORDS: usize = 200;
const DEFAULT_RECORDS: usize = 50;
const MAX_BYTES: i32 = 1 << 20;
const MAX_SHOWN: usize = 4096;

#[derive(serde::Deserialize)]
pub struct BrowseQuery {
    name: String,
    #[serde(default)]
    partition: Option<String>,
    /// An offset to start at; empty: see `timestamp`, else the latest records.
    #[serde(default)]
    offset: Option<String>,
    /// A UTC date and time to start at (`YYYY-MM-DDTHH:MM[:SS]`).
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Text,
    Json,
    Hex,
}

fn hex(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            out.push(if i % 16 == 0 { '\n' } else { ' ' });
        }
        let _ = write!(out, "{x:02x}");
    }
    out
}

/// One key, value or header value as HTML (escaped), in `format`, cut at `MAX_SHOWN` bytes.
fn show(b: Option<&[u8]>, format: Format) -> String {
    let Some(b) = b else { return "<span class=\"null\">null</span>".into() };
    let (b, cut) = if b.len() > MAX_SHOWN { (&b[..MAX_SHOWN], b.len() - MAX_SHOWN) } else { (b, 0) };
    let more = if cut > 0 { format!("<span class=\"more\">… {cut} more bytes</span>") } else { String::new() };
    let text = std::str::from_utf8(b).ok();
    let body = match (format, text) {
        (Format::Hex, _) | (_, None) => format!("<pre class=\"hex\">{}</pre>", esc(&hex(b))),
        (Format::Json, Some(t)) => match serde_json::from_str::<serde_json::Value>(t) {
            Ok(v) => format!("<pre class=\"json\">{}</pre>", esc(&serde_json::to_string_pretty(&v).unwrap_or_else(|_| t.to_string()))),
            Err(_) => format!("<pre>{}</pre>", esc(t)),
        },
        (Format::Text, Some(t)) => format!("<pre>{}</pre>", esc(t)),
    };
    body + &more
}

pub async fn page(State(console): State<Arc<Console>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, Query(q): Query<BrowseQuery>) -> Response {
    let v = match viewer(&console, &headers, peer).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let name = q.name.clone();
    let mut page = Page::new(&format!("Messages of {name}"), "/topics");
    let _ = write!(page.body, "<h1>Messages of <a href=\"/topic?name={}\">{}</a></h1>", esc(&url(&name)), esc(&name));
    let md = v.metadata().await;
    let Some(t) = md.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == name)) else {
        page.notice(false, "unknown topic (or not authorized to describe it)");
        return super::html(page.finish(&v.session.principal));
    };
    let partitions = t.partitions.len() as i32;
    let nonempty = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let partition = nonempty(&q.partition).and_then(|p| p.parse::<i32>().ok()).unwrap_or(0);
    let limit = nonempty(&q.limit).and_then(|l| l.parse::<usize>().ok()).unwrap_or(DEFAULT_RECORDS).clamp(1, MAX_RECORDS);
    let format = match q.format.as_deref() {
        Some("json") => Format::Json,
        Some("hex") => Format::Hex,
        _ => Format::Text,
    };
    let offset_q = nonempty(&q.offset);
    let time_q = nonempty(&q.timestamp);
    let selected = |c: bool| if c { " selected" } else { "" };
    let partition_options: String = (0..partitions).map(|p| format!("<option value=\"{p}\"{}>{p}</option>", selected(p == partition))).collect();
    let _ = write!(
        page.body,
        "<form method=\"get\" action=\"/topic/messages\" class=\"inline\" id=\"browse-form\"><input type=\"hidden\" name=\"name\" value=\"{}\">\
         <label>Partition <select name=\"partition\">{partition_options}</select></label>\
         <label>From offset <input name=\"offset\" value=\"{}\" placeholder=\"latest\" size=\"10\"></label>\
         <label>or from (UTC) <input name=\"timestamp\" type=\"datetime-local\" step=\"1\" value=\"{}\"></label>\
         <label>Records <input name=\"limit\" type=\"number\" min=\"1\" max=\"{MAX_RECORDS}\" value=\"{limit}\" size=\"4\"></label>\
         <label>Show as <select name=\"format\"><option value=\"text\"{}>text</option><option value=\"json\"{}>JSON</option><option value=\"hex\"{}>hex</option></select></label>\
         <button type=\"submit\">Show</button></form>",
        esc(&name),
        esc(offset_q.as_deref().unwrap_or("")),
        esc(time_q.as_deref().unwrap_or("")),
        selected(format == Format::Text),
        selected(format == Format::Json),
        selected(format == Format::Hex),
    );
    if !(0..partitions).contains(&partition) {
        page.notice(false, &format!("{name} has no partition {partition}"));
        return super::html(page.finish(&v.session.principal));
    }
    let bound = |ts| v.list_offsets(&name, &[partition], ts).into_iter().next().map_or(Err("no answer".to_string()), |(_, r)| r);
    let (earliest, latest) = match (bound(EARLIEST), bound(LATEST)) {
        (Ok(e), Ok(l)) => (e, l),
        (Err(e), _) | (_, Err(e)) => {
            page.notice(false, &format!("the partition's offsets: {e}"));
            return super::html(page.finish(&v.session.principal));
        }
    };
    let start = if let Some(o) = &offset_q {
        match o.parse::<i64>() {
            Ok(o) => o.clamp(earliest, latest),
            Err(_) => {
                page.notice(false, &format!("'{o}' is not an offset"));
                return super::html(page.finish(&v.session.principal));
            }
        }
    } else if let Some(t) = &time_q {
        let Some(ms) = html::parse_timestamp(t) else {
            page.notice(false, &format!("'{t}' is not a date and time"));
            return super::html(page.finish(&v.session.principal));
        };
        match bound(ms) {
            Ok(o) if o >= 0 => o,
            Ok(_) => latest,
            Err(e) => {
                page.notice(false, &e);
                return super::html(page.finish(&v.session.principal));
            }
        }
    } else {
        (latest - limit as i64).max(earliest)
    };
    let _ = write!(page.body, "<p class=\"facts\">Offsets {earliest} to {} in this partition; showing from offset {start}.</p>", latest - 1);
    let (bytes, _hw) = match v.fetch(&name, partition, start, MAX_BYTES).await {
        Ok(r) => r,
        Err(e) => {
            page.notice(false, &e);
            return super::html(page.finish(&v.session.principal));
        }
    };
    let mut rows = Vec::new();
    let mut next = None;
    'batches: for batch in browse_batches(&bytes, start) {
        match batch {
            BrowsedBatch::Records(records) => {
                for r in records {
                    if rows.len() == limit {
                        next = Some(r.offset);
                        break 'batches;
                    }
                    let headers: String = r.headers.iter().map(|(k, v)| format!("<div class=\"header\"><b>{}</b>: {}</div>", esc(k), show(v.as_deref(), format))).collect();
                    rows.push(vec![
                        r.offset.to_string(),
                        format!("{}{}", html::timestamp(r.timestamp), if r.log_append_time { " (log append)" } else { "" }),
                        show(r.key.as_deref(), format),
                        headers,
                        show(r.value.as_deref(), format),
                    ]);
                }
            }
            BrowsedBatch::Control { offset } => rows.push(vec![offset.to_string(), String::new(), String::new(), String::new(), "<i>transaction marker</i>".into()]),
            BrowsedBatch::Unreadable { base_offset, last_offset, why } => {
                rows.push(vec![format!("{base_offset}–{last_offset}"), String::new(), String::new(), String::new(), format!("<i>not shown: {}</i>", esc(&why))])
            }
        }
    }
    page.table("messages", &["Offset", "Timestamp (UTC)", "Key", "Headers", "Value"], &rows);
    if let Some(n) = next {
        let _ = write!(
            page.body,
            "<p><a id=\"next\" href=\"/topic/messages?name={}&amp;partition={partition}&amp;offset={n}&amp;limit={limit}&amp;format={}\">Next {limit} from offset {n}</a></p>",
            esc(&url(&name)),
            match format {
                Format::Text => "text",
                Format::Json => "json",
                Format::Hex => "hex",
            }
        );
    }
    super::html(page.finish(&v.session.principal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_every_format_and_cut() {
        let evil = b"<script>alert(1)</script>";
        for f in [Format::Text, Format::Json, Format::Hex] {
            assert!(!show(Some(evil), f).contains("<script>"));
        }
        assert!(show(Some(b"{\"a\":1}"), Format::Json).contains("&quot;a&quot;: 1"));
        assert!(show(Some(&[0xff, 0x00]), Format::Text).contains("ff 00"));
        assert!(show(None, Format::Text).contains("null"));
        let big = vec![b'x'; MAX_SHOWN + 10];
        assert!(show(Some(&big), Format::Text).contains("10 more bytes"));
    }
}
