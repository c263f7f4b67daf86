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
