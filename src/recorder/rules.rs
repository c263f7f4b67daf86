//! Recording rules: which rooms of our own server are recorded without
//! being asked, with which template, which broadcast channels go to the
//! chat log and how much a room may record; which rooms are relayed.
//!
//! `[[recording.rules]]` are tried in order, the first whose `rooms` globs
//! match a room decides (`record = false` excludes it); a room no rule
//! matches falls back to the top-level `recording.rooms` globs and settings.
//! Pure: no I/O.

use std::path::PathBuf;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::room::{RecordSpec, RelaySpec, RoomPlan};
use crate::composite::layout::LayoutKind;
use crate::config::{Config, OutputMode, RelayTarget};

/// The recording settings that apply to one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRule {
    /// Record it without being asked.
    pub auto: bool,
    pub template: Option<String>,
    pub mode: OutputMode,
    pub layout: LayoutKind,
    pub channels: Vec<String>,
    pub max_bytes: u64,
    pub max_duration_secs: u64,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    rooms: GlobSet,
    record: bool,
    template: Option<String>,
    mode: Option<OutputMode>,
    layout: Option<LayoutKind>,
    channels: Option<Vec<String>>,
    max_bytes: Option<u64>,
    max_duration_secs: Option<u64>,
}

/// What whoever starts a recording asks for (the API's body); `None`: as the rules say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordChoice {
    pub template: Option<String>,
    pub mode: Option<OutputMode>,
    pub layout: Option<LayoutKind>,
}

/// Which rooms to join and what to do in them.
#[derive(Debug, Clone)]
pub struct Planner {
    enabled: bool,
    dir: PathBuf,
    rules: Vec<CompiledRule>,
    default_rooms: GlobSet,
    default_rule: RoomRule,
    relays: Vec<RelayTarget>,
}

fn globs(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(Glob::new(pattern)?);
    }
    builder.build()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl Planner {
    pub fn from_config(config: &Config) -> Result<Planner, globset::Error> {
        let r = &config.recording;
        let rules = r
            .rules
            .iter()
            .map(|rule| {
                Ok(CompiledRule {
                    rooms: globs(&rule.rooms)?,
                    record: rule.record,
                    template: non_empty(&rule.template),
                    mode: rule.mode,
                    layout: rule.layout,
                    channels: rule.channels.clone(),
                    max_bytes: rule.max_room_bytes,
                    max_duration_secs: rule.max_room_duration_secs,
                })
            })
            .collect::<Result<_, globset::Error>>()?;
        Ok(Planner {
            enabled: r.enabled,
            dir: r.dir.clone(),
            rules,
            default_rooms: globs(&r.rooms)?,
            default_rule: RoomRule {
                auto: true,
                template: non_empty(&r.template),
                mode: r.mode,
                layout: r.layout,
                channels: r.channels.clone(),
                max_bytes: r.max_room_bytes,
                max_duration_secs: r.max_room_duration_secs,
            },
            relays: config.relay.targets.clone(),
        })
    }

    /// The settings for a room (`auto` false: not recorded unless asked).
    pub fn rule(&self, room: &str) -> RoomRule {
        let d = &self.default_rule;
        match self.rules.iter().find(|r| r.rooms.is_match(room)) {
            Some(rule) => RoomRule {
                auto: self.enabled && rule.record,
                template: rule.template.clone().or_else(|| d.template.clone()),
                mode: rule.mode.unwrap_or(d.mode),
                layout: rule.layout.unwrap_or(d.layout),
                channels: rule.channels.clone().unwrap_or_else(|| d.channels.clone()),
                max_bytes: rule.max_bytes.unwrap_or(d.max_bytes),
                max_duration_secs: rule.max_duration_secs.unwrap_or(d.max_duration_secs),
            },
            None => RoomRule { auto: self.enabled && self.default_rooms.is_match(room), ..d.clone() },
        }
    }

    /// Recording the room as `by` (`rule` or `api`), `asked` overriding the rule's choices.
    pub fn record_spec(&self, room: &str, by: &str, asked: RecordChoice) -> RecordSpec {
        let rule = self.rule(room);
        RecordSpec {
            dir: self.dir.clone(),
            template: asked.template.or(rule.template),
            mode: asked.mode.unwrap_or(rule.mode),
            layout: asked.layout.unwrap_or(rule.layout),
            by: by.to_string(),
            max_bytes: rule.max_bytes,
            max_duration_secs: rule.max_duration_secs,
        }
    }

    /// The configured relay of a room.
    pub fn relay(&self, room: &str) -> Option<RelaySpec> {
        self.relays.iter().find(|t| t.room == room).map(|t| RelaySpec {
            url: t.url.clone(),
            peer: non_empty(&t.peer),
            event: non_empty(&t.event),
            template: non_empty(&t.template),
            mode: t.mode,
            layout: t.layout,
        })
    }

    /// What the rules say to do in a room of our own server (recording off
    /// and relay off: nothing).
    pub fn plan(&self, room: &str) -> RoomPlan {
        let rule = self.rule(room);
        RoomPlan {
            server: None,
            room: room.to_string(),
            recording: rule.auto.then(|| self.record_spec(room, "rule", RecordChoice::default())),
            relay: self.relay(room),
            log_channels: rule.channels,
        }
    }

    /// Every channel any rule logs (the recording participant opens them all).
    pub fn all_channels(&self) -> Vec<String> {
        let mut all = self.default_rule.channels.clone();
        for channel in self.rules.iter().filter_map(|r| r.channels.as_ref()).flatten() {
            if !all.contains(channel) {
                all.push(channel.clone());
            }
        }
        all
    }

    pub fn recordings_dir(&self) -> &std::path::Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RecordingRule;

    fn rule(rooms: &[&str]) -> RecordingRule {
        RecordingRule { rooms: rooms.iter().map(|r| r.to_string()).collect(), ..RecordingRule::default() }
    }

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
            mode: Default::default(),
            layout: Default::default(),
        }];
        let planner = Planner::from_config(&config).unwrap();
        assert!(planner.plan("meet-1").recording.is_some());
        assert!(planner.plan("standup").recording.is_some());
        assert!(planner.plan("other").recording.is_none());
        assert!(planner.plan("other").relay.is_none());
        let hall = planner.plan("town-hall");
        assert!(hall.recording.is_none());
        assert_eq!(hall.relay.unwrap().event.as_deref(), Some("camera"));
        config.recording.enabled = false;
        let planner = Planner::from_config(&config).unwrap();
        assert!(planner.plan("meet-1").recording.is_none(), "enabled = false: nothing recorded by rule");
        // ... but the API can still record it, with the room's settings.
        assert_eq!(planner.record_spec("meet-1", "api", RecordChoice::default()).by, "api");
    }

    #[test]
    fn the_first_matching_rule_decides_and_inherits_the_rest() {
        let mut config = Config::default();
        config.recording.max_room_bytes = 1000;
        config.recording.template = "record-webm".into();
        config.recording.rules = vec![
            RecordingRule { record: false, ..rule(&["private-*"]) },
            RecordingRule {
                template: "record-mkv".into(),
                channels: Some(vec!["chat".into(), "notes".into()]),
                max_room_duration_secs: Some(60),
                ..rule(&["class-*", "lecture"])
            },
            RecordingRule { max_room_bytes: Some(0), ..rule(&["private-but-not-really", "big-*"]) },
        ];
        let planner = Planner::from_config(&config).unwrap();
        assert!(!planner.rule("private-1").auto);
        let class = planner.rule("class-7");
        assert!(class.auto);
        assert_eq!(class.template.as_deref(), Some("record-mkv"));
        assert_eq!(class.channels, vec!["chat", "notes"]);
        assert_eq!((class.max_bytes, class.max_duration_secs), (1000, 60));
        let big = planner.rule("big-room");
        assert_eq!((big.max_bytes, big.template.as_deref()), (0, Some("record-webm")));
        let other = planner.rule("anything");
        assert!(other.auto);
        assert_eq!(other.max_bytes, 1000);
        assert_eq!(planner.all_channels(), vec!["chat", "notes"]);
        let asked = RecordChoice { template: Some("record-webm".into()), ..RecordChoice::default() };
        let spec = planner.record_spec("class-1", "api", asked);
        assert_eq!(spec.template.as_deref(), Some("record-webm"), "the API's template wins");
    }
}
