//! What is sent, channel by channel, decided from a change: the Slack status, the Teams calls,
//! and the message each channel is handed ([`crate::ports::Channel`]). No I/O here: the senders
//! (`webhook`, `slack`, `teams`) put these on the wire.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::subscribers::{TeamsConfig, WebhookSubscriber};
use crate::model::SystemPresence;
use crate::state::{ChangePayload, Notification, NotificationKind, TriggerKind};

/// One signed POST of the notification to one webhook subscriber.
#[derive(Debug, Clone)]
pub struct WebhookMessage {
    pub subscriber: WebhookSubscriber,
    pub notification: Notification,
}

/// One Slack Web API call: a user's status with their own token, or a team's notice posted in
/// its channel with the bot token.
#[derive(Debug, Clone)]
pub struct SlackMessage {
    /// Tests point this at a stub; `None` = Slack's.
    pub api_base_url: Option<String>,
    pub token: SecretString,
    pub call: SlackCall,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackCall {
    /// `users.profile.set`.
    Status(SlackStatus),
    /// `chat.postMessage`.
    Post(SlackPost),
}

/// A message in a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackPost {
    pub channel: String,
    pub text: String,
}

/// How many intervals a posted look-ahead lists before "and N more".
const POSTED_INTERVALS: usize = 12;

impl SlackPost {
    /// A team's look-ahead as a message: the day, then each quarter hour over the cap with its
    /// agents, in the notice's zone.
    pub fn for_lookahead(channel: &str, notice: &crate::state::LookaheadPayload) -> Self {
        let zone: chrono_tz::Tz = notice.time_zone.parse().unwrap_or(chrono_tz::UTC);
        let hm = |at: DateTime<Utc>| at.with_timezone(&zone).format("%H:%M").to_string();
        let mut text = format!(
            ":warning: Tomorrow ({}, {}) team *{}* is over its staffing cap in {} quarter hour(s); moving one meeting keeps the queue staffed:",
            notice.date,
            notice.time_zone,
            notice.team,
            notice.intervals.len()
        );
        for interval in notice.intervals.iter().take(POSTED_INTERVALS) {
            let agents: Vec<&str> = interval.meetings.iter().map(|m| m.agent.as_str()).collect();
            let more = match interval.unlisted_meetings {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            text.push_str(&format!(
                "\n• {}–{}: {} off queue for meetings (cap {}, {} on queue): {}{more}",
                hm(interval.start),
                hm(interval.end),
                interval.off_queue,
                interval.cap,
                interval.on_queue,
                agents.join(", ")
            ));
        }
        if notice.intervals.len() > POSTED_INTERVALS {
            text.push_str(&format!(
                "\n… and {} more (autopilot forecast --team {})",
                notice.intervals.len() - POSTED_INTERVALS,
                notice.team
            ));
        }
        Self {
            channel: channel.to_owned(),
            text,
        }
    }
}

/// The Graph calls for one user's Teams presence, in order.
#[derive(Debug, Clone)]
pub struct TeamsMessage {
    pub config: TeamsConfig,
    pub object_id: String,
    pub calls: Vec<TeamsCall>,
}

/// Slack's limit on `status_text`, in characters.
pub const MAX_STATUS_TEXT: usize = 100;

/// The profile fields we set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackStatus {
    pub text: String,
    pub emoji: String,
    /// Unix seconds; 0 = no expiry.
    pub expiration: i64,
}

impl SlackStatus {
    /// The status for a change, or None when Slack has nothing to show (deferred, skipped).
    /// A restore clears the status: we only ever own the status we set.
    pub fn for_change(kind: NotificationKind, payload: &ChangePayload) -> Option<Self> {
        match kind {
            NotificationKind::PresenceApplied => {
                let presence = &payload.presence;
                let text = if presence.message.trim().is_empty() {
                    presence.system_presence.rest_name().to_owned()
                } else {
                    presence.message.trim().to_owned()
                };
                Some(Self {
                    text: text.chars().take(MAX_STATUS_TEXT).collect(),
                    emoji: emoji(&presence.system_presence).to_owned(),
                    expiration: payload.until.map_or(0, |until| until.timestamp()),
                })
            }
            NotificationKind::PresenceRestored => Some(Self {
                text: String::new(),
                emoji: String::new(),
                expiration: 0,
            }),
            NotificationKind::ChangeDeferred
            | NotificationKind::ChangeHeld
            | NotificationKind::ChangeSkipped
            | NotificationKind::Lookahead
            | NotificationKind::Test => None,
        }
    }
}

/// Genesys system presence → Slack emoji.
pub fn emoji(presence: &SystemPresence) -> &'static str {
    match presence {
        SystemPresence::Meeting => ":calendar:",
        SystemPresence::Busy => ":no_entry:",
        SystemPresence::Away | SystemPresence::Idle => ":clock3:",
        SystemPresence::Break => ":coffee:",
        SystemPresence::Meal => ":fork_and_knife:",
        SystemPresence::Training => ":books:",
        SystemPresence::OnQueue => ":telephone_receiver:",
        SystemPresence::Offline => ":zzz:",
        SystemPresence::Available | SystemPresence::Other(_) => ":speech_balloon:",
    }
}

/// Graph's bounds for a presence session's `expirationDuration`.
pub const MIN_EXPIRATION: Duration = Duration::from_secs(5 * 60);
pub const MAX_EXPIRATION: Duration = Duration::from_secs(4 * 3600);
/// Without a planned end, the session lapses after an hour unless renewed.
pub const DEFAULT_EXPIRATION: Duration = Duration::from_secs(3600);

/// An (availability, activity) pair `setPresence` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamsPresence {
    pub availability: &'static str,
    pub activity: &'static str,
}

impl TeamsPresence {
    pub const AVAILABLE: Self = Self::pair("Available", "Available");
    pub const IN_A_CALL: Self = Self::pair("Busy", "InACall");
    pub const IN_A_CONFERENCE_CALL: Self = Self::pair("Busy", "InAConferenceCall");
    pub const AWAY: Self = Self::pair("Away", "Away");
    pub const PRESENTING: Self = Self::pair("DoNotDisturb", "Presenting");

    const fn pair(availability: &'static str, activity: &'static str) -> Self {
        Self {
            availability,
            activity,
        }
    }

    /// Genesys presence → the nearest allowed pair. "In a meeting" itself cannot be set by API
    /// (it comes from the calendar), so a meeting is a conference call; focus time is
    /// DoNotDisturb/Presenting, the only DND pair a session may set. None: nothing to mirror.
    pub fn for_presence(presence: &SystemPresence, trigger: Option<TriggerKind>) -> Option<Self> {
        Some(match (presence, trigger) {
            (_, Some(TriggerKind::Focus)) => Self::PRESENTING,
            (SystemPresence::Meeting | SystemPresence::Training, _) => Self::IN_A_CONFERENCE_CALL,
            (SystemPresence::Busy, _) => Self::IN_A_CALL,
            (
                SystemPresence::Away
                | SystemPresence::Break
                | SystemPresence::Meal
                | SystemPresence::Idle,
                _,
            ) => Self::AWAY,
            (SystemPresence::Available | SystemPresence::OnQueue, _) => Self::AVAILABLE,
            (SystemPresence::Offline | SystemPresence::Other(_), _) => return None,
        })
    }
}

/// `expirationDuration` as ISO-8601 (`PT1H30M`), clamped to Graph's PT5M..PT4H, whole minutes
/// rounded up.
pub fn expiration_duration(now: DateTime<Utc>, until: Option<DateTime<Utc>>) -> String {
    let wanted = until
        .map(|until| (until - now).to_std().unwrap_or(Duration::ZERO))
        .unwrap_or(DEFAULT_EXPIRATION)
        .clamp(MIN_EXPIRATION, MAX_EXPIRATION);
    let minutes = wanted.as_secs().div_ceil(60);
    let (hours, minutes) = (minutes / 60, minutes % 60);
    match (hours, minutes) {
        (0, m) => format!("PT{m}M"),
        (h, 0) => format!("PT{h}H"),
        (h, m) => format!("PT{h}H{m}M"),
    }
}

/// The Graph calls for one change, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum TeamsCall {
    SetPresence {
        presence: TeamsPresence,
        expiration: String,
    },
    ClearPresence,
    SetStatusMessage {
        message: String,
        expires: Option<DateTime<Utc>>,
    },
}

impl TeamsCall {
    /// Applied: the session presence plus the status message. Restored: the session is cleared
    /// and the message emptied, so Teams falls back to what the user's other sessions say.
    pub fn for_change(
        kind: NotificationKind,
        payload: &ChangePayload,
        now: DateTime<Utc>,
    ) -> Vec<Self> {
        match kind {
            NotificationKind::PresenceApplied => {
                let Some(presence) = TeamsPresence::for_presence(
                    &payload.presence.system_presence,
                    payload.trigger_kind,
                ) else {
                    return Vec::new();
                };
                vec![
                    Self::SetPresence {
                        presence,
                        expiration: expiration_duration(now, payload.until),
                    },
                    Self::SetStatusMessage {
                        message: payload.presence.message.clone(),
                        expires: payload.until,
                    },
                ]
            }
            NotificationKind::PresenceRestored => vec![
                Self::ClearPresence,
                Self::SetStatusMessage {
                    message: String::new(),
                    expires: None,
                },
            ],
            NotificationKind::ChangeDeferred
            | NotificationKind::ChangeHeld
            | NotificationKind::ChangeSkipped
            | NotificationKind::Lookahead
            | NotificationKind::Test => Vec::new(),
        }
    }
}
