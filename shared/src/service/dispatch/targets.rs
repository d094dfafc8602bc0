//! Who wants a notification, and what each channel is handed for it.

use chrono::{DateTime, Utc};

use crate::delivery::messages::{
    SlackCall, SlackMessage, SlackPost, SlackStatus, TeamsCall, TeamsMessage,
};
use crate::delivery::subscribers::{
    SubscriberConfig, SubscriberId, WebhookSubscriber, lookup_user,
};
use crate::state::{ChangePayload, LookaheadPayload, Notification, NotificationKind, TriggerId};

/// One subscriber of one notification, with what its channel is handed (a webhook's message
/// is built at its attempt: it carries the whole notification).
pub(super) enum Target<'a> {
    Webhook(&'a WebhookSubscriber),
    Slack(SlackMessage),
    Teams(TeamsMessage),
}

impl Target<'_> {
    pub(super) fn id(&self) -> &str {
        match self {
            Self::Webhook(hook) => hook.id.as_str(),
            Self::Slack(_) => SubscriberId::SLACK,
            Self::Teams(_) => SubscriberId::TEAMS,
        }
    }

    pub(super) fn channel(&self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::Slack(_) => "slack",
            Self::Teams(_) => "teams",
        }
    }
}

/// A parsed record.
pub(super) struct Parsed {
    pub notification: Notification,
    pub payload: Payload,
}

/// What a notification is about: one agent's change, or a team's coming day.
pub(super) enum Payload {
    Change(ChangePayload),
    Team(LookaheadPayload),
}

impl Parsed {
    pub(super) fn trigger_id(&self) -> Option<TriggerId> {
        match &self.payload {
            Payload::Change(change) => change.trigger_id.clone(),
            Payload::Team(_) => None,
        }
    }
}

/// The notification and its payload, or why not (the reason names the field).
pub(super) fn parse(body: Option<&str>) -> Result<Parsed, String> {
    let body = body.ok_or_else(|| "empty body".to_owned())?;
    let notification: Notification =
        serde_json::from_str(body).map_err(|err| format!("not a notification: {err}"))?;
    let payload = notification.payload.clone();
    let payload = if notification.kind == NotificationKind::Lookahead {
        Payload::Team(serde_json::from_value(payload).map_err(|err| format!("payload: {err}"))?)
    } else {
        Payload::Change(serde_json::from_value(payload).map_err(|err| format!("payload: {err}"))?)
    };
    Ok(Parsed {
        notification,
        payload,
    })
}

/// Every subscriber that wants this notification and has something to do with it.
pub(super) fn targets<'a>(
    config: &'a SubscriberConfig,
    parsed: &Parsed,
    now: DateTime<Utc>,
) -> Vec<Target<'a>> {
    let change = match &parsed.payload {
        Payload::Change(change) => change,
        // A team's notice goes to the webhooks that asked for the team and to the team's Slack
        // channel; Teams sets one user's own presence, which a team's notice has none of.
        Payload::Team(team) => return team_targets(config, team, now),
    };
    let user = &parsed.notification.user_id;
    let kind = parsed.notification.kind;
    let email = change.email.as_deref();
    let mut targets: Vec<Target<'a>> = config
        .webhooks
        .iter()
        .filter(|hook| hook.wants(user, email))
        .map(Target::Webhook)
        .collect();
    if let Some(slack) = &config.slack
        && let Some(token) = lookup_user(&slack.tokens, user, email)
        && let Some(status) = SlackStatus::for_change(kind, change)
    {
        targets.push(Target::Slack(SlackMessage {
            api_base_url: slack.api_base_url.clone(),
            token: token.clone(),
            call: SlackCall::Status(status),
            now,
        }));
    }
    if let Some(teams) = &config.teams
        && let Some(object_id) = lookup_user(&teams.users, user, email)
    {
        let calls = TeamsCall::for_change(kind, change, now);
        if !calls.is_empty() {
            targets.push(Target::Teams(TeamsMessage {
                config: teams.clone(),
                object_id: object_id.to_owned(),
                calls,
            }));
        }
    }
    targets
}

/// A team's notice: the webhooks listing the team, and a post in the team's Slack channel.
fn team_targets<'a>(
    config: &'a SubscriberConfig,
    notice: &LookaheadPayload,
    now: DateTime<Utc>,
) -> Vec<Target<'a>> {
    let mut targets: Vec<Target<'a>> = config
        .webhooks
        .iter()
        .filter(|hook| hook.wants_team(&notice.team))
        .map(Target::Webhook)
        .collect();
    if let Some(slack) = &config.slack
        && let Some((token, channel)) = slack.team_channel(&notice.team)
    {
        targets.push(Target::Slack(SlackMessage {
            api_base_url: slack.api_base_url.clone(),
            token: token.clone(),
            call: SlackCall::Post(SlackPost::for_lookahead(channel, notice)),
            now,
        }));
    }
    targets
}
