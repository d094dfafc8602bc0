//! What the simulator starts with: OAuth clients, users, presence definitions, WFM units and
//! schedules. `Seed::default()` is the documented demo seed; `--seed FILE` loads JSON instead.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Primary (system) presence definition ids, as the real API serves them.
pub const AVAILABLE: &str = "6a3af858-942f-489d-9700-5f9bcdcdae9b";
pub const BUSY: &str = "31fe3bac-dea6-44b7-bed7-47f91660a1a0";
pub const IDLE: &str = "7ffa01cd-7866-4ad7-8faa-31e11b42f51f";
pub const AWAY: &str = "5e5c5c66-ea97-4e7f-ac41-6424784829f2";
pub const MEETING: &str = "bbdff279-7ae1-48ea-bade-7831d7234c64";
pub const MEAL: &str = "3fd96123-badb-4f69-bc03-1b1ccc6d8014";
pub const TRAINING: &str = "d2390a99-8546-bad9-8f0a-219548e8aeb0";
pub const ON_QUEUE: &str = "e08eaf1b-ee47-4fa9-a231-1200e284798f";
pub const BREAK: &str = "227b37e2-f1d0-4dd0-8f50-badd7cf6d158";
pub const OFFLINE: &str = "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5";

/// Org secondary presences of the default seed.
pub const FOCUS_TIME: &str = "0b5a4c1e-6f2d-4c3b-9a8e-5d7f1e2c3b4a";
pub const AWAY_FROM_KEYBOARD: &str = "2fa68d50-5edb-4e01-9390-522615f12243";

pub const DEMO_CLIENT_ID: &str = "demo-client";
pub const DEMO_CLIENT_SECRET: &str = "demo-secret";
pub const DEMO_BUSINESS_UNIT: &str = "b1a7e0c2-3d4e-4f5a-8b6c-7d8e9f0a1b2c";
pub const DEMO_MANAGEMENT_UNIT: &str = "a2b8f1d3-4e5f-4a6b-9c7d-8e9f0a1b2c3d";

/// The permissions an Autopilot OAuth client needs (README: deploy).
pub const AUTOPILOT_PERMISSIONS: [&str; 6] = [
    "presence:userPresence:edit",
    "presence:presenceDefinition:view",
    "routing:agent:onqueue",
    "wfm:agent:view",
    "wfm:publishedSchedule:view",
    "wfm:activityCode:view",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seed {
    #[serde(default = "default_org_id")]
    pub organization_id: String,
    #[serde(default)]
    pub rate_limit: RateLimitSeed,
    #[serde(default)]
    pub clients: Vec<ClientSeed>,
    #[serde(default)]
    pub secondary_presences: Vec<SecondaryPresenceSeed>,
    #[serde(default)]
    pub business_units: Vec<BusinessUnitSeed>,
    #[serde(default)]
    pub users: Vec<UserSeed>,
    /// Groups and their members (the calendar connector's roster is one).
    #[serde(default)]
    pub groups: Vec<GroupSeed>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSeed {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub member_ids: Vec<String>,
}

/// The default seed's roster group: every demo agent.
pub const ROSTER_GROUP: &str = "9c2f4e1a-7b3d-4c5e-8f6a-1b2c3d4e5f60";

fn default_org_id() -> String {
    "cf6cb7d5-d0ea-45b5-b0cf-73ad5f5b8721".to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSeed {
    pub requests_per_window: u32,
    pub window_seconds: u32,
}

impl Default for RateLimitSeed {
    fn default() -> Self {
        Self {
            requests_per_window: 300,
            window_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSeed {
    pub client_id: String,
    pub client_secret: String,
    #[serde(default = "default_grant")]
    pub grant_type: String,
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_seconds: u64,
    #[serde(default)]
    pub permissions: Vec<String>,
}

fn default_grant() -> String {
    "client_credentials".to_owned()
}

fn default_token_lifetime() -> u64 {
    86400
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecondaryPresenceSeed {
    pub id: String,
    pub label: String,
    /// Any spelling: "Busy", "On Queue", "ON_QUEUE".
    pub system_presence: String,
    #[serde(default)]
    pub deactivated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BusinessUnitSeed {
    pub id: String,
    pub name: String,
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    pub management_units: Vec<String>,
    #[serde(default)]
    pub activity_codes: Vec<ActivityCodeSeed>,
    /// `complete` (default) answers schedule searches at once; `processing` answers
    /// `Processing` without a result, as the real API does for large or async searches.
    #[serde(default)]
    pub schedule_search: ScheduleSearchMode,
}

fn default_time_zone() -> String {
    "America/New_York".to_owned()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ScheduleSearchMode {
    #[default]
    Complete,
    Processing,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityCodeSeed {
    pub id: String,
    pub name: String,
    /// One of OnQueueWork, Break, Meal, Meeting, OffQueueWork, TimeOff, Training, Unavailable.
    pub category: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSeed {
    pub id: String,
    pub name: String,
    pub email: String,
    /// Initial presence definition id (default: Available).
    #[serde(default)]
    pub presence_definition_id: Option<String>,
    #[serde(default)]
    pub management_unit_id: Option<String>,
    #[serde(default)]
    pub shifts: Vec<ShiftSeed>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShiftSeed {
    pub start_date: DateTime<Utc>,
    pub activities: Vec<ActivitySeed>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivitySeed {
    pub start_date: DateTime<Utc>,
    pub length_minutes: u32,
    pub activity_code_id: String,
    #[serde(default)]
    pub description: String,
}

/// The eight default activity codes; ids are small numerals as the real defaults are.
pub fn default_activity_codes() -> Vec<ActivityCodeSeed> {
    [
        ("0", "On Queue Work", "OnQueueWork"),
        ("1", "Break", "Break"),
        ("2", "Meal", "Meal"),
        ("3", "Meeting", "Meeting"),
        ("4", "Off Queue Work", "OffQueueWork"),
        ("5", "Time Off", "TimeOff"),
        ("6", "Training", "Training"),
        ("7", "Unavailable", "Unavailable"),
    ]
    .into_iter()
    .map(|(id, name, category)| ActivityCodeSeed {
        id: id.to_owned(),
        name: name.to_owned(),
        category: category.to_owned(),
    })
    .collect()
}

/// Demo agents: ids are fixed so scripts and docs can name them.
pub const DEMO_AGENTS: [(&str, &str, &str); 4] = [
    (
        "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f",
        "Ada Agent",
        "ada@example.com",
    ),
    (
        "3ce84f47-4e65-4756-a815-67a2b32e58b8",
        "Ben Agent",
        "ben@example.com",
    ),
    (
        "d2dab52a-8588-4942-8d44-fd8a2aa5d4a2",
        "Cy Agent",
        "cy@example.com",
    ),
    (
        "5b1e8f7a-2c3d-4e5f-8a9b-0c1d2e3f4a5b",
        "Dee Supervisor",
        "dee@example.com",
    ),
];

impl Default for Seed {
    /// One demo client with the Autopilot permissions, a read-only client, four agents
    /// (the first three in the demo WFM unit) and a published shift around the seed time:
    /// on-queue work, then a meeting block, then off-queue work.
    fn default() -> Self {
        let now = Utc::now();
        let shift_start = now - chrono::Duration::hours(2);
        let activities = vec![
            ActivitySeed {
                start_date: shift_start,
                length_minutes: 60,
                activity_code_id: "0".to_owned(),
                description: String::new(),
            },
            ActivitySeed {
                start_date: shift_start + chrono::Duration::hours(1),
                length_minutes: 180,
                activity_code_id: "3".to_owned(),
                description: "Team meeting block".to_owned(),
            },
            ActivitySeed {
                start_date: shift_start + chrono::Duration::hours(4),
                length_minutes: 240,
                activity_code_id: "4".to_owned(),
                description: String::new(),
            },
        ];
        let users = DEMO_AGENTS
            .iter()
            .enumerate()
            .map(|(index, (id, name, email))| UserSeed {
                id: (*id).to_owned(),
                name: (*name).to_owned(),
                email: (*email).to_owned(),
                presence_definition_id: Some(AVAILABLE.to_owned()),
                management_unit_id: (index < 3).then(|| DEMO_MANAGEMENT_UNIT.to_owned()),
                shifts: if index < 3 {
                    vec![ShiftSeed {
                        start_date: shift_start,
                        activities: activities.clone(),
                    }]
                } else {
                    Vec::new()
                },
            })
            .collect();
        Self {
            organization_id: default_org_id(),
            rate_limit: RateLimitSeed::default(),
            clients: vec![
                ClientSeed {
                    client_id: DEMO_CLIENT_ID.to_owned(),
                    client_secret: DEMO_CLIENT_SECRET.to_owned(),
                    grant_type: default_grant(),
                    token_lifetime_seconds: default_token_lifetime(),
                    permissions: AUTOPILOT_PERMISSIONS
                        .iter()
                        .map(|p| (*p).to_owned())
                        .collect(),
                },
                ClientSeed {
                    client_id: "readonly-client".to_owned(),
                    client_secret: "readonly-secret".to_owned(),
                    grant_type: default_grant(),
                    token_lifetime_seconds: default_token_lifetime(),
                    permissions: vec!["presence:presenceDefinition:view".to_owned()],
                },
                ClientSeed {
                    client_id: "code-grant-client".to_owned(),
                    client_secret: "code-grant-secret".to_owned(),
                    grant_type: "authorization_code".to_owned(),
                    token_lifetime_seconds: default_token_lifetime(),
                    permissions: Vec::new(),
                },
            ],
            secondary_presences: vec![
                SecondaryPresenceSeed {
                    id: FOCUS_TIME.to_owned(),
                    label: "Focus Time".to_owned(),
                    system_presence: "Busy".to_owned(),
                    deactivated: false,
                },
                SecondaryPresenceSeed {
                    id: AWAY_FROM_KEYBOARD.to_owned(),
                    label: "Away From Keyboard V2".to_owned(),
                    system_presence: "Away".to_owned(),
                    deactivated: false,
                },
            ],
            business_units: vec![BusinessUnitSeed {
                id: DEMO_BUSINESS_UNIT.to_owned(),
                name: "Demo Contact Centre".to_owned(),
                time_zone: default_time_zone(),
                management_units: vec![DEMO_MANAGEMENT_UNIT.to_owned()],
                activity_codes: default_activity_codes(),
                schedule_search: ScheduleSearchMode::Complete,
            }],
            groups: vec![GroupSeed {
                id: ROSTER_GROUP.to_owned(),
                name: "Presence Autopilot agents".to_owned(),
                member_ids: DEMO_AGENTS
                    .iter()
                    .map(|(id, _, _)| (*id).to_owned())
                    .collect(),
            }],
            users,
        }
    }
}
