//! The simulator's in-memory world and the rules that change it.

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::seed::{
    ActivityCodeSeed, BusinessUnitSeed, ClientSeed, RateLimitSeed, ScheduleSearchMode, Seed,
    ShiftSeed, UserSeed,
};

/// The spellings of one system presence on each API surface (reference §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemPresenceKind {
    /// REST presence and legacy definitions: "On Queue".
    pub rest: &'static str,
    /// `/api/v2/presence/definitions` enum: "OnQueue".
    pub v2: &'static str,
    /// Notifications / EventBridge: "ON_QUEUE".
    pub event: &'static str,
}

pub const SYSTEM_PRESENCES: [SystemPresenceKind; 10] = [
    SystemPresenceKind {
        rest: "Available",
        v2: "Available",
        event: "AVAILABLE",
    },
    SystemPresenceKind {
        rest: "Away",
        v2: "Away",
        event: "AWAY",
    },
    SystemPresenceKind {
        rest: "Busy",
        v2: "Busy",
        event: "BUSY",
    },
    SystemPresenceKind {
        rest: "Offline",
        v2: "Offline",
        event: "OFFLINE",
    },
    SystemPresenceKind {
        rest: "Idle",
        v2: "Idle",
        event: "IDLE",
    },
    SystemPresenceKind {
        rest: "On Queue",
        v2: "OnQueue",
        event: "ON_QUEUE",
    },
    SystemPresenceKind {
        rest: "Meal",
        v2: "Meal",
        event: "MEAL",
    },
    SystemPresenceKind {
        rest: "Training",
        v2: "Training",
        event: "TRAINING",
    },
    SystemPresenceKind {
        rest: "Meeting",
        v2: "Meeting",
        event: "MEETING",
    },
    SystemPresenceKind {
        rest: "Break",
        v2: "Break",
        event: "BREAK",
    },
];

fn fold(value: &str) -> String {
    value
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

pub fn system_presence(any_spelling: &str) -> Option<SystemPresenceKind> {
    let folded = fold(any_spelling);
    SYSTEM_PRESENCES
        .iter()
        .copied()
        .find(|kind| fold(kind.rest) == folded)
}

#[derive(Debug, Clone)]
pub struct Definition {
    pub id: String,
    pub label: String,
    pub system: SystemPresenceKind,
    pub primary: bool,
    pub deactivated: bool,
}

#[derive(Debug, Clone)]
pub struct Client {
    pub seed: ClientSeed,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub client_id: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
pub struct RateWindow {
    pub started: DateTime<Utc>,
    pub count: u32,
}

#[derive(Debug, Clone)]
pub struct Presence {
    pub definition_id: String,
    pub message: String,
    pub modified_date: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Routing {
    pub status: String,
    pub start_time: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub version: u64,
    pub presence: Presence,
    pub routing: Routing,
    pub management_unit_id: Option<String>,
    pub shifts: Vec<ShiftSeed>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum FaultKind {
    /// Answer with this status and a Genesys error body; 429 carries `Retry-After`.
    Status {
        status: u16,
        #[serde(default)]
        retry_after_seconds: Option<u64>,
    },
    /// Hold the request this long, then answer 504 (the client should have given up before).
    Timeout {
        #[serde(default = "default_timeout_ms")]
        hold_ms: u64,
    },
    /// Add latency, then serve the request normally.
    Latency { ms: u64 },
}

fn default_timeout_ms() -> u64 {
    30_000
}

#[derive(Debug, Clone, serde::Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// HTTP method to match; any when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Path pattern; `*` matches one path segment, e.g. `/api/v2/users/*/presences/purecloud`.
    pub path: String,
    /// How many matching calls get the fault.
    pub count: u32,
    #[serde(flatten)]
    pub kind: FaultKind,
}

impl sim_kit::faults::FaultRule for Fault {
    fn uses_left(&mut self) -> &mut u32 {
        &mut self.count
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        if let Some(wanted) = &self.method
            && !wanted.eq_ignore_ascii_case(method)
        {
            return false;
        }
        let pattern: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
        pattern.len() == actual.len()
            && pattern
                .iter()
                .zip(&actual)
                .all(|(p, a)| *p == "*" || p.eq_ignore_ascii_case(a))
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mutation {
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// OAuth client id, or `control` for changes made through the test control surface.
    pub caller: String,
    pub operation: String,
    pub user_id: String,
    pub before: Value,
    pub after: Value,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub client_id: Option<String>,
    pub status: u16,
    pub correlation_id: String,
}

#[derive(Debug, Clone)]
pub struct BusinessUnit {
    pub seed: BusinessUnitSeed,
    pub published_schedule_id: String,
}

#[derive(Debug)]
pub struct SimState {
    pub organization_id: String,
    pub clock_offset: chrono::Duration,
    /// When set, the simulator's time stands still here (plus `clock_offset`): a test that
    /// moves it with its own clock gets rate windows that reset only when it says so.
    pub frozen_at: Option<DateTime<Utc>>,
    pub rate_limit: RateLimitSeed,
    pub clients: HashMap<String, Client>,
    pub tokens: HashMap<String, Token>,
    pub rate_windows: HashMap<String, RateWindow>,
    pub definitions: Vec<Definition>,
    pub users: HashMap<String, User>,
    /// Creation order, for stable paging.
    pub user_order: Vec<String>,
    /// Group id → member user ids, in order.
    pub groups: HashMap<String, Vec<String>>,
    pub business_units: Vec<BusinessUnit>,
    pub faults: Vec<Fault>,
    pub mutations: Vec<Mutation>,
    pub events: Vec<Value>,
    pub requests: Vec<RequestRecord>,
    pub schedule_operations: u64,
}

pub const PRIMARY_DEFINITIONS: [(&str, &str); 10] = [
    (crate::seed::AVAILABLE, "Available"),
    (crate::seed::BUSY, "Busy"),
    (crate::seed::IDLE, "Idle"),
    (crate::seed::AWAY, "Away"),
    (crate::seed::MEETING, "Meeting"),
    (crate::seed::MEAL, "Meal"),
    (crate::seed::TRAINING, "Training"),
    (crate::seed::ON_QUEUE, "On Queue"),
    (crate::seed::BREAK, "Break"),
    (crate::seed::OFFLINE, "Offline"),
];

impl SimState {
    pub fn from_seed(seed: Seed) -> Result<Self, String> {
        let mut definitions: Vec<Definition> = PRIMARY_DEFINITIONS
            .iter()
            .map(|(id, rest)| Definition {
                id: (*id).to_owned(),
                label: (*rest).to_owned(),
                system: system_presence(rest).unwrap_or(SYSTEM_PRESENCES[0]),
                primary: true,
                deactivated: false,
            })
            .collect();
        for secondary in &seed.secondary_presences {
            let system = system_presence(&secondary.system_presence).ok_or_else(|| {
                format!(
                    "secondaryPresences[{}].systemPresence: unknown value {:?}",
                    secondary.id, secondary.system_presence
                )
            })?;
            definitions.push(Definition {
                id: secondary.id.clone(),
                label: secondary.label.clone(),
                system,
                primary: false,
                deactivated: secondary.deactivated,
            });
        }
        let mut state = Self {
            organization_id: seed.organization_id,
            clock_offset: chrono::Duration::zero(),
            frozen_at: None,
            rate_limit: seed.rate_limit,
            clients: seed
                .clients
                .into_iter()
                .map(|c| (c.client_id.clone(), Client { seed: c }))
                .collect(),
            tokens: HashMap::new(),
            rate_windows: HashMap::new(),
            definitions,
            users: HashMap::new(),
            user_order: Vec::new(),
            groups: seed
                .groups
                .into_iter()
                .map(|group| (group.id, group.member_ids))
                .collect(),
            business_units: seed
                .business_units
                .into_iter()
                .map(|bu| BusinessUnit {
                    seed: bu,
                    published_schedule_id: uuid::Uuid::new_v4().to_string(),
                })
                .collect(),
            faults: Vec::new(),
            mutations: Vec::new(),
            events: Vec::new(),
            requests: Vec::new(),
            schedule_operations: 0,
        };
        for bu in &state.business_units {
            for code in &bu.seed.activity_codes {
                validate_category(code)?;
            }
        }
        for user in seed.users {
            state.upsert_user(user)?;
        }
        Ok(state)
    }

    /// Simulator time: the wall clock plus whatever the control surface advanced it by.
    /// Millisecond precision, as the real API's timestamps.
    pub fn now(&self) -> DateTime<Utc> {
        (self.frozen_at.unwrap_or_else(Utc::now) + self.clock_offset).trunc_subsecs(3)
    }

    pub fn definition(&self, id: &str) -> Option<&Definition> {
        self.definitions.iter().find(|d| d.id == id)
    }

    pub fn upsert_user(&mut self, seed: UserSeed) -> Result<(), String> {
        uuid::Uuid::parse_str(&seed.id)
            .map_err(|_| format!("users[].id: {:?} is not a UUID", seed.id))?;
        let definition_id = seed
            .presence_definition_id
            .clone()
            .unwrap_or_else(|| crate::seed::AVAILABLE.to_owned());
        if self.definition(&definition_id).is_none() {
            return Err(format!(
                "users[{}].presenceDefinitionId: unknown definition {definition_id:?}",
                seed.id
            ));
        }
        if let Some(mu) = &seed.management_unit_id
            && self.business_unit_of(mu).is_none()
        {
            return Err(format!(
                "users[{}].managementUnitId: unknown management unit {mu:?}",
                seed.id
            ));
        }
        let now = self.now();
        let on_queue = self.is_on_queue(&definition_id);
        let user = User {
            id: seed.id.clone(),
            name: seed.name,
            email: seed.email,
            version: 1,
            presence: Presence {
                definition_id,
                message: String::new(),
                modified_date: now,
            },
            routing: Routing {
                status: if on_queue { "IDLE" } else { "OFF_QUEUE" }.to_owned(),
                start_time: now,
            },
            management_unit_id: seed.management_unit_id,
            shifts: seed.shifts,
        };
        if self.users.insert(seed.id.clone(), user).is_none() {
            self.user_order.push(seed.id);
        }
        Ok(())
    }

    pub fn business_unit_of(&self, management_unit_id: &str) -> Option<&BusinessUnit> {
        self.business_units.iter().find(|bu| {
            bu.seed
                .management_units
                .iter()
                .any(|mu| mu == management_unit_id)
        })
    }

    fn is_on_queue(&self, definition_id: &str) -> bool {
        self.definition(definition_id)
            .is_some_and(|d| d.system.rest == "On Queue")
    }

    /// Sets a user's presence (last writer wins, as the real API), moves routing status with
    /// it, logs the mutation and emits the EventBridge-shaped presence event.
    pub fn set_presence(
        &mut self,
        caller: &str,
        operation: &str,
        user_id: &str,
        definition_id: Option<&str>,
        message: Option<&str>,
        correlation_id: &str,
    ) -> Option<Presence> {
        let now = self.now();
        let becomes_on_queue = definition_id.map(|id| self.is_on_queue(id));
        let user = self.users.get_mut(user_id)?;
        let before = presence_log_value(&user.presence);
        let was_on_queue = user.routing.status != "OFF_QUEUE";
        if let Some(id) = definition_id {
            user.presence.definition_id = id.to_owned();
        }
        if let Some(text) = message {
            user.presence.message = text.to_owned();
        }
        user.presence.modified_date = now;
        match becomes_on_queue {
            Some(true) if !was_on_queue => {
                user.routing = Routing {
                    status: "IDLE".to_owned(),
                    start_time: now,
                };
            }
            Some(false) if was_on_queue => {
                user.routing = Routing {
                    status: "OFF_QUEUE".to_owned(),
                    start_time: now,
                };
            }
            _ => {}
        }
        let presence = user.presence.clone();
        let after = presence_log_value(&presence);
        let seq = self.mutations.len() as u64 + 1;
        self.mutations.push(Mutation {
            seq,
            at: now,
            caller: caller.to_owned(),
            operation: operation.to_owned(),
            user_id: user_id.to_owned(),
            before,
            after,
        });
        self.emit_presence_event(user_id, &presence, correlation_id);
        Some(presence)
    }

    fn emit_presence_event(&mut self, user_id: &str, presence: &Presence, correlation_id: &str) {
        let system = self
            .definition(&presence.definition_id)
            .map(|d| d.system.event)
            .unwrap_or("OFFLINE");
        let now = self.now();
        let event = json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": "v2.users.{id}.presence",
            "source": format!("aws.partner/genesys.com/cloud/{}/presence-autopilot-sim", self.organization_id),
            "account": "000000000000",
            "time": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "topicName": format!("v2.users.{user_id}.presence"),
                "version": "2",
                "eventBody": {
                    "source": "PURECLOUD",
                    "presenceDefinition": {"id": presence.definition_id, "systemPresence": system},
                    "primary": true,
                    "message": presence.message,
                    "modifiedDate": format_time(presence.modified_date),
                },
                "metadata": {"CorrelationId": correlation_id},
                "timestamp": format_time(now),
            }
        });
        self.events.push(event);
    }

    /// Sets the routing status through the test control (e.g. INTERACTING for "on a call").
    pub fn set_routing_status(&mut self, user_id: &str, status: &str) -> Option<Routing> {
        let now = self.now();
        let user = self.users.get_mut(user_id)?;
        user.routing = Routing {
            status: status.to_owned(),
            start_time: now,
        };
        Some(user.routing.clone())
    }

    /// Consumes one use of the first fault matching this call, if any.
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        sim_kit::faults::take(&mut self.faults, method, path).map(|fault| fault.kind)
    }

    pub fn record_request(&mut self, mut record: RequestRecord) {
        record.seq = self.requests.len() as u64 + 1;
        self.requests.push(record);
    }

    pub fn activity_codes(&self, business_unit_id: &str) -> Option<&[ActivityCodeSeed]> {
        self.business_units
            .iter()
            .find(|bu| bu.seed.id == business_unit_id)
            .map(|bu| bu.seed.activity_codes.as_slice())
    }

    pub fn schedule_search_mode(&self, business_unit_id: &str) -> Option<ScheduleSearchMode> {
        self.business_units
            .iter()
            .find(|bu| bu.seed.id == business_unit_id)
            .map(|bu| bu.seed.schedule_search)
    }
}

fn validate_category(code: &ActivityCodeSeed) -> Result<(), String> {
    const CATEGORIES: [&str; 8] = [
        "OnQueueWork",
        "Break",
        "Meal",
        "Meeting",
        "OffQueueWork",
        "TimeOff",
        "Training",
        "Unavailable",
    ];
    if CATEGORIES.contains(&code.category.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "activityCodes[{}].category: unknown category {:?}",
            code.id, code.category
        ))
    }
}

pub fn format_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn presence_log_value(presence: &Presence) -> Value {
    json!({
        "presenceDefinitionId": presence.definition_id,
        "message": presence.message,
        "modifiedDate": format_time(presence.modified_date),
    })
}
