//! Small readers of JSON fields: each names the field and the problem when it fails.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{CalendarEntry, EventError, Response, ShowAs, UserRef, limits};
use crate::model::{UserId, preview};
use crate::state::{TriggerId, TriggerKind};

/// A refusal naming `field`.
pub(crate) fn error(field: impl Into<String>, reason: impl Into<String>) -> EventError {
    EventError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// How a JSON value's type is named in a reason.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn too_long(field: impl Into<String>, value: &str, max: usize) -> EventError {
    error(
        field,
        format!("longer than {max} bytes ({} bytes)", value.len()),
    )
}

/// `base.path` as a field name (`base` empty for the envelope itself).
pub(crate) fn field_name(base: &str, path: &str) -> String {
    if base.is_empty() {
        path.to_owned()
    } else {
        format!("{base}.{path}")
    }
}

/// The string at `path` (dot-separated) under `node`: absent, null or blank is `None`; any other
/// type, or more than `max` bytes, is refused naming `base.path`.
pub(crate) fn text_in<'a>(
    node: &'a Value,
    base: &str,
    path: &str,
    max: usize,
) -> Result<Option<&'a str>, EventError> {
    let mut current = node;
    for key in path.split('.') {
        match current.get(key) {
            Some(next) => current = next,
            None => return Ok(None),
        }
    }
    match current {
        Value::Null => Ok(None),
        Value::String(raw) if raw.len() > max => Err(too_long(field_name(base, path), raw, max)),
        Value::String(raw) => Ok(Some(raw.trim()).filter(|s| !s.is_empty())),
        other => Err(error(
            field_name(base, path),
            format!("must be a string, got {}", type_name(other)),
        )),
    }
}

/// A short string under `detail`.
pub(crate) fn text<'a>(detail: &'a Value, path: &str) -> Result<Option<&'a str>, EventError> {
    text_in(detail, "detail", path, limits::SHORT)
}

pub(crate) fn required<'a>(detail: &'a Value, path: &str) -> Result<&'a str, EventError> {
    text(detail, path)?.ok_or_else(|| error(format!("detail.{path}"), "is required"))
}

/// One of `allowed` (the wire spellings), or `None` when absent; anything else is refused.
pub(crate) fn one_of<T: Copy>(
    detail: &Value,
    path: &str,
    allowed: &[(&str, T)],
) -> Result<Option<T>, EventError> {
    let Some(raw) = text(detail, path)? else {
        return Ok(None);
    };
    allowed
        .iter()
        .find(|(name, _)| *name == raw)
        .map(|(_, value)| Some(*value))
        .ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|(name, _)| *name).collect();
            error(
                format!("detail.{path}"),
                format!("{} is not one of {}", preview(raw), names.join(", ")),
            )
        })
}

pub(crate) fn flag(detail: &Value, key: &str) -> Result<bool, EventError> {
    match detail.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(value)) => Ok(*value),
        Some(other) => Err(error(
            format!("detail.{key}"),
            format!("must be true or false, got {}", type_name(other)),
        )),
    }
}

pub(crate) fn timestamp(detail: &Value, path: &str) -> Result<DateTime<Utc>, EventError> {
    let raw = required(detail, path)?;
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.to_utc())
        .map_err(|_| {
            error(
                format!("detail.{path}"),
                format!("{} is not an RFC 3339 timestamp with offset", preview(raw)),
            )
        })
}

pub(crate) fn email_at(node: &Value, base: &str, key: &str) -> Result<Option<String>, EventError> {
    let Some(email) = text_in(node, base, key, limits::EMAIL)? else {
        return Ok(None);
    };
    if !email.contains('@') {
        return Err(error(
            field_name(base, key),
            format!("{} is not an e-mail address", preview(email)),
        ));
    }
    Ok(Some(email.to_lowercase()))
}

pub(crate) fn user_ref(
    detail: &Value,
    id_key: &str,
    email_key: &str,
) -> Result<UserRef, EventError> {
    let user_id = text(detail, id_key)?
        .map(|raw| UserId::parse(raw).map_err(|e| error(format!("detail.{id_key}"), e.reason)))
        .transpose()?;
    let email = email_at(detail, "detail", email_key)?;
    if user_id.is_none() && email.is_none() {
        return Err(error(
            format!("detail.{email_key}"),
            format!("{email_key} or {id_key} is required"),
        ));
    }
    Ok(UserRef { user_id, email })
}

pub(crate) fn ordered(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), EventError> {
    if end <= start {
        return Err(error("detail.end", "must be after start"));
    }
    Ok(())
}

pub(crate) fn trigger_id(detail: &Value, key: &str) -> Result<TriggerId, EventError> {
    let raw = text_in(detail, "detail", key, limits::TRIGGER_ID)?
        .ok_or_else(|| error(format!("detail.{key}"), "is required"))?;
    TriggerId::parse(raw).map_err(|e| error(format!("detail.{key}"), e.reason))
}

pub(crate) fn subject(detail: &Value, key: &str) -> Result<Option<String>, EventError> {
    Ok(text_in(detail, "detail", key, limits::SUBJECT)?.map(str::to_owned))
}

/// The entry from the fields the canonical and the Graph shapes name alike (owner, flags,
/// subject); only the id's key differs.
pub(crate) fn with_common_fields(
    detail: &Value,
    id_key: &str,
    (kind, start, end): (TriggerKind, DateTime<Utc>, DateTime<Utc>),
    show_as: ShowAs,
    response: Response,
) -> Result<CalendarEntry, EventError> {
    Ok(CalendarEntry {
        user: user_ref(detail, "userId", "userEmail")?,
        trigger_id: trigger_id(detail, id_key)?,
        kind,
        start,
        end,
        show_as,
        all_day: flag(detail, "isAllDay")?,
        cancelled: flag(detail, "isCancelled")?,
        response,
        subject: subject(detail, "subject")?,
        zone: zone(detail, "timeZone")?,
        categories: categories(detail, "categories")?,
        others: None,
        organizer: None,
    })
}

/// An optional array of category names: at most `limits::CATEGORIES`, each a short string.
pub(crate) fn categories(detail: &Value, key: &str) -> Result<Vec<String>, EventError> {
    let items = match detail.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(error(
                format!("detail.{key}"),
                format!("must be an array of strings, got {}", type_name(other)),
            ));
        }
    };
    if items.len() > limits::CATEGORIES {
        return Err(error(
            format!("detail.{key}"),
            format!("more than {} categories", limits::CATEGORIES),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(name) if name.len() > limits::SHORT => Err(too_long(
                format!("detail.{key}[{index}]"),
                name,
                limits::SHORT,
            )),
            Value::String(name) => Ok(name.trim().to_owned()),
            other => Err(error(
                format!("detail.{key}[{index}]"),
                format!("must be a string, got {}", type_name(other)),
            )),
        })
        .filter(|name| name.as_ref().map_or(true, |n| !n.is_empty()))
        .collect()
}

/// An optional count (a whole number from 0 to 100,000).
pub(crate) fn count(detail: &Value, key: &str) -> Result<Option<u32>, EventError> {
    match detail.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|n| *n <= 100_000)
            .map(|n| Some(n as u32))
            .ok_or_else(|| {
                error(
                    format!("detail.{key}"),
                    "must be a whole number from 0 to 100000",
                )
            }),
        Some(other) => Err(error(
            format!("detail.{key}"),
            format!("must be a number, got {}", type_name(other)),
        )),
    }
}

/// The people on an attendee list who are not rooms or equipment and not `me` (where the
/// calendar marks its owner), or None without a list.
pub(crate) fn people_besides_me(
    detail: &Value,
    is_resource: impl Fn(&Value) -> bool,
    is_me: impl Fn(&Value) -> bool,
) -> Result<Option<u32>, EventError> {
    match detail.get("attendees") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(attendees)) => Ok(Some(
            attendees
                .iter()
                .filter(|a| !is_resource(a) && !is_me(a))
                .count()
                .min(100_000) as u32,
        )),
        Some(other) => Err(error(
            "detail.attendees",
            format!("must be an array, got {}", type_name(other)),
        )),
    }
}

/// An optional time zone, by IANA or Windows name; one we cannot read is refused, naming it.
pub(crate) fn zone(detail: &Value, key: &str) -> Result<Option<chrono_tz::Tz>, EventError> {
    let Some(name) = text_in(detail, "detail", key, limits::SHORT)? else {
        return Ok(None);
    };
    crate::model::time_zone(name).map(Some).ok_or_else(|| {
        error(
            format!("detail.{key}"),
            format!("{} is not a time zone", preview(name)),
        )
    })
}
