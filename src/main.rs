//! Thin binary: parse the command line, load the configuration, run the library.

use anyhow::Context;
use clap::Parser;
use rtcio_gateway::cli::{Cli, Command, PipelinesCommand};
use rtcio_gateway::config::{Config, LogFormat};
use rtcio_gateway::server::Gateway;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rtcio-gateway: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config(args) => {
            let config = Config::load(args.file.config.as_deref(), std::env::vars())?;
            config.validate()?;
            print!("{}", config.to_toml());
            Ok(())
        }
        Command::Serve(args) => {
            let mut config = Config::load(args.file.config.as_deref(), std::env::vars())?;
            if let Some(listen) = args.listen {
                config.server.listen = listen;
            }
            if let Some(level) = args.log_level {
                config.log.level = level;
            }
            if let Some(dir) = args.recordings {
                config.recording.dir = dir;
            }
            if !args.record_rooms.is_empty() {
                config.recording.rooms = args.record_rooms;
            }
            if args.no_record {
                config.recording.enabled = false;
            }
            config.validate()?;
            init_logging(&config);
            runtime()?.block_on(serve(config))
        }
        Command::Join(args) => {
            init_cli_logging(&args.room.log_level);
            runtime()?.block_on(rtcio_gateway::commands::join(args))?;
            Ok(())
        }
        Command::Relay(args) => {
            init_cli_logging(&args.room.log_level);
            runtime()?.block_on(rtcio_gateway::commands::relay(args))?;
            Ok(())
        }
        Command::Pipelines(command) => {
            let (args, list) = match command {
                PipelinesCommand::Check(args) => (args, false),
                PipelinesCommand::List(args) => (args, true),
            };
            let config = Config::load(args.file.config.as_deref(), std::env::vars())?;
            let dir = args
                .dir
                .clone()
                .or_else(|| (!config.pipelines.dir.is_empty()).then(|| config.pipelines.dir.clone().into()));
            if rtcio_gateway::commands::pipelines(dir.as_deref(), args.strict, list)? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Command::Mux(args) => {
            init_cli_logging("warn");
            rtcio_gateway::commands::mux(args)?;
            Ok(())
        }
        Command::Publish(args) => {
            init_cli_logging(&args.room.log_level);
            runtime()?.block_on(rtcio_gateway::commands::publish(args))?;
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")
}

fn init_cli_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let gateway = Gateway::start(config).await?;
    shutdown_signal().await;
    gateway.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&config.log.level);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
