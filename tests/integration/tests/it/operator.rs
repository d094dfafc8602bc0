//! The `autopilot` command line against the local AWS stand-in and the Genesys simulator:
//! decisions made by the real transition service, then told, verified, released and listed by
//! the commands as an on-call engineer runs them (the same argument parsing as the binary).

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use clap::Parser;
use genesys_sim::seed::DEMO_AGENTS;
use presence_autopilot::aws::connections::DynamoConnections;
use presence_autopilot::calendar::Connection;
use presence_autopilot::cli::{self, Cli, CliError, Operations, Verdict};
use presence_autopilot::model::{SystemPresence, UserId};
use presence_autopilot::ports::ConnectionStore;
use presence_autopilot::state::DecisionKind;
use serde_json::{Value, json};

use crate::support::dispatch::{SECRET, sdk_config};
use crate::support::moto;
use crate::support::transition::Harness;

const STARTED: &str = "Calendar Event Started";
const ENDED: &str = "Calendar Event Ended";

fn ada() -> &'static str {
    DEMO_AGENTS[0].0
}

/// A harness plus what the command line needs: the Genesys secret in Secrets Manager, naming
/// the simulator, as the stack stores it.
struct Desk {
    h: Harness,
    secret: String,
}

impl Desk {
    async fn start() -> Self {
        let h = Harness::start().await;
        let secret = moto::unique_name("genesys");
        moto::secrets_manager()
            .create_secret()
            .name(&secret)
            .secret_string(
                json!({
                    "clientId": genesys_sim::seed::DEMO_CLIENT_ID,
                    "clientSecret": genesys_sim::seed::DEMO_CLIENT_SECRET,
                    "region": "mypurecloud.com",
                    "apiBaseUrl": h.sim.server.base_url(),
                })
                .to_string(),
            )
            .send()
            .await
            .expect("create the Genesys secret");
        Self { h, secret }
    }

    /// The connector's store in the harness's table.
    fn connections(&self) -> DynamoConnections {
        DynamoConnections::new(
            aws_sdk_dynamodb::Client::new(&sdk_config()),
            self.h.store.table(),
        )
    }

    /// Ada with a connected calendar; the store to mirror her meetings in.
    async fn connect_ada(&self) -> DynamoConnections {
        let connections = self.connections();
        connections
            .put(&Connection::new(
                UserId::parse(ada()).expect("id"),
                "ada@example.com",
                "ada-mailbox",
            ))
            .await
            .expect("connected");
        connections
    }

    /// `text` in force as a new stack's policy parameter; the parameter's name.
    async fn policy_in_force(&self, text: &str) -> String {
        use presence_autopilot::aws::ssm::SsmPolicy;
        use presence_autopilot::ports::PolicySource as _;
        let parameter = format!("/{}/policy", moto::unique_name("stack"));
        SsmPolicy::new(aws_sdk_ssm::Client::new(&sdk_config()), &parameter)
            .store(text)
            .await
            .expect("in force");
        parameter
    }

    /// Runs `autopilot ARGS…` on the harness's clock; the answer as text.
    async fn run(&self, args: &[&str]) -> (Result<Verdict, CliError>, String) {
        let table = self.h.store.table().to_owned();
        let mut argv = vec![
            "autopilot",
            "--table",
            &table,
            "--genesys-secret-id",
            &self.secret,
        ];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("arguments parse");
        let clock = Arc::new(self.h.clock.clone());
        let ops = Operations::with_clock(sdk_config(), cli.stack.clone(), clock).expect("ops");
        let mut out = Vec::new();
        let verdict = cli::run(cli, &ops, &mut out).await;
        (verdict, String::from_utf8(out).expect("utf-8"))
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let (verdict, text) = self.run(&args).await;
        assert_eq!(verdict.expect("runs"), Verdict::Fine, "{text}");
        serde_json::from_str(&text).expect("one JSON document")
    }

    async fn meeting(&self, event: &str, detail_type: &str) -> String {
        let body = self
            .h
            .calendar(detail_type, event, "ada@example.com", "m-1", -1, 30);
        let outcome = self
            .h
            .service
            .handle_json(&body, self.h.deadline())
            .await
            .expect("handled");
        outcome.decision.as_str().to_owned()
    }
}

#[tokio::test]
async fn why_tells_the_meeting_we_set_and_the_presence_we_restored_in_plain_words() {
    let desk = Desk::start().await;
    assert_eq!(desk.meeting("e-1", STARTED).await, "applied");
    desk.h.clock.advance(std::time::Duration::from_secs(600));
    assert_eq!(desk.meeting("e-2", ENDED).await, "restored");

    let (verdict, text) = desk.run(&["why", "ada@example.com"]).await;

    assert_eq!(verdict.expect("runs"), Verdict::Fine);
    assert!(text.contains("a meeting ("), "{text}");
    assert!(
        text.contains("we set Meeting \"In a meeting until") && text.contains("(it was Available)"),
        "names resolved through Genesys: {text}"
    );
    assert!(
        text.contains("saw shift Activity(Meeting), routing OFF_QUEUE"),
        "{text}"
    );
    assert!(
        text.contains("we restored Available (the trigger ended"),
        "{text}"
    );
    assert!(text.contains("nothing pending"), "{text}");
    assert!(text.contains("calendar: not connected"), "{text}");

    let told = desk.json(&["why", ada(), "--hours", "1"]).await;
    let kinds: Vec<&str> = told["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|d| d["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["applied", "restored"]);
    assert_eq!(told["inForce"], 2, "the restore is in force now");
    assert_eq!(told["decisions"][0]["routingStatus"], "OFF_QUEUE");
}

#[tokio::test]
async fn audit_verify_names_the_record_the_test_tampered_with() {
    let desk = Desk::start().await;
    desk.meeting("e-1", STARTED).await;
    desk.meeting("e-2", ENDED).await;
    let listed = desk.json(&["audit", ada()]).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    let (verdict, text) = desk.run(&["audit", "verify", ada()]).await;
    assert_eq!(verdict.expect("runs"), Verdict::Fine, "{text}");
    assert!(text.contains("2 records, chain intact"), "{text}");

    moto::dynamodb()
        .update_item()
        .table_name(desk.h.store.table())
        .key("pk", AttributeValue::S(format!("USER#{}", ada())))
        .key("sk", AttributeValue::S("AUDIT#000000000001".to_owned()))
        .update_expression("SET reason = :forged")
        .expression_attribute_values(":forged", AttributeValue::S("forged".to_owned()))
        .send()
        .await
        .expect("edit the first record behind our back");

    let (verdict, text) = desk.run(&["audit", "verify", "--all"]).await;
    assert_eq!(verdict.expect("runs"), Verdict::Found, "exit 1: {text}");
    assert!(
        text.contains(&format!("BROKEN  {}: first bad record 1", ada())),
        "{text}"
    );
    assert!(text.contains("1 broken"), "{text}");
}

#[tokio::test]
async fn release_restores_our_presence_once_and_is_audited_with_the_operator() {
    let desk = Desk::start().await;
    assert_eq!(desk.meeting("e-1", STARTED).await, "applied");
    let state = desk.json(&["state", ada()]).await;
    assert!(state["state"]["applied"].is_object(), "{state}");

    let (verdict, text) = desk
        .run(&["release", ada(), "--operator", "oncall@example.com"])
        .await;

    assert_eq!(verdict.expect("runs"), Verdict::Fine);
    assert!(text.contains("audited as oncall@example.com"), "{text}");
    let now = desk.h.presence_of(ada()).await;
    assert_eq!(now.system_presence, SystemPresence::Available);
    let records = desk.h.audit(ada()).await;
    let last = records.last().expect("a record");
    assert_eq!(last.kind, DecisionKind::Restored);
    assert_eq!(
        last.reason.as_deref(),
        Some("released by oncall@example.com")
    );
    assert_eq!(last.details["operator"], "oncall@example.com");
    assert_eq!(last.details["trigger"], "released");
    // The meeting's real end, later, changes nothing.
    assert_eq!(desk.meeting("e-2", ENDED).await, "skipped");
    assert_eq!(desk.h.patches(ada()), 2, "one set, one restore");
}

#[tokio::test]
async fn release_in_a_race_with_the_meetings_end_restores_exactly_once() {
    let desk = Desk::start().await;
    assert_eq!(desk.meeting("e-1", STARTED).await, "applied");

    let release = ["release", ada(), "--operator", "oncall"];
    let (released, ended) = tokio::join!(desk.run(&release), desk.meeting("e-2", ENDED));

    assert_eq!(
        released.0.expect("release runs"),
        Verdict::Fine,
        "{}",
        released.1
    );
    let restores = desk
        .h
        .audit_kinds(ada())
        .await
        .into_iter()
        .filter(|k| *k == DecisionKind::Restored)
        .count();
    assert_eq!(restores, 1, "release: {}; end: {ended}", released.1);
    assert_eq!(desk.h.patches(ada()), 2, "one set, one restore");
    let now = desk.h.presence_of(ada()).await;
    assert_eq!(now.system_presence, SystemPresence::Available);
}

#[tokio::test]
async fn release_never_clobbers_a_presence_the_agent_chose() {
    let desk = Desk::start().await;
    desk.meeting("e-1", STARTED).await;
    desk.h.sim.set_presence_as(ada(), "Busy", ada()).await;

    let (verdict, text) = desk.run(&["release", ada(), "--operator", "oncall"]).await;

    assert_eq!(verdict.expect("runs"), Verdict::Fine);
    assert!(text.contains("nothing was written"), "{text}");
    let now = desk.h.presence_of(ada()).await;
    assert_eq!(now.system_presence, SystemPresence::Busy);
}

#[tokio::test]
async fn subscriptions_are_listed_and_a_resync_is_queued() {
    let desk = Desk::start().await;
    let connections = DynamoConnections::new(moto::dynamodb(), desk.h.store.table());
    let user = UserId::parse(ada()).expect("id");
    let mut connection = Connection::new(user.clone(), "ada@example.com", "graph-ada");
    connection.last_error = Some("Graph answered 403: consent withdrawn".to_owned());
    connections.put(&connection).await.expect("connect");
    let sqs = moto::sqs();
    let sync_queue = sqs
        .create_queue()
        .queue_name(moto::unique_name("sync"))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");

    let (verdict, text) = desk.run(&["subscriptions", "list"]).await;
    assert_eq!(
        verdict.expect("runs"),
        Verdict::Found,
        "a failing agent: {text}"
    );
    assert!(text.contains("consent withdrawn"), "{text}");

    let queued = desk
        .json(&[
            "--sync-queue-url",
            &sync_queue,
            "subscriptions",
            "resync",
            "ada@example.com",
        ])
        .await;
    assert_eq!(queued["userId"], ada());
    let message = sqs
        .receive_message()
        .queue_url(&sync_queue)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    let body: Value = serde_json::from_str(message[0].body().expect("body")).expect("json");
    assert_eq!(
        (body["userId"].as_str(), body["reason"].as_str()),
        (Some(ada()), Some("resync"))
    );

    let (verdict, _) = desk
        .run(&[
            "--sync-queue-url",
            &sync_queue,
            "subscriptions",
            "resync",
            DEMO_AGENTS[1].0,
        ])
        .await;
    let error = verdict.expect_err("not connected");
    assert_eq!(error.exit_code(), 2, "{error}");
    assert!(error.to_string().contains("is not connected"), "{error}");
}

#[tokio::test]
async fn day_writes_a_page_with_the_days_decisions_and_schedule() {
    let desk = Desk::start().await;
    desk.meeting("e-1", STARTED).await;
    desk.meeting("e-2", ENDED).await;
    let path = std::env::temp_dir().join(format!("{}.html", moto::unique_name("day")));
    let path_text = path.to_string_lossy().into_owned();

    let answer = desk.json(&["day", ada(), "--out", &path_text]).await;

    assert_eq!(answer["decisions"], 2, "{answer}");
    let page = std::fs::read_to_string(&path).expect("the page");
    assert!(page.contains("<svg"), "a picture");
    assert!(
        page.contains("Meeting") && page.contains("Available"),
        "names"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "self-contained"
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn an_unknown_email_and_a_bad_time_are_refused_with_exit_code_2() {
    let desk = Desk::start().await;
    let (verdict, _) = desk.run(&["why", "nobody@example.com"]).await;
    let error = verdict.expect_err("unknown");
    assert_eq!(error.exit_code(), 2);
    assert!(error.to_string().contains("nobody@example.com"), "{error}");

    let (verdict, _) = desk.run(&["why", ada(), "--at", "ten past"]).await;
    let error = verdict.expect_err("bad time");
    assert_eq!(error.exit_code(), 2);
    assert!(error.to_string().contains("ten past"), "{error}");
}

#[tokio::test]
async fn subscribers_test_sends_one_signed_delivery_and_reports_a_refusal() {
    use peers::webhook::{Reply, WebhookReceiver};

    let desk = Desk::start().await;
    let receiver = WebhookReceiver::start(&[SECRET]).await.expect("receiver");
    let document = moto::unique_name("subscribers");
    moto::secrets_manager()
        .create_secret()
        .name(&document)
        .secret_string(
            json!({"webhooks": [{"id": "ops", "url": receiver.url(), "secrets": [SECRET]}]})
                .to_string(),
        )
        .send()
        .await
        .expect("subscribers document");
    let test = |name: &'static str| {
        [
            "subscribers",
            "test",
            name,
            "--subscribers-secret-id",
            document.as_str(),
            "--allow-loopback-http",
        ]
    };

    let (verdict, text) = desk.run(&test("ops")).await;

    assert_eq!(verdict.expect("runs"), Verdict::Fine, "{text}");
    assert!(text.starts_with("ops: accepted: HTTP 200"), "{text}");
    let delivered = receiver.deliveries();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].rejected, None,
        "the receiver verified the signature"
    );
    assert_eq!(delivered[0].json()["kind"], "test");

    receiver.answer_always(Reply::Status(500));
    let (verdict, text) = desk.run(&test("ops")).await;
    assert_eq!(verdict.expect("runs"), Verdict::Found, "exit 1: {text}");
    assert!(text.contains("would be retried"), "{text}");

    let (verdict, _) = desk.run(&test("nobody")).await;
    let error = verdict.expect_err("unknown subscriber");
    assert!(
        error.to_string().contains("the document has: ops"),
        "{error}"
    );
}

#[tokio::test]
async fn dlq_commands_list_show_and_replay_a_really_dead_lettered_message() {
    use crate::dead_letters::{bodies, burst_dlq_with, depth};

    let desk = Desk::start().await;
    let sqs = moto::sqs();
    let (stack, source, dlq) = burst_dlq_with(&sqs, &["a trigger that failed"]).await;

    let (verdict, text) = desk.run(&["--stack", &stack, "dlq", "list"]).await;
    assert_eq!(
        verdict.expect("runs"),
        Verdict::Found,
        "a message waits: {text}"
    );
    assert!(
        text.contains("BurstDLQ") && text.contains("1 message(s) waiting"),
        "{text}"
    );

    let shown = desk
        .json(&["--stack", &stack, "dlq", "show", "BurstDLQ"])
        .await;
    assert_eq!(shown[0]["body"], "a trigger that failed");
    assert_eq!(depth(&sqs, &dlq).await, (1, 0), "show leaves it visible");

    let (verdict, text) = desk
        .run(&[
            "--stack",
            &stack,
            "dlq",
            "replay",
            "BurstDLQ",
            "--per-second",
            "50",
        ])
        .await;
    assert_eq!(verdict.expect("runs"), Verdict::Fine, "{text}");
    assert!(text.contains("1 replayed to"), "{text}");
    assert_eq!(depth(&sqs, &dlq).await, (0, 0), "deleted once re-sent");
    let back = bodies(&sqs, &source).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].0, "a trigger that failed", "the original body");

    let (verdict, _) = desk
        .run(&["--stack", &stack, "dlq", "replay", "NoSuchDLQ"])
        .await;
    assert_eq!(verdict.expect_err("unknown queue").exit_code(), 2);
}

/// `policy check FILE`: the file as the functions load it, then its presences against the org.
#[tokio::test]
async fn policy_check_validates_the_file_then_resolves_its_presences_against_the_org() {
    use presence_autopilot::policy::DEFAULT_POLICY;
    let desk = Desk::start().await;
    let dir = std::env::temp_dir().join(moto::unique_name("policy-check"));
    std::fs::create_dir_all(&dir).expect("a directory");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("written");
        path.display().to_string()
    };
    let good = write("good.toml", DEFAULT_POLICY);
    let misspelt = write(
        "misspelt.toml",
        &DEFAULT_POLICY.replace("skip_all_day =", "skip_all_days ="),
    );
    let unknown = write(
        "unknown.toml",
        &DEFAULT_POLICY.replace(r#"presence = "Meeting""#, r#"presence = "Daydreaming""#),
    );

    let (verdict, text) = desk.run(&["policy", "check", &good]).await;
    assert_eq!(verdict.expect("runs"), Verdict::Fine, "{text}");
    let version = presence_autopilot::policy::Policy::from_toml(DEFAULT_POLICY)
        .expect("valid")
        .version;
    assert!(
        text.contains(&format!(
            "valid, version {version}; against the org: Focus Time → Focus Time ({}), Meeting → Meeting ({})",
            genesys_sim::seed::FOCUS_TIME,
            genesys_sim::seed::MEETING
        )),
        "{text}"
    );
    let answer = desk.json(&["policy", "check", &good]).await;
    assert_eq!(
        answer["resolved"]["Focus Time"]["label"], "Focus Time",
        "{answer}"
    );
    assert_eq!(
        answer["version"],
        version.as_str(),
        "the version its records carry"
    );

    let (verdict, text) = desk.run(&["policy", "check", &misspelt]).await;
    assert_eq!(verdict.expect("runs"), Verdict::Found, "{text}");
    assert!(
        text.contains("refused by the file") && text.contains("skip_all_days"),
        "{text}"
    );

    let (verdict, text) = desk.run(&["policy", "check", &unknown]).await;
    assert_eq!(verdict.expect("runs"), Verdict::Found, "{text}");
    assert!(
        text.contains("refused by the org") && text.contains("meeting.presence"),
        "{text}"
    );
    let (verdict, text) = desk.run(&["policy", "check", "--offline", &unknown]).await;
    assert_eq!(
        verdict.expect("runs"),
        Verdict::Fine,
        "offline cannot know the org: {text}"
    );

    let missing = dir.join("missing.toml").display().to_string();
    let (verdict, _) = desk.run(&["policy", "check", &missing]).await;
    assert!(matches!(verdict, Err(CliError::Usage(_))), "{verdict:?}");
    std::fs::remove_dir_all(&dir).expect("cleaned");
}

/// `policy push FILE`: stored as the parameter's next version only when the functions would
/// take it (the file and the org both check it); the stored text is what a function fetches.
#[tokio::test]
async fn policy_push_stores_a_checked_policy_and_refuses_one_the_functions_would_refuse() {
    use presence_autopilot::aws::ssm::SsmPolicy;
    use presence_autopilot::policy::DEFAULT_POLICY;
    use presence_autopilot::ports::PolicySource;
    let desk = Desk::start().await;
    let dir = std::env::temp_dir().join(moto::unique_name("policy-push"));
    std::fs::create_dir_all(&dir).expect("a directory");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("written");
        path.display().to_string()
    };
    let parameter = format!("/{}/policy", moto::unique_name("stack"));
    let store = SsmPolicy::new(aws_sdk_ssm::Client::new(&sdk_config()), &parameter);
    let good_text = DEFAULT_POLICY.replace("min_minutes = 0", "min_minutes = 5");
    let good = write("good.toml", &good_text);
    let answer = desk
        .json(&["policy", "push", &good, "--parameter", &parameter])
        .await;
    assert_eq!(answer["revision"], "1", "{answer}");
    let stored = store.fetch().await.expect("stored");
    assert_eq!(
        (stored.text.as_str(), stored.revision.as_str()),
        (good_text.as_str(), "1")
    );
    assert_eq!(
        answer["version"],
        presence_autopilot::policy::version_of(&good_text).as_str()
    );

    let unknown = write(
        "unknown.toml",
        &DEFAULT_POLICY.replace(r#"presence = "Meeting""#, r#"presence = "Daydreaming""#),
    );
    let (verdict, text) = desk
        .run(&["policy", "push", &unknown, "--parameter", &parameter])
        .await;
    assert_eq!(verdict.expect("runs"), Verdict::Found, "{text}");
    assert!(text.contains("refused by the org"), "{text}");
    assert_eq!(
        store.fetch().await.expect("stored").revision,
        "1",
        "a refused policy is not stored"
    );
    let (verdict, _) = desk.run(&["policy", "push", &good]).await;
    assert!(
        matches!(verdict, Err(CliError::Usage(ref m)) if m.contains("--parameter")),
        "{verdict:?}"
    );
    std::fs::remove_dir_all(&dir).expect("cleaned");
}

/// `policy diff FILE`: a known week (Ada's mirrored meetings, her published WFM shift on the
/// simulator) under the policy in force (the parameter) and a proposal that skips entries
/// under 15 minutes and ignores a category: exactly those two meetings are listed.
#[tokio::test]
async fn policy_diff_lists_the_known_meetings_a_proposal_decides_differently() {
    use presence_autopilot::clock::Clock;
    use presence_autopilot::policy::DEFAULT_POLICY;
    use presence_autopilot::ports::MirroredEvent;
    let desk = Desk::start().await;
    let ada_id = UserId::parse(ada()).expect("id");
    let connections = desk.connect_ada().await;
    // The simulator's shift: a meeting block from an hour ago to two hours on, then off-queue
    // work for four hours; nothing published two days on.
    let now = desk.h.clock.now();
    let mirrored = |id: &str, from_minutes: i64, minutes: i64, categories: &[&str]| {
        let start = now + chrono::Duration::minutes(from_minutes);
        let end = start + chrono::Duration::minutes(minutes);
        MirroredEvent {
            event_id: id.to_owned(),
            fingerprint: id.to_owned(),
            end,
            detail: json!({"userId": ada(), "calendarEventId": id, "start": start.to_rfc3339(),
                           "end": end.to_rfc3339(), "showAs": "busy", "responseStatus": "accepted",
                           "kind": "meeting", "categories": categories}),
        }
    };
    let week = [
        mirrored("standup", 30, 10, &[]),
        mirrored("review", 180, 60, &[]),
        mirrored("personal", 240, 60, &["Personal"]),
        mirrored("planning", 2 * 24 * 60, 60, &[]),
        mirrored("long-ago", -3 * 24 * 60, 10, &[]),
    ];
    connections
        .update_mirror(&ada_id, &week, &[])
        .await
        .expect("mirrored");
    let parameter = desk.policy_in_force(DEFAULT_POLICY).await;
    let dir = std::env::temp_dir().join(moto::unique_name("policy-diff"));
    std::fs::create_dir_all(&dir).expect("a directory");
    let proposal = dir.join("proposal.toml");
    std::fs::write(
        &proposal,
        DEFAULT_POLICY.replace("min_minutes = 0", "min_minutes = 15")
            + "\n[[rules]]\nname = \"ignore-personal\"\ncategories = [\"Personal\"]\nskip = \"personal entries are not meetings\"\n",
    )
    .expect("written");
    let proposal = proposal.display().to_string();

    let (verdict, text) = desk
        .run(&[
            "policy",
            "diff",
            &proposal,
            "--parameter",
            &parameter,
            "--output",
            "json",
        ])
        .await;
    assert_eq!(
        verdict.expect("runs"),
        Verdict::Found,
        "differences: exit 1"
    );
    let answer: Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(
        (answer["agents"].as_u64(), answer["meetings"].as_u64()),
        (Some(1), Some(4)),
        "{answer}"
    );
    let listed: Vec<(&str, &str, &str)> = answer["differences"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|d| {
            (
                d["calendarEventId"].as_str().expect("id"),
                d["now"].as_str().expect("now"),
                d["proposed"].as_str().expect("proposed"),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (
                "standup",
                "Meeting (profile default)",
                "skipped: the entry lasts 10 min; the policy skips entries under 15 min (profile default)"
            ),
            (
                "personal",
                "Meeting (profile default)",
                "skipped: rule \"ignore-personal\": personal entries are not meetings (profile default)"
            ),
        ]
    );
    let (verdict, text) = desk
        .run(&["policy", "diff", &proposal, "--parameter", &parameter])
        .await;
    assert_eq!(verdict.expect("runs"), Verdict::Found, "{text}");
    assert!(text.contains("2 decided differently"), "{text}");
    let (verdict, _) = desk
        .run(&[
            "policy",
            "diff",
            "--days",
            "1",
            &proposal,
            "--parameter",
            &parameter,
        ])
        .await;
    assert_eq!(verdict.expect("runs"), Verdict::Found);
    std::fs::remove_dir_all(&dir).expect("cleaned");
}

/// `forecast --team`: a team of Ada (calendar connected) and Ben (named by id, no calendar)
/// with a cap of none off queue: Ada's half-hour meeting during her published meeting block
/// puts exactly two 15-minute intervals over the cap, each naming it; Ben counts as a member.
#[tokio::test]
async fn forecast_counts_the_team_and_finds_the_intervals_over_the_cap() {
    use presence_autopilot::clock::Clock;
    use presence_autopilot::policy::DEFAULT_POLICY;
    use presence_autopilot::ports::MirroredEvent;
    let desk = Desk::start().await;
    let ada_id = UserId::parse(ada()).expect("id");
    let connections = desk.connect_ada().await;
    let start = desk.h.clock.now() + chrono::Duration::minutes(30);
    let end = start + chrono::Duration::minutes(30);
    connections
        .update_mirror(
            &ada_id,
            &[MirroredEvent {
                event_id: "standup".to_owned(),
                fingerprint: "1".to_owned(),
                end,
                detail: json!({"userId": ada(), "calendarEventId": "standup",
                               "start": start.to_rfc3339(), "end": end.to_rfc3339(),
                               "showAs": "busy", "responseStatus": "accepted", "kind": "meeting"}),
            }],
            &[],
        )
        .await
        .expect("mirrored");
    let ben = DEMO_AGENTS[1].0;
    let parameter = desk.policy_in_force(&format!(
            "{DEFAULT_POLICY}\n[[profiles]]\nname = \"floor\"\nusers = [\"{}\", \"{ben}\"]\n\n[profiles.guard]\nmax_off_queue = 0\n",
            ada()
        )).await;
    let (verdict, text) = desk
        .run(&[
            "forecast",
            "--team",
            "floor",
            "--days",
            "1",
            "--parameter",
            &parameter,
            "--output",
            "json",
        ])
        .await;
    assert_eq!(
        verdict.expect("runs"),
        Verdict::Found,
        "over the cap: exit 1"
    );
    let answer: Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(
        (answer["members"].as_u64(), answer["withCalendar"].as_u64()),
        (Some(2), Some(1)),
        "{answer}"
    );
    // Every quarter hour from the one holding now to the last one starting within a day: 97,
    // or 96 when now falls exactly on a quarter hour.
    let now = desk.h.clock.now();
    let on_the_quarter = now.timestamp() % 900 == 0 && now.timestamp_subsec_nanos() == 0;
    assert_eq!(
        answer["intervals"].as_array().expect("a list").len(),
        if on_the_quarter { 96 } else { 97 }
    );
    let over: Vec<&Value> = answer["intervals"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|i| i["overCap"] == true)
        .collect();
    assert_eq!(over.len(), 2, "{over:?}");
    assert!(
        over.iter()
            .all(|i| i["meetings"][0]["calendarEventId"] == "standup" && i["cap"] == 0)
    );

    let (verdict, text) = desk
        .run(&[
            "forecast",
            "--team",
            "floor",
            "--days",
            "1",
            "--parameter",
            &parameter,
        ])
        .await;
    assert_eq!(verdict.expect("runs"), Verdict::Found);
    assert!(
        text.contains("team floor: 2 members (1 with a calendar connected)"),
        "{text}"
    );
    let (verdict, _) = desk
        .run(&["forecast", "--team", "nobody", "--parameter", &parameter])
        .await;
    assert!(
        matches!(verdict, Err(CliError::Usage(ref m)) if m.contains("floor")),
        "{verdict:?}"
    );
}

/// `team --team`: Ada off queue because of us (holding the team's slot), Ben waiting, against
/// the team's cap of one.
#[tokio::test]
async fn team_shows_who_is_off_queue_because_of_us_and_who_waits() {
    use presence_autopilot::clock::Clock;
    use presence_autopilot::model::PresenceDefinitionId;
    use presence_autopilot::policy::DEFAULT_POLICY;
    use presence_autopilot::ports::StateStore;
    use presence_autopilot::state::{AppliedOverride, TriggerId, UserState};
    let desk = Desk::start().await;
    let now = desk.h.clock.now();
    let ben = DEMO_AGENTS[1].0;
    let parameter = desk.policy_in_force(&format!(
            "{DEFAULT_POLICY}\n[[profiles]]\nname = \"floor\"\nusers = [\"{}\", \"{ben}\"]\n\n[profiles.guard]\nmax_off_queue = 1\n",
            ada()
        )).await;
    let mut applied = UserState::new(UserId::parse(ada()).expect("id"), now);
    applied.applied = Some(AppliedOverride {
        target: PresenceDefinitionId::parse(genesys_sim::seed::MEETING).expect("id"),
        trigger_id: TriggerId::parse("sync").expect("id"),
        until: now + chrono::Duration::minutes(30),
        tag: None,
        set_at: Some(now - chrono::Duration::minutes(5)),
        restore_sent: None,
    });
    applied.slot = Some("floor".to_owned());
    desk.h.store.put(&applied).await.expect("stored");
    let mut waits = UserState::new(UserId::parse(ben).expect("id"), now);
    waits.deferred_until = Some(now + chrono::Duration::minutes(1));
    desk.h.store.put(&waits).await.expect("stored");

    let answer = desk
        .json(&["team", "--team", "floor", "--parameter", &parameter])
        .await;
    assert_eq!(
        (
            answer["members"].as_u64(),
            answer["offQueueByUs"].as_u64(),
            answer["waiting"].as_u64(),
            answer["cap"].as_u64()
        ),
        (Some(2), Some(1), Some(1), Some(1)),
        "{answer}"
    );
    let ada_row = answer["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|r| r["userId"] == ada())
        .expect("Ada");
    assert_eq!(ada_row["holdsSlot"], "floor");
    let (_, text) = desk
        .run(&["team", "--team", "floor", "--parameter", &parameter])
        .await;
    assert!(
        text.contains("1 off queue because of us, 1 waiting (cap 1)")
            && text.contains("holds a slot of floor"),
        "{text}"
    );
    // The same as a page: a lane each, Ada's override and Ben's wait drawn on the day.
    let page = std::env::temp_dir().join(format!("{}.html", moto::unique_name("team")));
    let page_arg = page.display().to_string();
    let (verdict, _) = desk
        .run(&[
            "team",
            "--team",
            "floor",
            "--parameter",
            &parameter,
            "--out",
            &page_arg,
        ])
        .await;
    assert_eq!(verdict.expect("runs"), Verdict::Fine);
    let html = std::fs::read_to_string(&page).expect("the page is written");
    assert_eq!(html.matches("class=\"lane\"").count(), 2, "{html}");
    assert_eq!(html.matches("class=\"ours\"").count(), 1, "{html}");
    assert_eq!(html.matches("class=\"wait\"").count(), 1, "{html}");
    assert!(html.contains("holds a slot"), "{html}");
    std::fs::remove_file(&page).expect("cleaned");
}

/// `make bench`: the forecast of a 1,000-agent team over 7 days on the stand-in and the
/// simulator — every agent connected with a meeting a day in the mirror. Prints one table row:
/// the Genesys calls (group pages, schedule searches), the DynamoDB calls and the time.
#[tokio::test]
#[ignore = "a benchmark: make bench runs it"]
async fn forecast_of_a_thousand_agent_team_over_a_week() {
    use futures::StreamExt as _;
    use presence_autopilot::clock::Clock;
    use presence_autopilot::policy::DEFAULT_POLICY;
    use presence_autopilot::ports::MirroredEvent;
    const AGENTS: usize = 1000;
    const GROUP: &str = "f0eca570-0000-4000-8000-000000000001";
    let desk = Desk::start().await;
    let agents = crate::support::all_hands::add_agents(&desk.h.sim, AGENTS, "0f0eca57");
    desk.h.sim.server.sim.lock().groups.insert(
        GROUP.to_owned(),
        agents.iter().map(|a| a.to_string()).collect(),
    );
    let connections = desk.connections();
    let now = desk.h.clock.now();
    let day = chrono::Duration::days(1);
    let setup = futures::stream::iter(agents.iter().enumerate())
        .map(|(index, user)| {
            let connections = &connections;
            async move {
                connections
                    .put(&Connection::new(
                        user.clone(),
                        format!("c{index}@example.com"),
                        format!("mailbox-{index}"),
                    ))
                    .await
                    .expect("connected");
                let week: Vec<MirroredEvent> = (0..7)
                    .map(|d| {
                        let start = now + day * d + chrono::Duration::hours(1);
                        let end = start + chrono::Duration::minutes(30);
                        let id = format!("m{d}");
                        MirroredEvent {
                            event_id: id.clone(),
                            fingerprint: id.clone(),
                            end,
                            detail: json!({"userId": user.as_str(), "calendarEventId": id,
                                           "start": start.to_rfc3339(), "end": end.to_rfc3339(),
                                           "kind": "meeting"}),
                        }
                    })
                    .collect();
                connections
                    .update_mirror(user, &week, &[])
                    .await
                    .expect("mirrored");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>();
    setup.await;
    let parameter = desk.policy_in_force(&format!(
            "{DEFAULT_POLICY}\n[[profiles]]\nname = \"tier-1\"\ngroups = [\"{GROUP}\"]\n\n[profiles.guard]\nmax_off_queue = 100\n"
        )).await;
    // What one mirror query costs on the stand-in, to read the forecast's time by.
    let probe = std::time::Instant::now();
    for agent in agents.iter().take(20) {
        connections.mirror(agent).await.expect("mirror");
    }
    let per_query = probe.elapsed() / 20;
    let searches_now = || {
        desk.h
            .sim
            .server
            .sim
            .lock()
            .requests
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/agentschedules/search"))
            .count()
    };
    let searches_before = searches_now();
    let pages_before = desk
        .h
        .sim
        .count_requests("GET", &format!("/api/v2/groups/{GROUP}/members"));
    let started = std::time::Instant::now();
    let (verdict, text) = desk
        .run(&[
            "forecast",
            "--team",
            "tier-1",
            "--days",
            "7",
            "--parameter",
            &parameter,
            "--output",
            "json",
        ])
        .await;
    let took = started.elapsed();
    assert!(verdict.is_ok(), "{verdict:?}");
    let answer: Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(answer["members"], AGENTS, "every agent counted");
    let searches = searches_now() - searches_before;
    let pages = desk
        .h
        .sim
        .count_requests("GET", &format!("/api/v2/groups/{GROUP}/members"))
        - pages_before;
    println!(
        "| forecast, {AGENTS} agents × 7 days (7,000 meetings) | {searches} schedule searches, {pages} group pages | the connections' index + {AGENTS} mirror queries ({:.0} ms each on the stand-in) | {:.1} s |",
        per_query.as_secs_f64() * 1e3,
        took.as_secs_f64()
    );

    // The daily look-ahead on the same floor, as the lookahead function composes it: tomorrow
    // every agent has a meeting at the same time, far over the cap of 100.
    let queue = moto::sqs()
        .create_queue()
        .queue_name(moto::unique_name("notices"))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let settings = presence_autopilot::compose::LookaheadSettings {
        table_name: desk.h.store.table().to_owned(),
        genesys_secret_id: desk.secret.clone(),
        policy_parameter: parameter.clone(),
        notifications_queue_url: queue.clone(),
        wfm_business_unit_ids: Vec::new(),
        time_zone: chrono_tz::UTC,
        secret_cache: std::time::Duration::from_secs(300),
    };
    let lookahead = presence_autopilot::compose::lookahead::lookahead_on(
        &sdk_config(),
        &settings,
        Arc::new(desk.h.clock.clone()),
    )
    .expect("composed");
    let (searches_before, pages_before) = (
        searches_now(),
        desk.h
            .sim
            .count_requests("GET", &format!("/api/v2/groups/{GROUP}/members")),
    );
    let started = std::time::Instant::now();
    let report = lookahead
        .run(presence_autopilot::clock::Deadline::after(
            &desk.h.clock,
            std::time::Duration::from_secs(300),
        ))
        .await
        .expect("the look-ahead runs");
    let took = started.elapsed();
    assert_eq!(report.teams[0].members, AGENTS);
    assert!(report.teams[0].notification_id.is_some(), "{report:?}");
    let message = moto::sqs()
        .receive_message()
        .queue_url(&queue)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    let bytes = message.first().and_then(|m| m.body()).map_or(0, str::len);
    assert!(bytes > 0 && bytes < 256 * 1024, "{bytes} bytes");
    println!(
        "| daily look-ahead, {AGENTS} agents, 1 day | {} schedule searches, {} group pages | the connections' index + {AGENTS} mirror queries | {:.1} s; the notice {:.1} KB ({} intervals over the cap) |",
        searches_now() - searches_before,
        desk.h
            .sim
            .count_requests("GET", &format!("/api/v2/groups/{GROUP}/members"))
            - pages_before,
        took.as_secs_f64(),
        bytes as f64 / 1024.0,
        report.teams[0].intervals_over_cap
    );
}
