//! `GET /v1.0/users/{id}/calendarView/delta` over real HTTP: the window, paging with opaque
//! nextLink/deltaLink, `Prefer` headers, what a delta round reports after each kind of change,
//! and 410 for expired or unknown tokens.

mod common;

use common::{Env, start};
use graph_sim::seed::{AGENT1, AGENT2};
use reqwest::Method;
use serde_json::{Value, json};

fn ids(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect()
}

fn entry<'a>(entries: &'a [Value], id: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no entry {id} in {entries:#?}"))
}

fn removed(id: &str) -> Value {
    json!({"@odata.type": "#microsoft.graph.event", "id": id, "@removed": {"reason": "deleted"}})
}

/// Five 30-minute meetings on 16–20 March at 17:00Z, plus one outside the window.
async fn five_meetings(env: &Env) {
    for day in 16..21 {
        let start = format!("2026-03-{day}T17:00:00Z");
        let end = format!("2026-03-{day}T17:30:00Z");
        env.create_event(AGENT1, &format!("Meeting {day}"), &start, &end)
            .await;
    }
    env.create_event(
        AGENT1,
        "Next month",
        "2026-04-10T09:00:00Z",
        "2026-04-10T10:00:00Z",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_round_pages_with_next_links_then_issues_a_delta_link() {
    let env = start().await;
    five_meetings(&env).await;
    let reply = env
        .get(&format!("/v1.0/users/{AGENT1}/calendarView/delta"))
        .await;
    reply.graph_error(400, "ErrorInvalidParameter");

    let first = env
        .graph(
            Method::GET,
            &env.delta_path(AGENT1),
            &["odata.maxpagesize=2"],
            None,
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let next = first.body["@odata.nextLink"].as_str().expect("a nextLink");
    let expected = format!(
        "{}/v1.0/users/{AGENT1}/calendarView/delta?$skiptoken=",
        env.base
    );
    assert!(next.starts_with(&expected), "{next}");
    assert!(!next.contains("startDateTime") && first.body["@odata.deltaLink"].is_null());
    assert!(first.body["@odata.context"].is_string());

    let (entries, delta, pages) = env
        .delta_round(&env.delta_path(AGENT1), &["odata.maxpagesize=2"])
        .await;
    assert_eq!((entries.len(), pages), (5, 3));
    let expected = format!(
        "{}/v1.0/users/{AGENT1}/calendarView/delta?$deltatoken=",
        env.base
    );
    assert!(delta.starts_with(&expected), "{delta}");
    assert_eq!(
        entries[4]["end"],
        json!({"dateTime": "2026-03-20T17:30:00.0000000", "timeZone": "UTC"})
    );
    let (all, _, pages) = env.delta_round(&env.delta_path(AGENT1), &[]).await;
    assert_eq!((all.len(), pages), (5, 1), "default page size 10");

    // Nothing changed: the next round is empty, with a new deltaLink.
    let reply = env.get(&delta).await;
    assert_eq!(reply.body["value"], json!([]));
    assert!(
        reply.body["@odata.deltaLink"]
            .as_str()
            .is_some_and(|d| d != delta)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_headers_set_page_size_and_time_zone() {
    let env = start().await;
    five_meetings(&env).await;
    // Two Prefer headers, the second holding two preferences; the path uses the UPN.
    let prefer = [
        "odata.maxpagesize=2",
        "outlook.timezone=\"Pacific Standard Time\", odata.track-changes",
    ];
    let path = env.delta_path("agent1@contoso.example");
    let reply = env.graph(Method::GET, &path, &prefer, None).await;
    assert_eq!(
        reply.header("preference-applied"),
        Some("odata.maxpagesize=2, outlook.timezone=\"Pacific Standard Time\"")
    );
    let event = &reply.body["value"][0];
    assert_eq!(event["subject"], "Meeting 16");
    // 17:00Z on 2026-03-16 is 10:00 PDT.
    assert_eq!(
        event["start"],
        json!({"dateTime": "2026-03-16T10:00:00.0000000", "timeZone": "Pacific Standard Time"})
    );
    for (field, value) in [
        ("type", "singleInstance"),
        ("showAs", "busy"),
        ("sensitivity", "normal"),
    ] {
        assert_eq!(event[field], value, "{field}");
    }
    assert_eq!(event["responseStatus"]["response"], "organizer");
    assert_eq!(event["isCancelled"], false);
    assert!(event["seriesMasterId"].is_null());
    let change_key = event["changeKey"].as_str().expect("changeKey");
    assert_eq!(event["@odata.etag"], format!("W/\"{change_key}\""));
    assert!(
        event["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("AAMkAD"))
    );

    let berlin = env
        .graph(
            Method::GET,
            &path,
            &["outlook.timezone=\"Europe/Berlin\""],
            None,
        )
        .await;
    assert_eq!(
        berlin.body["value"][0]["start"]["dateTime"],
        "2026-03-16T18:00:00.0000000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_round_reports_creates_moves_cancels_and_deletes() {
    let env = start().await;
    let moved = env
        .create_event(
            AGENT1,
            "Moves out",
            "2026-03-17T09:00:00Z",
            "2026-03-17T10:00:00Z",
        )
        .await;
    let cancelled = env
        .create_event(
            AGENT1,
            "Cancelled",
            "2026-03-17T11:00:00Z",
            "2026-03-17T12:00:00Z",
        )
        .await;
    let deleted = env
        .create_event(
            AGENT1,
            "Deleted",
            "2026-03-17T13:00:00Z",
            "2026-03-17T14:00:00Z",
        )
        .await;
    let kept = env
        .create_event(
            AGENT1,
            "Kept",
            "2026-03-17T15:00:00Z",
            "2026-03-17T16:00:00Z",
        )
        .await;
    let (first, delta, _) = env.delta_round(&env.delta_path(AGENT1), &[]).await;
    assert_eq!(first.len(), 4);

    let events = format!("/sim/users/{AGENT1}/events");
    let added = env
        .create_event(
            AGENT1,
            "New",
            "2026-03-18T09:00:00Z",
            "2026-03-18T09:30:00Z",
        )
        .await;
    let away = json!({"start": "2026-04-02T09:00:00Z", "end": "2026-04-02T10:00:00Z"});
    let reply = env
        .control(Method::PATCH, &format!("{events}/{moved}"), Some(away))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = env
        .control(Method::POST, &format!("{events}/{cancelled}/cancel"), None)
        .await;
    assert_eq!(reply.body["isCancelled"], true);
    let reply = env
        .control(Method::DELETE, &format!("{events}/{deleted}"), None)
        .await;
    assert_eq!(reply.status, 204);

    let (changes, next, _) = env.delta_round(&delta, &[]).await;
    assert_eq!(changes.len(), 4, "{changes:#?}");
    assert_eq!(entry(&changes, &added)["subject"], "New");
    assert_eq!(entry(&changes, &moved), &removed(&moved));
    assert_eq!(entry(&changes, &cancelled)["isCancelled"], true);
    assert_eq!(entry(&changes, &deleted), &removed(&deleted));

    // A decline is a change too, and a deltaLink can be replayed.
    let reply = env
        .control(Method::POST, &format!("{events}/{kept}/decline"), None)
        .await;
    assert_eq!(reply.body["responseStatus"]["response"], "declined");
    let (changes, _, _) = env.delta_round(&next, &[]).await;
    assert_eq!(ids(&changes), vec![kept.as_str()]);
    assert_eq!(changes[0]["responseStatus"]["response"], "declined");
    assert_eq!(env.delta_round(&next, &[]).await.0, changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_occurrences_are_expanded_and_their_edits_reported() {
    let env = start().await;
    let body = json!({"subject": "Standup", "start": "2026-03-16T08:00:00+01:00",
                      "end": "2026-03-16T08:15:00+01:00", "count": 3, "interval_days": 1,
                      "showAs": "tentative"});
    let series = env
        .control(
            Method::POST,
            &format!("/sim/users/{AGENT1}/series"),
            Some(body),
        )
        .await;
    assert_eq!(series.status, 201, "{}", series.body);
    assert_eq!(series.body["master"]["type"], "seriesMaster");
    let master = series.body["master"]["id"]
        .as_str()
        .expect("master id")
        .to_owned();
    let occurrences: Vec<String> = series.body["occurrences"]
        .as_array()
        .expect("occurrences")
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_owned())
        .collect();
    let second = &series.body["occurrences"][1];
    assert_eq!(second["seriesMasterId"], master.as_str());
    assert_eq!(second["start"]["dateTime"], "2026-03-17T07:00:00.0000000");

    let (first, delta, _) = env.delta_round(&env.delta_path(AGENT1), &[]).await;
    assert_eq!(
        ids(&first),
        occurrences.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(
        first
            .iter()
            .all(|e| e["type"] == "occurrence" && e["showAs"] == "tentative")
    );

    let events = format!("/sim/users/{AGENT1}/events");
    let shifted =
        json!({"start": "2026-03-17T09:00:00Z", "end": "2026-03-17T09:15:00Z", "showAs": "busy"});
    let edited = env
        .control(
            Method::PATCH,
            &format!("{events}/{}", occurrences[1]),
            Some(shifted),
        )
        .await;
    assert_eq!(edited.body["type"], "exception", "{}", edited.body);
    let reply = env
        .control(
            Method::POST,
            &format!("{events}/{}/cancel", occurrences[2]),
            None,
        )
        .await;
    assert_eq!(reply.status, 200);

    let (changes, delta, _) = env.delta_round(&delta, &[]).await;
    assert_eq!(changes.len(), 2, "{changes:#?}");
    let exception = entry(&changes, &occurrences[1]);
    assert_eq!(
        (exception["type"].as_str(), exception["showAs"].as_str()),
        (Some("exception"), Some("busy"))
    );
    assert_eq!(
        exception["start"]["dateTime"],
        "2026-03-17T09:00:00.0000000"
    );
    assert_eq!(entry(&changes, &occurrences[2]), &removed(&occurrences[2]));

    // Deleting the series removes what is left of it; the master never shows.
    env.control(Method::DELETE, &format!("{events}/{master}"), None)
        .await;
    let (changes, _, _) = env.delta_round(&delta, &[]).await;
    assert_eq!(
        changes,
        vec![removed(&occurrences[0]), removed(&occurrences[1])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_or_unknown_sync_tokens_answer_410() {
    let env = start().await;
    for hour in 10..14 {
        let (start, end) = (
            format!("2026-03-18T{hour}:00:00Z"),
            format!("2026-03-18T{hour}:30:00Z"),
        );
        env.create_event(AGENT2, "x", &start, &end).await;
    }
    let first = env
        .graph(
            Method::GET,
            &env.delta_path(AGENT2),
            &["odata.maxpagesize=2"],
            None,
        )
        .await;
    let skip = first.body["@odata.nextLink"]
        .as_str()
        .expect("nextLink")
        .to_owned();
    let (_, delta, _) = env.delta_round(&env.delta_path(AGENT2), &[]).await;

    let reply = env
        .control(
            Method::POST,
            &format!("/sim/users/{AGENT2}/delta/expire"),
            None,
        )
        .await;
    assert_eq!(reply.body["expired"], 2, "one skip token, one delta token");
    for link in [&delta, &skip] {
        let message = env.get(link).await.graph_error(410, "SyncStateNotFound");
        assert_eq!(
            message,
            "The sync state generation is not found. Start a new sync."
        );
    }
    let bogus = format!("/v1.0/users/{AGENT2}/calendarView/delta?$deltatoken=bogus");
    env.get(&bogus).await.graph_error(410, "SyncStateNotFound");
    // Another user's token is no good either.
    let (_, agent1_delta, _) = env.delta_round(&env.delta_path(AGENT1), &[]).await;
    let token = agent1_delta.split("$deltatoken=").nth(1).expect("a token");
    let stolen = format!("/v1.0/users/{AGENT2}/calendarView/delta?$deltatoken={token}");
    env.get(&stolen).await.graph_error(410, "SyncStateNotFound");
    // A new first round works again.
    assert_eq!(
        env.delta_round(&env.delta_path(AGENT2), &[]).await.0.len(),
        4
    );
}
