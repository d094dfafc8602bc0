//! The picture's frame: lanes stacked under the hour grid, bars packed into rows, the legend.

use std::fmt::Write as _;

use chrono::Duration;

use super::axis::Axis;
use super::html::{esc, fit, key, rect, text, text_width};
use super::{AXIS_H, BAR_H, LANE_PAD, PLOT_W, PLOT_X, ROW_H, WIDTH};

/// A horizontal bar; its full text is the tooltip, its label goes inside if it fits, else
/// after it if the lane is free there, else inside cut short.
pub(super) struct Bar {
    pub(super) from: f64,
    pub(super) to: f64,
    class: String,
    label: String,
    title: String,
}

impl Bar {
    pub(super) fn new(span: (f64, f64), class: &str, label: String, title: String) -> Self {
        let (from, to) = span;
        Self {
            from,
            to,
            class: class.to_owned(),
            label,
            title,
        }
    }

    pub(super) fn svg(&self, row: usize, room_after: f64, extra: &str) -> String {
        let (y, width) = (row_y(row), (self.to - self.from).max(2.0));
        let mut out = format!("<g><title>{}</title>", esc(&self.title));
        let class = format!("bar {}{extra}", self.class);
        out.push_str(&rect(&class, self.from, y, width, BAR_H));
        // The whole label, else its head ("Meeting" of "Meeting · 10:00–10:30"): inside, else
        // just after the bar; as a last resort the head cut short inside.
        let head = self.label.split(" · ").next().unwrap_or_default();
        let inside = ("bar-label", self.from + 5.0);
        let placed = [self.label.as_str(), head].into_iter().find_map(|label| {
            let needs = text_width(label);
            let at = if needs <= width {
                inside
            } else {
                ("bar-label out", self.to + 9.0)
            };
            (needs <= width || needs + 10.0 <= room_after).then(|| (at, label.to_owned()))
        });
        let placed = placed.or_else(|| fit(head, width).map(|cut| (inside, cut)));
        if let Some(((class, x), label)) = placed {
            out.push_str(&text(class, x, y + BAR_H / 2.0 + 4.0, &label));
        }
        out + "</g>"
    }
}

/// One horizontal band of the picture; `body` is drawn with y = 0 at the lane's top.
pub(super) struct Lane {
    title: &'static str,
    rows: usize,
    body: String,
    /// This lane's part of the legend.
    legend: String,
}

impl Lane {
    pub(super) fn new(title: &'static str, rows: usize, body: String, legend: String) -> Self {
        Self {
            title,
            rows: rows.max(1),
            body,
            legend,
        }
    }

    fn height(&self) -> f64 {
        self.rows as f64 * ROW_H + 2.0 * LANE_PAD
    }
}

pub(super) fn row_y(row: usize) -> f64 {
    LANE_PAD + row as f64 * ROW_H + (ROW_H - BAR_H) / 2.0
}

/// Greedy rows for extents sorted by start: each goes to the first row free at its start.
pub(super) fn pack(extents: &[(f64, f64)]) -> Vec<usize> {
    let mut row_ends: Vec<f64> = Vec::new();
    let mut rows = Vec::with_capacity(extents.len());
    for &(from, to) in extents {
        let row = row_ends
            .iter()
            .position(|&end| end <= from)
            .unwrap_or(row_ends.len());
        match row_ends.get_mut(row) {
            Some(end) => *end = to,
            None => row_ends.push(to),
        }
        rows.push(row);
    }
    rows
}

/// Bars packed into as many rows as overlaps need; the legend names each colour once.
pub(super) fn bars_lane(
    title: &'static str,
    mut bars: Vec<(Bar, &str)>,
    mut legend: String,
) -> Lane {
    bars.sort_by(|a, b| a.0.from.total_cmp(&b.0.from));
    let rows = pack(&bars.iter().map(|(b, _)| (b.from, b.to)).collect::<Vec<_>>());
    let mut body = String::new();
    for (i, ((bar, name), row)) in bars.iter().zip(&rows).enumerate() {
        let next = (i + 1..bars.len()).find(|j| rows.get(*j) == Some(row));
        let room = next
            .and_then(|j| bars.get(j))
            .map_or(WIDTH, |(b, _)| b.from)
            - bar.to;
        body.push_str(&bar.svg(*row, room, ""));
        if !legend.contains(&format!(r#""{}""#, bar.class)) {
            legend.push_str(&key(&bar.class, name));
        }
    }
    Lane::new(title, rows.iter().max().map_or(1, |r| r + 1), body, legend)
}

/// Lane backgrounds, the hour grid, then the lanes' contents on top.
pub(super) fn render_svg(axis: &Axis, lanes: &[Lane], empty: bool) -> String {
    let bottom = AXIS_H + lanes.iter().map(Lane::height).sum::<f64>();
    let height = bottom + 2.0;
    let mut out = format!(r#"<svg class="day" viewBox="0 0 {WIDTH} {height:.0}" role="img">"#);
    let mut top = AXIS_H;
    for (i, lane) in lanes.iter().enumerate() {
        let (shade, middle) = (["lane", "lane alt"][i % 2], top + lane.height() / 2.0);
        out.push_str(&rect(shade, 0.0, top, WIDTH, lane.height()));
        out.push_str(&text("lane-title", 14.0, middle + 4.0, lane.title));
        top += lane.height();
    }
    let tick_top = AXIS_H - 5.0;
    for hour in 0..axis.hours() {
        let at = axis.start + Duration::hours(hour);
        let x = axis.x(at);
        let _ = write!(
            out,
            r#"<line class="hour" x1="{x:.1}" y1="{tick_top}" x2="{x:.1}" y2="{bottom}"/>"#
        );
        out.push_str(&text("tick", x, AXIS_H - 10.0, &axis.hm(at)));
    }
    for x in [PLOT_X, PLOT_X + PLOT_W] {
        let _ = write!(
            out,
            r#"<line class="edge" x1="{x}" y1="{AXIS_H}" x2="{x}" y2="{bottom}"/>"#
        );
    }
    let mut top = AXIS_H;
    for lane in lanes {
        let _ = write!(
            out,
            r#"<g transform="translate(0 {top})">{}</g>"#,
            lane.body
        );
        top += lane.height();
    }
    if empty {
        let (x, y) = (PLOT_X + PLOT_W / 2.0, (AXIS_H + bottom) / 2.0 + 5.0);
        out.push_str(&text("empty", x, y, "No decisions on this day"));
    }
    out + "</svg>"
}

/// One group per lane: its colours, then its symbols.
pub(super) fn legend(lanes: &[Lane]) -> String {
    let mut out = String::from(r#"<div class="legend">"#);
    for lane in lanes.iter().filter(|lane| !lane.legend.is_empty()) {
        let (title, items) = (lane.title, &lane.legend);
        let _ = write!(
            out,
            r#"<span class="group"><span class="title">{title}</span>{items}</span>"#
        );
    }
    out + "</div>"
}
