//! The decisions table under the picture, so the reasons read without hovering.

use std::fmt::Write as _;

use chrono::NaiveDate;

use super::CHAR_W;
use super::axis::Axis;
use super::html::{esc, fit};
use super::records::{Names, deferred_until, detail_str, kind_name};
use crate::state::{AuditRecord, PresenceRef};

fn decision_row(number: usize, record: &AuditRecord, axis: &Axis, names: &Names) -> String {
    let (kind, time) = (
        kind_name(record.kind).unwrap_or_default(),
        axis.clock(record.at),
    );
    let trigger = esc(detail_str(record, "trigger").unwrap_or(""));
    let id = record.trigger_id.as_ref().map_or("", |t| t.as_str());
    let (short_id, id) = (esc(&fit(id, 24.0 * CHAR_W).unwrap_or_default()), esc(id));
    let name = |p: &Option<PresenceRef>| p.as_ref().map_or("—".into(), |p| names.with_message(p));
    let change = match (&record.before, &record.after) {
        (None, None) => String::new(),
        (before, after) => esc(&format!("{} → {}", name(before), name(after))),
    };
    let mut reason = record.reason.clone().unwrap_or_default();
    if let Some(until) = deferred_until(record) {
        let _ = write!(reason, " (waits until {})", axis.hm(until));
    }
    if let Some(operator) = detail_str(record, "operator") {
        let _ = write!(reason, " (operator: {operator})");
    }
    let reason = esc(&reason);
    format!(
        "<tr><td class=\"n\">{number}</td><td class=\"t\">{time}</td>\
         <td><span class=\"badge m-{kind}\">{kind}</span></td>\
         <td>{trigger} <code title=\"{id}\">{short_id}</code></td><td>{change}</td><td>{reason}</td></tr>"
    )
}

pub(super) fn decisions_table(
    today: &[&AuditRecord],
    axis: &Axis,
    names: &Names,
    date: NaiveDate,
) -> String {
    if today.is_empty() {
        return format!(r#"<p class="none">There were no decisions for this agent on {date}.</p>"#);
    }
    let zone = esc(axis.zone.name());
    let mut out = format!(
        "<table><thead><tr><th>#</th><th>Time ({zone})</th><th>Decision</th><th>Trigger</th>\
         <th>Presence</th><th>Reason</th></tr></thead><tbody>"
    );
    for (number, record) in (1..).zip(today) {
        out.push_str(&decision_row(number, record, axis, names));
    }
    out + "</tbody></table>"
}
