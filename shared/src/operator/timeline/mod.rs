//! `autopilot day`: one agent's day as a self-contained HTML page with an inline SVG picture —
//! calendar triggers, the WFM schedule, the presence we set, and the decisions that held back —
//! plus a table of every decision so the reasons read without hovering.
//!
//! Pure: no I/O, no clock. Everything that comes from data is escaped, because reasons and
//! trigger ids come from calendars; the page loads nothing (CSP `default-src 'none'`).
//!
//! `axis` maps the day onto x, `lanes` draws what happened, `picture` frames the lanes,
//! `table` lists the decisions, `records` reads the audit records, `html` escapes and writes.

mod axis;
mod html;
pub(crate) use html::esc;
mod lanes;
mod picture;
mod records;
mod table;

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::NaiveDate;
use chrono_tz::Tz;

use self::axis::Axis;
use self::lanes::{calendar_lane, decisions_lane, presence_lane, schedule_lane};
use self::picture::{legend, render_svg};
use self::records::{Names, kind_name};
use self::table::decisions_table;
use crate::decide::ScheduledSpan;
use crate::model::UserId;
use crate::state::AuditRecord;

/// What `render_day` draws: one user, one local day.
#[derive(Debug)]
pub struct DayPage<'a> {
    pub user: &'a UserId,
    /// E-mail or name for the title, if known.
    pub label: Option<&'a str>,
    pub date: NaiveDate,
    /// The axis runs from local midnight to local midnight in this zone.
    pub zone: Tz,
    /// Any order; records of other days and other users are left out.
    pub records: &'a [AuditRecord],
    pub schedule: &'a [ScheduledSpan],
    /// Presence definition id -> display name; the id is shown when a name is missing.
    pub presence_names: &'a HashMap<String, String>,
}

/// The page as one HTML document. The same input always gives the same bytes.
pub fn render_day(page: &DayPage<'_>) -> String {
    let axis = Axis::new(page.zone, page.date);
    let mut mine: Vec<&AuditRecord> = page.records.iter().collect();
    mine.retain(|r| &r.user_id == page.user);
    mine.sort_by_key(|r| (r.at, r.seq));
    let (decisions, deliveries): (Vec<_>, Vec<_>) =
        mine.into_iter().partition(|r| kind_name(r.kind).is_some());
    // Delivery outcomes are not decisions: they stay off the picture, counted in the footer.
    let deliveries = deliveries.iter().filter(|r| axis.contains(r.at)).count();
    let today: Vec<&AuditRecord> = decisions
        .iter()
        .copied()
        .filter(|r| axis.contains(r.at))
        .collect();
    let names = Names(page.presence_names);
    let lanes = [
        calendar_lane(&decisions, &axis),
        schedule_lane(page.schedule, &axis),
        presence_lane(&decisions, &today, &axis, &names),
        decisions_lane(&today, &axis),
    ];
    let picture = render_svg(&axis, &lanes, today.is_empty()) + &legend(&lanes);
    let table = decisions_table(&today, &axis, &names, page.date);
    document(page, &axis, today.len(), &picture, &table, deliveries)
}

// Geometry of the picture, in SVG user units.
const WIDTH: f64 = 1200.0;
const PLOT_X: f64 = 150.0;
const PLOT_W: f64 = 1025.0;
const AXIS_H: f64 = 30.0;
const ROW_H: f64 = 28.0;
const BAR_H: f64 = 20.0;
const LANE_PAD: f64 = 6.0;
/// Average width of a character at 11px in Arial-like fonts, to decide what fits where.
const CHAR_W: f64 = 6.0;

/// Class and colour, in pairs: SVG shapes fill with it, HTML badges take it as background.
const COLOURS: &str = "cal-meeting #2563eb cal-focus #7c3aed cal-other #64748b \
    wfm-onqueue #86efac wfm-break #fde68a wfm-meal #fdba74 wfm-meeting #c4b5fd \
    wfm-offqueue #93c5fd wfm-timeoff #d1d5db wfm-training #99f6e4 wfm-unavailable #fca5a5 \
    wfm-unknown #e5e7eb p0 #0f766e p1 #be185d p2 #4338ca p3 #b45309 p4 #374151 \
    m-applied #16a34a m-restored #1d4ed8 m-deferred #d97706 m-skipped #6b7280 m-kept #0891b2 \
    m-rejected #dc2626";

const STYLE: &str = "\
body{margin:0;background:#f3f4f6;color:#1f2937;\
font:14px/1.45 \"Segoe UI\",\"Helvetica Neue\",Arial,\"Liberation Sans\",sans-serif}\
main{max-width:1240px;margin:0 auto;padding:18px 20px 28px}\
h1{font-size:20px;font-weight:600;margin:0 0 2px}h2{font-size:15px;font-weight:600;margin:0 0 6px}\
.sub{color:#6b7280;margin:0 0 12px}\
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 14px;margin-bottom:12px}\
svg.day{display:block;width:100%;height:auto}.lane{fill:#f9fafb}.lane.alt{fill:#fff}\
.lane-title{font-size:12px;font-weight:600;fill:#374151}.hour{stroke:#e5e7eb}\
.edge{stroke:#9ca3af}.tick{font-size:11px;fill:#6b7280;text-anchor:middle}\
.bar-label{font-size:11px;font-weight:600;fill:#fff}[class*=wfm-]+.bar-label{fill:#1f2937}\
.bar-label.out{fill:#374151;font-weight:400}.bar.open{stroke:#111827;stroke-dasharray:4 3}\
.note{font-size:11px;fill:#1d4ed8}.num{font-size:10px;font-weight:600;fill:#374151}\
.wait{fill:#f59e0b;fill-opacity:.4}.cross{stroke:#dc2626;stroke-width:2.5;stroke-linecap:round}\
.ring{stroke:#fff;stroke-width:1.5}.empty{font-size:15px;fill:#9ca3af;text-anchor:middle}\
.legend{display:flex;flex-wrap:wrap;gap:8px 28px;margin-top:10px;font-size:12px;color:#374151}\
.legend span{display:inline-flex;align-items:center;gap:5px}.legend .group{gap:12px}\
.legend .title{font-weight:600;color:#6b7280}\
.sw{width:16px;height:16px;flex:none}table{border-collapse:collapse;width:100%;font-size:13px}\
th{white-space:nowrap;text-align:left;color:#6b7280;font-weight:600;border-bottom:1px solid #e5e7eb;padding:5px 8px}\
td{border-bottom:1px solid #f1f5f9;padding:5px 8px;vertical-align:top}\
td.n{color:#6b7280;width:2em}td.t{white-space:nowrap;font-variant-numeric:tabular-nums}\
code{font-size:12px;color:#4b5563}\
.badge{color:#fff;border-radius:999px;padding:1px 8px;font-size:12px;font-weight:600}\
.none{color:#6b7280;margin:0}footer{color:#6b7280;font-size:12px}";

fn style() -> String {
    let words: Vec<&str> = COLOURS.split_whitespace().collect();
    let mut css = STYLE.to_owned();
    for pair in words.chunks(2) {
        if let [class, colour] = pair {
            let _ = write!(
                css,
                ".{class}{{fill:{colour}}}.badge.{class}{{background:{colour}}}"
            );
        }
    }
    css
}

fn document(
    page: &DayPage,
    axis: &Axis,
    count: usize,
    picture: &str,
    table: &str,
    deliveries: usize,
) -> String {
    let who = esc(page.label.unwrap_or(page.user.as_str()));
    let (day, css) = (page.date.format("%A %-d %B %Y"), style());
    let (zone, user) = (esc(axis.zone.name()), esc(page.user.as_str()));
    let hours = match axis.hours() {
        24 => String::new(),
        h => format!(" · a {h}-hour day (clock change)"),
    };
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>{who} · {day} · Presence Autopilot</title><style>{css}</style></head><body><main>\
         <h1>An agent's day · {who}</h1>\
         <p class=\"sub\">{day} · times in {zone}{hours} · user {user} · {count} decisions</p>\
         <section class=\"card\">{picture}</section>\
         <section class=\"card\"><h2>Decisions</h2>{table}</section>\
         <footer>{deliveries} delivery records (webhooks, Slack, Teams) of this day are not drawn. \
         Drawn from the audit trail by Presence Autopilot.</footer></main></body></html>\n"
    )
}

#[cfg(test)]
mod tests;
