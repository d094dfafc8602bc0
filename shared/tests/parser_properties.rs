//! Property tests of the inbound parsers (the ingress for provider shapes, then the domain
//! parser): random JSON, random bytes and mutated fixtures never panic, and every refusal names
//! a JSON path and stays small enough for its audit record.
//! `make test` runs a bounded number of cases; `make fuzz` runs many more (PROPTEST_CASES).

use presence_autopilot::events::{self, EventError, ParsedEvent};
use presence_autopilot::ingress;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const FIXTURES: [&str; 8] = [
    include_str!("../../tests/fixtures/calendar-event-started.json"),
    include_str!("../../tests/fixtures/calendar-event-ended.json"),
    include_str!("../../tests/fixtures/focus-started.json"),
    include_str!("../../tests/fixtures/focus-ended.json"),
    include_str!("../../tests/fixtures/genesys-presence.json"),
    include_str!("../../tests/fixtures/google-focus-started.json"),
    include_str!("../../tests/fixtures/graph-event-started.json"),
    include_str!("../../tests/fixtures/malformed-missing-end.json"),
];

/// The longest reason a refusal may carry (the rejection's audit record holds it whole).
const MAX_REASON_BYTES: usize = 512;

/// Top-level names a refusal may point at; anything else must be a path under `detail`.
const ENVELOPE_FIELDS: [&str; 8] = [
    "(body)",
    "id",
    "detail-type",
    "detail",
    "source",
    "account",
    "region",
    "time",
];

fn names_a_path(error: &EventError) -> bool {
    ENVELOPE_FIELDS.contains(&error.field.as_str())
        || (error.field.starts_with("detail.")
            && error.field.len() > "detail.".len()
            && !error.field.contains(char::is_whitespace))
}

/// An SQS body as the functions read it: the ingress (provider shapes), then the domain parser.
fn arrive(raw: &str) -> Result<ParsedEvent, EventError> {
    events::parse_json(&ingress::canonical_body(raw))
}

/// A decoded event as schedule-check reads it.
fn arrive_decoded(event: Value) -> Result<ParsedEvent, EventError> {
    events::parse_value(ingress::canonical_event(event))
}

fn check(result: Result<ParsedEvent, EventError>) -> Result<(), TestCaseError> {
    if let Err(error) = result {
        prop_assert!(names_a_path(&error), "no JSON path: {error:?}");
        prop_assert!(
            error.reason.len() <= MAX_REASON_BYTES,
            "reason of {} bytes",
            error.reason.len()
        );
        prop_assert!(!error.reason.is_empty());
    }
    Ok(())
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        // Long strings probe the size limits; repeat() keeps them cheap to generate.
        (0usize..3000).prop_map(|n| Value::String("x".repeat(n))),
        prop_oneof![
            Just("2026-03-19T10:00:00Z"),
            Just("2026-03-19T10:00:00.0000000"),
            Just("calendar#event"),
            Just("busy"),
            Just("focusTime"),
            Just("cancelled"),
            Just("ada@example.com"),
            Just("0f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z@.#-]{1,12}", inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Every path (as keys) to a node of `value`, the root excluded.
fn paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(key.clone());
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                prefix.push(index.to_string());
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// Replaces (or, with `None`, removes) the node at `path`.
fn mutate(root: &mut Value, path: &[String], replacement: Option<Value>) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut node = root;
    for key in parents {
        node = match node {
            Value::Object(map) => map.get_mut(key).expect("path exists"),
            Value::Array(items) => &mut items[key.parse::<usize>().expect("index")],
            _ => unreachable!("paths only descend into containers"),
        };
    }
    match (node, replacement) {
        (Value::Object(map), Some(value)) => {
            map.insert(last.clone(), value);
        }
        (Value::Object(map), None) => {
            map.remove(last);
        }
        (Value::Array(items), Some(value)) => items[last.parse::<usize>().expect("index")] = value,
        (Value::Array(items), None) => {
            items.remove(last.parse::<usize>().expect("index"));
        }
        _ => unreachable!("parents are containers"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_never_panic(raw in ".{0,400}") {
        check(arrive(&raw))?;
    }

    #[test]
    fn random_json_never_panics(value in arb_json()) {
        check(arrive(&value.to_string()))?;
        check(arrive_decoded(value))?;
    }

    #[test]
    fn random_details_in_a_real_envelope_never_panic(
        detail_type in prop_oneof![
            Just("Calendar Event Started"), Just("Calendar Event Ended"), Just("Focus Started"),
            Just("Calendar Event Upserted"), Just("Calendar Event Deleted"),
            Just("v2.users.{id}.presence"), Just("Something Else"),
        ],
        detail in arb_json(),
    ) {
        let event = json!({"id": "e-1", "detail-type": detail_type, "source": "test", "detail": detail});
        check(arrive(&event.to_string()))?;
    }

    #[test]
    fn mutated_fixtures_never_panic(
        fixture in 0..FIXTURES.len(),
        pick in any::<prop::sample::Index>(),
        replacement in prop::option::of(arb_json()),
    ) {
        let mut event: Value = serde_json::from_str(FIXTURES[fixture]).expect("fixture is JSON");
        let mut all = Vec::new();
        paths(&event, &mut Vec::new(), &mut all);
        let path = pick.get(&all).clone();
        mutate(&mut event, &path, replacement);
        check(arrive(&event.to_string()))?;
        check(arrive_decoded(event))?;
    }
}

#[test]
fn oversized_values_are_refused_naming_the_field_with_a_bounded_reason() {
    let mut event: Value = serde_json::from_str(FIXTURES[0]).expect("fixture");
    event["detail"]["calendarEventId"] = Value::String("a".repeat(200_000));
    let error = arrive(&event.to_string()).expect_err("too long");
    assert_eq!(error.field, "detail.calendarEventId");
    assert!(
        error.reason.starts_with("longer than 1024 bytes"),
        "{}",
        error.reason
    );

    let mut event: Value = serde_json::from_str(FIXTURES[0]).expect("fixture");
    event["id"] = Value::String("i".repeat(3000));
    let error = arrive(&event.to_string()).expect_err("too long");
    assert_eq!(error.field, "id");

    let mut event: Value = serde_json::from_str(FIXTURES[0]).expect("fixture");
    event["detail"]["subject"] = Value::String("s".repeat(1_000_000));
    let error = arrive(&event.to_string()).expect_err("too big");
    assert_eq!(error.field, "(body)", "a 1 MB event is refused whole");
    assert!(error.reason.len() < 200);
}
