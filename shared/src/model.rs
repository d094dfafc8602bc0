//! Domain vocabulary shared by every function: identifiers, Genesys presences and routing
//! statuses as named variants, and the presence snapshot whose tag is our own "ETag".

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The conversions every validated string id shares: `as_str`, `Display`, and `String` both
/// ways (through its `parse`, so serde's `try_from = "String"` validates).
macro_rules! text_id {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::model::InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use text_id;

/// Why a value could not become a domain type; names the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidValue {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// At most this many characters of a refused value are echoed back in a reason, log or audit
/// record, so a huge bad value can never make the record about it too big to write.
pub const PREVIEW_CHARS: usize = 64;

/// `value` quoted for a message, cut to `PREVIEW_CHARS` characters with its full size named.
pub fn preview(value: &str) -> String {
    match value.char_indices().nth(PREVIEW_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
    }
}

/// A message of ours (an error's text) cut to `max` characters for an audit record or a log line.
pub fn clipped(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// A Genesys Cloud user id (a UUID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let value = value.trim();
        uuid::Uuid::parse_str(value)
            .map(|id| Self(id.hyphenated().to_string()))
            .map_err(|_| InvalidValue::new("userId", format!("{} is not a UUID", preview(value))))
    }

    /// [`UNATTRIBUTED_USER`]: what records and notices about no one agent are kept under.
    pub fn unattributed() -> Self {
        Self(UNATTRIBUTED_USER.to_owned())
    }
}

text_id!(UserId);

/// Audit records of events that name no usable user are kept under this id.
pub const UNATTRIBUTED_USER: &str = "00000000-0000-0000-0000-000000000000";

/// The id of a presence definition (system or org secondary presence).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PresenceDefinitionId(String);

impl PresenceDefinitionId {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let value = value.trim();
        if value.is_empty() {
            return Err(InvalidValue::new(
                "presenceDefinition.id",
                "must not be empty",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PresenceDefinitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Genesys system presences. Each API surface spells them differently ("On Queue", "OnQueue",
/// "ON_QUEUE"), so parsing ignores case, spaces and underscores; unknown values are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SystemPresence {
    Available,
    Away,
    Busy,
    Offline,
    Idle,
    OnQueue,
    Meal,
    Training,
    Meeting,
    Break,
    Other(String),
}

impl SystemPresence {
    pub const ALL: [SystemPresence; 10] = [
        Self::Available,
        Self::Away,
        Self::Busy,
        Self::Offline,
        Self::Idle,
        Self::OnQueue,
        Self::Meal,
        Self::Training,
        Self::Meeting,
        Self::Break,
    ];

    pub fn parse(value: &str) -> Self {
        let folded: String = value
            .chars()
            .filter(|c| !matches!(c, ' ' | '_' | '-'))
            .flat_map(char::to_lowercase)
            .collect();
        match folded.as_str() {
            "available" => Self::Available,
            "away" => Self::Away,
            "busy" => Self::Busy,
            "offline" => Self::Offline,
            "idle" => Self::Idle,
            "onqueue" => Self::OnQueue,
            "meal" => Self::Meal,
            "training" => Self::Training,
            "meeting" => Self::Meeting,
            "break" => Self::Break,
            _ => Self::Other(value.to_owned()),
        }
    }

    /// The spelling of the REST presence and legacy definition APIs ("On Queue").
    pub fn rest_name(&self) -> &str {
        match self {
            Self::Available => "Available",
            Self::Away => "Away",
            Self::Busy => "Busy",
            Self::Offline => "Offline",
            Self::Idle => "Idle",
            Self::OnQueue => "On Queue",
            Self::Meal => "Meal",
            Self::Training => "Training",
            Self::Meeting => "Meeting",
            Self::Break => "Break",
            Self::Other(raw) => raw,
        }
    }
}

impl fmt::Display for SystemPresence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rest_name())
    }
}

impl Serialize for SystemPresence {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.rest_name())
    }
}

impl<'de> Deserialize<'de> for SystemPresence {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Ok(Self::parse(&raw))
    }
}

/// A user's routing status; INTERACTING / COMMUNICATING mean the agent is on an interaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RoutingStatus {
    OffQueue,
    Idle,
    Interacting,
    NotResponding,
    Communicating,
    #[serde(untagged)]
    Other(String),
}

impl RoutingStatus {
    pub fn is_on_interaction(&self) -> bool {
        matches!(self, Self::Interacting | Self::Communicating)
    }
}

/// WFM activity-code categories (the eight of `BusinessUnitActivityCode.category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ActivityCategory {
    OnQueueWork,
    Break,
    Meal,
    Meeting,
    OffQueueWork,
    TimeOff,
    Training,
    Unavailable,
    /// A category added after this code was written; treated as "not allowed" by policy.
    #[serde(other)]
    Unknown,
}

/// What we read of a user's presence at one moment. Genesys has no ETag on presence, so the
/// tag of these fields is the version we compare before we write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceSnapshot {
    pub definition_id: PresenceDefinitionId,
    pub system_presence: SystemPresence,
    pub message: String,
    pub modified_date: DateTime<Utc>,
}

impl PresenceSnapshot {
    /// A stable tag over definition, message and modifiedDate: equal tags mean nothing changed.
    pub fn tag(&self) -> SnapshotTag {
        let mut hasher = Sha256::new();
        hasher.update(self.definition_id.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(self.message.as_bytes());
        hasher.update([0]);
        hasher.update(
            self.modified_date
                .to_rfc3339_opts(SecondsFormat::Millis, true)
                .as_bytes(),
        );
        let digest = hasher.finalize();
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        SnapshotTag(hex)
    }
}

/// The version tag of a [`PresenceSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SnapshotTag(String);

impl SnapshotTag {
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An org presence definition (Genesys `OrganizationPresenceDefinition`, `/api/v2/presence/definitions`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceDefinition {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub language_labels: HashMap<String, String>,
    pub system_presence: SystemPresence,
    #[serde(default)]
    pub deactivated: bool,
}

impl PresenceDefinition {
    /// The org's own label, falling back to the system presence name.
    pub fn label(&self) -> String {
        self.language_labels
            .get("en_US")
            .cloned()
            .or_else(|| self.name.clone())
            .unwrap_or_else(|| self.system_presence.rest_name().to_owned())
    }

    pub fn is_primary(&self) -> bool {
        self.kind.as_deref() == Some("System")
    }
}

/// A subscriber's stable id: part of delivery markers and audit records.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberId(String);

impl SubscriberId {
    /// Slack and Teams are one subscriber each.
    pub const SLACK: &'static str = "slack";
    pub const TEAMS: &'static str = "teams";

    pub fn parse(value: &str) -> Result<Self, String> {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err("subscriber id must be 1-64 characters of [A-Za-z0-9._-]".to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SubscriberId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// A zone by Windows name, IANA name or one of the names of UTC.
pub fn time_zone(name: &str) -> Option<chrono_tz::Tz> {
    use std::str::FromStr;
    if matches!(
        name,
        "UTC" | "Etc/UTC" | "Coordinated Universal Time" | "tzone://Microsoft/Utc"
    ) {
        return Some(chrono_tz::Tz::UTC);
    }
    if let Ok(windows) = windows_timezones::WindowsTimezone::from_str(name) {
        return Some(windows.into());
    }
    chrono_tz::Tz::from_str(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(message: &str, modified: &str) -> PresenceSnapshot {
        PresenceSnapshot {
            definition_id: PresenceDefinitionId::parse("6a3af858-942f-489d-9700-5f9bcdcdae9b")
                .expect("valid id"),
            system_presence: SystemPresence::Available,
            message: message.to_owned(),
            modified_date: DateTime::parse_from_rfc3339(modified)
                .expect("valid time")
                .to_utc(),
        }
    }

    #[test]
    fn system_presence_parses_every_surface_spelling() {
        for raw in ["On Queue", "OnQueue", "ON_QUEUE", "on queue"] {
            assert_eq!(SystemPresence::parse(raw), SystemPresence::OnQueue, "{raw}");
        }
        assert_eq!(
            SystemPresence::parse("AVAILABLE"),
            SystemPresence::Available
        );
        assert_eq!(
            SystemPresence::parse("Lunch"),
            SystemPresence::Other("Lunch".to_owned())
        );
    }

    #[test]
    fn snapshot_tag_is_stable_and_changes_with_each_field() {
        let base = snapshot("", "2026-03-19T22:04:48.120Z");
        assert_eq!(base.tag(), snapshot("", "2026-03-19T22:04:48.120Z").tag());
        assert_ne!(base.tag(), snapshot("x", "2026-03-19T22:04:48.120Z").tag());
        assert_ne!(base.tag(), snapshot("", "2026-03-19T22:04:48.121Z").tag());
        let mut other_definition = base.clone();
        other_definition.definition_id =
            PresenceDefinitionId::parse("bbdff279-7ae1-48ea-bade-7831d7234c64").expect("valid id");
        assert_ne!(base.tag(), other_definition.tag());
    }

    #[test]
    fn user_id_rejects_non_uuid_and_names_the_field() {
        let err = UserId::parse("bob").expect_err("not a uuid");
        assert_eq!(err.field, "userId");
        assert!(UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").is_ok());
    }

    #[test]
    fn routing_status_reads_genesys_values() {
        let parsed: RoutingStatus = serde_json::from_str("\"INTERACTING\"").expect("parses");
        assert!(parsed.is_on_interaction());
        let odd: RoutingStatus = serde_json::from_str("\"SOMETHING_NEW\"").expect("parses");
        assert_eq!(odd, RoutingStatus::Other("SOMETHING_NEW".to_owned()));
    }
}
