//! `autopilot why`: an agent's decisions around a moment, in plain words. Pure: it reads audit
//! records and the stored state, and names presences through a map the caller resolved.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;

use crate::calendar::{Connection, Provider};
use crate::model::UserId;
use crate::state::{AuditRecord, DecisionKind, PresenceRef, UserState};

/// Presence definition id → the name people know it by.
pub type PresenceNames = HashMap<String, String>;

/// One decision, told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToldDecision {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: DecisionKind,
    /// What made us decide: "a meeting started", "an operator released", …
    pub trigger: String,
    pub trigger_id: Option<String>,
    /// What we did and why, in one sentence.
    pub told: String,
    /// The WFM activity and routing status the decision saw, when it looked.
    pub shift: Option<String>,
    pub routing_status: Option<String>,
}

/// The answer to "why": the decisions near the moment, the one in force at it, what is pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub user_id: String,
    pub at: DateTime<Utc>,
    pub decisions: Vec<ToldDecision>,
    /// The seq of the last decision at or before `at` (what was in force then).
    pub in_force: Option<u64>,
    /// What the stored state still holds: the override, deferrals, active triggers.
    pub pending: Vec<String>,
    /// How the agent's calendar reaches us: when nothing happened, the usual answer.
    pub calendar: Option<String>,
}

/// Tells `records` (decisions of one user, any order; deliveries are left out) and `state`.
pub fn explain(
    user: &UserId,
    at: DateTime<Utc>,
    records: &[AuditRecord],
    state: Option<&UserState>,
    names: &PresenceNames,
    zone: Tz,
) -> Explanation {
    let mut decisions: Vec<&AuditRecord> = records.iter().filter(|r| is_decision(r.kind)).collect();
    decisions.sort_by_key(|r| (r.at, r.seq));
    let in_force = decisions.iter().rev().find(|r| r.at <= at).map(|r| r.seq);
    Explanation {
        user_id: user.to_string(),
        at,
        decisions: decisions
            .iter()
            .map(|record| tell(record, names, zone))
            .collect(),
        in_force,
        pending: state.map_or_else(
            || vec!["nothing stored for this user: we never acted for them".to_owned()],
            |state| pending(state, names, zone),
        ),
        calendar: None,
    }
}

/// The agent's calendar connection in one line: provider, last sync, subscription, last error.
pub fn calendar_line(connection: Option<&Connection>, now: DateTime<Utc>, zone: Tz) -> String {
    let Some(connection) = connection else {
        return "not connected (not in the roster group, or upkeep has not connected them yet): \
                only events other sources put on the bus reach us"
            .to_owned();
    };
    let provider = match connection.provider {
        Provider::Microsoft => "Microsoft 365",
        Provider::Google => "Google Workspace",
    };
    let synced = connection.last_sync_at.map_or_else(
        || "never synced".to_owned(),
        |at| format!("last sync {}", local_near(at, now, zone)),
    );
    let subscription = match &connection.subscription {
        None => "no subscription: changes are not pushed".to_owned(),
        Some(s) if s.expires_at <= now => {
            format!(
                "subscription EXPIRED at {}",
                local_near(s.expires_at, now, zone)
            )
        }
        Some(s) => format!("subscription until {}", local_near(s.expires_at, now, zone)),
    };
    let mut line = format!(
        "{provider} ({}), {synced}, {subscription}",
        connection.email
    );
    if let Some(error) = &connection.last_error {
        line.push_str(&format!("; last error: {error}"));
    }
    line
}

/// Presence decisions; delivery outcomes share the log but answer another question.
pub fn is_decision(kind: DecisionKind) -> bool {
    !matches!(
        kind,
        DecisionKind::DeliveryDelivered
            | DecisionKind::DeliveryRetryScheduled
            | DecisionKind::DeliveryParked
            | DecisionKind::DeliveryDisabled
    )
}

fn tell(record: &AuditRecord, names: &PresenceNames, zone: Tz) -> ToldDecision {
    let details = &record.details;
    let reason = record.reason.as_deref().unwrap_or("no reason recorded");
    let before = record.before.as_ref().map(|p| name_of(p, names));
    let after = record.after.as_ref().map(|p| name_of(p, names));
    let told = match record.kind {
        DecisionKind::Applied => format!(
            "we set {} (it was {}); it will be restored when the trigger ends",
            after.as_deref().unwrap_or("?"),
            before.as_deref().unwrap_or("?"),
        ),
        DecisionKind::Restored => format!(
            "we restored {} ({reason}; it was still our {})",
            after.as_deref().unwrap_or("?"),
            before.as_deref().unwrap_or("?"),
        ),
        DecisionKind::Deferred => match text_at(details, "deferredUntil", zone) {
            // The stored reason names the next look in UTC; say it once, in the reader's zone.
            Some(until) => {
                let why = reason.split("; looking again").next().unwrap_or(reason);
                format!("we waited: {why}; next look at {until}")
            }
            None => format!("we waited: {reason}"),
        },
        DecisionKind::Kept => format!("we kept the presence as it was: {reason}"),
        DecisionKind::Skipped => match after.as_deref() {
            Some(live) => format!("we changed nothing: {reason} (now {live})"),
            None => format!("we changed nothing: {reason}"),
        },
        DecisionKind::Rejected => format!("we refused the event: {reason}"),
        _ => reason.to_owned(),
    };
    ToldDecision {
        seq: record.seq,
        at: record.at,
        kind: record.kind,
        trigger: trigger_of(details, zone),
        trigger_id: record.trigger_id.as_ref().map(ToString::to_string),
        told,
        shift: details["shift"].as_str().map(str::to_owned),
        routing_status: details["routingStatus"].as_str().map(str::to_owned),
    }
}

/// "a meeting (10:00–10:30) started", from the record's `details`.
fn trigger_of(details: &Value, zone: Tz) -> String {
    let calendar = &details["calendar"];
    let what = match calendar["kind"].as_str() {
        Some("focus") => "a focus block".to_owned(),
        Some(kind) => format!("a {kind}"),
        None => "the trigger".to_owned(),
    };
    let span = match (
        text_at(calendar, "start", zone),
        text_at(calendar, "end", zone),
    ) {
        (Some(start), Some(end)) => format!("{what} ({start}–{end})"),
        _ => what,
    };
    match details["trigger"].as_str() {
        Some("started") => format!("{span} started"),
        Some("ended") => format!("{span} ended"),
        Some("reevaluate") => "a deferred start was looked at again".to_owned(),
        Some("endInferred") => "the sweep found an end that never arrived".to_owned(),
        Some("presenceChanged") => "Genesys reported a presence change".to_owned(),
        Some("released") => format!(
            "an operator ({}) released the override",
            details["operator"].as_str().unwrap_or("unknown")
        ),
        Some(other) => other.to_owned(),
        None => "an event".to_owned(),
    }
}

fn pending(state: &UserState, names: &PresenceNames, zone: Tz) -> Vec<String> {
    let mut pending = Vec::new();
    if let Some(applied) = &state.applied {
        let target = names
            .get(applied.target.as_str())
            .map_or(applied.target.as_str(), String::as_str);
        let restore = state
            .restore_to
            .as_ref()
            .map_or_else(|| "?".to_owned(), |p| name_of(p, names));
        pending.push(format!(
            "our override {target} (trigger {}) holds until {}; then {restore} comes back if nobody changed it",
            applied.trigger_id,
            local(applied.until, zone),
        ));
        if applied.tag.is_none() {
            pending.push("our last write is not settled yet (in flight, or its invocation died; the sweep settles it)".to_owned());
        }
    }
    if state.changed_by_other {
        pending.push(
            "someone else changed the presence during our override: nothing will be restored"
                .to_owned(),
        );
    }
    if let Some(until) = state.deferred_until {
        pending.push(format!(
            "a start is deferred; next look at {}",
            local(until, zone)
        ));
    }
    for (id, trigger) in &state.active_triggers {
        pending.push(format!(
            "active {:?} trigger {id} until {}",
            trigger.kind,
            local(trigger.ends_at, zone)
        ));
    }
    if pending.is_empty() {
        pending.push("nothing pending: no override of ours, no deferral".to_owned());
    }
    pending
}

/// The presence's name, and its message when it has one.
pub fn name_of(presence: &PresenceRef, names: &PresenceNames) -> String {
    let id = presence.definition_id.as_str();
    let name = names.get(id).map_or(id, String::as_str);
    if presence.message.is_empty() {
        name.to_owned()
    } else {
        format!("{name} \"{}\"", presence.message)
    }
}

fn text_at(value: &Value, field: &str, zone: Tz) -> Option<String> {
    let at = value[field].as_str()?.parse::<DateTime<Utc>>().ok()?;
    Some(local(at, zone))
}

/// A moment as people on call read it: local time of day with the zone's abbreviation.
pub fn local(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone).format("%H:%M:%S %Z").to_string()
}

/// `local`, with the date when `at` is not on the same local day as `now` (a subscription that
/// ends in three days must not read as if it ended today).
pub fn local_near(at: DateTime<Utc>, now: DateTime<Utc>, zone: Tz) -> String {
    if at.with_timezone(&zone).date_naive() == now.with_timezone(&zone).date_naive() {
        local(at, zone)
    } else {
        at.with_timezone(&zone)
            .format("%a %Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::state::{AuditEntry, ChainHead};

    const MEETING: &str = "3fd8b0b2-1e4e-4a5e-8a8e-000000000001";
    const AVAILABLE: &str = "3fd8b0b2-1e4e-4a5e-8a8e-000000000002";

    fn user() -> UserId {
        UserId::parse("9a1b2c3d-0000-4000-8000-000000000001").expect("user id")
    }

    fn presence(id: &str) -> PresenceRef {
        PresenceRef {
            definition_id: crate::model::PresenceDefinitionId::parse(id).expect("id"),
            message: String::new(),
        }
    }

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, minute, 0)
            .single()
            .expect("time")
    }

    fn record(
        head: Option<&ChainHead>,
        kind: DecisionKind,
        when: DateTime<Utc>,
        details: Value,
    ) -> AuditRecord {
        let mut entry = AuditEntry::new(user(), kind);
        entry.details = details;
        entry.reason = Some("the agent is Interacting; looking again at 10:05:00 UTC".to_owned());
        if kind == DecisionKind::Applied {
            entry.before = Some(presence(AVAILABLE));
            entry.after = Some(presence(MEETING));
        }
        AuditRecord::link(entry, head, when)
    }

    fn names() -> PresenceNames {
        HashMap::from([
            (MEETING.to_owned(), "Meeting".to_owned()),
            (AVAILABLE.to_owned(), "Available".to_owned()),
        ])
    }

    #[test]
    fn tells_a_deferral_then_an_apply_in_local_time() {
        let calendar = json!({"kind": "meeting", "start": at(10, 0), "end": at(10, 30)});
        let deferred = record(
            None,
            DecisionKind::Deferred,
            at(10, 0),
            json!({"trigger": "started", "calendar": calendar, "deferredUntil": at(10, 5)}),
        );
        let applied = record(
            Some(&deferred.head()),
            DecisionKind::Applied,
            at(10, 5),
            json!({"trigger": "reevaluate", "shift": "Activity(Meeting)", "routingStatus": "IDLE"}),
        );
        let zone: Tz = "Europe/Paris".parse().expect("zone");

        let told = explain(
            &user(),
            at(10, 2),
            &[applied, deferred],
            None,
            &names(),
            zone,
        );

        assert_eq!(told.in_force, Some(1), "the deferral was in force at 10:02");
        assert_eq!(
            told.decisions[0].trigger,
            "a meeting (11:00:00 CET–11:30:00 CET) started"
        );
        assert_eq!(
            told.decisions[0].told,
            "we waited: the agent is Interacting; next look at 11:05:00 CET"
        );
        assert_eq!(
            told.decisions[1].told,
            "we set Meeting (it was Available); it will be restored when the trigger ends"
        );
        assert_eq!(told.decisions[1].routing_status.as_deref(), Some("IDLE"));
        assert!(told.pending[0].contains("never acted"));
    }

    #[test]
    fn names_the_operator_of_a_release_and_leaves_deliveries_out() {
        let released = record(
            None,
            DecisionKind::Restored,
            at(9, 0),
            json!({"trigger": "released", "operator": "arn:aws:iam::1:user/oncall"}),
        );
        let delivered = record(
            Some(&released.head()),
            DecisionKind::DeliveryDelivered,
            at(9, 1),
            json!({}),
        );
        let told = explain(
            &user(),
            at(12, 0),
            &[released, delivered],
            None,
            &names(),
            Tz::UTC,
        );
        assert_eq!(told.decisions.len(), 1);
        assert_eq!(
            told.decisions[0].trigger,
            "an operator (arn:aws:iam::1:user/oncall) released the override"
        );
    }

    #[test]
    fn the_calendar_line_names_an_expired_subscription_and_the_last_error() {
        let mut connection = Connection::new(user(), "ada@example.com", "graph-ada");
        assert_eq!(
            calendar_line(Some(&connection), at(10, 0), Tz::UTC),
            "Microsoft 365 (ada@example.com), never synced, no subscription: changes are not pushed"
        );
        connection.last_sync_at = Some(at(9, 0));
        connection.last_error = Some("Graph answered 403".to_owned());
        connection.subscription = Some(crate::calendar::Subscription {
            id: "sub-1".to_owned(),
            expires_at: at(9, 30),
            created_at: at(8, 0),
            nonce: "n".to_owned(),
            resource_id: None,
        });
        assert_eq!(
            calendar_line(Some(&connection), at(10, 0), Tz::UTC),
            "Microsoft 365 (ada@example.com), last sync 09:00:00 UTC, subscription EXPIRED at \
             09:30:00 UTC; last error: Graph answered 403"
        );
        assert!(calendar_line(None, at(10, 0), Tz::UTC).starts_with("not connected"));
        // A subscription that ends another day says which.
        if let Some(subscription) = connection.subscription.as_mut() {
            subscription.expires_at = at(9, 30) + chrono::Duration::days(3);
        }
        let line = calendar_line(Some(&connection), at(10, 0), Tz::UTC);
        assert!(line.contains("last sync 09:00:00 UTC"), "{line}");
        let day = (at(9, 30) + chrono::Duration::days(3))
            .format("%a %Y-%m-%d 09:30:00 UTC")
            .to_string();
        assert!(
            line.contains(&format!("subscription until {day}")),
            "{line}"
        );
    }

    #[test]
    fn pending_names_the_override_and_what_comes_back() {
        let mut state = UserState::new(user(), at(9, 0));
        state.applied = Some(crate::state::AppliedOverride {
            target: presence(MEETING).definition_id,
            trigger_id: crate::state::TriggerId::parse("evt-1").expect("trigger"),
            until: at(10, 30),
            tag: None,
            set_at: None,
            restore_sent: None,
        });
        state.restore_to = Some(presence(AVAILABLE));
        let told = explain(&user(), at(10, 0), &[], Some(&state), &names(), Tz::UTC);
        assert_eq!(
            told.pending[0],
            "our override Meeting (trigger evt-1) holds until 10:30:00 UTC; then Available comes back if nobody changed it"
        );
        assert!(told.pending[1].contains("not settled"));
    }
}
