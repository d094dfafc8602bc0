//! The contact-centre platform in memory: presences with Genesys's compare-and-set meaning,
//! routing statuses, users by e-mail, the org's presence definitions and published shifts. Each
//! call is counted, and the next call of a kind can be made to fail, so the use cases' failure
//! paths are tested without the simulator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::lock;
use crate::clock::{Clock, Deadline};
use crate::decide::{ShiftAt, ShiftView};
use crate::model::{
    PresenceDefinition, PresenceDefinitionId, PresenceSnapshot, RoutingStatus, SnapshotTag,
    SystemPresence, UserId,
};
use crate::ports::{
    CasOutcome, PlatformError, PresenceApi, PresenceCatalog, RoutingStatuses, ShiftSource,
    UserDirectory,
};
use crate::state::PresenceRef;

/// The calls a test can count or make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlatformCall {
    Presence,
    Presences,
    CompareAndSet,
    SetPresences,
    RoutingStatuses,
    UserByEmail,
    PresenceDefinitions,
    Shifts,
    GroupMembers,
    ManagementUnit,
}

#[derive(Debug, Default)]
struct Platform {
    presences: HashMap<UserId, PresenceSnapshot>,
    routing: HashMap<UserId, RoutingStatus>,
    emails: HashMap<String, UserId>,
    shifts: HashMap<UserId, ShiftView>,
    zones: HashMap<UserId, chrono_tz::Tz>,
    groups: HashMap<String, std::collections::HashSet<UserId>>,
    units: HashMap<UserId, String>,
    calls: HashMap<PlatformCall, usize>,
    failures: HashMap<PlatformCall, Vec<PlatformError>>,
}

/// Genesys in memory. Definitions: the primary ones of each system presence (id
/// `def-<presence>`) and the secondary `Focus Time` (Busy), which the default policy names.
#[derive(Debug, Clone)]
pub struct FakePlatform {
    inner: Arc<Mutex<Platform>>,
    clock: Arc<dyn Clock>,
    read_gate: Arc<Mutex<Option<Arc<ReadGate>>>>,
}

/// Holds every single-user presence read until opened, counting the reads held at once: a test
/// sees whether calls overlap by a signal, not by timing.
#[derive(Debug)]
pub struct ReadGate {
    held: tokio::sync::watch::Sender<usize>,
    open: tokio::sync::watch::Sender<bool>,
}

impl ReadGate {
    /// Returns once `count` reads are held at the same time.
    pub async fn until_held(&self, count: usize) {
        let mut held = self.held.subscribe();
        let _ = held.wait_for(|now| *now >= count).await;
    }

    /// Lets every held read (and every later one) through.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    async fn pass(&self) {
        self.held.send_modify(|now| *now += 1);
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        self.held.send_modify(|now| *now -= 1);
    }
}

impl FakePlatform {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::default(),
            clock,
            read_gate: Arc::default(),
        }
    }

    /// From now on, single-user presence reads wait at the returned gate.
    pub fn hold_presence_reads(&self) -> Arc<ReadGate> {
        let gate = Arc::new(ReadGate {
            held: tokio::sync::watch::Sender::new(0),
            open: tokio::sync::watch::Sender::new(false),
        });
        *lock(&self.read_gate) = Some(gate.clone());
        gate
    }

    /// The definition id of a system presence's primary definition.
    pub fn definition(system: &SystemPresence) -> PresenceDefinitionId {
        let name = system.rest_name().to_ascii_lowercase();
        PresenceDefinitionId::parse(&format!("def-{name}")).expect("a non-empty id")
    }

    /// The secondary `Focus Time` definition.
    pub fn focus_time() -> PresenceDefinitionId {
        PresenceDefinitionId::parse("def-focus-time").expect("a non-empty id")
    }

    /// A user with a presence (set now), a routing status and optionally an e-mail.
    pub fn add_user(
        &self,
        user: &UserId,
        system: SystemPresence,
        routing: RoutingStatus,
        email: Option<&str>,
    ) {
        let snapshot = self.snapshot(Self::definition(&system), system, String::new());
        let mut platform = lock(&self.inner);
        platform.presences.insert(user.clone(), snapshot);
        platform.routing.insert(user.clone(), routing);
        if let Some(email) = email {
            platform.emails.insert(email.to_owned(), user.clone());
        }
    }

    /// Someone else (the agent, a supervisor) sets the presence.
    pub fn set_by_hand(&self, user: &UserId, system: SystemPresence, message: &str) {
        let snapshot = self.snapshot(Self::definition(&system), system, message.to_owned());
        lock(&self.inner).presences.insert(user.clone(), snapshot);
    }

    pub fn set_routing(&self, user: &UserId, routing: RoutingStatus) {
        lock(&self.inner).routing.insert(user.clone(), routing);
    }

    /// The zone of the user's WFM business unit, as the schedule search gives it.
    pub fn set_zone(&self, user: &UserId, zone: chrono_tz::Tz) {
        lock(&self.inner).zones.insert(user.clone(), zone);
    }

    /// Puts `user` in the Genesys group `group`.
    pub fn join_group(&self, group: &str, user: &UserId) {
        lock(&self.inner)
            .groups
            .entry(group.to_owned())
            .or_default()
            .insert(user.clone());
    }

    pub fn set_management_unit(&self, user: &UserId, unit: &str) {
        lock(&self.inner)
            .units
            .insert(user.clone(), unit.to_owned());
    }

    pub fn set_shift(&self, user: &UserId, shift: ShiftView) {
        lock(&self.inner).shifts.insert(user.clone(), shift);
    }

    pub fn current(&self, user: &UserId) -> Option<PresenceSnapshot> {
        lock(&self.inner).presences.get(user).cloned()
    }

    /// How many calls of this kind were made.
    pub fn calls(&self, call: PlatformCall) -> usize {
        lock(&self.inner).calls.get(&call).copied().unwrap_or(0)
    }

    /// The next call of this kind fails with `error` (queued: several fail in order).
    pub fn fail_next(&self, call: PlatformCall, error: PlatformError) {
        let mut platform = lock(&self.inner);
        platform.failures.entry(call).or_default().push(error);
    }

    fn snapshot(
        &self,
        definition_id: PresenceDefinitionId,
        system_presence: SystemPresence,
        message: String,
    ) -> PresenceSnapshot {
        PresenceSnapshot {
            definition_id,
            system_presence,
            message,
            modified_date: self.clock.now(),
        }
    }

    /// Counts the call and answers its queued failure, if any.
    fn enter(&self, call: PlatformCall) -> Result<(), PlatformError> {
        let mut platform = lock(&self.inner);
        *platform.calls.entry(call).or_default() += 1;
        match platform.failures.get_mut(&call) {
            Some(queued) if !queued.is_empty() => Err(queued.remove(0)),
            _ => Ok(()),
        }
    }

    fn system_of(definition: &PresenceDefinitionId) -> SystemPresence {
        if *definition == Self::focus_time() {
            return SystemPresence::Busy;
        }
        SYSTEM_PRESENCES
            .iter()
            .find(|system| Self::definition(system) == *definition)
            .cloned()
            .unwrap_or_else(|| SystemPresence::Other(definition.as_str().to_owned()))
    }

    /// Writes `to`, with a modified date after the one it replaces (Genesys's tag moves on).
    fn write(&self, platform: &mut Platform, user: &UserId, to: &PresenceRef) -> PresenceSnapshot {
        let mut after = self.snapshot(
            to.definition_id.clone(),
            Self::system_of(&to.definition_id),
            to.message.clone(),
        );
        if let Some(before) = platform.presences.get(user)
            && after.modified_date <= before.modified_date
        {
            after.modified_date = before.modified_date + chrono::Duration::milliseconds(1);
        }
        platform.presences.insert(user.clone(), after.clone());
        after
    }
}

const SYSTEM_PRESENCES: [SystemPresence; 10] = [
    SystemPresence::Available,
    SystemPresence::Away,
    SystemPresence::Busy,
    SystemPresence::Offline,
    SystemPresence::Idle,
    SystemPresence::OnQueue,
    SystemPresence::Meal,
    SystemPresence::Training,
    SystemPresence::Meeting,
    SystemPresence::Break,
];

fn unknown(user: &UserId) -> PlatformError {
    PlatformError::Refused {
        message: format!("404: no user {user}"),
    }
}

#[async_trait]
impl PresenceApi for FakePlatform {
    async fn presence(
        &self,
        user: &UserId,
        _deadline: Deadline,
    ) -> Result<PresenceSnapshot, PlatformError> {
        let gate = lock(&self.read_gate).clone();
        if let Some(gate) = gate {
            gate.pass().await;
        }
        self.enter(PlatformCall::Presence)?;
        self.current(user).ok_or_else(|| unknown(user))
    }

    async fn presences(
        &self,
        users: &[UserId],
        _deadline: Deadline,
    ) -> Result<Vec<(UserId, PresenceSnapshot)>, PlatformError> {
        self.enter(PlatformCall::Presences)?;
        let platform = lock(&self.inner);
        Ok(users
            .iter()
            .filter_map(|user| Some((user.clone(), platform.presences.get(user)?.clone())))
            .collect())
    }

    async fn compare_and_set(
        &self,
        user: &UserId,
        expected: &SnapshotTag,
        to: &PresenceRef,
        _seen: Option<&PresenceSnapshot>,
        _deadline: Deadline,
    ) -> Result<CasOutcome, PlatformError> {
        self.enter(PlatformCall::CompareAndSet)?;
        let mut platform = lock(&self.inner);
        let before = platform
            .presences
            .get(user)
            .cloned()
            .ok_or_else(|| unknown(user))?;
        if before.tag() != *expected {
            return Ok(CasOutcome::Refused { current: before });
        }
        let after = self.write(&mut platform, user, to);
        Ok(CasOutcome::Applied { before, after })
    }

    async fn set_presences(
        &self,
        changes: &[(UserId, PresenceRef)],
        _deadline: Deadline,
    ) -> Result<Vec<(UserId, PresenceSnapshot)>, PlatformError> {
        self.enter(PlatformCall::SetPresences)?;
        let mut platform = lock(&self.inner);
        let mut written = Vec::new();
        for (user, to) in changes {
            if platform.presences.contains_key(user) {
                written.push((user.clone(), self.write(&mut platform, user, to)));
            }
        }
        Ok(written)
    }
}

#[async_trait]
impl RoutingStatuses for FakePlatform {
    async fn routing_statuses(
        &self,
        users: &[UserId],
        _deadline: Deadline,
    ) -> Result<Vec<(UserId, RoutingStatus)>, PlatformError> {
        self.enter(PlatformCall::RoutingStatuses)?;
        let platform = lock(&self.inner);
        Ok(users
            .iter()
            .filter_map(|user| Some((user.clone(), platform.routing.get(user)?.clone())))
            .collect())
    }
}

#[async_trait]
impl UserDirectory for FakePlatform {
    async fn user_by_email(
        &self,
        email: &str,
        _deadline: Deadline,
    ) -> Result<Option<UserId>, PlatformError> {
        self.enter(PlatformCall::UserByEmail)?;
        Ok(lock(&self.inner).emails.get(email).cloned())
    }
}

#[async_trait]
impl PresenceCatalog for FakePlatform {
    async fn presence_definitions(
        &self,
        _deadline: Deadline,
    ) -> Result<Vec<PresenceDefinition>, PlatformError> {
        self.enter(PlatformCall::PresenceDefinitions)?;
        let primary = SYSTEM_PRESENCES.iter().map(|system| PresenceDefinition {
            id: Self::definition(system).as_str().to_owned(),
            name: None,
            kind: Some("System".to_owned()),
            language_labels: HashMap::new(),
            system_presence: system.clone(),
            deactivated: false,
        });
        let focus = PresenceDefinition {
            id: Self::focus_time().as_str().to_owned(),
            name: None,
            kind: Some("User".to_owned()),
            language_labels: HashMap::from([("en_US".to_owned(), "Focus Time".to_owned())]),
            system_presence: SystemPresence::Busy,
            deactivated: false,
        };
        Ok(primary.chain([focus]).collect())
    }
}

#[async_trait]
impl ShiftSource for FakePlatform {
    async fn shifts_at(
        &self,
        users: &[UserId],
        _at: DateTime<Utc>,
        _deadline: Deadline,
    ) -> Result<HashMap<UserId, ShiftAt>, PlatformError> {
        self.enter(PlatformCall::Shifts)?;
        let platform = lock(&self.inner);
        Ok(users
            .iter()
            .filter_map(|user| {
                let view = *platform.shifts.get(user)?;
                let zone = platform.zones.get(user).copied();
                Some((user.clone(), ShiftAt { view, zone }))
            })
            .collect())
    }
}

#[async_trait]
impl crate::ports::TeamDirectory for FakePlatform {
    async fn group_members(
        &self,
        group: &str,
        _deadline: Deadline,
    ) -> Result<Arc<std::collections::HashSet<UserId>>, PlatformError> {
        self.enter(PlatformCall::GroupMembers)?;
        Ok(Arc::new(
            lock(&self.inner)
                .groups
                .get(group)
                .cloned()
                .unwrap_or_default(),
        ))
    }

    async fn management_unit(
        &self,
        user: &UserId,
        _deadline: Deadline,
    ) -> Result<Option<String>, PlatformError> {
        self.enter(PlatformCall::ManagementUnit)?;
        Ok(lock(&self.inner).units.get(user).cloned())
    }
}
