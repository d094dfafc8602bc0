use chrono::DateTime;

use super::*;

fn definitions() -> Vec<PresenceDefinition> {
    serde_json::from_value(serde_json::json!([
        {"id": "bbdff279-7ae1-48ea-bade-7831d7234c64", "type": "System", "systemPresence": "Meeting", "languageLabels": {"en_US": "Meeting"}},
        {"id": "31fe3bac-dea6-44b7-bed7-47f91660a1a0", "type": "System", "systemPresence": "Busy", "languageLabels": {"en_US": "Busy"}},
        {"id": "0b5a4c1e-6f2d-4c3b-9a8e-5d7f1e2c3b4a", "type": "User", "systemPresence": "Busy", "languageLabels": {"en_US": "Focus Time"}},
        {"id": "old", "type": "User", "systemPresence": "Busy", "languageLabels": {"en_US": "Old Focus"}, "deactivated": true}
    ]))
    .expect("valid definitions")
}

#[test]
fn default_policy_parses_and_resolves() {
    let policy = Policy::from_toml(DEFAULT_POLICY).expect("default policy is valid");
    assert_eq!(
        policy.meeting.presence,
        PresenceName::System(SystemPresence::Meeting)
    );
    assert!(
        policy
            .meeting
            .allowed_activities
            .contains(&ActivityCategory::Meeting)
    );
    assert!(
        !policy
            .meeting
            .allowed_activities
            .contains(&ActivityCategory::OnQueueWork)
    );
    let targets = policy.resolve(&definitions()).expect("resolves");
    assert_eq!(
        targets
            .get(&policy.meeting.presence)
            .expect("meeting")
            .definition_id
            .as_str(),
        "bbdff279-7ae1-48ea-bade-7831d7234c64"
    );
    assert_eq!(
        targets
            .get(&policy.focus.presence)
            .expect("focus")
            .definition_id
            .as_str(),
        "0b5a4c1e-6f2d-4c3b-9a8e-5d7f1e2c3b4a"
    );
}

#[test]
fn errors_name_the_key() {
    let cases = [
        (
            DEFAULT_POLICY.replace("when_no_shift = \"allow\"", "when_no_shift = \"maybe\""),
            "shift.when_no_shift",
        ),
        (
            DEFAULT_POLICY.replace("\"Training\"]", "\"Lunch\"]"),
            "allowed_activities",
        ),
        (
            DEFAULT_POLICY.replace("In a meeting", "In {topic}"),
            "meeting.message",
        ),
        (
            DEFAULT_POLICY.replace("In a meeting", "In {subject}"),
            "show_subject",
        ),
        (
            DEFAULT_POLICY.replace(
                "never_override = [\"Offline\"]",
                "never_override = [\"Asleep\"]",
            ),
            "agents.never_override[0]",
        ),
        (
            DEFAULT_POLICY.replace("[calendar]", "[calendar]\nskip_everything = true"),
            "skip_everything",
        ),
        (
            DEFAULT_POLICY.replace(
                "interaction_recheck_seconds = 60",
                "interaction_recheck_seconds = \"soon\"",
            ),
            "interaction_recheck_seconds",
        ),
    ];
    for (text, key) in cases {
        let error = Policy::from_toml(&text).expect_err(key).to_string();
        assert!(error.contains(key), "{key}: {error}");
    }
}

#[test]
fn unresolvable_presence_names_the_key() {
    let text = DEFAULT_POLICY.replace("presence = \"Focus Time\"", "presence = \"Old Focus\"");
    let policy = Policy::from_toml(&text).expect("parses");
    let error = policy
        .resolve(&definitions())
        .expect_err("deactivated label")
        .to_string();
    assert!(error.contains("focus.presence"), "{error}");
}

#[test]
fn a_time_format_that_cannot_show_a_time_is_refused_naming_the_key() {
    for (format, says) in [
        ("%Q", "not a valid strftime format"),
        ("", "must not be empty"),
        ("{end}", "must not contain"),
        (
            "%H:%M %Z and a great deal of other text here",
            "longer than",
        ),
    ] {
        let text = DEFAULT_POLICY.replace(
            r#"time_format = "%H:%M %Z""#,
            &format!("time_format = {format:?}"),
        );
        assert_ne!(text, DEFAULT_POLICY);
        let error = Policy::from_toml(&text).expect_err(format).to_string();
        assert!(error.contains("messages.time_format"), "{error}");
        assert!(error.contains(says), "{format:?}: {error}");
    }
}

#[test]
fn the_same_text_has_the_same_version_and_a_changed_one_another() {
    let one = Policy::from_toml(DEFAULT_POLICY).expect("valid");
    let again = Policy::from_toml(DEFAULT_POLICY).expect("valid");
    let changed = Policy::from_toml(&DEFAULT_POLICY.replace("min_minutes = 0", "min_minutes = 5"))
        .expect("valid");
    assert_eq!(one.version, again.version);
    assert_ne!(one.version, changed.version);
    assert_eq!(one.version.len(), "sha256:".len() + 16);
}

#[test]
fn a_minimum_length_over_a_day_is_refused() {
    let text = DEFAULT_POLICY.replace("min_minutes = 0", "min_minutes = 1441");
    assert_ne!(text, DEFAULT_POLICY);
    let error = Policy::from_toml(&text).expect_err("refused").to_string();
    assert!(error.contains("calendar.min_minutes"), "{error}");
}

#[test]
fn subjects_are_shown_only_by_a_message_that_uses_them() {
    let default = Policy::from_toml(DEFAULT_POLICY).expect("valid");
    assert!(!default.shows_subjects());
    let allowed_only = DEFAULT_POLICY.replacen("show_subject = false", "show_subject = true", 1);
    assert!(
        !Policy::from_toml(&allowed_only)
            .expect("valid")
            .shows_subjects()
    );
    let shown = allowed_only.replacen(
        r#"message = "In a meeting until {end}""#,
        r#"message = "{subject} until {end}""#,
        1,
    );
    assert_ne!(shown, allowed_only);
    assert!(Policy::from_toml(&shown).expect("valid").shows_subjects());
}

#[test]
fn message_renders_placeholders_and_keeps_subject_private_by_default() {
    let policy = Policy::from_toml(DEFAULT_POLICY).expect("valid");
    let start = DateTime::parse_from_rfc3339("2026-03-19T14:00:00Z")
        .expect("time")
        .to_utc();
    let end = DateTime::parse_from_rfc3339("2026-03-19T14:30:00Z")
        .expect("time")
        .to_utc();
    let utc = chrono_tz::Tz::UTC;
    let format = &policy.time_format;
    let text = policy
        .meeting
        .message
        .render(Some("Layoffs"), (start, end), utc, format);
    assert_eq!(text, "In a meeting until 14:30 UTC");
    let with_subject =
        MessageTemplate::parse("k", "{subject} ({start}-{end})", true).expect("allowed");
    assert_eq!(
        with_subject.render(Some("Standup"), (start, end), utc, format),
        "Standup (14:00 UTC-14:30 UTC)"
    );
}

// ---------------------------------------------------------------- rules and profiles

use crate::decide::{SkipReason, choose};
use crate::events::{CalendarEntry, Response, ShowAs, UserRef};
use crate::model::UserId;
use crate::state::{TriggerId, TriggerKind};

const FLOOR: &str = r#"
[meeting]
presence = "Meeting"
message = "In a meeting until {end}"
allowed_activities = ["Meeting", "OffQueueWork"]

[focus]
presence = "Focus Time"
allowed_activities = ["OffQueueWork"]

[calendar]
min_minutes = 10

[[rules]]
name = "ignore-personal"
categories = ["Personal"]
skip = "personal entries are not meetings"

[[rules]]
name = "training"
subject_contains = "training"
presence = "Training"
message = "In training until {end}"
allowed_activities = ["Training", "OffQueueWork"]

[[rules]]
name = "one-to-one"
subject_matches = '^1:1\b'
min_others = 1
presence = "Busy"

[[rules]]
name = "away"
kinds = ["out_of_office"]
min_minutes = 60
presence = "Away"

[[rules]]
name = "alone"
kinds = ["meeting"]
subject_starts_with = "hold"
skip = "a hold with nobody else"

[[profiles]]
name = "team-leads"
groups = ["g-leads"]
users = ["Lead@Example.com"]

[profiles.meeting]
presence = "Busy"

[profiles.guard]
max_off_queue = 1
exempt_organizers = ["Director@Example.com"]

[[profiles]]
name = "tier-1"
management_units = ["mu-tier1"]
groups = ["g-tier1"]

[profiles.guard]
max_percent_on_queue = 20

[[profiles.rules]]
name = "all-hands"
subject_is = "All hands"
presence = "Meeting"
"#;

fn floor() -> Policy {
    Policy::from_toml(FLOOR).expect("the floor policy is valid")
}

fn entry(subject: Option<&str>, minutes: i64) -> CalendarEntry {
    let start = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
        .expect("time")
        .to_utc();
    CalendarEntry {
        user: UserRef {
            user_id: None,
            email: None,
        },
        trigger_id: TriggerId::parse("e1").expect("id"),
        kind: TriggerKind::Meeting,
        start,
        end: start + chrono::Duration::minutes(minutes),
        show_as: ShowAs::Busy,
        all_day: false,
        cancelled: false,
        response: Response::Accepted,
        subject: subject.map(str::to_owned),
        zone: None,
        categories: Vec::new(),
        others: Some(3),
        organizer: None,
    }
}

fn ada() -> UserId {
    UserId::parse("3ce84f47-4e65-4756-a815-67a2b32e58b8").expect("id")
}

/// The rule that decides `entry` under `policy`, or the skip.
fn decided_by(policy: &Policy, entry: &CalendarEntry) -> Result<Option<String>, SkipReason> {
    choose(entry, policy, &ada(), None).map(|rule| rule.map(|r| r.name.clone()))
}

#[test]
fn each_kind_of_rule_matches_what_it_names_and_nothing_else() {
    let policy = floor();
    let rule = |name: &str| Ok(Some(name.to_owned()));
    // Subject, any case; a subject kept private matches no subject rule.
    assert_eq!(
        decided_by(&policy, &entry(Some("Q3 TRAINING day"), 60)),
        rule("training")
    );
    assert_eq!(decided_by(&policy, &entry(None, 60)), Ok(None));
    // A regex, with the number of other guests.
    assert_eq!(
        decided_by(&policy, &entry(Some("1:1 Ada / Bo"), 30)),
        rule("one-to-one")
    );
    let mut alone = entry(Some("1:1 Ada / Bo"), 30);
    alone.others = Some(0);
    assert_eq!(decided_by(&policy, &alone), Ok(None));
    alone.others = None;
    assert_eq!(
        decided_by(&policy, &alone),
        Ok(None),
        "an unknown count does not match"
    );
    // Categories, any case; the first matching rule wins over a later one.
    let mut personal = entry(Some("Training (personal)"), 60);
    personal.categories = vec!["personal".to_owned()];
    assert_eq!(
        decided_by(&policy, &personal),
        Err(SkipReason::Rule {
            rule: "ignore-personal".to_owned(),
            reason: "personal entries are not meetings".to_owned()
        })
    );
    // Kind and length: out of office for an hour or more sets Away, though [calendar] skips
    // out-of-office entries; a shorter one falls through to that skip.
    let mut away = entry(None, 120);
    away.show_as = ShowAs::OutOfOffice;
    assert_eq!(decided_by(&policy, &away), rule("away"));
    away.end = away.start + chrono::Duration::minutes(30);
    assert_eq!(decided_by(&policy, &away), Err(SkipReason::OutOfOffice));
    // Prefix, limited to meetings.
    assert_eq!(
        decided_by(&policy, &entry(Some("Hold: interviews"), 60)),
        Err(SkipReason::Rule {
            rule: "alone".to_owned(),
            reason: "a hold with nobody else".to_owned()
        })
    );
    let mut focus = entry(Some("Hold: interviews"), 60);
    focus.kind = TriggerKind::Focus;
    assert_eq!(decided_by(&policy, &focus), Ok(None));
    // No rule: the [calendar] skips still hold.
    assert_eq!(
        decided_by(&policy, &entry(Some("Coffee"), 5)),
        Err(SkipReason::TooShort {
            minutes: 5,
            min: 10
        })
    );
    // Never a meeting, whatever the rules: cancelled, declined, free.
    let mut cancelled = entry(Some("training"), 60);
    cancelled.cancelled = true;
    assert_eq!(decided_by(&policy, &cancelled), Err(SkipReason::Cancelled));
}

#[test]
fn a_rule_sets_its_presence_and_takes_the_rest_from_the_kind() {
    let policy = floor();
    let training = policy.rule("training").expect("rule");
    let set = policy.trigger_for(TriggerKind::Meeting, Some(training));
    assert_eq!(set.presence, PresenceName::System(SystemPresence::Training));
    assert!(set.allowed_activities.contains(&ActivityCategory::Training));
    let busy = policy.trigger_for(TriggerKind::Meeting, policy.rule("one-to-one"));
    assert_eq!(busy.presence, PresenceName::System(SystemPresence::Busy));
    assert_eq!(busy.message, policy.meeting.message, "the kind's message");
    assert_eq!(busy.allowed_activities, policy.meeting.allowed_activities);
}

#[test]
fn an_agent_gets_the_first_profile_that_selects_them_else_the_default() {
    let policy = floor();
    let user = ada();
    let none = std::collections::HashSet::new();
    let leads: std::collections::HashSet<String> = ["g-leads".to_owned()].into();
    let agent = |email, groups, unit| Agent {
        user: &user,
        email,
        groups,
        management_unit: unit,
    };
    let name = |a: Agent<'_>| policy.profile_for(&a).profile.clone();
    assert_eq!(name(agent(None, &none, None)), "default");
    assert_eq!(name(agent(None, &leads, None)), "team-leads");
    assert_eq!(
        name(agent(Some("LEAD@example.com"), &none, None)),
        "team-leads"
    );
    assert_eq!(name(agent(None, &none, Some("mu-tier1"))), "tier-1");
    assert_eq!(
        name(agent(None, &leads, Some("mu-tier1"))),
        "team-leads",
        "the first that matches"
    );
    assert_eq!(name(agent(None, &none, Some("mu-other"))), "default");
    // A profile changes only the keys it names; the rest is the policy's.
    let leads = policy.profile("team-leads").expect("profile");
    assert_eq!(
        leads.meeting.presence,
        PresenceName::System(SystemPresence::Busy)
    );
    assert_eq!(leads.meeting.message, policy.meeting.message);
    assert_eq!(leads.min_minutes, 10);
    assert_eq!(
        leads.rules, policy.rules,
        "rules are inherited unless replaced"
    );
    let tier1 = policy.profile("tier-1").expect("profile");
    assert_eq!(tier1.rules.len(), 1, "replaced whole");
    assert_eq!(
        tier1.guard.as_ref().map(|g| g.cap),
        Some(Cap::PercentOnQueue(20))
    );
    assert_eq!(policy.guard, None);
    assert_eq!(
        policy.groups_named().into_iter().collect::<Vec<_>>(),
        ["g-leads", "g-tier1"]
    );
    assert!(policy.selects_by_management_unit());
    // Every presence of every profile and rule resolves, or the first that does not is named.
    let mut definitions = definitions();
    let error = policy
        .resolve(&definitions)
        .expect_err("no Training, Away")
        .to_string();
    assert!(error.contains("rules[1].presence"), "{error}");
    definitions.extend(
        serde_json::from_value::<Vec<PresenceDefinition>>(serde_json::json!([
            {"id": "d2390a99-8546-4ad9-8f0a-219548e8aeb0", "type": "System", "systemPresence": "Training", "languageLabels": {"en_US": "Training"}},
            {"id": "5e5c5c66-ea97-4e7f-ac41-6424784829f2", "type": "System", "systemPresence": "Away", "languageLabels": {"en_US": "Away"}}
        ]))
        .expect("definitions"),
    );
    let targets = policy.resolve(&definitions).expect("all resolve");
    assert_eq!(
        targets.iter().count(),
        5,
        "Meeting, Focus Time, Training, Busy, Away"
    );
}

#[test]
fn a_bad_rule_or_profile_is_refused_naming_its_key() {
    let cases = [
        (
            FLOOR.replace(
                r#"subject_contains = "training""#,
                "subject_contains = \"training\"\nsubject_is = \"x\"",
            ),
            "rules[1].subject_contains",
        ),
        (
            FLOOR.replace(
                r#"subject_matches = '^1:1\b'"#,
                "subject_matches = '(unclosed'",
            ),
            "rules[2].subject_matches",
        ),
        (
            FLOOR.replace(
                r#"subject_matches = '^1:1\b'"#,
                "subject_matches = 'a{1000}{1000}'",
            ),
            "rules[2].subject_matches",
        ),
        (
            FLOOR.replace(r#"skip = "a hold with nobody else""#, ""),
            "rules[4]",
        ),
        (
            FLOOR.replace(r#"name = "away""#, r#"name = "training""#),
            "rules[3].name",
        ),
        (
            FLOOR.replace(r#"kinds = ["out_of_office"]"#, r#"kinds = ["holiday"]"#),
            "rules[3].kinds[0]",
        ),
        (
            FLOOR.replace(
                "max_off_queue = 1",
                "max_off_queue = 1\nmax_percent_on_queue = 5",
            ),
            "profiles.team-leads.guard",
        ),
        (
            FLOOR.replace("max_percent_on_queue = 20", "max_percent_on_queue = 120"),
            "profiles.tier-1.guard.max_percent_on_queue",
        ),
        (
            FLOOR.replace(
                "management_units = [\"mu-tier1\"]\ngroups = [\"g-tier1\"]",
                "",
            ),
            "profiles.tier-1",
        ),
        (
            FLOOR.replace("groups = [\"g-tier1\"]", ""),
            "profiles.tier-1.guard.max_percent_on_queue",
        ),
        (
            FLOOR.replace(r#"name = "tier-1""#, r#"name = "team-leads""#),
            "profiles[1].name",
        ),
        (
            FLOOR.replace(
                "[profiles.meeting]\npresence",
                "[profiles.meeting]\npresnce",
            ),
            "profiles.team-leads",
        ),
        (
            FLOOR.replace(r#"subject_is = "All hands""#, r#"subject_is = """#),
            "profiles.tier-1.rules[0].subject_is",
        ),
    ];
    for (text, key) in cases {
        assert_ne!(text, FLOOR, "{key}: the case changes the policy");
        let error = Policy::from_toml(&text).expect_err(key).to_string();
        assert!(error.contains(key), "{key}: {error}");
    }
}

#[test]
fn subjects_leave_the_connector_when_a_rule_reads_them() {
    assert!(floor().needs_subjects());
    assert!(!floor().shows_subjects());
    assert!(
        !Policy::from_toml(DEFAULT_POLICY)
            .expect("valid")
            .needs_subjects()
    );
}

#[test]
fn planning_skips_an_entry_only_when_every_profile_does() {
    let policy = floor();
    // Too short for every profile: not planned.
    assert!(crate::decide::entry_skip(&entry(Some("Coffee"), 5), &policy, &ada(), None).is_some());
    // "All hands" is skipped by nobody; a hold is skipped by the default's rule, but tier-1
    // replaced the rules, so it is planned (tier-1 agents may take it).
    assert!(
        crate::decide::entry_skip(&entry(Some("Hold: x"), 60), &policy, &ada(), None).is_none()
    );
}

/// Every complete policy docs/policy.md shows (a `toml` block with `[meeting]`) loads as shown.
#[test]
fn the_documented_policies_load() {
    let doc = include_str!("../../../docs/policy.md");
    let blocks: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .filter(|block| block.contains("[meeting]"))
        .collect();
    assert!(
        blocks.len() >= 2,
        "the built-in policy and the worked floor"
    );
    let loaded: Vec<Policy> = blocks
        .iter()
        .map(|block| Policy::from_toml(block).unwrap_or_else(|e| panic!("{e}\n{block}")))
        .collect();
    assert!(
        loaded.iter().any(|p| p.profiles.len() == 2),
        "the worked floor's two teams"
    );
}
