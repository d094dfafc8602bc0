//! A published WFM schedule as decisions read it.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
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
    /// The IANA zone of the user's WFM business unit (`businessUnitTimeZone`), when WFM gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// What the schedule says about a moment, with the zone the agent's WFM business unit keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShiftAt {
    pub view: ShiftView,
    /// None when WFM does not know the agent or gave no (known) zone.
    pub zone: Option<Tz>,
}

impl ShiftAt {
    /// No published activity, no zone: a user WFM does not know.
    pub const UNKNOWN: Self = Self {
        view: ShiftView::NoShift,
        zone: None,
    };
}

impl ShiftWindow {
    /// What the window says about `at`, with its zone, if it covers `at`.
    pub fn at(&self, at: DateTime<Utc>) -> Option<ShiftAt> {
        Some(ShiftAt {
            view: self.view_at(at)?,
            zone: self.zone.as_deref().and_then(|name| name.parse().ok()),
        })
    }

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
