//! The four lanes of the picture: calendar triggers, the WFM schedule, the presence we set, and
//! the decisions that held back.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::axis::Axis;
use super::html::{esc, fit, key, mark_key, marker, rect, text, text_width};
use super::picture::{Bar, Lane, bars_lane, pack, row_y};
use super::records::{Names, calendar_of, deferred_until, detail_str, kind_name};
use super::{BAR_H, WIDTH};
use crate::decide::{ScheduledSpan, SkipReason};
use crate::model::ActivityCategory;
use crate::state::{AuditRecord, DecisionKind, PresenceRef};

const PRESENCE_CLASSES: [&str; 5] = ["p0", "p1", "p2", "p3", "p4"];

fn category_style(category: ActivityCategory) -> (&'static str, &'static str) {
    match category {
        ActivityCategory::OnQueueWork => ("On queue", "wfm-onqueue"),
        ActivityCategory::Break => ("Break", "wfm-break"),
        ActivityCategory::Meal => ("Meal", "wfm-meal"),
        ActivityCategory::Meeting => ("Meeting", "wfm-meeting"),
        ActivityCategory::OffQueueWork => ("Off queue", "wfm-offqueue"),
        ActivityCategory::TimeOff => ("Time off", "wfm-timeoff"),
        ActivityCategory::Training => ("Training", "wfm-training"),
        ActivityCategory::Unavailable => ("Unavailable", "wfm-unavailable"),
        ActivityCategory::Unknown => ("Unknown", "wfm-unknown"),
    }
}

/// One bar per trigger: the calendar entry's own times, or for older records from its start
/// decision to its end (or the end of the day).
pub(super) fn calendar_lane(records: &[&AuditRecord], axis: &Axis) -> Lane {
    let mut by_trigger: BTreeMap<&str, Vec<&AuditRecord>> = BTreeMap::new();
    for record in records {
        if let Some(id) = &record.trigger_id {
            by_trigger.entry(id.as_str()).or_default().push(record);
        }
    }
    let mut bars = Vec::new();
    for (id, records) in by_trigger {
        let (kind, from, to, note) = match records.iter().rev().find_map(|r| calendar_of(r)) {
            Some((kind, from, to)) => (kind, from, to, ""),
            None => match inferred_span(&records, axis) {
                Some((from, to)) => ("", from, to, " (times from the decisions)"),
                None => continue,
            },
        };
        let Some(span) = axis.clip(from, to) else {
            continue;
        };
        let (name, class) = match kind {
            "meeting" => ("Meeting", "cal-meeting"),
            "focus" => ("Focus", "cal-focus"),
            _ => ("Trigger", "cal-other"),
        };
        let label = format!("{name} · {}", axis.span(from, to));
        let title = format!("{label}{note}\ntrigger {id}");
        bars.push((Bar::new(span, class, label, title), name));
    }
    // Both kinds are always in the legend, so a day of meetings still says what focus is.
    bars_lane(
        "Calendar",
        bars,
        key("cal-meeting", "Meeting") + &key("cal-focus", "Focus"),
    )
}

fn inferred_span(records: &[&AuditRecord], axis: &Axis) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let started = records
        .iter()
        .find(|r| detail_str(r, "trigger") == Some("started"))?;
    let ended = records.iter().find(|r| {
        let ends = detail_str(r, "trigger") == Some("ended") || r.kind == DecisionKind::Restored;
        ends && r.at >= started.at
    });
    Some((started.at, ended.map_or(axis.end, |r| r.at)))
}

pub(super) fn schedule_lane(schedule: &[ScheduledSpan], axis: &Axis) -> Lane {
    let bars = schedule.iter().filter_map(|span| {
        let (name, class) = category_style(span.category);
        let title = format!("{name} · {}", axis.span(span.start, span.end));
        let bar = Bar::new(
            axis.clip(span.start, span.end)?,
            class,
            name.to_owned(),
            title,
        );
        Some((bar, name))
    });
    bars_lane("WFM schedule", bars.collect(), String::new())
}

/// A stretch of time our presence was in effect, and what ended it ("" = nothing that day).
type Segment<'r> = (DateTime<Utc>, DateTime<Utc>, &'r PresenceRef, &'static str);

/// Each apply holds until the next apply, restore, or change by someone else; the last one
/// open runs to the end of the day (no clock here: the page is the same whenever it is drawn).
fn presence_segments<'r>(records: &[&'r AuditRecord], day_end: DateTime<Utc>) -> Vec<Segment<'r>> {
    let taken_over = SkipReason::ChangedBySomeoneElse.describe();
    let mut segments = Vec::new();
    let mut open: Option<(DateTime<Utc>, &'r PresenceRef)> = None;
    for record in records {
        let ended = match record.kind {
            DecisionKind::Applied => "replaced",
            DecisionKind::Restored => "restored",
            DecisionKind::Skipped if record.reason.as_deref() == Some(&taken_over) => {
                "changed by someone else"
            }
            _ => continue,
        };
        if let Some((from, presence)) = open.take() {
            segments.push((from, record.at, presence, ended));
        }
        if record.kind == DecisionKind::Applied {
            open = record.after.as_ref().map(|after| (record.at, after));
        }
    }
    if let Some((from, presence)) = open {
        segments.push((from, day_end.max(from), presence, ""));
    }
    segments
}

/// Our presence as bars, one colour per presence; each restore as a diamond with its target.
pub(super) fn presence_lane(
    all: &[&AuditRecord],
    today: &[&AuditRecord],
    axis: &Axis,
    names: &Names,
) -> Lane {
    let (mut body, mut legend, mut seen) = (String::new(), String::new(), Vec::new());
    let segments = presence_segments(all, axis.end);
    for (i, &(from, to, presence, ended)) in segments.iter().enumerate() {
        let Some(span) = axis.clip(from, to) else {
            continue;
        };
        let id = presence.definition_id.as_str();
        let slot = seen.iter().position(|s| *s == id).unwrap_or_else(|| {
            seen.push(id);
            seen.len() - 1
        });
        let class = PRESENCE_CLASSES[slot % PRESENCE_CLASSES.len()];
        if !legend.contains(&format!(r#""{class}""#)) {
            legend.push_str(&key(class, names.of(presence)));
        }
        let until = match ended {
            "" => "still set at the end of the day".to_owned(),
            why => format!("until {} ({why})", axis.hm(to)),
        };
        let title = format!(
            "{} from {} {until}",
            names.with_message(presence),
            axis.hm(from)
        );
        let bar = Bar::new(span, class, names.of(presence).to_owned(), title);
        let room = segments.get(i + 1).map_or(WIDTH, |next| axis.x(next.0)) - bar.to;
        body.push_str(&bar.svg(0, room, if ended.is_empty() { " open" } else { "" }));
    }
    let restores: Vec<&&AuditRecord> = today
        .iter()
        .filter(|r| r.kind == DecisionKind::Restored)
        .collect();
    for (i, record) in restores.iter().enumerate() {
        let x = axis.x(record.at);
        let room = restores.get(i + 1).map_or(WIDTH, |next| axis.x(next.at)) - x;
        let to = record.after.as_ref().map_or("?", |p| names.of(p));
        let title = esc(&format!("{} restored to {to}", axis.clock(record.at)));
        let symbol = marker(DecisionKind::Restored, x, row_y(0) + BAR_H / 2.0);
        let label = fit(&format!("restored to {to}"), room);
        let label = label
            .map(|l| text("note", x - 4.0, row_y(1) + 11.0, &l))
            .unwrap_or_default();
        let _ = write!(body, "<g><title>{title}</title>{symbol}{label}</g>");
    }
    legend.push_str(&mark_key(DecisionKind::Restored, "restored"));
    Lane::new(
        "Presence we set",
        if restores.is_empty() { 1 } else { 2 },
        body,
        legend,
    )
}

/// Deferrals, skips, keeps and rejections as markers numbered like the table; a deferral also
/// shows how long it waits.
pub(super) fn decisions_lane(today: &[&AuditRecord], axis: &Axis) -> Lane {
    let shown: Vec<(usize, &AuditRecord)> = (1..)
        .zip(today.iter().copied())
        .filter(|(_, r)| !matches!(r.kind, DecisionKind::Applied | DecisionKind::Restored))
        .collect();
    let extent = |(n, r): &(usize, &AuditRecord)| {
        let (x, until) = (axis.x(r.at), deferred_until(r).map(|u| axis.x(u)));
        (
            x - 8.0,
            (x + 6.0 + text_width(&n.to_string())).max(until.unwrap_or(x)),
        )
    };
    let rows = pack(&shown.iter().map(extent).collect::<Vec<_>>());
    let mut body = String::new();
    for ((number, record), row) in shown.iter().zip(&rows) {
        let (x, y) = (axis.x(record.at), row_y(*row) + BAR_H / 2.0);
        let kind = kind_name(record.kind).unwrap_or_default();
        let reason = record.reason.as_deref().unwrap_or("no reason recorded");
        let mut title = format!("#{number} {} {kind}: {reason}", axis.clock(record.at));
        body.push_str("<g>");
        if let Some(until) = deferred_until(record) {
            let _ = write!(title, " (until {})", axis.hm(until));
            body.push_str(&rect("wait", x, y - 3.0, (axis.x(until) - x).max(0.0), 6.0));
        }
        let (title, symbol) = (esc(&title), marker(record.kind, x, y));
        let number = text("num", x + 8.0, y - 4.0, &number.to_string());
        let _ = write!(body, "<title>{title}</title>{symbol}{number}</g>");
    }
    let legend = [
        (DecisionKind::Deferred, "deferred (bar: waiting)"),
        (DecisionKind::Skipped, "skipped"),
        (DecisionKind::Kept, "kept"),
        (DecisionKind::Rejected, "rejected"),
    ];
    let legend = legend.iter().map(|(kind, label)| mark_key(*kind, label));
    let rows = rows.iter().max().map_or(1, |r| r + 1);
    Lane::new("Decisions", rows, body, legend.collect())
}
