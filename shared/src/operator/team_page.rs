//! `autopilot team --out`: a team's day as one self-contained page, a lane per agent on one
//! time axis: what WFM schedules, the known meetings (and whether the policy would apply each),
//! the presence we hold them in now, and a mark where a start waits. No script and no request:
//! a Content-Security-Policy of `default-src 'none'` allows only the page's own styles; every
//! value from data is escaped.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::timeline::esc;
use crate::decide::ScheduledSpan;
use crate::model::ActivityCategory;

/// A known meeting on an agent's lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneMeeting {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Whether the policy would take the agent off queue for it.
    pub applies: bool,
    /// What it comes to: the presence set, or why not.
    pub outcome: String,
}

/// One agent's lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamLane {
    pub agent: String,
    pub activities: Vec<ScheduledSpan>,
    pub meetings: Vec<LaneMeeting>,
    /// The override we hold now: since (when known) and until.
    pub ours: Option<(Option<DateTime<Utc>>, DateTime<Utc>)>,
    pub holds_slot: bool,
    /// A start that waits (a call, the guard), looked at again then.
    pub waiting_until: Option<DateTime<Utc>>,
}

/// What the page shows.
#[derive(Debug, Clone, Copy)]
pub struct TeamPage<'a> {
    pub team: &'a str,
    pub policy: &'a str,
    pub zone: Tz,
    pub now: DateTime<Utc>,
    /// The local day drawn, midnight to midnight.
    pub day: (DateTime<Utc>, DateTime<Utc>),
    pub cap: Option<u32>,
    pub lanes: &'a [TeamLane],
}

impl TeamPage<'_> {
    /// `[from, to)` as `left:…%;width:…%` of the day, or None outside it.
    fn place(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<String> {
        let (start, end) = self.day;
        let (from, to) = (from.max(start), to.min(end));
        (from < to).then(|| {
            let total = (end - start).num_seconds().max(1) as f64;
            let left = (from - start).num_seconds() as f64 / total * 100.0;
            let width = (to - from).num_seconds() as f64 / total * 100.0;
            format!("left:{left:.3}%;width:{width:.3}%")
        })
    }

    fn hm(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.zone).format("%H:%M").to_string()
    }
}

pub fn render_team(page: &TeamPage<'_>) -> String {
    let off = page.lanes.iter().filter(|l| l.ours.is_some()).count();
    let waiting = page
        .lanes
        .iter()
        .filter(|l| l.waiting_until.is_some())
        .count();
    let mut html = String::with_capacity(32 * 1024);
    html.push_str(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
    );
    let _ = write!(
        html,
        "<title>Team {team}</title><style>{STYLE}</style></head><body>\
         <h1>Team {team}: {date}</h1><p class=\"meta\">{members} members · <b>{off}</b> off queue \
         because of us now · <b>{waiting}</b> waiting · {cap} · policy {policy} · times in {zone}, \
         now {now}</p>{LEGEND}<div class=\"axis\"><span class=\"who\"></span><span class=\"track\">",
        team = esc(page.team),
        date = page.day.0.with_timezone(&page.zone).format("%A %Y-%m-%d"),
        members = page.lanes.len(),
        cap = page.cap.map_or_else(
            || "no staffing guard".to_owned(),
            |c| format!("cap {c} now")
        ),
        policy = esc(page.policy),
        zone = esc(page.zone.name()),
        now = page.hm(page.now),
    );
    for hour in (0..24).step_by(2) {
        let _ = write!(
            html,
            "<span class=\"tick\" style=\"left:{:.3}%\">{hour:02}</span>",
            f64::from(hour) / 24.0 * 100.0
        );
    }
    html.push_str("</span></div>");
    for lane in page.lanes {
        html.push_str(&lane_html(page, lane));
    }
    html.push_str("</body></html>");
    html
}

fn lane_html(page: &TeamPage<'_>, lane: &TeamLane) -> String {
    let now_text = match (&lane.ours, lane.waiting_until) {
        (Some((since, until)), _) => format!(
            "off queue by us {}–{}{}",
            since.map_or_else(|| "?".to_owned(), |s| page.hm(s)),
            page.hm(*until),
            if lane.holds_slot {
                ", holds a slot"
            } else {
                ""
            }
        ),
        (None, Some(at)) => format!("waiting; looked at again {}", page.hm(at)),
        (None, None) => String::new(),
    };
    let mut html = format!(
        "<div class=\"lane\"><span class=\"who\"><b>{}</b><br><small>{}</small></span><span class=\"track\">",
        esc(&lane.agent),
        esc(&now_text)
    );
    for span in &lane.activities {
        if let Some(place) = page.place(span.start, span.end) {
            let _ = write!(
                html,
                "<span class=\"wfm {class}\" style=\"{place}\" title=\"{what} {from}–{to}\"></span>",
                class = category_class(span.category),
                what = esc(&format!("{:?}", span.category)),
                from = page.hm(span.start),
                to = page.hm(span.end),
            );
        }
    }
    for meeting in &lane.meetings {
        if let Some(place) = page.place(meeting.start, meeting.end) {
            let _ = write!(
                html,
                "<span class=\"meeting {class}\" style=\"{place}\" title=\"meeting {from}–{to}: {outcome}\"></span>",
                class = if meeting.applies {
                    "applies"
                } else {
                    "skipped"
                },
                from = page.hm(meeting.start),
                to = page.hm(meeting.end),
                outcome = esc(&meeting.outcome),
            );
        }
    }
    if let Some((since, until)) = lane.ours
        && let Some(place) = page.place(since.unwrap_or(page.now), until)
    {
        let _ = write!(
            html,
            "<span class=\"ours\" style=\"{place}\" title=\"our override until {}\"></span>",
            page.hm(until)
        );
    }
    if let Some(at) = lane.waiting_until
        && let Some(place) = page.place(page.now, at.max(page.now + chrono::Duration::minutes(5)))
    {
        let _ = write!(
            html,
            "<span class=\"wait\" style=\"{place}\" title=\"waiting; looked at again {}\"></span>",
            page.hm(at)
        );
    }
    if let Some(place) = page.place(page.now, page.now + chrono::Duration::seconds(1)) {
        let _ = write!(html, "<span class=\"now\" style=\"{place}\"></span>");
    }
    html.push_str("</span></div>");
    html
}

fn category_class(category: ActivityCategory) -> &'static str {
    match category {
        ActivityCategory::OnQueueWork => "onqueue",
        ActivityCategory::Meeting | ActivityCategory::Training => "meetingblock",
        ActivityCategory::Break | ActivityCategory::Meal => "break",
        _ => "offqueue",
    }
}

const LEGEND: &str = "<p class=\"legend\">WFM: <span class=\"sw onqueue\"></span>on queue \
    <span class=\"sw meetingblock\"></span>meeting or training <span class=\"sw break\"></span>break \
    <span class=\"sw offqueue\"></span>other · meetings: <span class=\"sw applies\"></span>we would \
    apply <span class=\"sw skipped\"></span>the policy skips · <span class=\"sw ours\"></span>our \
    override now <span class=\"sw wait\"></span>waiting</p>";

const STYLE: &str = "body{font:13px system-ui,sans-serif;margin:16px;color:#222}\
    h1{font-size:18px;margin:0 0 4px}.meta{color:#555;margin:0 0 8px}\
    .lane,.axis{display:flex;align-items:center;border-bottom:1px solid #eee}\
    .who{width:220px;flex:none;padding:4px 8px 4px 0;overflow:hidden}\
    .track{position:relative;flex:1;height:40px}.axis .track{height:16px}\
    .tick{position:absolute;font-size:10px;color:#777}\
    .track span{position:absolute}\
    .wfm{top:2px;height:10px}.meeting{top:15px;height:10px;border-radius:3px}\
    .ours{top:28px;height:9px;background:#5b3fc4;border-radius:3px}\
    .wait{top:28px;height:9px;background:repeating-linear-gradient(45deg,#e05a47 0 4px,#fff 4px 8px)}\
    .now{top:0;height:40px;border-left:2px solid #e05a47}\
    .onqueue{background:#9cd19c}.meetingblock{background:#f2c94c}.break{background:#ccc}\
    .offqueue{background:#b7c7e8}.applies{background:#5b7bd5}.skipped{background:#fff;outline:1px dashed #5b7bd5}\
    .legend .sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 10px;vertical-align:middle}";

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-12-08T{hour:02}:{minute:02}:00Z"))
            .expect("time")
            .to_utc()
    }

    /// Data is text, never markup; the page names no URL; each lane draws what it holds,
    /// placed on the local day.
    #[test]
    fn the_page_escapes_its_data_and_places_each_lane_on_the_day() {
        let lanes = [
            TeamLane {
                agent: "<script>alert(1)</script>@example.com".to_owned(),
                activities: vec![ScheduledSpan {
                    start: at(6, 0),
                    end: at(12, 0),
                    category: ActivityCategory::OnQueueWork,
                }],
                meetings: vec![LaneMeeting {
                    start: at(9, 0),
                    end: at(9, 30),
                    applies: false,
                    outcome: "\"><img src=x onerror=alert(1)>".to_owned(),
                }],
                ours: Some((Some(at(9, 0)), at(9, 30))),
                holds_slot: true,
                waiting_until: None,
            },
            TeamLane {
                agent: "ben@example.com".to_owned(),
                activities: Vec::new(),
                meetings: Vec::new(),
                ours: None,
                holds_slot: false,
                waiting_until: Some(at(9, 16)),
            },
        ];
        let page = render_team(&TeamPage {
            team: "tier-1 <b>",
            policy: "sha256:0123456789abcdef",
            zone: chrono_tz::Tz::UTC,
            now: at(9, 15),
            day: (at(0, 0), at(0, 0) + chrono::Duration::days(1)),
            cap: Some(1),
            lanes: &lanes,
        });
        assert!(
            !page.contains("<script>") && !page.contains("<img"),
            "{page}"
        );
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;@example.com"));
        assert!(page.contains("tier-1 &lt;b&gt;"));
        assert!(!page.contains("http:") && !page.contains("https:"));
        // 06:00–12:00 of a 24-hour day: from 25% for 25%.
        assert!(page.contains("class=\"wfm onqueue\" style=\"left:25.000%;width:25.000%\""));
        assert!(page.contains("off queue by us 09:00–09:30, holds a slot"));
        assert!(page.contains("waiting; looked at again 09:16"));
        assert_eq!(page.matches("class=\"ours\"").count(), 1);
        assert_eq!(page.matches("class=\"wait\"").count(), 1);
        assert_eq!(
            page.matches("class=\"now\"").count(),
            2,
            "a now line per lane"
        );
        assert!(page.contains("<b>1</b> off queue because of us now · <b>1</b> waiting"));
    }
}
