//! A `TransitionService` on the real wire: the Genesys simulator, DynamoDB and SQS on moto.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use presence_autopilot::aws::dynamo::DynamoStore;
use presence_autopilot::aws::sqs::SqsQueue;
use presence_autopilot::clock::{Clock, Deadline, ManualClock};
use presence_autopilot::compose::{TransitionParts, assemble_transition};
use presence_autopilot::genesys::GenesysClient;
use presence_autopilot::model::UserId;
use presence_autopilot::policy::{DEFAULT_POLICY, Policy};
use presence_autopilot::ports::AuditQueries;
use presence_autopilot::service::outbox_relay::OutboxRelay;
use presence_autopilot::service::transition::TransitionService;
use presence_autopilot::state::{AuditRecord, DecisionKind};
use presence_autopilot::wfm::CachedShifts;
use serde_json::{Value, json};

use crate::support::moto;
use crate::support::sim::TestSim;
use crate::support::stream::StreamPump;

const DEMO: (&str, &str) = (
    genesys_sim::seed::DEMO_CLIENT_ID,
    genesys_sim::seed::DEMO_CLIENT_SECRET,
);

pub struct Harness {
    pub sim: TestSim,
    pub shifts: Arc<CachedShifts>,
    pub service: Arc<TransitionService>,
    pub store: Arc<DynamoStore>,
    pub clock: ManualClock,
    pub genesys: GenesysClient,
    pub queue_url: String,
    /// The table's stream into the queue, as the `outbox-relay` function does it in AWS.
    pub relay: StreamPump,
    sqs: aws_sdk_sqs::Client,
}

impl Harness {
    pub async fn start() -> Self {
        Self::with_policy(DEFAULT_POLICY, Vec::new()).await
    }

    pub async fn with_policy(policy: &str, business_units: Vec<String>) -> Self {
        let sim = TestSim::start().await;
        let (genesys, clock) = sim.client(DEMO);
        let shared_clock: Arc<dyn Clock> = Arc::new(clock.clone());
        Self::assemble(sim, genesys, clock, shared_clock, policy, business_units).await
    }

    async fn assemble(
        sim: TestSim,
        genesys: GenesysClient,
        clock: ManualClock,
        shared_clock: Arc<dyn Clock>,
        policy: &str,
        business_units: Vec<String>,
    ) -> Self {
        let (dynamodb, table) = moto::new_table().await;
        let sqs = moto::sqs();
        let queue_url = sqs
            .create_queue()
            .queue_name(moto::unique_name("notifications"))
            .send()
            .await
            .expect("queue")
            .queue_url
            .expect("queue url");
        let queue = SqsQueue::new(sqs.clone(), &queue_url, shared_clock.clone());
        let relay = StreamPump::new(dynamodb.clone(), &table, OutboxRelay::new(Arc::new(queue)));
        let store = Arc::new(DynamoStore::new(dynamodb, table, shared_clock.clone()));
        let (deps, shifts) = assemble_transition(TransitionParts {
            genesys: genesys.clone(),
            store: store.clone(),
            clock: shared_clock,
            policy: Policy::from_toml(policy).expect("valid policy"),
            business_units,
            shift_cache: Duration::from_secs(900),
            idempotency_ttl: Duration::from_secs(86_400),
            presence_fresh_for: Duration::from_secs(1),
        })
        .await
        .expect("the transition path assembles");
        Self {
            shifts,
            sim,
            service: Arc::new(TransitionService::new(deps)),
            store,
            clock,
            genesys,
            queue_url,
            relay,
            sqs,
        }
    }

    pub fn deadline(&self) -> Deadline {
        Deadline::after(&self.clock, Duration::from_secs(30))
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A canonical calendar event relative to now (minutes).
    pub fn calendar(
        &self,
        detail_type: &str,
        event_id: &str,
        user: &str,
        trigger: &str,
        start_min: i64,
        end_min: i64,
    ) -> String {
        let now = self.now();
        let user_field = if user.contains('@') {
            "userEmail"
        } else {
            "userId"
        };
        json!({
            "version": "0", "id": event_id, "detail-type": detail_type, "source": "presence-autopilot.test",
            "account": "123456789012", "time": now, "region": "us-east-1", "resources": [],
            "detail": {
                user_field: user,
                "calendarEventId": trigger,
                "start": now + chrono::Duration::minutes(start_min),
                "end": now + chrono::Duration::minutes(end_min),
                "showAs": "busy", "responseStatus": "accepted", "subject": "Confidential reorg",
            }
        })
        .to_string()
    }

    pub async fn presence_of(&self, user: &str) -> presence_autopilot::model::PresenceSnapshot {
        self.genesys
            .get_presence(&UserId::parse(user).expect("uuid"), self.deadline())
            .await
            .expect("presence")
    }

    pub async fn audit(&self, user: &str) -> Vec<AuditRecord> {
        let from = self.now() - chrono::Duration::days(1);
        let to = self.now() + chrono::Duration::days(1);
        self.store
            .by_user(&UserId::parse(user).expect("uuid"), from, to)
            .await
            .expect("audit")
    }

    pub async fn audit_kinds(&self, user: &str) -> Vec<DecisionKind> {
        self.audit(user).await.iter().map(|r| r.kind).collect()
    }

    /// Every notification the committed states added since the last call: relayed from the
    /// table's stream to the queue, then received and deleted.
    pub async fn notifications(&self) -> Vec<Value> {
        let report = self.relay.relay().await;
        assert!(report.unreadable.is_empty(), "{report:?}");
        let mut all = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return all;
            }
            for message in messages {
                all.push(
                    serde_json::from_str(message.body().unwrap_or("null")).expect("json body"),
                );
                if let Some(handle) = message.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("delete");
                }
            }
        }
    }

    pub fn patches(&self, user: &str) -> usize {
        self.sim.count_requests(
            "PATCH",
            &format!("/api/v2/users/{user}/presences/purecloud"),
        )
    }
}
