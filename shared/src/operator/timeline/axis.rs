//! Time to x: the local day from midnight to midnight, 23 or 25 hours long on a clock change.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::{PLOT_W, PLOT_X};

/// Maps instants of the local day onto the x axis. DST days have 23 or 25 hours.
pub(super) struct Axis {
    pub(super) start: DateTime<Utc>,
    pub(super) end: DateTime<Utc>,
    pub(super) zone: Tz,
}

impl Axis {
    pub(super) fn new(zone: Tz, date: NaiveDate) -> Self {
        let start = local_midnight(zone, date);
        let next = date.succ_opt().map(|next| local_midnight(zone, next));
        let end = next.unwrap_or(start + Duration::hours(24));
        Self { start, end, zone }
    }

    pub(super) fn contains(&self, at: DateTime<Utc>) -> bool {
        at >= self.start && at < self.end
    }

    pub(super) fn x(&self, at: DateTime<Utc>) -> f64 {
        let at = at.clamp(self.start, self.end);
        let total = (self.end - self.start).num_seconds().max(1) as f64;
        PLOT_X + (at - self.start).num_seconds() as f64 / total * PLOT_W
    }

    /// The x range of `[from, to)` cut to the day, if any of it falls inside.
    pub(super) fn clip(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<(f64, f64)> {
        (from.max(self.start) < to.min(self.end)).then(|| (self.x(from), self.x(to)))
    }

    pub(super) fn hours(&self) -> i64 {
        (self.end - self.start).num_hours()
    }

    pub(super) fn hm(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.zone).format("%H:%M").to_string()
    }

    /// Time for the table; on a clock-change day the zone abbreviation tells 01:30 from 01:30.
    pub(super) fn clock(&self, at: DateTime<Utc>) -> String {
        let format = if self.hours() == 24 {
            "%H:%M:%S"
        } else {
            "%H:%M:%S %Z"
        };
        at.with_timezone(&self.zone).format(format).to_string()
    }

    pub(super) fn span(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
        format!("{}–{}", self.hm(from), self.hm(to))
    }
}

/// The first instant of `date` in `zone`; where the clocks skip midnight, the first that exists.
fn local_midnight(zone: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    (0..=48)
        .map(|step| midnight + Duration::minutes(30 * step))
        .find_map(|local| zone.from_local_datetime(&local).earliest())
        .map_or_else(
            || Utc.from_utc_datetime(&midnight),
            |t| t.with_timezone(&Utc),
        )
}
