//! A published WFM schedule as decisions read it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ShiftView;
use crate::model::ActivityCategory;

/// One scheduled activity, reduced to what decisions need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledSpan {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub category: ActivityCategory,
}

/// A user's published schedule over `[from, to)`, as fetched at `fetched_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShiftWindow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub fetched_at: DateTime<Utc>,
    pub spans: Vec<ScheduledSpan>,
}

impl ShiftWindow {
    /// What the window says about `at`, if it covers it.
    pub fn view_at(&self, at: DateTime<Utc>) -> Option<ShiftView> {
        if at < self.from || at >= self.to {
            return None;
        }
        Some(
            self.spans
                .iter()
                .find(|span| at >= span.start && at < span.end)
                .map_or(ShiftView::NoShift, |span| {
                    ShiftView::Activity(span.category)
                }),
        )
    }
}
