//! Recording the rooms of our own signaling server: a participant joins a
//! room as soon as its first member arrives and leaves (finalising every
//! file) when it is alone. Rooms are chosen by `recording.rooms` globs and
//! `relay.targets`.
//!
//! The auto-recorder watches the registry's membership counter and
//! reconciles: it never holds the registry lock while joining or leaving.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::room::{RelaySpec, RoomPlan, RoomRecorder};
use super::runner::{Outcome, run_room};
use super::stream::OutputSettings;
use crate::config::{Config, RelayTarget};
use crate::metrics::{MediaMetrics, ParticipantMetrics};
use crate::participant::events::ParticipantEvent;
use crate::participant::link::LinkConfig;
use crate::participant::room::{Participant, ParticipantConfig};
use crate::signaling::Signaling;

/// Wait this long after a membership change before reconciling (joins come in bursts).
const DEBOUNCE: Duration = Duration::from_millis(100);
/// A room whose participant was refused is not retried before this.
const REFUSED_BACKOFF: Duration = Duration::from_secs(30);
const FREE_SPACE_EVERY: Duration = Duration::from_secs(5);

/// Which rooms to join and what to do in them.
#[derive(Debug, Clone)]
pub struct Planner {
    record: Option<(GlobSet, PathBuf)>,
    record_template: Option<String>,
    log_channels: Vec<String>,
    relays: Vec<RelayTarget>,
}

impl Planner {
    pub fn from_config(config: &Config) -> Result<Planner, globset::Error> {
        let r = &config.recording;
        let record = if r.enabled {
            let mut builder = GlobSetBuilder::new();
            for pattern in &r.rooms {
                builder.add(Glob::new(pattern)?);
            }
            Some((builder.build()?, r.dir.clone()))
        } else {
            None
        };
        Ok(Planner {
            record,
            record_template: (!r.template.is_empty()).then(|| r.template.clone()),
            log_channels: r.channels.clone(),
            relays: config.relay.targets.clone(),
        })
    }

    /// The plan for a room, or None if the room is neither recorded nor relayed.
    pub fn plan(&self, room: &str) -> Option<RoomPlan> {
        let recordings_dir = self.record.as_ref().filter(|(globs, _)| globs.is_match(room)).map(|(_, dir)| dir.clone());
        let relay = self.relays.iter().find(|t| t.room == room).map(|t| RelaySpec {
            url: t.url.clone(),
            peer: (!t.peer.is_empty()).then(|| t.peer.clone()),
            event: (!t.event.is_empty()).then(|| t.event.clone()),
            template: (!t.template.is_empty()).then(|| t.template.clone()),
        });
        if recordings_dir.is_none() && relay.is_none() {
            return None;
        }
        Some(RoomPlan {
            room: room.to_string(),
            recordings_dir,
            record_template: self.record_template.clone(),
            relay,
            log_channels: self.log_channels.clone(),
        })
    }

    pub fn is_active(&self) -> bool {
        self.record.is_some() || !self.relays.is_empty()
    }
}

/// How the recording participant reaches our own server.
#[derive(Debug, Clone)]
pub struct SelfJoin {
    pub server_url: String,
    pub name: String,
    pub token: Option<String>,
    pub channels: Vec<String>,
    pub udp_bind: std::net::IpAddr,
}

struct RoomTask {
    stop: oneshot::Sender<String>,
    task: JoinHandle<()>,
}

pub struct AutoRecorder {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

struct State {
    signaling: Arc<Signaling>,
    planner: Planner,
    join: SelfJoin,
    settings: OutputSettings,
    participant_metrics: ParticipantMetrics,
    /// Socket ids of our own participants (they do not count as members).
    own_ids: Arc<Mutex<HashSet<String>>>,
    rooms: HashMap<String, RoomTask>,
    refused_until: Arc<Mutex<HashMap<String, Instant>>>,
}

impl AutoRecorder {
    pub fn start(
        signaling: Arc<Signaling>,
        planner: Planner,
        join: SelfJoin,
        settings: OutputSettings,
        participant_metrics: ParticipantMetrics,
    ) -> AutoRecorder {
        let cancel = CancellationToken::new();
        let state = State {
            signaling,
            planner,
            join,
            settings,
            participant_metrics,
            own_ids: Arc::default(),
            rooms: HashMap::new(),
            refused_until: Arc::default(),
        };
        let task = tokio::spawn(state.run(cancel.clone()));
        AutoRecorder { cancel, task }
    }

    /// Finalise every recording and leave every room.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

impl State {
    async fn run(mut self, cancel: CancellationToken) {
        let mut changes = self.signaling.watch_membership();
        let mut free_space = tokio::time::interval(FREE_SPACE_EVERY);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                changed = changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    tokio::time::sleep(DEBOUNCE).await;
                    changes.borrow_and_update();
                    self.reconcile();
                }
                _ = free_space.tick() => {
                    self.update_free_space();
                    // Also notices rooms whose participant ended by itself.
                    self.reconcile();
                }
            }
        }
        let stops: Vec<_> = self
            .rooms
            .drain()
            .map(|(_, room)| {
                let _ = room.stop.send("shutdown".to_string());
                room.task
            })
            .collect();
        futures_util::future::join_all(stops).await;
        self.settings.metrics.rooms_recorded.set(0);
    }

    fn reconcile(&mut self) {
        self.rooms.retain(|_, r| !r.task.is_finished());
        let own = self.own_ids.lock().clone();
        let occupied: HashSet<String> = self
            .signaling
            .rooms_overview()
            .into_iter()
            .filter(|(_, members)| members.iter().any(|(id, _)| !own.contains(id)))
            .map(|(room, _)| room)
            .collect();
        let gone: Vec<String> = self.rooms.keys().filter(|r| !occupied.contains(*r)).cloned().collect();
        for room in gone {
            if let Some(task) = self.rooms.remove(&room) {
                tracing::info!(%room, "room is empty; finalising its recordings and leaving");
                let _ = task.stop.send("room-empty".to_string());
            }
        }
        let now = Instant::now();
        self.refused_until.lock().retain(|_, until| *until > now);
        for room in occupied {
            if self.rooms.contains_key(&room) || self.refused_until.lock().contains_key(&room) {
                continue;
            }
            if let Some(plan) = self.planner.plan(&room) {
                self.start_room(room, plan);
            }
        }
        self.settings.metrics.rooms_recorded.set(self.rooms.len() as i64);
    }

    fn start_room(&mut self, room: String, plan: RoomPlan) {
        let config = ParticipantConfig {
            link: LinkConfig {
                server: self.join.server_url.clone(),
                room: room.clone(),
                name: self.join.name.clone(),
                password: self.signaling.room_password(&room).filter(|p| !p.is_empty()),
                token: self.join.token.clone(),
            },
            channels: self.join.channels.clone(),
            udp_bind: self.join.udp_bind,
            ice_servers: Vec::new(),
        };
        let participant = match Participant::start(config, self.participant_metrics.clone()) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(%room, error = %e, "cannot start the recording participant");
                return;
            }
        };
        tracing::info!(%room, "joining to record");
        let recorder = RoomRecorder::new(plan, self.settings.clone());
        let (stop_tx, stop_rx) = oneshot::channel();
        let own_ids = self.own_ids.clone();
        let refused = self.refused_until.clone();
        let room_name = room.clone();
        let task = tokio::spawn(async move {
            let mut my_ids = Vec::new();
            let (outcome, reports) = run_room(participant, recorder, stop_rx, |event| {
                if let ParticipantEvent::Joined { own_id, .. } = event {
                    own_ids.lock().insert(own_id.clone());
                    my_ids.push(own_id.clone());
                }
            })
            .await;
            let mut ids = own_ids.lock();
            for id in &my_ids {
                ids.remove(id);
            }
            drop(ids);
            if let Outcome::Refused(reason) = &outcome {
                tracing::warn!(room = %room_name, %reason, "the recording participant was refused");
                refused.lock().insert(room_name.clone(), Instant::now() + REFUSED_BACKOFF);
            }
            tracing::info!(room = %room_name, ?outcome, outputs = reports.len(), "left the room");
        });
        self.rooms.insert(room, RoomTask { stop: stop_tx, task });
    }

    fn update_free_space(&self) {
        let Some(dir) = self.planner.record.as_ref().map(|(_, d)| d) else { return };
        if let Some(free) = free_bytes(dir) {
            self.settings.metrics.recordings_free_bytes.set(free as i64);
        }
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
) -> OutputSettings {
    OutputSettings {
        templates,
        jitter_latency_ms: config.recording.jitter_latency_ms,
        relay_video_kbps: config.relay.video_kbps,
        track_wait: Duration::from_millis(config.recording.track_wait_ms),
        finish_timeout: Duration::from_secs(config.recording.finish_timeout_secs),
        metrics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_planned_by_glob_and_relay_target() {
        let mut config = Config::default();
        config.recording.rooms = vec!["meet-*".into(), "standup".into()];
        config.relay.targets = vec![RelayTarget {
            room: "town-hall".into(),
            url: "rtmp://127.0.0.1/live/x".into(),
            peer: String::new(),
            event: "camera".into(),
            template: String::new(),
        }];
        let planner = Planner::from_config(&config).unwrap();
        assert!(planner.plan("meet-1").unwrap().recordings_dir.is_some());
        assert!(planner.plan("standup").is_some());
        assert!(planner.plan("other").is_none());
        let hall = planner.plan("town-hall").unwrap();
        assert!(hall.recordings_dir.is_none());
        assert_eq!(hall.relay.unwrap().event.as_deref(), Some("camera"));
        config.recording.enabled = false;
        config.relay.targets.clear();
        assert!(!Planner::from_config(&config).unwrap().is_active());
    }

    #[test]
    fn free_space_is_found_for_a_directory_not_created_yet() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(&dir.path().join("not/yet")).unwrap() > 0);
    }
}
