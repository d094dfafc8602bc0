//! What we keep between invocations: the per-user presence state (versioned), the audit record of
//! every decision (hash-chained per user) and the notification a change sends out.
//!
//! These are plain data; the stores in `ports` decide how they are kept. The chain algorithm lives
//! here so the DynamoDB adapter and the in-memory fake compute exactly the same hashes.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{InvalidValue, PresenceDefinitionId, SnapshotTag, UserId};

/// The id of a trigger (a calendar event, a focus block) as its source names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TriggerId(String);

impl TriggerId {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let value = value.trim();
        if value.is_empty() {
            return Err(InvalidValue::new("triggerId", "must not be empty"));
        }
        Ok(Self(value.to_owned()))
    }
}

crate::model::text_id!(TriggerId);

/// A presence as we set or restore it: a definition plus the status message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceRef {
    pub definition_id: PresenceDefinitionId,
    #[serde(default)]
    pub message: String,
}

/// The presence override we applied and still own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedOverride {
    pub target: PresenceDefinitionId,
    pub trigger_id: TriggerId,
    pub until: DateTime<Utc>,
    /// The snapshot tag right after our write: if the live tag differs, someone else changed it.
    /// None while our write is in flight (the state is claimed before the PATCH).
    #[serde(default)]
    pub tag: Option<SnapshotTag>,
    /// The `modifiedDate` our write got; presence events at or before it are not news.
    #[serde(default)]
    pub set_at: Option<DateTime<Utc>>,
    /// When a restore was written whose answer was lost (a timeout): a live presence that is
    /// then the one we restore to is our restore, landed, not someone else's change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_sent: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TriggerKind {
    Meeting,
    Focus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveTrigger {
    pub kind: TriggerKind,
    pub ends_at: DateTime<Utc>,
    /// The meeting rule that decided its start, if one did (found again by name when a
    /// deferred start is decided anew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// Everything we remember about one user. `version` is the stored version this value was read
/// at (0 = never stored); stores write `version + 1` on condition that it is still `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserState {
    pub user_id: UserId,
    pub version: u64,
    pub observed_tag: Option<SnapshotTag>,
    pub applied: Option<AppliedOverride>,
    pub restore_to: Option<PresenceRef>,
    /// Overlapping triggers keep the override alive until the last one ends.
    #[serde(default)]
    pub active_triggers: BTreeMap<TriggerId, ActiveTrigger>,
    #[serde(default)]
    pub changed_by_other: bool,
    /// Triggers that ended recently, so a late or repeated start changes nothing.
    #[serde(default)]
    pub ended_triggers: BTreeMap<TriggerId, DateTime<Utc>>,
    /// The notifications of the commit that wrote this version (transactional outbox): the
    /// table's stream carries the commit to the outbox relay, which queues what it added.
    #[serde(default)]
    pub outbox: Vec<Notification>,
    pub deferred_until: Option<DateTime<Utc>>,
    /// When the sweep must look at this user next (an end, a deferral); indexed by the store.
    pub due_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// The team whose staffing guard counts this user off queue (our override holds a slot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// What this write does to a team's guard: stores apply it in the same atomic write as the
    /// state, so the count can never drift from the states. Never stored.
    #[serde(skip)]
    pub slot_change: Option<SlotChange>,
}

/// A change to a team's staffing guard, made with the state write that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotChange {
    /// Take a slot if fewer than `cap` are held (holding one already counts as taken); a full
    /// guard refuses the whole write (`StoreError::OverCap`).
    Take {
        team: String,
        cap: u32,
    },
    /// Hold a slot again whatever the count: a claim given back after a failed restore (the
    /// agent is still off queue, so the count must say so).
    Retake {
        team: String,
    },
    Release {
        team: String,
    },
}

impl SlotChange {
    pub fn team(&self) -> &str {
        match self {
            Self::Take { team, .. } | Self::Retake { team } | Self::Release { team } => team,
        }
    }
}

impl UserState {
    /// The state of a user we know nothing about yet (version 0: the first write creates it).
    pub fn new(user_id: UserId, now: DateTime<Utc>) -> Self {
        Self {
            user_id,
            version: 0,
            observed_tag: None,
            applied: None,
            restore_to: None,
            active_triggers: BTreeMap::new(),
            changed_by_other: false,
            ended_triggers: BTreeMap::new(),
            outbox: Vec::new(),
            deferred_until: None,
            due_at: None,
            updated_at: now,
            slot: None,
            slot_change: None,
        }
    }

    /// `self` with its guard slot let go, if it held one.
    pub fn releasing_slot(mut self) -> Self {
        if let Some(team) = self.slot.take() {
            self.slot_change = Some(SlotChange::Release { team });
        }
        self
    }
}

/// What a decision did. Delivery outcomes are audited the same way as presence decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DecisionKind {
    Applied,
    Skipped,
    Deferred,
    Rejected,
    Restored,
    Kept,
    DeliveryDelivered,
    DeliveryRetryScheduled,
    DeliveryParked,
    DeliveryDisabled,
}

/// An audit record as a caller describes it; the audit log assigns `seq`, `at` and the hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub user_id: UserId,
    pub trigger_id: Option<TriggerId>,
    pub event_id: Option<String>,
    pub kind: DecisionKind,
    pub reason: Option<String>,
    pub before: Option<PresenceRef>,
    pub after: Option<PresenceRef>,
    #[serde(default)]
    pub details: serde_json::Value,
}

impl AuditEntry {
    pub fn new(user_id: UserId, kind: DecisionKind) -> Self {
        Self {
            user_id,
            trigger_id: None,
            event_id: None,
            kind,
            reason: None,
            before: None,
            after: None,
            details: serde_json::Value::Null,
        }
    }
}

/// The `prev_hash` of a user's first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The head of a user's chain: the last record's seq and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

/// One stored decision, linked to the previous record of the same user by `prev_hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub user_id: UserId,
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub trigger_id: Option<TriggerId>,
    pub event_id: Option<String>,
    pub kind: DecisionKind,
    pub reason: Option<String>,
    pub before: Option<PresenceRef>,
    pub after: Option<PresenceRef>,
    #[serde(default)]
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// Links `entry` after `head` (None = first record) at time `at`, and seals it.
    pub fn link(entry: AuditEntry, head: Option<&ChainHead>, at: DateTime<Utc>) -> Self {
        let mut record = Self {
            user_id: entry.user_id,
            seq: head.map_or(1, |h| h.seq + 1),
            // Stores keep milliseconds; truncating first keeps the hash stable across a round trip.
            at: at.trunc_subsecs(3),
            trigger_id: entry.trigger_id,
            event_id: entry.event_id,
            kind: entry.kind,
            reason: entry.reason,
            before: entry.before,
            after: entry.after,
            details: entry.details,
            prev_hash: head.map_or_else(|| GENESIS_HASH.to_owned(), |h| h.hash.clone()),
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        record
    }

    /// SHA-256 (hex) over the canonical JSON of every field except `hash` (keys sorted at every
    /// level, no whitespace), so an edit of any field, `prev_hash` included, changes it.
    pub fn compute_hash(&self) -> String {
        let mut value = match serde_json::to_value(self) {
            Ok(value) => value,
            // Serializing plain data with string keys cannot fail; hash the debug form if it did.
            Err(_) => serde_json::Value::String(format!("{self:?}")),
        };
        if let serde_json::Value::Object(map) = &mut value {
            map.remove("hash");
        }
        let mut canonical = String::new();
        write_canonical(&value, &mut canonical);
        let digest = Sha256::digest(canonical.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*key).clone()).to_string());
                out.push(':');
                if let Some(inner) = map.get(*key) {
                    write_canonical(inner, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Why a chain failed verification; `seq` names the first bad record (or the gap).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("record {seq}: stored hash does not match its content (edited)")]
    HashMismatch { seq: u64 },
    #[error("record {found}: expected seq {expected} (a record is missing or out of order)")]
    SeqGap { expected: u64, found: u64 },
    #[error("record {seq}: prev_hash does not match the previous record's hash (reordered)")]
    PrevMismatch { seq: u64 },
    #[error("chain head says seq {head_seq} but the last record is {last_seq} (truncated)")]
    HeadMismatch { head_seq: u64, last_seq: u64 },
    #[error("record {seq}: belongs to another user")]
    WrongUser { seq: u64 },
    /// A stored record lacks a field or has one of the wrong type (edited outside the code).
    #[error("record {seq}: unreadable field {field}: {reason}")]
    Unreadable {
        seq: u64,
        field: String,
        reason: String,
    },
}

impl ChainBreak {
    /// The seq of the first record that is wrong (for a gap, the record found in its place).
    pub fn first_bad_seq(&self) -> u64 {
        match self {
            Self::HashMismatch { seq }
            | Self::PrevMismatch { seq }
            | Self::WrongUser { seq }
            | Self::Unreadable { seq, .. } => *seq,
            Self::SeqGap { found, .. } => *found,
            Self::HeadMismatch { last_seq, .. } => last_seq + 1,
        }
    }
}

/// The outcome of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub records: u64,
    pub head: Option<ChainHead>,
}

/// Checks records (as stored, in the order the store returns them by seq) against each other
/// and against the head. Checks the content hash first, so an edit is named as such.
pub fn verify_records(
    user: &UserId,
    records: &[AuditRecord],
    head: Option<&ChainHead>,
) -> Result<ChainReport, ChainBreak> {
    let mut prev_hash = GENESIS_HASH.to_owned();
    for (index, record) in records.iter().enumerate() {
        let expected = index as u64 + 1;
        if &record.user_id != user {
            return Err(ChainBreak::WrongUser { seq: record.seq });
        }
        if record.seq != expected {
            return Err(ChainBreak::SeqGap {
                expected,
                found: record.seq,
            });
        }
        if record.compute_hash() != record.hash {
            return Err(ChainBreak::HashMismatch { seq: record.seq });
        }
        if record.prev_hash != prev_hash {
            return Err(ChainBreak::PrevMismatch { seq: record.seq });
        }
        prev_hash.clone_from(&record.hash);
    }
    let last = records.last().map(AuditRecord::head);
    let last_seq = last.as_ref().map_or(0, |h| h.seq);
    match head {
        Some(h) if last.as_ref() != Some(h) => Err(ChainBreak::HeadMismatch {
            head_seq: h.seq,
            last_seq,
        }),
        None if last.is_some() => Err(ChainBreak::HeadMismatch {
            head_seq: 0,
            last_seq,
        }),
        _ => Ok(ChainReport {
            records: records.len() as u64,
            head: last,
        }),
    }
}

/// A notification id: a ULID, derived from the change so a retried transition sends the same id
/// (it becomes the webhook's `webhook-id`, which receivers dedupe on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NotificationId(pub ulid::Ulid);

impl NotificationId {
    /// Time part = the change time (ms); random part = SHA-256 of user, sequence and kind.
    pub fn for_change(
        user: &UserId,
        changed_at: DateTime<Utc>,
        sequence: u64,
        kind: NotificationKind,
    ) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(user.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(sequence.to_be_bytes());
        hasher.update([0]);
        hasher.update(kind.as_str().as_bytes());
        let digest = hasher.finalize();
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&digest[..10]);
        let random = u128::from_be_bytes(random);
        let millis = u64::try_from(changed_at.timestamp_millis()).unwrap_or(0);
        Self(ulid::Ulid::from_parts(millis, random))
    }
}

impl NotificationId {
    /// A team's notice about a day: time part = the day's start; random part = SHA-256 of team,
    /// day and kind. A second run for the same team and day makes the same id, which dispatch
    /// and the receivers dedupe on.
    pub fn for_team(team: &str, day_start: DateTime<Utc>, kind: NotificationKind) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(team.as_bytes());
        hasher.update([0]);
        hasher.update(day_start.timestamp().to_be_bytes());
        hasher.update([0]);
        hasher.update(kind.as_str().as_bytes());
        let digest = hasher.finalize();
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&digest[..10]);
        let millis = u64::try_from(day_start.timestamp_millis()).unwrap_or(0);
        Self(ulid::Ulid::from_parts(millis, u128::from_be_bytes(random)))
    }
}

impl fmt::Display for NotificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for NotificationId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for NotificationId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        ulid::Ulid::from_string(&raw)
            .map(Self)
            .map_err(|_| serde::de::Error::custom("notificationId is not a ULID"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NotificationKind {
    PresenceApplied,
    PresenceRestored,
    ChangeDeferred,
    /// The team's staffing guard kept the agent on queue: the change waits for a slot.
    ChangeHeld,
    ChangeSkipped,
    /// The daily look-ahead: a team's intervals of the next day over its staffing cap.
    Lookahead,
    /// `autopilot subscribers test`: a signed delivery that says nothing about any agent.
    Test,
}

impl NotificationKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::PresenceApplied => "presenceApplied",
            Self::PresenceRestored => "presenceRestored",
            Self::ChangeDeferred => "changeDeferred",
            Self::ChangeHeld => "changeHeld",
            Self::ChangeSkipped => "changeSkipped",
            Self::Lookahead => "lookahead",
            Self::Test => "test",
        }
    }
}

/// A presence as notifications show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceView {
    pub definition_id: PresenceDefinitionId,
    pub system_presence: crate::model::SystemPresence,
    #[serde(default)]
    pub message: String,
}

/// The `payload` of a [`Notification`] (schema in docs/events.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangePayload {
    /// The user's e-mail, when known: Slack and Teams map users by it.
    #[serde(default)]
    pub email: Option<String>,
    /// The presence after the change (for a deferral or skip: the presence left in place).
    pub presence: PresenceView,
    #[serde(default)]
    pub previous: Option<PresenceView>,
    #[serde(default)]
    pub trigger_kind: Option<TriggerKind>,
    #[serde(default)]
    pub trigger_id: Option<TriggerId>,
    /// When the override is planned to end (Slack status expiration, Teams expirationDuration).
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// The `payload` of a [`NotificationKind::Lookahead`] (schema in docs/events.md): no subject,
/// only who, when and what presence the calendar would set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LookaheadPayload {
    pub team: String,
    /// The day looked at, in `time_zone`.
    pub date: chrono::NaiveDate,
    pub time_zone: String,
    /// The policy version the meetings were decided under.
    pub policy: String,
    pub members: u32,
    /// Only the intervals over the cap.
    pub intervals: Vec<LookaheadInterval>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LookaheadInterval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Members WFM schedules on queue then.
    pub on_queue: u32,
    /// Members the calendar would take off queue then.
    pub off_queue: u32,
    pub cap: u32,
    /// The first meetings by start (at most `LOOKAHEAD_LISTED_MEETINGS`), so a notice for a large
    /// team stays well under the queue's message size.
    pub meetings: Vec<LookaheadMeeting>,
    /// How many more meetings take agents off queue then.
    #[serde(default)]
    pub unlisted_meetings: u32,
}

/// How many meetings an interval of a look-ahead lists: with at most 100 intervals in a day (a
/// 25-hour day's quarter hours), a notice stays under 200 KB, inside SQS's 256 KiB.
pub const LOOKAHEAD_LISTED_MEETINGS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LookaheadMeeting {
    /// The agent's e-mail, else their Genesys user id.
    pub agent: String,
    pub calendar_event_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub presence: String,
}

/// A change to tell the outside world about (webhooks, Slack, Teams).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub notification_id: NotificationId,
    pub user_id: UserId,
    pub changed_at: DateTime<Utc>,
    /// The user's state version after the change: orders a user's notifications.
    pub sequence: u64,
    pub kind: NotificationKind,
    pub payload: serde_json::Value,
}

impl Notification {
    pub fn for_change(
        user_id: UserId,
        changed_at: DateTime<Utc>,
        sequence: u64,
        kind: NotificationKind,
        payload: serde_json::Value,
    ) -> Self {
        let changed_at = changed_at.trunc_subsecs(3);
        Self {
            notification_id: NotificationId::for_change(&user_id, changed_at, sequence, kind),
            user_id,
            changed_at,
            sequence,
            kind,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("valid id")
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_770_000_000 + seconds, 123_456_789).expect("valid time")
    }

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut records: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let mut entry = AuditEntry::new(user(), DecisionKind::Applied);
            entry.reason = Some(format!("r{i}"));
            entry.details = serde_json::json!({"b": 1, "a": [i, {"z": true, "y": null}]});
            let head = records.last().map(AuditRecord::head);
            records.push(AuditRecord::link(entry, head.as_ref(), at(i as i64)));
        }
        records
    }

    #[test]
    fn linked_records_verify_and_survive_a_json_round_trip() {
        let records = chain(3);
        let json = serde_json::to_string(&records).expect("serializes");
        let back: Vec<AuditRecord> = serde_json::from_str(&json).expect("parses");

        let report = verify_records(&user(), &back, back.last().map(AuditRecord::head).as_ref());

        assert_eq!(report.map(|r| r.records), Ok(3));
        assert_eq!(back[0].prev_hash, GENESIS_HASH);
        assert_eq!(back[1].prev_hash, back[0].hash);
    }

    #[test]
    fn canonical_form_ignores_key_order() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"x":1,"y":{"b":2,"a":3}}"#).expect("json");
        let b: serde_json::Value =
            serde_json::from_str(r#"{"y":{"a":3,"b":2},"x":1}"#).expect("json");
        let (mut ca, mut cb) = (String::new(), String::new());
        write_canonical(&a, &mut ca);
        write_canonical(&b, &mut cb);
        assert_eq!(ca, cb);
        assert_eq!(ca, r#"{"x":1,"y":{"a":3,"b":2}}"#);
    }

    #[test]
    fn verify_names_the_first_edited_deleted_or_swapped_record() {
        let records = chain(5);
        let head = records.last().map(AuditRecord::head);

        let mut edited = records.clone();
        edited[2].reason = Some("forged".to_owned());
        assert_eq!(
            verify_records(&user(), &edited, head.as_ref()),
            Err(ChainBreak::HashMismatch { seq: 3 })
        );

        let mut deleted = records.clone();
        deleted.remove(1);
        let err = verify_records(&user(), &deleted, head.as_ref()).expect_err("gap");
        assert_eq!(
            err,
            ChainBreak::SeqGap {
                expected: 2,
                found: 3
            }
        );
        assert_eq!(err.first_bad_seq(), 3);

        // Swap the contents of seq 2 and 3 but keep the seq numbers in place, as an attacker
        // rewriting the items under the same keys would.
        let mut swapped = records.clone();
        let (two, three) = (swapped[1].clone(), swapped[2].clone());
        swapped[1] = AuditRecord { seq: 2, ..three };
        swapped[2] = AuditRecord { seq: 3, ..two };
        assert_eq!(
            verify_records(&user(), &swapped, head.as_ref()),
            Err(ChainBreak::HashMismatch { seq: 2 })
        );

        let mut truncated = records.clone();
        truncated.pop();
        assert_eq!(
            verify_records(&user(), &truncated, head.as_ref()),
            Err(ChainBreak::HeadMismatch {
                head_seq: 5,
                last_seq: 4
            })
        );
    }

    #[test]
    fn resealed_edit_is_caught_by_the_next_records_prev_hash() {
        let mut records = chain(3);
        let head = records.last().map(AuditRecord::head);
        records[1].reason = Some("forged".to_owned());
        records[1].hash = records[1].compute_hash();

        assert_eq!(
            verify_records(&user(), &records, head.as_ref()),
            Err(ChainBreak::PrevMismatch { seq: 3 })
        );
    }

    #[test]
    fn notification_id_is_stable_per_change_and_distinct_across_changes() {
        let kind = NotificationKind::PresenceApplied;
        let a = Notification::for_change(user(), at(0), 7, kind, serde_json::Value::Null);
        let again = Notification::for_change(user(), at(0), 7, kind, serde_json::json!({"x": 1}));
        let next = Notification::for_change(user(), at(0), 8, kind, serde_json::Value::Null);

        assert_eq!(a.notification_id, again.notification_id);
        assert_ne!(a.notification_id, next.notification_id);
        assert_eq!(
            a.notification_id.0.timestamp_ms() as i64,
            at(0).timestamp_millis()
        );
        let json = serde_json::to_value(&a).expect("serializes");
        assert_eq!(json["notificationId"], a.notification_id.to_string());
        assert_eq!(json["kind"], "presenceApplied");
    }

    #[test]
    fn user_state_round_trips_in_camel_case() {
        let mut state = UserState::new(user(), at(0));
        state.active_triggers.insert(
            TriggerId::parse("evt-1").expect("id"),
            ActiveTrigger {
                kind: TriggerKind::Focus,
                ends_at: at(60),
                rule: None,
            },
        );
        state.due_at = Some(at(60));
        let json = serde_json::to_value(&state).expect("serializes");
        assert!(json.get("activeTriggers").is_some() && json.get("dueAt").is_some());
        let back: UserState = serde_json::from_value(json).expect("parses");
        assert_eq!(back, state);
    }
}
