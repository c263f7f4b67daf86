//! Gateway configuration: defaults, then a TOML file, then `RTCIO_GATEWAY_*`
//! environment variables, then command-line flags — each layer overrides the
//! one before. Unknown keys and invalid values are refused at start with a
//! message naming the key (or the environment variable).
//!
//! Environment variables are `RTCIO_GATEWAY_<SECTION>__<KEY>` (double
//! underscore between section and key), e.g.
//! `RTCIO_GATEWAY_SIGNALING__MAX_MEMBERS_PER_ROOM=8`. Lists are comma-separated.
//! The annotated reference is `deploy/gateway.toml`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::composite::layout::LayoutKind;

/// Prefix of every configuration environment variable.
pub const ENV_PREFIX: &str = "RTCIO_GATEWAY_";
/// Environment variable naming the config file (read by the CLI, not a config key).
pub const ENV_CONFIG_FILE: &str = "RTCIO_GATEWAY_CONFIG";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct Config {
    pub server: ServerConfig,
    pub signaling: SignalingConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub recording: RecordingConfig,
    pub pipelines: PipelinesConfig,
    pub relay: RelayConfig,
    pub composite: CompositeConfig,
    pub api: ApiConfig,
    pub webhooks: crate::webhooks::WebhooksConfig,
}

/// What a recording (or a relay) of a room is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// One file per stream (a relay: one stream, passed through when it can be).
    #[default]
    Streams,
    /// One composite of the whole room ([`crate::composite`]).
    Composite,
    /// Both (recordings only).
    Both,
}

impl OutputMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            OutputMode::Streams => "streams",
            OutputMode::Composite => "composite",
            OutputMode::Both => "both",
        }
    }

    pub fn streams(&self) -> bool {
        matches!(self, OutputMode::Streams | OutputMode::Both)
    }

    pub fn composite(&self) -> bool {
        matches!(self, OutputMode::Composite | OutputMode::Both)
    }
}

impl std::str::FromStr for OutputMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "streams" => Ok(OutputMode::Streams),
            "composite" => Ok(OutputMode::Composite),
            "both" => Ok(OutputMode::Both),
            other => Err(format!("unknown mode {other:?} (streams, composite, both)")),
        }
    }
}

/// The room composite's picture and sound (`mode = "composite"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompositeConfig {
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    /// Video bitrate of the composite's encoder, kbit/s.
    pub video_kbps: u32,
    /// How long after capture a frame is composed, ms: covers the senders'
    /// encoders, the network and decoding (a slower input is shown late, not dropped).
    pub latency_ms: u64,
    /// Streams emitted under this event are screen shares (the `screen` layout puts them large).
    pub screen_event: String,
}

impl Default for CompositeConfig {
    fn default() -> Self {
        CompositeConfig {
            width: 1280,
            height: 720,
            framerate: 30,
            video_kbps: 2500,
            latency_ms: 300,
            screen_event: "screen".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Bearer token of the control API (`/api/v1`). Empty: the API answers
    /// loopback clients only.
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address for HTTP, socket.io and metrics.
    pub listen: SocketAddr,
    /// Allowed browser origins for CORS; `["*"]` allows any origin.
    pub cors_origins: Vec<String>,
    /// How long shutdown waits for in-flight requests before giving up.
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalingConfig {
    /// Largest accepted event (JSON text plus binary attachments), in bytes.
    pub max_payload_bytes: usize,
    /// Sustained events per second per socket (token-bucket refill); 0 disables rate limiting.
    pub rate_limit_per_sec: f64,
    /// Events a socket may send in a burst (token-bucket size).
    pub rate_limit_burst: u32,
    /// Longest accepted room id, in characters.
    pub max_room_id_chars: usize,
    /// Longest accepted display name, in characters.
    pub max_name_chars: usize,
    /// Members per room; 0 means unlimited.
    pub max_members_per_room: usize,
    /// Rooms one socket may be in at once; 0 means unlimited.
    pub max_rooms_per_socket: usize,
    /// Engine.IO heartbeat interval.
    pub ping_interval_secs: u64,
    /// Engine.IO heartbeat timeout.
    pub ping_timeout_secs: u64,
    /// Packets queued per socket before further sends to it are dropped.
    pub outgoing_buffer_packets: usize,
    /// Rooms one client address (IPv4 address, IPv6 /64) may create per
    /// minute, in bursts of as many (join-error room-creation-limited beyond
    /// it); joining a room that exists is never limited. 0 = unlimited.
    /// Clients on loopback are not limited unless `room_creations_limit_loopback`.
    pub room_creations_per_minute: u32,
    /// Limit loopback clients too (tests and benchmarks that stand in for remote clients).
    pub room_creations_limit_loopback: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct AuthConfig {
    /// HS256 secret; when set, every socket.io connection must carry a valid
    /// JWT in `auth.token`. Empty disables authentication.
    pub jwt_secret: String,
    /// Required `iss` claim, if non-empty.
    pub jwt_issuer: String,
    /// Required `aud` claim, if non-empty.
    pub jwt_audience: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `rtcio_gateway=debug,info`, ...
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([0, 0, 0, 0], 3000)), cors_origins: vec!["*".into()], shutdown_grace_secs: 10 }
    }
}

impl Default for SignalingConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1024 * 1024,
            rate_limit_per_sec: 200.0,
            rate_limit_burst: 1000,
            max_room_id_chars: 256,
            max_name_chars: 128,
            max_members_per_room: 0,
            max_rooms_per_socket: 16,
            ping_interval_secs: 25,
            ping_timeout_secs: 20,
            outgoing_buffer_packets: 1024,
            room_creations_per_minute: 30,
            room_creations_limit_loopback: false,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Record rooms of this server (its own participant joins them).
    pub enabled: bool,
    /// Where recordings go: `<dir>/<room>/...`.
    pub dir: PathBuf,
    /// Glob patterns of room ids to record (`*` = every room).
    pub rooms: Vec<String>,
    /// Template for every recording; empty = chosen by codec (a composite: `composite-webm`).
    pub template: String,
    /// One file per stream, one composite of the room, or both.
    pub mode: OutputMode,
    /// The composite's layout: `grid`, `speaker` or `screen`.
    pub layout: LayoutKind,
    /// Broadcast channels logged to chat.jsonl (ctrl is always logged).
    pub channels: Vec<String>,
    /// Display name of the recording participant.
    pub participant_name: String,
    /// Jitter-buffer latency of output pipelines, ms.
    pub jitter_latency_ms: u32,
    /// How long to wait for a stream's other tracks before starting its file, ms.
    pub track_wait_ms: u64,
    /// Longest wait for a file to be finalised, seconds.
    pub finish_timeout_secs: u64,
    /// Local IP for the recording participant's WebRTC sockets.
    pub udp_bind: IpAddr,
    /// A room left with no members is still recorded this long (its
    /// participant stays) before the recording stops, seconds.
    pub empty_room_grace_secs: u64,
    /// Join a room (by rule) only once it has had members for this long, ms; 0 = at once.
    pub join_after_ms: u64,
    /// Rooms the recording participant is in at once by rule; more wait. 0 = unlimited.
    pub max_rooms: usize,
    /// Of those, rooms where no peer has connected to it yet; more wait. 0 = unlimited.
    pub max_unanswered_rooms: usize,
    /// Leave a room whose members leave the participant without a connected
    /// peer this long (and join again only when someone new arrives), s; 0 = never.
    pub unanswered_leave_secs: u64,
    /// Stop recording a room once its files in this recording hold this many bytes; 0 = no cap.
    pub max_room_bytes: u64,
    /// Stop recording a room after this many seconds; 0 = no cap.
    pub max_room_duration_secs: u64,
    /// Per-room exceptions, first match wins (see deploy/gateway.toml).
    pub rules: Vec<RecordingRule>,
}

/// Settings for the rooms matching `rooms`; unset fields inherit the `[recording]` ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingRule {
    /// Glob patterns of room ids.
    pub rooms: Vec<String>,
    /// Record these rooms automatically (false: only when asked over the API).
    pub record: bool,
    /// Template for these rooms; empty = inherit.
    pub template: String,
    pub mode: Option<OutputMode>,
    pub layout: Option<LayoutKind>,
    pub channels: Option<Vec<String>>,
    pub max_room_bytes: Option<u64>,
    pub max_room_duration_secs: Option<u64>,
}

impl Default for RecordingRule {
    fn default() -> Self {
        RecordingRule {
            rooms: Vec::new(),
            record: true,
            template: String::new(),
            mode: None,
            layout: None,
            channels: None,
            max_room_bytes: None,
            max_room_duration_secs: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PipelinesConfig {
    /// Directory of extra `*.toml` templates (same name as a built-in replaces it); empty = none.
    pub dir: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// x264 bitrate when a relay transcodes video, kbit/s.
    pub video_kbps: u32,
    /// Rooms relayed while they have members.
    pub targets: Vec<RelayTarget>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RelayTarget {
    pub room: String,
    pub url: String,
    #[serde(default)]
    pub peer: String,
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub template: String,
    /// `streams` (one stream, see `peer`/`event`) or `composite` (the room).
    #[serde(default)]
    pub mode: OutputMode,
    #[serde(default)]
    pub layout: LayoutKind,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: PathBuf::from("./recordings"),
            rooms: vec!["*".into()],
            template: String::new(),
            mode: OutputMode::Streams,
            layout: LayoutKind::Grid,
            channels: vec!["chat".into()],
            participant_name: "rtcio-gateway recorder".into(),
            jitter_latency_ms: 200,
            track_wait_ms: 1000,
            finish_timeout_secs: 5,
            udp_bind: IpAddr::from([0, 0, 0, 0]),
            empty_room_grace_secs: 10,
            join_after_ms: 2000,
            max_rooms: 200,
            max_unanswered_rooms: 20,
            unanswered_leave_secs: 15,
            max_room_bytes: 0,
            max_room_duration_secs: 0,
            rules: Vec::new(),
        }
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self { video_kbps: 2500, targets: Vec::new() }
    }
}

/// A configuration that cannot be used; the message names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

impl Config {
    /// Defaults, overlaid with the TOML file (if any) and the `RTCIO_GATEWAY_*`
    /// variables in `env`. Flags are applied by the caller, then [`Config::validate`].
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let path = file.map(|p| p.display().to_string()).unwrap_or_else(|| "<defaults>".into());
        let mut table = match file {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse { path: path.clone(), message: e.to_string() })?
            }
            None => toml::Table::new(),
        };
        let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
        let mut env: Vec<_> =
            env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX) && k != ENV_CONFIG_FILE).collect();
        env.sort();
        for (var, value) in env {
            apply_env(&mut table, &defaults, &var, &value)?;
        }
        let value = toml::Value::Table(table);
        serde_path_to_error::deserialize::<_, Config>(value).map_err(|e| {
            let key = e.path().to_string();
            let message = e.into_inner().to_string();
            ConfigError::Parse { path, message: if key == "." { message } else { format!("{key}: {message}") } }
        })
    }

    /// Refuse values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.cors_origins.is_empty() {
            return Err(invalid("server.cors_origins", "must list at least one origin, or \"*\""));
        }
        if s.cors_origins.len() > 1 && s.cors_origins.iter().any(|o| o == "*") {
            return Err(invalid("server.cors_origins", "\"*\" cannot be combined with other origins"));
        }
        for origin in s.cors_origins.iter().filter(|o| *o != "*") {
            let ok = url::Url::parse(origin)
                .ok()
                .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/")
                && !origin.ends_with('/');
            if !ok {
                return Err(invalid(
                    "server.cors_origins",
                    format!(
                        "{origin:?} is not an origin like \"https://app.example.com\" (scheme, host, optional port, no path)"
                    ),
                ));
            }
        }
        if s.shutdown_grace_secs > 3600 {
            return Err(invalid("server.shutdown_grace_secs", "must be at most 3600"));
        }
        let c = &self.composite;
        if !(64..=3840).contains(&c.width) || !(64..=2160).contains(&c.height) || c.width % 2 != 0 || c.height % 2 != 0 {
            return Err(invalid("composite.width", "width 64–3840 and height 64–2160, both even"));
        }
        if !(1..=60).contains(&c.framerate) {
            return Err(invalid("composite.framerate", "must be between 1 and 60"));
        }
        if !(100..=50_000).contains(&c.video_kbps) {
            return Err(invalid("composite.video_kbps", "must be between 100 and 50000"));
        }
        if !(50..=5_000).contains(&c.latency_ms) {
            return Err(invalid("composite.latency_ms", "must be between 50 and 5000"));
        }
        if let Some(t) = self.relay.targets.iter().find(|t| t.mode == OutputMode::Both) {
            return Err(invalid("relay.targets", format!("room {:?}: a relay is `streams` or `composite`, not both", t.room)));
        }
        let g = &self.signaling;
        if !(1024..=64 * 1024 * 1024).contains(&g.max_payload_bytes) {
            return Err(invalid("signaling.max_payload_bytes", "must be between 1024 and 67108864"));
        }
        if !g.rate_limit_per_sec.is_finite() || g.rate_limit_per_sec < 0.0 {
            return Err(invalid("signaling.rate_limit_per_sec", "must be a finite number ≥ 0 (0 disables)"));
        }
        if g.rate_limit_per_sec > 0.0 && g.rate_limit_burst == 0 {
            return Err(invalid("signaling.rate_limit_burst", "must be ≥ 1 when rate limiting is on"));
        }
        for (key, v) in
            [("signaling.max_room_id_chars", g.max_room_id_chars), ("signaling.max_name_chars", g.max_name_chars)]
        {
            if !(1..=4096).contains(&v) {
                return Err(invalid(key, "must be between 1 and 4096"));
            }
        }
        if g.ping_interval_secs == 0 || g.ping_interval_secs > 3600 {
            return Err(invalid("signaling.ping_interval_secs", "must be between 1 and 3600"));
        }
        if g.ping_timeout_secs == 0 || g.ping_timeout_secs > 3600 {
            return Err(invalid("signaling.ping_timeout_secs", "must be between 1 and 3600"));
        }
        if g.outgoing_buffer_packets < 16 {
            return Err(invalid("signaling.outgoing_buffer_packets", "must be at least 16"));
        }
        let a = &self.auth;
        if !a.jwt_secret.is_empty() && a.jwt_secret.len() < 16 {
            return Err(invalid("auth.jwt_secret", "must be at least 16 bytes (or empty to disable authentication)"));
        }
        if a.jwt_secret.is_empty() && (!a.jwt_issuer.is_empty() || !a.jwt_audience.is_empty()) {
            return Err(invalid("auth.jwt_issuer", "jwt_issuer/jwt_audience need auth.jwt_secret"));
        }
        let r = &self.recording;
        for pattern in &r.rooms {
            if let Err(e) = globset::Glob::new(pattern) {
                return Err(invalid("recording.rooms", format!("{pattern:?} is not a glob pattern: {e}")));
            }
        }
        if r.dir.as_os_str().is_empty() {
            return Err(invalid("recording.dir", "must not be empty"));
        }
        if !(20..=5000).contains(&r.jitter_latency_ms) {
            return Err(invalid("recording.jitter_latency_ms", "must be between 20 and 5000"));
        }
        if r.track_wait_ms > 10_000 {
            return Err(invalid("recording.track_wait_ms", "must be at most 10000"));
        }
        if !(1..=60).contains(&r.finish_timeout_secs) {
            return Err(invalid("recording.finish_timeout_secs", "must be between 1 and 60"));
        }
        if crate::participant::channels::channel_specs(&r.channels).is_err() {
            return Err(invalid("recording.channels", "channel names must be non-empty and not reserved"));
        }
        if r.empty_room_grace_secs > 86_400 {
            return Err(invalid("recording.empty_room_grace_secs", "must be at most 86400"));
        }
        if r.join_after_ms > 60_000 {
            return Err(invalid("recording.join_after_ms", "must be at most 60000"));
        }
        if r.max_rooms > 0 && r.max_unanswered_rooms > r.max_rooms {
            return Err(invalid("recording.max_unanswered_rooms", "must not be above recording.max_rooms"));
        }
        if r.unanswered_leave_secs > 86_400 {
            return Err(invalid("recording.unanswered_leave_secs", "must be at most 86400"));
        }
        for (i, rule) in r.rules.iter().enumerate() {
            let key = format!("recording.rules[{i}]");
            if rule.rooms.is_empty() {
                return Err(invalid(&key, "needs rooms = [\"glob\", ...]"));
            }
            for pattern in &rule.rooms {
                if let Err(e) = globset::Glob::new(pattern) {
                    return Err(invalid(&key, format!("{pattern:?} is not a glob pattern: {e}")));
                }
            }
            if let Some(channels) = &rule.channels
                && crate::participant::channels::channel_specs(channels).is_err()
            {
                return Err(invalid(&key, "channel names must be non-empty and not reserved"));
            }
        }
        if !(100..=50_000).contains(&self.relay.video_kbps) {
            return Err(invalid("relay.video_kbps", "must be between 100 and 50000"));
        }
        for target in &self.relay.targets {
            let ok = url::Url::parse(&target.url).is_ok_and(|u| matches!(u.scheme(), "rtmp" | "rtmps"));
            if !ok {
                return Err(invalid("relay.targets", format!("{:?} is not an rtmp:// or rtmps:// URL", target.url)));
            }
            if target.room.is_empty() {
                return Err(invalid("relay.targets", "every target needs a room"));
            }
        }
        if !self.api.token.is_empty() && self.api.token.len() < 16 {
            return Err(invalid("api.token", "must be at least 16 characters (or empty: loopback clients only)"));
        }
        if let Err(e) = self.webhooks.validate() {
            return Err(invalid("webhooks", e));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                format!("{:?} is not a tracing filter such as \"info\" or \"rtcio_gateway=debug\"", self.log.level),
            ));
        }
        Ok(())
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }
}

/// Apply `RTCIO_GATEWAY_<SECTION>__<KEY>=value`, typed after the default value.
fn apply_env(table: &mut toml::Table, defaults: &toml::Table, var: &str, raw: &str) -> Result<(), ConfigError> {
    let env_err = |message: String| ConfigError::Env { var: var.into(), message };
    let rest = &var[ENV_PREFIX.len()..];
    let Some((section, key)) = rest.split_once("__") else {
        return Err(env_err(format!("expected {ENV_PREFIX}<SECTION>__<KEY>, e.g. {ENV_PREFIX}SERVER__LISTEN")));
    };
    let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
    let Some(toml::Value::Table(section_defaults)) = defaults.get(&section) else {
        return Err(env_err(format!("unknown config section {section:?}")));
    };
    let Some(default) = section_defaults.get(&key) else {
        return Err(env_err(format!("unknown config key {section}.{key}")));
    };
    let value = match default {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Integer(_) => toml::Value::Integer(
            raw.trim().parse().map_err(|_| env_err(format!("{section}.{key} must be an integer, got {raw:?}")))?,
        ),
        toml::Value::Float(_) => toml::Value::Float(
            raw.trim().parse().map_err(|_| env_err(format!("{section}.{key} must be a number, got {raw:?}")))?,
        ),
        toml::Value::Boolean(_) => toml::Value::Boolean(
            raw.trim().parse().map_err(|_| env_err(format!("{section}.{key} must be true or false, got {raw:?}")))?,
        ),
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| toml::Value::String(s.into())).collect(),
        ),
        _ => return Err(env_err(format!("{section}.{key} cannot be set from the environment"))),
    };
    let section_table = table.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match section_table {
        toml::Value::Table(t) => {
            t.insert(key, value);
            Ok(())
        }
        _ => Err(env_err(format!("config file has {section} as a value, not a section"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_are_valid_and_listen_on_3000() {
        let c = Config::load(None, env(&[])).unwrap();
        c.validate().unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:3000");
        assert_eq!(c, Config::default());
    }

    #[test]
    fn file_then_env_override() {
        let f = write("[server]\nlisten = \"127.0.0.1:4000\"\n[signaling]\nmax_members_per_room = 4\n");
        let c = Config::load(
            Some(f.path()),
            env(&[
                ("RTCIO_GATEWAY_SIGNALING__MAX_MEMBERS_PER_ROOM", "6"),
                ("RTCIO_GATEWAY_SERVER__CORS_ORIGINS", "https://a.example, http://localhost:8080"),
                ("RTCIO_GATEWAY_SIGNALING__RATE_LIMIT_PER_SEC", "50"),
                ("RTCIO_GATEWAY_CONFIG", "ignored.toml"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:4000");
        assert_eq!(c.signaling.max_members_per_room, 6);
        assert_eq!(c.signaling.rate_limit_per_sec, 50.0);
        assert_eq!(c.server.cors_origins, vec!["https://a.example", "http://localhost:8080"]);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let f = write("[signaling]\nmax_paylod_bytes = 5\n");
        let e = Config::load(Some(f.path()), env(&[])).unwrap_err().to_string();
        assert!(e.contains("max_paylod_bytes"), "{e}");
        let f = write("[signalling]\n");
        let e = Config::load(Some(f.path()), env(&[])).unwrap_err().to_string();
        assert!(e.contains("signalling"), "{e}");
        let e = Config::load(None, env(&[("RTCIO_GATEWAY_SIGNALING__NOPE", "1")])).unwrap_err().to_string();
        assert!(e.contains("RTCIO_GATEWAY_SIGNALING__NOPE") && e.contains("signaling.nope"), "{e}");
        let e = Config::load(None, env(&[("RTCIO_GATEWAY_LISTEN", "1")])).unwrap_err().to_string();
        assert!(e.contains("RTCIO_GATEWAY_LISTEN"), "{e}");
    }

    #[test]
    fn invalid_values_are_refused_by_name() {
        let f = write("[server]\nlisten = \"not an address\"\n");
        let e = Config::load(Some(f.path()), env(&[])).unwrap_err().to_string();
        assert!(e.contains("server.listen"), "{e}");
        let e =
            Config::load(None, env(&[("RTCIO_GATEWAY_SIGNALING__MAX_PAYLOAD_BYTES", "lots")])).unwrap_err().to_string();
        assert!(e.contains("RTCIO_GATEWAY_SIGNALING__MAX_PAYLOAD_BYTES"), "{e}");
        let f = write("[signaling]\nmax_payload_bytes = -1\n");
        let e = Config::load(Some(f.path()), env(&[])).unwrap_err().to_string();
        assert!(e.contains("signaling.max_payload_bytes"), "{e}");

        let mut c = Config::default();
        c.signaling.max_payload_bytes = 10;
        assert!(c.validate().unwrap_err().to_string().contains("signaling.max_payload_bytes"));
        let mut c = Config::default();
        c.auth.jwt_secret = "short".into();
        assert!(c.validate().unwrap_err().to_string().contains("auth.jwt_secret"));
        let mut c = Config::default();
        c.server.cors_origins = vec!["https://a.example/path".into()];
        assert!(c.validate().unwrap_err().to_string().contains("server.cors_origins"));
        let mut c = Config::default();
        c.server.cors_origins = vec!["*".into(), "https://a.example".into()];
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.log.level = "=[".into();
        assert!(c.validate().unwrap_err().to_string().contains("log.level"));
        let mut c = Config::default();
        c.signaling.rate_limit_burst = 0;
        assert!(c.validate().unwrap_err().to_string().contains("signaling.rate_limit_burst"));
        let mut c = Config::default();
        c.recording.max_unanswered_rooms = c.recording.max_rooms + 1;
        assert!(c.validate().unwrap_err().to_string().contains("recording.max_unanswered_rooms"));
        c.recording.max_rooms = 0;
        c.validate().unwrap();
        let mut c = Config::default();
        c.recording.join_after_ms = 60_001;
        assert!(c.validate().unwrap_err().to_string().contains("recording.join_after_ms"));
    }

    #[test]
    fn the_example_config_in_deploy_is_valid_and_complete() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/gateway.toml");
        let c = Config::load(Some(&path), env(&[])).unwrap();
        c.validate().unwrap();
        // Every key of the example is the default, so the example documents them all.
        let text = std::fs::read_to_string(&path).unwrap();
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for (section, keys) in defaults {
            assert!(text.contains(&format!("[{section}]")), "example lacks [{section}]");
            for key in keys.as_table().unwrap().keys() {
                assert!(
                    text.contains(&format!("\n{key} =")) || text.contains(&format!("\n# {key} =")),
                    "example lacks {section}.{key}"
                );
            }
        }
    }
}
