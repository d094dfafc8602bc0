//! Genesys presence events (`v2.users.{id}.presence` through the EventBridge integration).

use super::*;

pub(super) fn genesys_presence(detail: &Value) -> Result<PresenceObservation, EventError> {
    let topic = required(detail, "topicName")?;
    let user = topic
        .strip_prefix("v2.users.")
        .and_then(|rest| rest.strip_suffix(".presence"))
        .ok_or_else(|| {
            error(
                "detail.topicName",
                format!("{} is not v2.users.{{id}}.presence", preview(topic)),
            )
        })?;
    let user_id = UserId::parse(user).map_err(|e| error("detail.topicName", e.reason))?;
    let definition_id =
        PresenceDefinitionId::parse(required(detail, "eventBody.presenceDefinition.id")?)
            .map_err(|e| error("detail.eventBody.presenceDefinition.id", e.reason))?;
    let system_presence = SystemPresence::parse(
        text(detail, "eventBody.presenceDefinition.systemPresence")?.unwrap_or_default(),
    );
    let modified_date = timestamp(detail, "eventBody.modifiedDate")?;
    // The message is kept as sent (not trimmed): it is compared with what we wrote.
    let message = match detail.get("eventBody").and_then(|b| b.get("message")) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(message)) if message.len() > limits::PRESENCE_MESSAGE => {
            return Err(too_long(
                "detail.eventBody.message",
                message,
                limits::PRESENCE_MESSAGE,
            ));
        }
        Some(Value::String(message)) => message.clone(),
        Some(other) => {
            return Err(error(
                "detail.eventBody.message",
                format!("must be a string, got {}", type_name(other)),
            ));
        }
    };
    Ok(PresenceObservation {
        user_id,
        snapshot: PresenceSnapshot {
            definition_id,
            system_presence,
            message,
            modified_date,
        },
        correlation_id: text(detail, "metadata.CorrelationId")?.map(str::to_owned),
    })
}
