//! Escaping and the small writers of SVG and HTML fragments the page is made of.

use super::CHAR_W;
use super::records::kind_name;
use crate::state::DecisionKind;

/// `text` safe inside HTML content and quoted attributes.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The width `text` takes at 11px, padding included.
pub(super) fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * CHAR_W + 8.0
}

/// `text` cut to what fits in `width` units, or `None` when not even a few characters do.
pub(super) fn fit(text: &str, width: f64) -> Option<String> {
    let room = ((width - 8.0) / CHAR_W).floor().max(0.0) as usize;
    if text.chars().count() <= room {
        Some(text.to_owned())
    } else if room >= 5 {
        Some(text.chars().take(room - 1).chain(['…']).collect())
    } else {
        None
    }
}

pub(super) fn text(class: &str, x: f64, y: f64, content: &str) -> String {
    let content = esc(content);
    format!(r#"<text class="{class}" x="{x:.1}" y="{y:.1}">{content}</text>"#)
}

pub(super) fn rect(class: &str, x: f64, y: f64, w: f64, h: f64) -> String {
    format!(
        r#"<rect class="{class}" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="3"/>"#
    )
}

/// A small symbol per decision kind, centred on (x, y).
pub(super) fn marker(kind: DecisionKind, x: f64, y: f64) -> String {
    let shape = match kind {
        DecisionKind::Deferred => r#"<path d="M-6.5 5.5L0-6.5L6.5 5.5Z"/>"#,
        DecisionKind::Kept => r#"<rect x="-5" y="-5" width="10" height="10" rx="1.5"/>"#,
        DecisionKind::Rejected => r#"<path class="cross" d="M-5-5L5 5M-5 5L5-5"/>"#,
        DecisionKind::Restored => r#"<path class="ring" d="M0-7L7 0L0 7L-7 0Z"/>"#,
        _ => r#"<circle r="5.5"/>"#,
    };
    let class = kind_name(kind).unwrap_or_default();
    format!(r#"<g class="m-{class}" transform="translate({x:.1} {y:.1})">{shape}</g>"#)
}

pub(super) fn key(class: &str, label: &str) -> String {
    let (swatch, label) = (rect(class, 1.0, 3.0, 14.0, 10.0), esc(label));
    format!(r#"<span><svg class="sw" viewBox="0 0 16 16">{swatch}</svg>{label}</span>"#)
}

pub(super) fn mark_key(kind: DecisionKind, label: &str) -> String {
    let symbol = marker(kind, 8.0, 8.0);
    format!(r#"<span><svg class="sw" viewBox="0 0 16 16">{symbol}</svg>{label}</span>"#)
}
