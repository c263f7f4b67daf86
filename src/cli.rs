//! The command-line tree. The doc comments here are the `--help` text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// rtc.io signaling server, headless participant and recording/relay node.
///
/// Configuration is read from defaults, then the TOML file given with
/// --config (or RTCIO_GATEWAY_CONFIG), then RTCIO_GATEWAY_<SECTION>__<KEY>
/// environment variables, then flags. See deploy/gateway.toml for every key.
#[derive(Debug, Parser)]
#[command(name = "rtcio-gateway", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the signaling server and record its rooms until SIGTERM/SIGINT.
    Serve(ServeArgs),
    /// Print the effective configuration as TOML after validating it, then exit.
    Config(ConfigArgs),
    /// Join a room on any rtc.io server as a headless peer and print what it hears.
    Join(JoinArgs),
    /// Join a room and publish a test stream (and optionally chat) like a browser would.
    Publish(PublishArgs),
    /// Relay one stream of a room on any rtc.io server to an RTMP URL until stopped.
    Relay(RelayArgs),
    /// Mux every recording of a room directory into one Matroska file on the
    /// room clock (tracks titled by participant, chat as subtitles), without
    /// re-encoding. Works on rooms of `serve` and `join`, also interrupted ones.
    Mux(MuxArgs),
    /// Inspect the pipeline templates.
    #[command(subcommand)]
    Pipelines(PipelinesCommand),
}

#[derive(Debug, Subcommand)]
pub enum PipelinesCommand {
    /// Parse every template with GStreamer and report syntax errors and missing
    /// elements (exit 1 if any template is unusable).
    Check(PipelinesArgs),
    /// Show every template, where it comes from and the codecs it takes.
    List(PipelinesArgs),
}

#[derive(Debug, clap::Args)]
pub struct PipelinesArgs {
    #[command(flatten)]
    pub file: ConfigFile,
    /// Directory of user templates (overrides pipelines.dir).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Treat a disabled codec branch (missing element) as an error too.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    #[command(flatten)]
    pub room: RoomArgs,
    /// Where to send the stream, e.g. rtmp://a.rtmp.youtube.com/live2/KEY
    #[arg(long, value_name = "URL")]
    pub rtmp: String,
    /// Only relay this peer's stream (socket id or display name).
    #[arg(long, value_name = "NAME|ID")]
    pub peer: Option<String>,
    /// Only relay a stream emitted under this event (default: the first
    /// stream with video that is not a screen share).
    #[arg(long, value_name = "EVENT")]
    pub event: Option<String>,
    #[command(flatten)]
    pub media: MediaArgs,
}

/// Options of the output pipelines (join and relay).
#[derive(Debug, clap::Args)]
pub struct MediaArgs {
    /// Directory of user pipeline templates.
    #[arg(long, value_name = "DIR")]
    pub pipelines: Option<PathBuf>,
    /// Use this template instead of choosing by codec.
    #[arg(long, value_name = "NAME")]
    pub template: Option<String>,
    /// Jitter-buffer latency, ms.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub jitter_latency_ms: u32,
    /// x264 bitrate when video must be transcoded (and the composite's), kbit/s.
    #[arg(long, value_name = "KBPS", default_value_t = 2500)]
    pub video_kbps: u32,
    /// One composite of the whole room (every camera in one picture, every
    /// track in one mix) instead of one stream.
    #[arg(long)]
    pub composite: bool,
    /// The composite's layout.
    #[arg(long, value_name = "LAYOUT", default_value = "grid", value_parser = ["grid", "speaker", "screen"])]
    pub layout: String,
    /// The composite's picture size, WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", default_value = "1280x720", value_parser = parse_size)]
    pub composite_size: (u32, u32),
    /// The composite's frame rate.
    #[arg(long, value_name = "FPS", default_value_t = 30)]
    pub composite_fps: u32,
}

impl MediaArgs {
    pub fn mode(&self) -> crate::config::OutputMode {
        if self.composite { crate::config::OutputMode::Composite } else { crate::config::OutputMode::Streams }
    }

    pub fn layout(&self) -> crate::composite::layout::LayoutKind {
        self.layout.parse().unwrap_or_default()
    }
}

/// Where and as whom to join.
#[derive(Debug, clap::Args)]
pub struct RoomArgs {
    /// rtc.io signaling server URL, e.g. http://127.0.0.1:3000 or https://server.rtcio.dev
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// Room id to join.
    #[arg(long, value_name = "ID")]
    pub room: String,
    /// Room password, if the room has one.
    #[arg(long, value_name = "P")]
    pub password: Option<String>,
    /// Display name shown to the other peers.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// JWT for servers that require one (sent as the handshake's auth.token).
    #[arg(long, value_name = "JWT", env = "RTCIO_GATEWAY_TOKEN")]
    pub token: Option<String>,
    /// Broadcast channels to create with every peer (comma-separated).
    #[arg(long, value_name = "NAMES", value_delimiter = ',', default_value = "chat")]
    pub channels: Vec<String>,
    /// Local IP for the WebRTC UDP socket (0.0.0.0: every interface).
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    pub udp_bind: std::net::IpAddr,
    /// STUN/TURN server URL (repeatable), e.g. stun:stun.l.google.com:19302
    #[arg(long = "ice-server", value_name = "URL")]
    pub ice_servers: Vec<String>,
    /// Log filter such as "info" or "rtcio_gateway=debug" (the WebRTC stack's own
    /// chatter is kept to errors unless named).
    #[arg(long, value_name = "FILTER", default_value = "info,rtc=error,rtc_dtls=error,rtc_ice=error,webrtc=error")]
    pub log_level: String,
}

#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    #[command(flatten)]
    pub room: RoomArgs,
    /// Record the room's streams and chat into DIR/<room>/ (the layout of `serve`).
    #[arg(long, value_name = "DIR", default_value = "./recordings")]
    pub recordings: PathBuf,
    /// Only listen and print; write nothing.
    #[arg(long)]
    pub no_record: bool,
    #[command(flatten)]
    pub media: MediaArgs,
    /// Leave after this many seconds (default: run until Ctrl-C/SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub room: RoomArgs,
    /// Event name the stream is emitted under.
    #[arg(long, default_value = "camera")]
    pub event: String,
    /// JSON metadata sent with the stream, as socket.emit(event, {cam: stream, metadata}).
    #[arg(long, value_name = "JSON")]
    pub metadata: Option<String>,
    /// Video codec, or none.
    #[arg(long, default_value = "vp8", value_parser = ["vp8", "h264", "none"])]
    pub video: String,
    /// Audio codec, or none.
    #[arg(long, default_value = "opus", value_parser = ["opus", "none"])]
    pub audio: String,
    /// Publish this media file (decoded and re-encoded) instead of a test pattern.
    #[arg(long, value_name = "PATH")]
    pub file: Option<std::path::PathBuf>,
    /// Publish sync marks instead of a test pattern: black video with one
    /// white frame and silence with a 100 ms 1 kHz beep at every even second
    /// of this machine's UTC clock (for checking lip sync and wall-clock
    /// alignment of recordings).
    #[arg(long, conflicts_with = "file")]
    pub sync_marks: bool,
    /// Publish one solid colour (red, green, blue, yellow, magenta, cyan,
    /// white or 0xRRGGBB) and a steady sine tone instead of a test pattern
    /// (what a composite's tile and mix are checked by).
    #[arg(long, value_name = "COLOUR", value_parser = crate::media::source::parse_colour, conflicts_with_all = ["file", "sync_marks"])]
    pub colour: Option<u32>,
    /// With --colour: the tone's frequency in Hz, 0 for silence [default: 440].
    #[arg(long, value_name = "HZ", requires = "colour", value_parser = parse_tone)]
    pub tone: Option<f64>,
    /// With --colour: the tone's volume, 0 to 1 [default: 0.5].
    #[arg(long, value_name = "0..1", requires = "colour", value_parser = parse_volume)]
    pub volume: Option<f64>,
    /// Video size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Send this text as a "msg" event on the first broadcast channel every --every seconds.
    #[arg(long, value_name = "TEXT")]
    pub chat: Option<String>,
    /// Interval for --chat, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub every: f64,
    /// Stop after this many seconds (default: run until Ctrl-C/SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
}

impl PublishArgs {
    /// What to publish: a file, sync marks, a solid colour with its tone, or the test pattern.
    pub fn input(&self) -> crate::media::source::Input {
        use crate::media::source::Input;
        match (&self.file, self.colour) {
            (Some(path), _) => Input::File(path.clone()),
            (None, _) if self.sync_marks => Input::SyncMarks,
            (None, Some(rgb)) => {
                Input::Solid { rgb, tone_hz: self.tone.unwrap_or(440.0), volume: self.volume.unwrap_or(0.5) }
            }
            (None, None) => Input::TestPattern,
        }
    }
}

fn parse_tone(s: &str) -> Result<f64, String> {
    let hz: f64 = s.parse().map_err(|_| format!("{s:?} is not a frequency in Hz"))?;
    // Below the Nyquist frequency of the 48 kHz source.
    if !(0.0..24_000.0).contains(&hz) {
        return Err("the tone must be between 0 (silence) and 24000 Hz".into());
    }
    Ok(hz)
}

fn parse_volume(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a volume"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err("the volume must be between 0 and 1".into());
    }
    Ok(v)
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or("expected WIDTHxHEIGHT, e.g. 1280x720")?;
    let w: u32 = w.parse().map_err(|_| "bad width")?;
    let h: u32 = h.parse().map_err(|_| "bad height")?;
    if !(16..=4096).contains(&w) || !(16..=4096).contains(&h) {
        return Err("width and height must be between 16 and 4096".into());
    }
    Ok((w, h))
}

#[derive(Debug, clap::Args)]
pub struct MuxArgs {
    /// The room's recordings directory (`<recordings>/<room>`), with the
    /// recordings' `.json` manifests and `chat.jsonl`.
    #[arg(value_name = "ROOM DIR")]
    pub room_dir: PathBuf,
    /// Output file [default: <ROOM DIR>/room.mkv].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct ConfigFile {
    /// TOML configuration file (see deploy/gateway.toml).
    #[arg(long, short = 'c', value_name = "FILE", env = "RTCIO_GATEWAY_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub file: ConfigFile,
    /// Address to listen on for HTTP and socket.io [default: 0.0.0.0:3000]; overrides server.listen.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Log filter such as "info" or "rtcio_gateway=debug"; overrides log.level.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Directory for recordings [default: ./recordings]; overrides recording.dir.
    #[arg(long, value_name = "DIR")]
    pub recordings: Option<PathBuf>,
    /// Record only rooms matching this glob (repeatable); overrides recording.rooms.
    #[arg(long = "record-rooms", value_name = "GLOB")]
    pub record_rooms: Vec<String>,
    /// Do not record (signaling only); overrides recording.enabled.
    #[arg(long)]
    pub no_record: bool,
}

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub file: ConfigFile,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::source::Input;

    fn publish(args: &[&str]) -> Result<PublishArgs, clap::Error> {
        let argv = ["rtcio-gateway", "publish", "--server", "http://x", "--room", "r"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Publish(p) => Ok(p),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn publish_colour_tone_and_volume() {
        assert_eq!(publish(&[]).unwrap().input(), Input::TestPattern);
        assert_eq!(
            publish(&["--colour", "red"]).unwrap().input(),
            Input::Solid { rgb: 0xff0000, tone_hz: 440.0, volume: 0.5 }
        );
        assert_eq!(
            publish(&["--colour", "0x336699", "--tone", "660", "--volume", "0.8"]).unwrap().input(),
            Input::Solid { rgb: 0x336699, tone_hz: 660.0, volume: 0.8 }
        );
        assert_eq!(
            publish(&["--colour", "blue", "--tone", "0"]).unwrap().input(),
            Input::Solid { rgb: 0x0000ff, tone_hz: 0.0, volume: 0.5 }
        );
        assert_eq!(publish(&["--sync-marks"]).unwrap().input(), Input::SyncMarks);
    }

    #[test]
    fn publish_refuses_bad_or_conflicting_colour_options() {
        for bad in [
            &["--colour", "purple"][..],
            &["--colour", "red", "--volume", "1.5"],
            &["--colour", "red", "--volume", "-0.1"],
            &["--colour", "red", "--tone", "-1"],
            &["--colour", "red", "--tone", "30000"],
            &["--colour", "red", "--tone", "loud"],
            &["--tone", "440"],
            &["--volume", "0.5"],
            &["--colour", "red", "--sync-marks"],
            &["--colour", "red", "--file", "/tmp/x.webm"],
        ] {
            assert!(publish(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
