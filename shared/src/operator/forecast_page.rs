//! The forecast as a self-contained page: a heatmap of the days × their quarter hours, each
//! cell the team's load then, and per day (a click opens it) the agents whose meetings make it.
//! No script and no request: a Content-Security-Policy of `default-src 'none'` allows only the
//! page's own styles; every value from data is escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;

use super::timeline::esc;
use crate::decide::forecast::Interval;

/// What the page shows.
#[derive(Debug, Clone, Copy)]
pub struct ForecastPage<'a> {
    pub team: &'a str,
    pub policy: &'a str,
    pub members: usize,
    pub zone: Tz,
    pub generated: DateTime<Utc>,
    pub intervals: &'a [Interval],
}

const QUARTERS: usize = 96;

/// One local day's quarter hours (an interval per column; a fall-back hour's two intervals
/// share a column, the busier shown).
type Day<'a> = [Option<&'a Interval>; QUARTERS];

pub fn render_forecast(page: &ForecastPage<'_>) -> String {
    let mut days: BTreeMap<NaiveDate, Day<'_>> = BTreeMap::new();
    for interval in page.intervals {
        let local = interval.start.with_timezone(&page.zone);
        let column = (local.hour() * 4 + local.minute() / 15) as usize;
        let day = days.entry(local.date_naive()).or_insert([None; QUARTERS]);
        if day[column].is_none_or(|seen| seen.off_queue() < interval.off_queue()) {
            day[column] = Some(interval);
        }
    }
    let over = page.intervals.iter().filter(|i| i.over_cap()).count();
    let mut html = String::with_capacity(64 * 1024);
    html.push_str(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
    );
    let _ = write!(
        html,
        "<title>Forecast: {team}</title><style>{STYLE}</style></head><body>\
         <h1>Team {team}: meetings against the floor</h1>\
         <p class=\"meta\">{members} members · policy {policy} · times in {zone} · made {made} · \
         <b>{over}</b> quarter hours over the cap</p>{LEGEND}<table class=\"heat\"><thead><tr><th></th>",
        team = esc(page.team),
        members = page.members,
        policy = esc(page.policy),
        zone = esc(page.zone.name()),
        made = page
            .generated
            .with_timezone(&page.zone)
            .format("%Y-%m-%d %H:%M %Z"),
    );
    for hour in 0..24 {
        let _ = write!(html, "<th colspan=\"4\">{hour:02}</th>");
    }
    html.push_str("</tr></thead><tbody>");
    for (date, day) in &days {
        let _ = write!(html, "<tr><th>{}</th>", date.format("%a %d %b"));
        for cell in day {
            html.push_str(&heat_cell(*cell, page.zone));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    for (date, day) in &days {
        html.push_str(&day_details(*date, day, page.zone));
    }
    html.push_str("</body></html>");
    html
}

fn heat_cell(interval: Option<&Interval>, zone: Tz) -> String {
    let Some(i) = interval else {
        return "<td class=\"none\"></td>".to_owned();
    };
    let level = if i.over_cap() {
        "over"
    } else if i.off_queue() == 0 {
        "zero"
    } else if i.cap.is_some_and(|cap| i.off_queue() >= cap) {
        "full"
    } else {
        "some"
    };
    let cap = i
        .cap
        .map_or_else(|| "no cap".to_owned(), |c| format!("cap {c}"));
    format!(
        "<td class=\"{level}\" title=\"{at}: {off} off queue for meetings, {on} on queue (WFM), {cap}\"></td>",
        at = i.start.with_timezone(&zone).format("%H:%M"),
        off = i.off_queue(),
        on = i.on_queue,
    )
}

/// The day's agents as rows: a cell is filled where their meeting takes them off queue.
fn day_details(date: NaiveDate, day: &Day<'_>, zone: Tz) -> String {
    let mut agents: BTreeMap<&str, [Option<&str>; QUARTERS]> = BTreeMap::new();
    for (column, interval) in day.iter().enumerate() {
        for taking in interval.iter().flat_map(|i| i.taken.iter()) {
            agents.entry(&taking.agent).or_insert([None; QUARTERS])[column] = Some(&taking.trigger);
        }
    }
    let over = day.iter().flatten().filter(|i| i.over_cap()).count();
    let peak = day
        .iter()
        .flatten()
        .map(|i| i.off_queue())
        .max()
        .unwrap_or(0);
    let mut html = format!(
        "<details><summary>{} — at most {peak} off queue for meetings; {over} quarter hours over the cap; {} agents with meetings</summary>",
        date.format("%A %Y-%m-%d"),
        agents.len()
    );
    if agents.is_empty() {
        html.push_str("<p>No known meeting takes anyone off queue.</p></details>");
        return html;
    }
    html.push_str("<table class=\"agents\"><tbody>");
    for (agent, columns) in &agents {
        let _ = write!(html, "<tr><th>{}</th>", esc(agent));
        for (column, meeting) in columns.iter().enumerate() {
            match meeting {
                Some(meeting) => {
                    let at = day[column].map_or_else(String::new, |i| {
                        i.start.with_timezone(&zone).format("%H:%M").to_string()
                    });
                    let _ = write!(
                        html,
                        "<td class=\"busy\" title=\"{at} {}\"></td>",
                        esc(meeting)
                    );
                }
                None => html.push_str("<td></td>"),
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table></details>");
    html
}

const LEGEND: &str = "<p class=\"legend\"><span class=\"sw zero\"></span>nobody off queue for meetings \
    <span class=\"sw some\"></span>under the cap <span class=\"sw full\"></span>at the cap \
    <span class=\"sw over\"></span>over the cap: some meetings will wait \
    <span class=\"sw none\"></span>outside the range</p>";

const STYLE: &str = "body{font:13px system-ui,sans-serif;margin:16px;color:#222}\
    h1{font-size:18px;margin:0 0 4px}.meta{color:#555;margin:0 0 8px}\
    table{border-collapse:collapse}td{width:9px;height:16px;padding:0;border:1px solid #fff}\
    th{font-weight:normal;color:#555;padding:0 6px;text-align:left;white-space:nowrap}\
    thead th{font-size:10px;padding:0}\
    .zero{background:#eef3ee}.some{background:#9cd19c}.full{background:#f2c94c}.over{background:#e05a47}\
    .none{background:#fff;outline:1px dotted #ccc;outline-offset:-2px}.busy{background:#5b7bd5}\
    .legend .sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}\
    details{margin:8px 0}summary{cursor:pointer}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::forecast::Taking;

    fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-12-{day:02}T{hour:02}:{minute:02}:00Z"))
            .expect("time")
            .to_utc()
    }

    /// Data is text, never markup: an agent or meeting named like a tag is escaped; the page
    /// names no URL and runs no script.
    #[test]
    fn the_page_escapes_its_data_and_carries_no_script_or_url() {
        let taking = Taking {
            agent: "<script>alert(1)</script>@example.com".to_owned(),
            trigger: "\"><img src=x onerror=alert(1)>".to_owned(),
            start: at(8, 10, 0),
            end: at(8, 11, 0),
            presence: "Meeting".to_owned(),
        };
        let intervals = vec![
            Interval {
                start: at(8, 10, 0),
                on_queue: 2,
                taken: vec![taking.clone()],
                cap: Some(0),
            },
            Interval {
                start: at(8, 10, 15),
                on_queue: 2,
                taken: Vec::new(),
                cap: Some(0),
            },
        ];
        let page = render_forecast(&ForecastPage {
            team: "tier-1 <b>",
            policy: "sha256:0123456789abcdef",
            members: 2,
            zone: chrono_tz::Tz::Europe__Paris,
            generated: at(7, 9, 0),
            intervals: &intervals,
        });
        assert!(
            !page.contains("<script>") && !page.contains("<img"),
            "{page}"
        );
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;@example.com"));
        assert!(page.contains("tier-1 &lt;b&gt;"));
        assert!(!page.contains("http:") && !page.contains("https:"));
        assert!(page.contains("default-src 'none'"));
        // 10:00 UTC is 11:00 in Paris: the over-cap cell is in the day's 45th column.
        assert!(
            page.contains("title=\"11:00: 1 off queue for meetings, 2 on queue (WFM), cap 0\"")
        );
        assert_eq!(page.matches("class=\"over\"").count(), 1);
    }
}
