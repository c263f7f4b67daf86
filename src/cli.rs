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
    /// Run the signaling server (and, in later versions, recorder) until SIGTERM/SIGINT.
    Serve(ServeArgs),
    /// Print the effective configuration as TOML after validating it, then exit.
    Config(ConfigArgs),
    /// Join a room on any rtc.io server as a headless peer and print what it hears.
    Join(JoinArgs),
    /// Join a room and publish a test stream (and optionally chat) like a browser would.
    Publish(PublishArgs),
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
}

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub file: ConfigFile,
}
