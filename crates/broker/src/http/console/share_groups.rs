//! One KIP-932 share group: its state and epochs, its members with their subscriptions and
//! assignments (ShareGroupDescribe), and per partition the group's start offset (the first
//! record not yet finished, DescribeShareGroupOffsets), the end offset and the lag between them,
//! as `kafka-share-groups.sh --describe` shows them.
//!
//! A share group has no committed offsets and several members may hold one partition, so there
//! is no offset reset form here (that is AlterShareGroupOffsets, `strom share-groups
//! --reset-offsets`) and no chart of consumption.

use std::fmt::Write;

use kafka_protocol::messages::share_group_describe_response::DescribedGroup;

use super::html::{esc, link, Page};
use super::kafka::Viewer;
use crate::http::lag;

/// One partition of a share group: its start offset, the partition's end and the records
/// between them.
pub struct ShareLag {
    pub topic: String,
    pub partition: i32,
    pub start: i64,
    pub end: Option<i64>,
    pub lag: Option<i64>,
}

/// The group's partitions with their lag (the end known where a replica is hosted here).
pub fn lags(v: &Viewer, id: &str) -> Result<Vec<ShareLag>, String> {
    Ok(v.share_start_offsets(id)?
        .into_iter()
        .map(|(topic, partition, start)| {
            let end = v.broker.replicas.partition(&topic, partition).map(|p| p.high_watermark());
            let lag = lag::records(&v.broker, &topic, partition, start);
            ShareLag { topic, partition, start, end, lag }
        })
        .collect())
}

fn join(ps: &[i32]) -> String {
    ps.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
}

/// The body of the group page for a share group `g` (already described without error).
pub fn render(page: &mut Page, v: &Viewer, id: &str, g: &DescribedGroup) {
    let _ = write!(
        page.body,
        "<p class=\"facts\">Type <b id=\"group-type\">share</b> · state <b id=\"group-state\">{}</b> · group epoch {}, assignment epoch {}, assignor {}</p>",
        esc(g.group_state.as_str()),
        g.group_epoch,
        g.assignment_epoch,
        esc(g.assignor_name.as_str())
    );
    page.body.push_str("<h2>Members</h2>");
    let rows: Vec<Vec<String>> = g
        .members
        .iter()
        .map(|m| {
            let subscribed = m.subscribed_topic_names.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ");
            let assigned = m.assignment.topic_partitions.iter().map(|t| format!("{}: {}", t.topic_name.as_str(), join(&t.partitions))).collect::<Vec<_>>().join("; ");
            vec![esc(m.member_id.as_str()), esc(m.client_id.as_str()), esc(m.client_host.as_str()), m.member_epoch.to_string(), esc(&subscribed), esc(&assigned)]
        })
        .collect();
    page.table("members", &["Member", "Client id", "Host", "Epoch", "Subscribed", "Assignment"], &rows);
    page.body.push_str("<h2>Start offsets and lag</h2><p>The start offset is the first record the group has not finished with (acknowledged, rejected or archived); records from it to the end offset are still to be delivered or are in flight.</p>");
    let lags = match lags(v, id) {
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
                l.start.to_string(),
                l.end.map_or("-".into(), |e| e.to_string()),
                l.lag.map_or("-".into(), |e| e.to_string()),
            ]
        })
        .collect();
    page.table("offsets", &["Topic", "Partition", "Start offset", "End offset", "Lag (records)"], &rows);
}
