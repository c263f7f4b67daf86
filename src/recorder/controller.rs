//! Every room the gateway's own participant is in, and why: recorded by a
//! rule, recorded or relayed because the control API asked, on our own
//! signaling server or on a remote rtc.io server.
//!
//! One task owns all of it and is the only writer: it watches our
//! registry's membership, takes requests from the API, hears what each room
//! task reports (joined with its own socket id, peers connected and gone,
//! caps reached, ended with an outcome — see [`RoomReport`]), and reconciles —
//! joining a room (one participant per room, feeding a [`RoomRecorder`])
//! when something should happen in it, changing what a running room does
//! (start/stop recording, start/stop relay) through [`RoomCommand`]s, and
//! leaving a room once it has been empty for `empty_room_grace_secs`.
//!
//! Room tasks share no state with it. Every job has its own [`JobId`] and
//! every report carries it, so a job that was replaced (a room left and
//! joined again) can never change or remove its successor with a late report.
//!
//! Which rooms of our own server get a participant by rule, and when one is
//! given up early, is [`Admission`]'s decision (dwell time, caps, rooms
//! nobody answers in); this task feeds it the registry and the rooms' peers
//! and carries out what it decides.
//!
//! API decisions for a room of our own server (start/stop recording,
//! relay) override the rules until the room empties. A recording that hits
//! its size/time cap is stopped and stays stopped until the room empties
//! or the API starts it again.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::admission::{Action as AdmissionAction, Admission, AdmissionConfig, Candidate, Input as AdmissionInput};
use super::end_reason::EndReason;
use super::naming::rfc3339;
use super::room::{RecordSpec, RelaySpec, RoomPlan, RoomRecorder};
use super::rules::{Planner, RecordChoice};
use super::runner::{Outcome, RoomCommand, RoomNotice, RoomReport, run_room};
use super::status::{OutputHealth, RelayState, RoomStatus};
use super::stream::OutputSettings;
use crate::config::{Config, OutputMode};
use crate::media::templates::TemplateKind;
use crate::metrics::{MediaMetrics, ParticipantMetrics};
use crate::participant::events::MediaKind;
use crate::participant::link::LinkConfig;
use crate::participant::room::{Participant, ParticipantConfig};
use crate::signaling::Signaling;

/// Wait this long after a membership change before reconciling (joins come in bursts).
const DEBOUNCE: Duration = Duration::from_millis(100);
/// A room whose participant was refused is not retried before this.
const REFUSED_BACKOFF: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_secs(1);
const FREE_SPACE_EVERY: Duration = Duration::from_secs(5);
/// After room tasks ended, freed heap memory is handed back to the OS at most this often.
const RELEASE_MEMORY_EVERY: Duration = Duration::from_secs(5);

/// How the gateway's participant reaches our own server.
#[derive(Debug, Clone)]
pub struct SelfJoin {
    pub server_url: String,
    pub name: String,
    pub token: Option<String>,
    pub channels: Vec<String>,
    pub udp_bind: std::net::IpAddr,
}

/// A room: of our own server (`server: None`) or of a remote rtc.io server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomKey {
    pub server: Option<String>,
    pub room: String,
}

/// How to join a remote room.
#[derive(Debug, Clone)]
pub struct RemoteJoin {
    pub password: Option<String>,
    /// Display name; default: `recording.participant_name`.
    pub name: Option<String>,
}

/// Why a request was refused. `code()` is the API's stable error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("room {0:?} has no members on this server")]
    RoomNotFound(String),
    #[error("room {0:?} is not being recorded")]
    NotRecording(String),
    #[error("room {0:?} is not being relayed")]
    NotRelaying(String),
    #[error("{0}")]
    TemplateNotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

impl ControlError {
    pub fn code(&self) -> &'static str {
        match self {
            ControlError::RoomNotFound(_) => "room_not_found",
            ControlError::NotRecording(_) => "not_recording",
            ControlError::NotRelaying(_) => "not_relaying",
            ControlError::TemplateNotFound(_) => "template_not_found",
            ControlError::Invalid(_) => "invalid_request",
            ControlError::ShuttingDown => "unavailable",
        }
    }
}

/// A member of one of our rooms.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub id: String,
    pub name: String,
    /// The gateway's own participant.
    pub gateway: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordingView {
    pub state: &'static str,
    pub by: String,
    pub template: Option<String>,
    pub started_at: String,
    /// Bytes written by this recording of the room so far.
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RelayView {
    pub state: RelayState,
    /// The RTMP URL with its stream key redacted.
    pub url: String,
    pub peer: Option<String>,
    pub event: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamView {
    pub peer: PeerView,
    pub stream_id: String,
    pub event: String,
    pub kinds: Vec<MediaKind>,
    pub recording: bool,
    /// The recording file (in the room's directory), while one is written.
    pub file: Option<String>,
    pub relayed: bool,
}

/// A room of our own server.
#[derive(Debug, Clone, Serialize)]
pub struct RoomView {
    pub room: String,
    pub members: Vec<MemberView>,
    pub recording: Option<RecordingView>,
    pub relay: Option<RelayView>,
    pub streams: Vec<StreamView>,
}

/// A room the gateway's participant is in (ours or remote).
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub server: Option<String>,
    pub room: String,
    /// `joining` until the server accepted us, then `joined`; a remote
    /// session that ended by itself stays listed for a while as `refused`
    /// (wrong password, bad token, ...) or `left` (the room stayed empty).
    pub state: &'static str,
    /// Why a session ended by itself.
    pub error: Option<String>,
    pub recording: Option<RecordingView>,
    pub relay: Option<RelayView>,
    pub streams: Vec<StreamView>,
}

/// What to change.
#[derive(Debug)]
pub enum Change {
    StartRecording(RecordChoice),
    StopRecording,
    StartRelay(RelaySpec),
    StopRelay,
}

enum Request {
    Rooms(oneshot::Sender<Vec<RoomView>>),
    Sessions(oneshot::Sender<Vec<SessionView>>),
    ActiveFiles(oneshot::Sender<HashSet<PathBuf>>),
    Change {
        key: RoomKey,
        remote: Option<RemoteJoin>,
        change: Change,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
}

/// The API's handle on the controller. Cheap to clone.
#[derive(Clone)]
pub struct ControlHandle {
    requests: mpsc::UnboundedSender<Request>,
}

impl ControlHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, ControlError> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(make(tx)).map_err(|_| ControlError::ShuttingDown)?;
        rx.await.map_err(|_| ControlError::ShuttingDown)
    }

    /// Rooms of our own server that have members.
    pub async fn rooms(&self) -> Result<Vec<RoomView>, ControlError> {
        self.ask(Request::Rooms).await
    }

    /// Every room the gateway's participant is in.
    pub async fn sessions(&self) -> Result<Vec<SessionView>, ControlError> {
        self.ask(Request::Sessions).await
    }

    /// Files being written right now.
    pub async fn active_files(&self) -> Result<HashSet<PathBuf>, ControlError> {
        self.ask(Request::ActiveFiles).await
    }

    /// Start or stop recording or relaying a room (`remote` is required for a remote room's start).
    pub async fn change(&self, key: RoomKey, remote: Option<RemoteJoin>, change: Change) -> Result<(), ControlError> {
        self.ask(|reply| Request::Change { key, remote, change, reply }).await?
    }
}

/// The running controller.
pub struct Controller {
    cancel: CancellationToken,
    task: JoinHandle<()>,
    handle: ControlHandle,
}

/// What the API decided for a room of our own server (until it empties).
#[derive(Debug, Default, Clone)]
struct Overrides {
    /// Some(true): record (as `asked`), Some(false): do not.
    recording: Option<bool>,
    asked: RecordChoice,
    relay: Option<Option<RelaySpec>>,
}

/// How long a remote session that ended by itself stays listed.
const ENDED_LISTED_FOR: Duration = Duration::from_secs(300);

/// Which job a report is about: a fresh one for every job ever started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct JobId(u64);

/// A room task's report, with who sent it.
struct Report {
    job: JobId,
    key: RoomKey,
    report: RoomReport,
}

struct Job {
    id: JobId,
    commands: mpsc::UnboundedSender<RoomCommand>,
    status: RoomStatus,
    recording: Option<RecordSpec>,
    recording_started_at: Option<String>,
    relay: Option<RelaySpec>,
    /// Since when nobody but us is in the room.
    empty_since: Option<Instant>,
    /// The server accepted our participant.
    joined: bool,
    /// Peers connected to our participant (remote rooms: their emptiness).
    peers: HashSet<String>,
}

struct State {
    signaling: Arc<Signaling>,
    planner: Planner,
    join: SelfJoin,
    settings: OutputSettings,
    participant_metrics: ParticipantMetrics,
    grace: Duration,
    /// Socket ids of our own participants on our server (they do not count
    /// as members), with the job each belongs to; kept until that job ended.
    own_ids: HashMap<String, JobId>,
    jobs: HashMap<RoomKey, Job>,
    /// Every room task still running (jobs, and jobs told to stop that are finalising).
    tasks: HashMap<JobId, JoinHandle<()>>,
    next_job: u64,
    /// Remote sessions that ended by themselves: when, state, why.
    ended: HashMap<RoomKey, (Instant, &'static str, String)>,
    overrides: HashMap<String, Overrides>,
    refused_until: HashMap<RoomKey, Instant>,
    reports_tx: mpsc::UnboundedSender<Report>,
    last_free_space: Option<Instant>,
    admission: Admission,
    /// Room tasks ended since freed memory was last handed back to the OS.
    ended_since_release: usize,
    last_release: Option<Instant>,
}

impl Controller {
    pub fn start(
        signaling: Arc<Signaling>,
        planner: Planner,
        join: SelfJoin,
        settings: OutputSettings,
        participant_metrics: ParticipantMetrics,
        config: &Config,
    ) -> Controller {
        let cancel = CancellationToken::new();
        let (requests, requests_rx) = mpsc::unbounded_channel();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let state = State::new(signaling, planner, join, settings, participant_metrics, config, reports_tx);
        let task = tokio::spawn(state.run(cancel.clone(), requests_rx, reports_rx));
        Controller { cancel, task, handle: ControlHandle { requests } }
    }

    pub fn handle(&self) -> ControlHandle {
        self.handle.clone()
    }

    /// Finalise every recording and leave every room.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

impl State {
    fn new(
        signaling: Arc<Signaling>,
        planner: Planner,
        join: SelfJoin,
        settings: OutputSettings,
        participant_metrics: ParticipantMetrics,
        config: &Config,
        reports_tx: mpsc::UnboundedSender<Report>,
    ) -> State {
        State {
            signaling,
            planner,
            join,
            settings,
            participant_metrics,
            grace: Duration::from_secs(config.recording.empty_room_grace_secs),
            own_ids: HashMap::new(),
            jobs: HashMap::new(),
            tasks: HashMap::new(),
            next_job: 0,
            ended: HashMap::new(),
            overrides: HashMap::new(),
            refused_until: HashMap::new(),
            reports_tx,
            last_free_space: None,
            admission: Admission::new(admission_config(&config.recording)),
            ended_since_release: 0,
            last_release: None,
        }
    }

    async fn run(
        mut self,
        cancel: CancellationToken,
        mut requests: mpsc::UnboundedReceiver<Request>,
        mut reports: mpsc::UnboundedReceiver<Report>,
    ) {
        let mut changes = self.signaling.watch_membership();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.admission.next_deadline();
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = sleep_until(deadline) => self.reconcile(),
                changed = changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    tokio::time::sleep(DEBOUNCE).await;
                    changes.borrow_and_update();
                    self.reconcile();
                }
                Some(request) = requests.recv() => self.on_request(request),
                Some(report) = reports.recv() => self.on_report(report),
                _ = tick.tick() => {
                    self.reconcile();
                    self.update_gauges();
                    self.release_memory();
                }
            }
        }
        for (_, job) in self.jobs.drain() {
            let _ = job.commands.send(RoomCommand::Stop(EndReason::Shutdown));
        }
        // Every room task, including those already finalising, finishes its files.
        futures_util::future::join_all(self.tasks.drain().map(|(_, task)| task)).await;
        self.settings.metrics.rooms_recorded.set(0);
        self.settings.metrics.recording_data_age_seconds.set(0.0);
        self.settings.metrics.keyframe_wait_seconds.set(0.0);
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Rooms(reply) => {
                let _ = reply.send(self.room_views());
            }
            Request::Sessions(reply) => {
                let _ = reply.send(self.session_views());
            }
            Request::ActiveFiles(reply) => {
                let files = self
                    .jobs
                    .values()
                    .flat_map(|j| j.status.streams())
                    .filter_map(|s| s.recording.map(|r| r.path))
                    .collect();
                let _ = reply.send(files);
            }
            Request::Change { key, remote, change, reply } => {
                let result = match &key.server {
                    None => self.change_local(&key.room, change),
                    Some(_) => self.change_remote(key, remote, change),
                };
                let _ = reply.send(result);
            }
        }
    }

    fn check_template(&self, name: Option<&str>, kind: TemplateKind) -> Result<(), ControlError> {
        let Some(name) = name else { return Ok(()) };
        match self.settings.templates.get(name) {
            Ok(t) if t.kind == kind => Ok(()),
            Ok(_) => Err(ControlError::TemplateNotFound(format!("template {name:?} is not a {kind:?} template"))),
            Err(e) => Err(ControlError::TemplateNotFound(e.to_string())),
        }
    }

    /// A template asked for must be of the kind the mode records (a composite's, or a stream's; either for `both`).
    fn check_record_choice(&self, room: &str, asked: &RecordChoice) -> Result<(), ControlError> {
        self.check_template(asked.template.as_deref(), TemplateKind::Record)?;
        let Some(name) = asked.template.as_deref() else { return Ok(()) };
        let mode = asked.mode.unwrap_or(self.planner.rule(room).mode);
        let composite = self.settings.templates.get(name).is_ok_and(|t| t.composite);
        match mode {
            OutputMode::Streams if composite => {
                Err(ControlError::TemplateNotFound(format!("template {name:?} is a composite template (mode \"composite\")")))
            }
            OutputMode::Composite if !composite => {
                Err(ControlError::TemplateNotFound(format!("template {name:?} is not a composite template")))
            }
            _ => Ok(()),
        }
    }

    fn check_relay(&self, spec: &RelaySpec) -> Result<(), ControlError> {
        if spec.mode == OutputMode::Both {
            return Err(ControlError::Invalid("a relay's mode is \"streams\" or \"composite\"".into()));
        }
        if let Some(name) = spec.template.as_deref()
            && let Ok(t) = self.settings.templates.get(name)
            && t.composite != (spec.mode == OutputMode::Composite)
        {
            let which = if t.composite { "a composite" } else { "a stream's" };
            return Err(ControlError::TemplateNotFound(format!("template {name:?} is {which} template, and the mode is {:?}", spec.mode.as_str())));
        }
        let ok = url::Url::parse(&spec.url).is_ok_and(|u| matches!(u.scheme(), "rtmp" | "rtmps") && u.host().is_some());
        if !ok {
            return Err(ControlError::Invalid(format!("url {:?} is not an rtmp:// or rtmps:// URL", spec.url)));
        }
        self.check_template(spec.template.as_deref(), TemplateKind::Relay)
    }

    fn change_local(&mut self, room: &str, change: Change) -> Result<(), ControlError> {
        if !self.occupied_rooms().contains_key(room) {
            return Err(ControlError::RoomNotFound(room.to_string()));
        }
        let (recording, relay) = self.desired_local(room);
        match &change {
            Change::StartRecording(asked) => self.check_record_choice(room, asked)?,
            Change::StartRelay(spec) => self.check_relay(spec)?,
            Change::StopRecording if recording.is_none() => return Err(ControlError::NotRecording(room.to_string())),
            Change::StopRelay if relay.is_none() => return Err(ControlError::NotRelaying(room.to_string())),
            Change::StopRecording | Change::StopRelay => {}
        }
        let overrides = self.overrides.entry(room.to_string()).or_default();
        match change {
            Change::StartRecording(asked) => {
                overrides.recording = Some(true);
                overrides.asked = asked;
            }
            Change::StopRecording => overrides.recording = Some(false),
            Change::StartRelay(spec) => overrides.relay = Some(Some(spec)),
            Change::StopRelay => overrides.relay = Some(None),
        }
        self.reconcile();
        Ok(())
    }

    fn change_remote(&mut self, key: RoomKey, remote: Option<RemoteJoin>, change: Change) -> Result<(), ControlError> {
        let (mut recording, mut relay) =
            self.jobs.get(&key).map(|j| (j.recording.clone(), j.relay.clone())).unwrap_or_default();
        match change {
            Change::StartRecording(asked) => {
                self.check_record_choice(&key.room, &asked)?;
                recording = Some(self.planner.record_spec(&key.room, "api", asked));
            }
            Change::StopRecording => {
                if recording.take().is_none() {
                    return Err(ControlError::NotRecording(key.room));
                }
            }
            Change::StartRelay(spec) => {
                self.check_relay(&spec)?;
                relay = Some(spec);
            }
            Change::StopRelay => {
                if relay.take().is_none() {
                    return Err(ControlError::NotRelaying(key.room));
                }
            }
        }
        if self.jobs.contains_key(&key) {
            if recording.is_none() && relay.is_none() {
                self.stop_job(&key, EndReason::Stopped);
            } else {
                self.update_job(&key, recording, relay, EndReason::Stopped);
            }
            return Ok(());
        }
        let remote = remote.unwrap_or(RemoteJoin { password: None, name: None });
        let server = key.server.clone().unwrap_or_default();
        let ok = url::Url::parse(&server).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            return Err(ControlError::Invalid(format!("server {server:?} is not an http:// or https:// URL")));
        }
        let plan = RoomPlan {
            server: key.server.clone(),
            room: key.room.clone(),
            recording,
            relay,
            log_channels: self.planner.rule(&key.room).channels,
        };
        let link = LinkConfig {
            server,
            room: key.room.clone(),
            name: remote.name.unwrap_or_else(|| self.join.name.clone()),
            password: remote.password,
            token: None,
        };
        self.ended.remove(&key);
        self.start_job(key, link, plan);
        Ok(())
    }

    /// Apply a room task's report. Only the job still in charge of its room
    /// changes the room's state; a replaced job's late reports change nothing
    /// but what is that job's own (its socket ids, its task).
    fn on_report(&mut self, Report { job: id, key, report }: Report) {
        let current = self.jobs.get(&key).is_some_and(|j| j.id == id);
        match report {
            RoomReport::Joined { own_id } => {
                if key.server.is_none() {
                    self.own_ids.insert(own_id, id);
                }
                if let Some(job) = self.jobs.get_mut(&key).filter(|j| j.id == id) {
                    job.joined = true;
                }
            }
            RoomReport::PeerConnected { peer } => {
                if let Some(job) = self.jobs.get_mut(&key).filter(|j| j.id == id) {
                    job.peers.insert(peer);
                    self.peers_changed(&key);
                }
            }
            RoomReport::PeerDisconnected { peer } => {
                if let Some(job) = self.jobs.get_mut(&key).filter(|j| j.id == id) {
                    job.peers.remove(&peer);
                    self.peers_changed(&key);
                }
            }
            RoomReport::SignalingLost => {
                if let Some(job) = self.jobs.get_mut(&key).filter(|j| j.id == id) {
                    job.peers.clear();
                    self.peers_changed(&key);
                }
            }
            RoomReport::Notice(notice) if current => self.on_notice(key, notice),
            RoomReport::Notice(_) => {}
            RoomReport::Ended(outcome) => self.on_ended(id, key, current, outcome),
        }
    }

    /// A room task finished: forget its socket ids and its task; if it was
    /// still in charge of its room (it ended by itself: refused, remote server
    /// gone), the room has no job any more.
    fn on_ended(&mut self, id: JobId, key: RoomKey, current: bool, outcome: Option<Outcome>) {
        self.own_ids.retain(|_, job| *job != id);
        self.tasks.remove(&id);
        self.ended_since_release += 1;
        if let Some(Outcome::Refused(_)) = &outcome {
            self.refused_until.insert(key.clone(), Instant::now() + REFUSED_BACKOFF);
        }
        if !current {
            return;
        }
        self.jobs.remove(&key);
        if key.server.is_none() {
            self.admission.handle(AdmissionInput::Ended { room: &key.room }, Instant::now());
        }
        if key.server.is_some() {
            let (state, why) = match outcome {
                Some(Outcome::Refused(reason)) => ("refused", reason),
                Some(Outcome::Stopped(reason)) => ("left", reason.to_string()),
                None => ("left", "the session task failed".to_string()),
            };
            self.ended.insert(key, (Instant::now(), state, why));
        }
        self.settings.metrics.rooms_recorded.set(self.jobs.len() as i64);
    }

    fn on_notice(&mut self, key: RoomKey, notice: RoomNotice) {
        let RoomNotice::CapReached(_) = notice;
        if let Some(job) = self.jobs.get_mut(&key) {
            // The room stopped recording itself; remember it.
            job.recording = None;
            job.recording_started_at = None;
        }
        if key.server.is_none() {
            self.overrides.entry(key.room.clone()).or_default().recording = Some(false);
        } else if self.jobs.get(&key).is_some_and(|j| j.relay.is_none()) {
            self.stop_job(&key, EndReason::Stopped);
        }
    }

    /// A local room's participant has more or fewer connected peers: tell
    /// the admission policy, and let a waiting room in if that freed a slot.
    fn peers_changed(&mut self, key: &RoomKey) {
        let Some(job) = self.jobs.get(key).filter(|_| key.server.is_none()) else { return };
        let connected = job.peers.len();
        self.admission.handle(AdmissionInput::Peers { room: &key.room, connected }, Instant::now());
        if self.admission.blocked() > 0 {
            self.reconcile();
        }
    }

    /// Hand freed heap memory back to the OS once room tasks have ended (at
    /// most every few seconds). Without it glibc's malloc keeps what a burst
    /// of rooms used: measured, 62.8 MiB before a room flood, 284.5 MiB after
    /// it with every room left, 70.8 MiB after `malloc_trim` (README, "Room floods").
    fn release_memory(&mut self) {
        let now = Instant::now();
        if self.ended_since_release == 0
            || self.last_release.is_some_and(|t| now.duration_since(t) < RELEASE_MEMORY_EVERY)
        {
            return;
        }
        self.ended_since_release = 0;
        self.last_release = Some(now);
        tokio::task::spawn_blocking(crate::memory::release_freed_memory);
    }

    /// Rooms of our server with at least one member that is not us, with those members' socket ids.
    fn occupied_rooms(&self) -> HashMap<String, Vec<String>> {
        let own = &self.own_ids;
        self.signaling
            .rooms_overview()
            .into_iter()
            .filter_map(|(room, members)| {
                let others: Vec<String> =
                    members.into_iter().map(|(id, _)| id).filter(|id| !own.contains_key(id)).collect();
                (!others.is_empty()).then_some((room, others))
            })
            .collect()
    }

    /// The API asked for something in this room (it skips the admission policy).
    fn forced(&self, room: &str) -> bool {
        self.overrides.get(room).is_some_and(|o| o.recording == Some(true) || matches!(o.relay, Some(Some(_))))
    }

    /// What should happen in a room of ours: rules, then the API's overrides.
    fn desired_local(&self, room: &str) -> (Option<RecordSpec>, Option<RelaySpec>) {
        let o = self.overrides.get(room).cloned().unwrap_or_default();
        let record = o.recording.unwrap_or_else(|| self.planner.rule(room).auto);
        let by = if o.recording == Some(true) { "api" } else { "rule" };
        let recording = record.then(|| self.planner.record_spec(room, by, o.asked.clone()));
        let relay = o.relay.unwrap_or_else(|| self.planner.relay(room));
        (recording, relay)
    }

    fn reconcile(&mut self) {
        let now = Instant::now();
        self.ended.retain(|_, (at, _, _)| now.duration_since(*at) < ENDED_LISTED_FOR);
        self.refused_until.retain(|_, until| *until > now);
        let occupied = self.occupied_rooms();
        // Rooms of ours: running jobs follow what is wanted; the admission
        // policy decides which of the rest get a participant.
        let mut candidates = Vec::new();
        for (room, members) in &occupied {
            let key = RoomKey { server: None, room: room.clone() };
            let (recording, relay) = self.desired_local(room);
            let wanted = recording.is_some() || relay.is_some();
            if let Some(job) = self.jobs.get_mut(&key) {
                job.empty_since = None;
            }
            if self.jobs.contains_key(&key) {
                if !wanted {
                    self.stop_job(&key, EndReason::Stopped);
                    continue;
                }
                self.update_job(&key, recording, relay, EndReason::Stopped);
            } else if !wanted || self.refused_until.contains_key(&key) {
                continue;
            }
            candidates.push(Candidate { room: room.clone(), members: members.clone(), forced: self.forced(room) });
        }
        let actions = self.admission.handle(AdmissionInput::Rooms(&candidates), now);
        self.apply_admission(actions);
        // Empty rooms (ours: by the registry; remote: by connected peers) end after the grace period.
        let mut expired = Vec::new();
        for (key, job) in self.jobs.iter_mut() {
            let empty = match key.server {
                None => !occupied.contains_key(&key.room),
                Some(_) => job.peers.is_empty(),
            };
            if !empty {
                job.empty_since = None;
                continue;
            }
            let since = *job.empty_since.get_or_insert(now);
            if now.duration_since(since) >= self.grace {
                expired.push(key.clone());
            }
        }
        for key in expired {
            tracing::info!(room = %key.room, server = ?key.server, "room is empty; finalising its recordings and leaving");
            self.stop_job(&key, EndReason::RoomEmpty);
        }
        // The API's decisions last until the room empties.
        let jobs = &self.jobs;
        self.overrides.retain(|room, _| {
            occupied.contains_key(room) || jobs.contains_key(&RoomKey { server: None, room: room.clone() })
        });
        self.settings.metrics.rooms_recorded.set(self.jobs.len() as i64);
        self.settings.metrics.rooms_waiting.set(self.admission.blocked() as i64);
    }

    /// Carry out the admission policy's decisions.
    fn apply_admission(&mut self, actions: Vec<AdmissionAction>) {
        for action in actions {
            match action {
                AdmissionAction::Join(room) => self.start_local_job(room),
                AdmissionAction::Leave { room, reason } => {
                    tracing::info!(%room, reason = %reason.end_reason(), "leaving a room by the admission policy");
                    self.stop_job(&RoomKey { server: None, room }, reason.end_reason());
                }
                AdmissionAction::Refused(reason) => {
                    tracing::debug!(reason = reason.as_str(), "room refused by the admission policy");
                    self.settings.metrics.admission_refusals_total.with_label_values(&[reason.as_str()]).inc();
                }
            }
        }
    }

    fn start_local_job(&mut self, room: String) {
        let (recording, relay) = self.desired_local(&room);
        let plan = RoomPlan {
            server: None,
            room: room.clone(),
            recording,
            relay,
            log_channels: self.planner.rule(&room).channels,
        };
        let link = LinkConfig {
            server: self.join.server_url.clone(),
            room: room.clone(),
            name: self.join.name.clone(),
            password: self.signaling.room_password(&room).filter(|p| !p.is_empty()),
            token: self.join.token.clone(),
        };
        let key = RoomKey { server: None, room };
        self.start_job(key.clone(), link, plan);
        if !self.jobs.contains_key(&key) {
            self.admission.handle(AdmissionInput::Ended { room: &key.room }, Instant::now());
        }
    }

    fn update_job(
        &mut self,
        key: &RoomKey,
        recording: Option<RecordSpec>,
        relay: Option<RelaySpec>,
        reason: EndReason,
    ) {
        let Some(job) = self.jobs.get_mut(key) else { return };
        if job.recording != recording {
            if job.recording.is_none() {
                job.recording_started_at = Some(rfc3339(SystemTime::now()));
            } else if recording.is_none() {
                job.recording_started_at = None;
            }
            job.recording = recording.clone();
            let _ = job.commands.send(RoomCommand::SetRecording(recording, reason));
        }
        if job.relay != relay {
            job.relay = relay.clone();
            let _ = job.commands.send(RoomCommand::SetRelay(relay, reason));
        }
    }

    fn stop_job(&mut self, key: &RoomKey, reason: EndReason) {
        if key.server.is_some() && reason == EndReason::RoomEmpty {
            let why = "nobody connected to the gateway in the room for the grace period".to_string();
            self.ended.insert(key.clone(), (Instant::now(), "left", why));
        }
        if let Some(job) = self.jobs.remove(key) {
            let _ = job.commands.send(RoomCommand::Stop(reason));
            // The task finishes in the background; shutdown waits for the rest.
            if key.server.is_none() {
                self.admission.handle(AdmissionInput::Ended { room: &key.room }, Instant::now());
            }
        }
        if key.server.is_none() && reason == EndReason::RoomEmpty {
            self.overrides.remove(&key.room);
        }
    }

    fn start_job(&mut self, key: RoomKey, link: LinkConfig, plan: RoomPlan) {
        let mut channels = self.join.channels.clone();
        for channel in &plan.log_channels {
            if !channels.contains(channel) {
                channels.push(channel.clone());
            }
        }
        let config = ParticipantConfig { link, channels, udp_bind: self.join.udp_bind, ice_servers: Vec::new() };
        let participant = match Participant::start(config, self.participant_metrics.clone()) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(room = %key.room, error = %e, "cannot start the gateway's participant");
                return;
            }
        };
        tracing::info!(room = %key.room, server = ?key.server, recording = plan.recording.is_some(), relay = plan.relay.is_some(), "joining");
        let (recording, relay) = (plan.recording.clone(), plan.relay.clone());
        let recorder = RoomRecorder::new(plan, self.settings.clone());
        let status = recorder.status();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let id = JobId(self.next_job);
        self.next_job += 1;
        let task = tokio::spawn(room_task(RoomTaskContext {
            id,
            key: key.clone(),
            participant,
            recorder,
            commands: commands_rx,
            reports: self.reports_tx.clone(),
        }));
        self.tasks.insert(id, task);
        let job = Job {
            id,
            commands,
            status,
            recording_started_at: recording.as_ref().map(|_| rfc3339(SystemTime::now())),
            recording,
            relay,
            empty_since: None,
            joined: false,
            peers: HashSet::new(),
        };
        self.jobs.insert(key, job);
        self.settings.metrics.rooms_recorded.set(self.jobs.len() as i64);
    }

    fn update_gauges(&mut self) {
        let now = Instant::now();
        let mut health = OutputHealth::default();
        for job in self.jobs.values() {
            job.status.add_health(now, &mut health);
        }
        let m = &self.settings.metrics;
        m.recording_data_age_seconds.set(health.recording_data_age_secs);
        m.keyframe_wait_seconds.set(health.keyframe_wait_secs);
        if self.last_free_space.is_none_or(|t| now.duration_since(t) >= FREE_SPACE_EVERY) {
            self.last_free_space = Some(now);
            if let Some(free) = free_bytes(self.planner.recordings_dir()) {
                m.recordings_free_bytes.set(free as i64);
            }
        }
    }

    fn room_views(&self) -> Vec<RoomView> {
        let own = &self.own_ids;
        let mut rooms: Vec<RoomView> = self
            .signaling
            .rooms_overview()
            .into_iter()
            .filter(|(_, members)| members.iter().any(|(id, _)| !own.contains_key(id)))
            .map(|(room, members)| {
                let job = self.jobs.get(&RoomKey { server: None, room: room.clone() });
                RoomView {
                    members: members
                        .into_iter()
                        .map(|(id, name)| MemberView { gateway: own.contains_key(&id), id, name })
                        .collect(),
                    recording: job.and_then(recording_view),
                    relay: job.and_then(relay_view),
                    streams: job.map(stream_views).unwrap_or_default(),
                    room,
                }
            })
            .collect();
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        rooms
    }

    fn session_views(&self) -> Vec<SessionView> {
        let mut keys: Vec<&RoomKey> = self.jobs.keys().collect();
        keys.sort();
        keys.into_iter()
            .map(|key| {
                let job = &self.jobs[key];
                SessionView {
                    server: key.server.clone(),
                    room: key.room.clone(),
                    state: if job.joined { "joined" } else { "joining" },
                    error: None,
                    recording: recording_view(job),
                    relay: relay_view(job),
                    streams: stream_views(job),
                }
            })
            .chain(self.ended.iter().map(|(key, (_, state, why))| SessionView {
                server: key.server.clone(),
                room: key.room.clone(),
                state,
                error: Some(why.clone()),
                recording: None,
                relay: None,
                streams: Vec::new(),
            }))
            .collect()
    }
}

fn recording_view(job: &Job) -> Option<RecordingView> {
    let spec = job.recording.as_ref()?;
    Some(RecordingView {
        state: "recording",
        by: spec.by.clone(),
        template: spec.template.clone(),
        started_at: job.recording_started_at.clone().unwrap_or_default(),
        bytes: job.status.recorded_bytes(),
    })
}

fn relay_view(job: &Job) -> Option<RelayView> {
    let spec = job.relay.as_ref()?;
    let state = job.status.streams().iter().find_map(|s| s.relay).unwrap_or(RelayState::Starting);
    Some(RelayView {
        state,
        url: crate::redact::stream_key(&spec.url),
        peer: spec.peer.clone(),
        event: spec.event.clone(),
    })
}

fn stream_views(job: &Job) -> Vec<StreamView> {
    job.status
        .streams()
        .into_iter()
        .map(|s| StreamView {
            peer: PeerView { id: s.peer.id, name: s.peer.name },
            stream_id: s.stream_id,
            event: s.event,
            kinds: s.kinds,
            recording: s.recording.is_some(),
            file: s.recording.map(|r| r.file),
            relayed: s.relay.is_some(),
        })
        .collect()
}

struct RoomTaskContext {
    id: JobId,
    key: RoomKey,
    participant: Participant,
    recorder: RoomRecorder,
    commands: mpsc::UnboundedReceiver<RoomCommand>,
    reports: mpsc::UnboundedSender<Report>,
}

/// One room's participant, from joining to leaving. It tells the controller
/// what happens and, last, that it ended (also when the run panicked).
async fn room_task(c: RoomTaskContext) {
    let (id, key, reports) = (c.id, c.key.clone(), c.reports.clone());
    let report = move |report: RoomReport| {
        let _ = reports.send(Report { job: id, key: key.clone(), report });
    };
    let report_events = report.clone();
    let run = run_room(c.participant, c.recorder, c.commands, move |observed| {
        if let Some(r) = RoomReport::of(observed) {
            report_events(r);
        }
    });
    let outcome = match std::panic::AssertUnwindSafe(run).catch_unwind().await {
        Ok((outcome, outputs)) => {
            if let Outcome::Refused(reason) = &outcome {
                tracing::warn!(room = %c.key.room, server = ?c.key.server, %reason, "the gateway's participant was refused");
            }
            tracing::info!(room = %c.key.room, server = ?c.key.server, ?outcome, outputs = outputs.len(), "left the room");
            Some(outcome)
        }
        Err(_) => {
            tracing::error!(room = %c.key.room, server = ?c.key.server, "the room task panicked");
            None
        }
    };
    report(RoomReport::Ended(outcome));
}

/// The admission policy's settings from the configuration.
fn admission_config(r: &crate::config::RecordingConfig) -> AdmissionConfig {
    AdmissionConfig {
        join_after: Duration::from_millis(r.join_after_ms),
        max_rooms: r.max_rooms,
        max_unanswered_rooms: r.max_unanswered_rooms,
        unanswered_leave: (r.unanswered_leave_secs > 0).then(|| Duration::from_secs(r.unanswered_leave_secs)),
    }
}

/// Sleep until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// Free bytes for unprivileged writers on the volume of `dir` (or of its
/// nearest existing ancestor, before the directory is created).
pub fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let mut probe = Some(dir);
    while let Some(p) = probe {
        if let Ok(stat) = nix::sys::statvfs::statvfs(p) {
            return Some(stat.blocks_available() * stat.fragment_size());
        }
        probe = p.parent().filter(|p| !p.as_os_str().is_empty());
    }
    nix::sys::statvfs::statvfs(".").ok().map(|s| s.blocks_available() * s.fragment_size())
}

/// Output settings from the configuration.
pub fn output_settings(
    config: &Config,
    templates: Arc<crate::media::templates::TemplateSet>,
    metrics: MediaMetrics,
    notifier: Option<super::stream::OutputNotifier>,
) -> OutputSettings {
    OutputSettings {
        templates,
        jitter_latency_ms: config.recording.jitter_latency_ms,
        relay_video_kbps: config.relay.video_kbps,
        track_wait: Duration::from_millis(config.recording.track_wait_ms),
        finish_timeout: Duration::from_secs(config.recording.finish_timeout_secs),
        metrics,
        notifier,
        composite: config.composite.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_found_for_a_directory_not_created_yet() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(&dir.path().join("not/yet")).unwrap() > 0);
    }

    /// A controller state with nothing running (no task is spawned).
    fn state() -> State {
        gstreamer::init().unwrap();
        let config = Config::default();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let signaling = Signaling::new(config.signaling.clone(), None, metrics.clone());
        let templates = Arc::new(crate::media::templates::TemplateSet::load(None).unwrap());
        let join = SelfJoin {
            server_url: "http://127.0.0.1:1".into(),
            name: "recorder".into(),
            token: None,
            channels: Vec::new(),
            udp_bind: "127.0.0.1".parse().unwrap(),
        };
        State::new(
            signaling,
            Planner::from_config(&config).unwrap(),
            join,
            output_settings(&config, templates, metrics.media.clone(), None),
            metrics.participant.clone(),
            &config,
            mpsc::unbounded_channel().0,
        )
    }

    fn job(id: u64) -> Job {
        Job {
            id: JobId(id),
            commands: mpsc::unbounded_channel().0,
            status: RoomStatus::default(),
            recording: None,
            recording_started_at: None,
            relay: None,
            empty_since: None,
            joined: false,
            peers: HashSet::new(),
        }
    }

    fn report(st: &mut State, job: u64, room: &str, report: RoomReport) {
        st.on_report(Report { job: JobId(job), key: RoomKey { server: None, room: room.into() }, report });
    }

    #[test]
    fn a_replaced_jobs_late_reports_never_touch_its_successor() {
        let mut st = state();
        let key = RoomKey { server: None, room: "r".into() };
        // Job 1 was in the room and is finalising; job 2 now holds the room.
        st.jobs.insert(key.clone(), job(2));
        report(&mut st, 1, "r", RoomReport::Joined { own_id: "old".into() });
        report(&mut st, 2, "r", RoomReport::Joined { own_id: "new".into() });
        report(&mut st, 1, "r", RoomReport::PeerConnected { peer: "p".into() });
        report(&mut st, 2, "r", RoomReport::PeerConnected { peer: "q".into() });
        report(&mut st, 1, "r", RoomReport::SignalingLost);
        let current = &st.jobs[&key];
        assert!(current.joined);
        assert_eq!(current.peers, HashSet::from(["q".to_string()]), "job 1's peers and loss are its own");
        // Job 1's socket is still one of ours (it has not left yet): not a member.
        assert_eq!(st.own_ids.get("old"), Some(&JobId(1)));
        // Job 1 ends: job 2 stays in charge, only job 1's socket id is forgotten.
        report(&mut st, 1, "r", RoomReport::Ended(Some(Outcome::Stopped(EndReason::RoomEmpty))));
        assert_eq!(st.jobs.get(&key).map(|j| j.id), Some(JobId(2)));
        assert_eq!(st.own_ids.keys().collect::<Vec<_>>(), ["new"]);
        // A late notice of job 1 changes nothing either.
        st.jobs.get_mut(&key).unwrap().recording = Some(st.planner.record_spec("r", "rule", RecordChoice::default()));
        report(&mut st, 1, "r", RoomReport::Notice(RoomNotice::CapReached(EndReason::SizeCap)));
        assert!(st.jobs[&key].recording.is_some());
        assert!(!st.overrides.contains_key("r"));
        // Its own notice does.
        report(&mut st, 2, "r", RoomReport::Notice(RoomNotice::CapReached(EndReason::SizeCap)));
        assert!(st.jobs[&key].recording.is_none());
        assert_eq!(st.overrides["r"].recording, Some(false));
        // Job 2 ends by itself: the room has no job, nothing of ours is left in it.
        report(&mut st, 2, "r", RoomReport::Ended(Some(Outcome::Stopped(EndReason::ParticipantEnded))));
        assert!(st.jobs.is_empty() && st.own_ids.is_empty());
    }

    #[test]
    fn a_refused_remote_job_is_listed_as_refused_and_its_room_backs_off() {
        let mut st = state();
        let key = RoomKey { server: Some("https://other.example".into()), room: "locked".into() };
        st.jobs.insert(key.clone(), job(7));
        st.on_report(Report {
            job: JobId(7),
            key: key.clone(),
            report: RoomReport::Ended(Some(Outcome::Refused("wrong-password".into()))),
        });
        assert!(st.jobs.is_empty());
        let (_, state, why) = &st.ended[&key];
        assert_eq!((*state, why.as_str()), ("refused", "wrong-password"));
        assert!(st.refused_until.contains_key(&key));
        // A panicked task is "left" with a reason.
        st.jobs.insert(key.clone(), job(8));
        st.on_report(Report { job: JobId(8), key: key.clone(), report: RoomReport::Ended(None) });
        assert_eq!(st.ended[&key].1, "left");
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(ControlError::RoomNotFound("r".into()).code(), "room_not_found");
        assert_eq!(ControlError::NotRecording("r".into()).code(), "not_recording");
        assert_eq!(ControlError::NotRelaying("r".into()).code(), "not_relaying");
        assert_eq!(ControlError::TemplateNotFound("t".into()).code(), "template_not_found");
        assert_eq!(ControlError::Invalid("x".into()).code(), "invalid_request");
    }
}
