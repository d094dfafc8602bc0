use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use super::html::esc;
use super::{DayPage, render_day};
use crate::decide::ScheduledSpan;
use crate::model::{ActivityCategory, PresenceDefinitionId, UserId};
use crate::state::{AuditEntry, AuditRecord, DecisionKind, PresenceRef, TriggerId};

use DecisionKind::{Applied, Deferred, DeliveryDelivered, Restored, Skipped};

fn user() -> UserId {
    UserId::parse("6f1c2a38-1d2b-4e5f-9a7b-0c1d2e3f4a5b").expect("a uuid")
}

/// "HH:MM" is on 2026-03-10 UTC; anything longer is RFC 3339.
fn utc(at: &str) -> DateTime<Utc> {
    let full = if at.len() == 5 {
        format!("2026-03-10T{at}:00Z")
    } else {
        at.to_owned()
    };
    DateTime::parse_from_rfc3339(&full)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

fn presence(id: &str) -> Option<PresenceRef> {
    let definition_id = PresenceDefinitionId::parse(id).expect("id");
    Some(PresenceRef {
        definition_id,
        message: String::new(),
    })
}

/// Entries in the order added, linked as the audit log would.
#[derive(Default)]
struct Chain(Vec<(AuditEntry, DateTime<Utc>)>);

impl Chain {
    fn add(mut self, kind: DecisionKind, trigger: &str, at: &str) -> Self {
        let mut entry = AuditEntry::new(user(), kind);
        entry.trigger_id = Some(TriggerId::parse(trigger).expect("trigger id"));
        if matches!(kind, Applied | Restored) {
            entry.before = presence("available");
            entry.after = presence(if kind == Applied {
                "meeting"
            } else {
                "available"
            });
        }
        self.0.push((entry, utc(at)));
        self
    }

    fn why(mut self, reason: &str, details: Value) -> Self {
        if let Some((entry, _)) = self.0.last_mut() {
            entry.reason = Some(reason.to_owned());
            entry.details = details;
        }
        self
    }

    fn records(self) -> Vec<AuditRecord> {
        let mut records: Vec<AuditRecord> = Vec::new();
        for (entry, at) in self.0 {
            let head = records.last().map(AuditRecord::head);
            records.push(AuditRecord::link(entry, head.as_ref(), at));
        }
        records
    }
}

fn started(kind: &str, start: &str, end: &str) -> Value {
    let calendar = json!({"kind": kind, "start": utc(start), "end": utc(end)});
    json!({"trigger": "started", "calendar": calendar})
}

fn day() -> Vec<AuditRecord> {
    let wait = json!({"trigger": "started", "deferredUntil": "2026-03-10T11:05:00Z"});
    Chain::default()
        .add(Skipped, "old", "2026-03-09T15:00:00Z")
        .why("yesterday's reason", json!({}))
        .add(Applied, "m1", "10:00")
        .why("", started("meeting", "10:00", "10:30"))
        .add(Restored, "m1", "10:30")
        .why("the trigger ended", json!({"trigger": "ended"}))
        .add(Deferred, "m2", "11:00")
        .why(
            "the agent is Interacting; looking again at 11:05:00 UTC",
            wait,
        )
        .add(Applied, "m2", "11:05")
        .add(DeliveryDelivered, "m2", "11:05")
        .why("delivered to the hook", json!({}))
        .add(Skipped, "m2", "11:40")
        .why("the presence was changed by someone else", json!({}))
        .records()
}

fn render(records: &[AuditRecord], zone: &str, (y, m, d): (i32, u32, u32)) -> String {
    let names = HashMap::from([("meeting".to_owned(), "Meeting".to_owned())]);
    let category = ActivityCategory::OnQueueWork;
    let schedule = [ScheduledSpan {
        start: utc("08:00"),
        end: utc("12:00"),
        category,
    }];
    render_day(&DayPage {
        user: &user(),
        label: Some("ada@example.com"),
        date: NaiveDate::from_ymd_opt(y, m, d).expect("date"),
        zone: zone.parse().expect("zone"),
        records,
        schedule: &schedule,
        presence_names: &names,
    })
}

const MARCH_10: (i32, u32, u32) = (2026, 3, 10);

#[test]
fn draws_every_lane_and_the_legend() {
    let html = render(&day(), "UTC", MARCH_10);

    for lane in ["Calendar", "WFM schedule", "Presence we set", "Decisions"] {
        assert!(html.contains(&format!(">{lane}</text>")), "lane {lane}");
    }
    assert!(html.contains("<svg") && html.contains(r#"<div class="legend">"#));
    assert!(
        html.contains("Meeting · 10:00–10:30\ntrigger m1"),
        "from details.calendar"
    );
    assert!(
        html.contains(">On queue</text>"),
        "the schedule bar is labelled"
    );
    assert!(html.contains("Meeting from 11:05 until 11:40 (changed by someone else)"));
    assert!(
        html.contains(">restored to available</text>"),
        "the restore, by its id"
    );
}

#[test]
fn a_deferral_reason_and_its_wait_are_in_the_table() {
    let html = render(&day(), "UTC", MARCH_10);
    let table = html.split("<table>").nth(1).expect("a table");

    let waited = "the agent is Interacting; looking again at 11:05:00 UTC (waits until 11:05)";
    assert!(table.contains(waited));
    assert!(table.contains("the presence was changed by someone else"));
    assert!(
        html.contains(r#"class="wait""#),
        "the deferral's wait is drawn"
    );
}

#[test]
fn other_days_and_deliveries_are_left_out() {
    let html = render(&day(), "UTC", MARCH_10);

    assert!(!html.contains("yesterday") && !html.contains("delivered to the hook"));
    assert!(html.contains("1 delivery records"));
    assert_eq!(
        html.matches("<tr><td").count(),
        5,
        "five decisions that day"
    );
}

#[test]
fn escapes_everything_that_comes_from_data() {
    let escaped = esc(r#"<script>alert(1)</script> & "x" 'y'"#);
    assert_eq!(
        escaped,
        "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot; &#39;y&#39;"
    );
    let hostile = Chain::default()
        .add(Skipped, r#"evt"><img src=x onerror=alert(1)>'"#, "09:00")
        .why(
            "<script>alert(1)</script>",
            started("<b>", "09:00", "09:30"),
        )
        .records();

    let html = render(&hostile, "UTC", MARCH_10);

    assert!(!html.contains("<script") && !html.contains("<img") && !html.contains("<b>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("evt&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&#39;"));
}

#[test]
fn hour_ticks_follow_the_clock_changes() {
    let ticks = |date| {
        render(&[], "Europe/London", date)
            .matches(r#"class="hour""#)
            .count()
    };

    assert_eq!(ticks((2026, 10, 25)), 25);
    assert_eq!(ticks((2026, 3, 29)), 23);
    assert_eq!(ticks(MARCH_10), 24);
}

#[test]
fn the_page_loads_nothing() {
    let html = render(&day(), "Europe/London", MARCH_10);

    assert!(html.contains("default-src 'none'; style-src 'unsafe-inline'"));
    assert!(
        !html.replace("http-equiv", "").contains("http"),
        "no URL of any kind"
    );
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("url("));
}

#[test]
fn an_empty_day_still_renders() {
    let html = render(&[], "UTC", MARCH_10);

    assert!(html.contains("No decisions on this day"));
    assert!(html.contains("There were no decisions for this agent on 2026-03-10."));
    assert!(html.ends_with("</html>\n"));
}

#[test]
fn the_same_records_in_any_order_give_the_same_page() {
    let records = day();
    let reversed: Vec<AuditRecord> = records.iter().rev().cloned().collect();

    assert_eq!(
        render(&records, "UTC", MARCH_10),
        render(&reversed, "UTC", MARCH_10)
    );
}

#[test]
fn older_records_without_calendar_times_span_start_to_end() {
    let records = Chain::default()
        .add(Applied, "f1", "13:00")
        .why("", json!({"trigger": "started"}))
        .add(Restored, "f1", "14:00")
        .why("the trigger ended", json!({"trigger": "ended"}))
        .add(Skipped, "f2", "22:00")
        .why("the event shows as free", json!({"trigger": "started"}))
        .records();

    let html = render(&records, "UTC", MARCH_10);

    assert!(html.contains("Trigger · 13:00–14:00 (times from the decisions)"));
    assert!(
        html.contains("Trigger · 22:00–00:00"),
        "an unended trigger runs to midnight"
    );
}
