//! The `join`, `relay` and `publish` subcommands: a participant in one room
//! of any rtc.io server, printing what happens as it happens (one line per
//! event on stdout; progress and diagnostics go to the log on stderr),
//! `pipelines check|list`, and `mux` (a room directory into one file).

use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use std::sync::Arc;

use crate::cli::{JoinArgs, MediaArgs, MuxArgs, PublishArgs, RelayArgs, RoomArgs};
use crate::config::CompositeConfig;
use crate::media::source::{AudioCodec, MediaSource, SourceConfig, short_id};
use crate::media::templates::TemplateSet;
use crate::metrics::Metrics;
use crate::participant::events::ParticipantEvent;
use crate::participant::link::LinkConfig;
use crate::participant::room::{Participant, ParticipantConfig};
use crate::recorder::naming;
use crate::recorder::room::{RecordSpec, RelaySpec, RoomPlan, RoomRecorder};
use crate::recorder::runner::{Observed, Outcome, RoomCommand, run_room};
use crate::recorder::stream::OutputSettings;
use crate::redact;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Participant(#[from] crate::participant::room::ParticipantError),
    #[error("media source: {0}")]
    Source(#[from] crate::media::source::SourceError),
    #[error("--metadata is not valid JSON: {0}")]
    Metadata(serde_json::Error),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Mux(#[from] crate::mux::MuxError),
}

fn participant_config(args: &RoomArgs, default_name: &str) -> ParticipantConfig {
    ParticipantConfig {
        link: LinkConfig {
            server: args.server.clone(),
            room: args.room.clone(),
            name: args.name.clone().unwrap_or_else(|| default_name.to_string()),
            password: args.password.clone(),
            token: args.token.clone(),
        },
        channels: args.channels.clone(),
        udp_bind: args.udp_bind,
        ice_servers: args.ice_servers.clone(),
    }
}

/// `rtcio-gateway join`: record a room (or just listen, `--no-record`) until
/// Ctrl-C, SIGTERM or `--duration`; every file is finalised before it exits.
pub async fn join(args: JoinArgs) -> Result<(), CommandError> {
    let plan = RoomPlan {
        server: Some(args.room.server.clone()),
        room: args.room.room.clone(),
        recording: (!args.no_record).then(|| RecordSpec {
            dir: args.recordings.clone(),
            template: args.media.template.clone(),
            mode: args.media.mode(),
            layout: args.media.layout(),
            by: "cli".to_string(),
            max_bytes: 0,
            max_duration_secs: 0,
        }),
        relay: None,
        log_channels: args.room.channels.clone(),
    };
    if let Some(spec) = plan.recording.as_ref() {
        println!("recording into {}", naming::room_dir(&spec.dir, &args.room.room).display());
    }
    run_recording_participant(&args.room, &args.media, plan, "Recorder", args.duration).await
}

/// `rtcio-gateway relay`: relay one stream of a room to RTMP until stopped.
pub async fn relay(args: RelayArgs) -> Result<(), CommandError> {
    let ok = url::Url::parse(&args.rtmp).is_ok_and(|u| matches!(u.scheme(), "rtmp" | "rtmps"));
    if !ok {
        return Err(CommandError::Usage(format!("--rtmp {:?} is not an rtmp:// or rtmps:// URL", args.rtmp)));
    }
    let plan = RoomPlan {
        server: Some(args.room.server.clone()),
        room: args.room.room.clone(),
        recording: None,
        relay: Some(RelaySpec {
            url: args.rtmp.clone(),
            peer: args.peer.clone(),
            event: args.event.clone(),
            template: args.media.template.clone(),
            mode: args.media.mode(),
            layout: args.media.layout(),
        }),
        log_channels: Vec::new(),
    };
    println!("relaying room {:?} to {}", args.room.room, redact::stream_key(&args.rtmp));
    run_recording_participant(&args.room, &args.media, plan, "Relay", None).await
}

async fn run_recording_participant(
    room: &RoomArgs,
    media: &MediaArgs,
    plan: RoomPlan,
    default_name: &str,
    duration: Option<u64>,
) -> Result<(), CommandError> {
    let mut templates =
        TemplateSet::load(media.pipelines.as_deref()).map_err(|e| CommandError::Usage(e.to_string()))?;
    let findings = templates.validate().map_err(|e| CommandError::Usage(format!("GStreamer: {e}")))?;
    if let Some(fatal) = findings.iter().find(|f| f.fatal) {
        return Err(CommandError::Usage(format!("invalid pipeline template: {fatal}")));
    }
    if let Some(name) = plan.recording.as_ref().and_then(|r| r.template.as_deref()) {
        templates.get(name).map_err(|e| CommandError::Usage(e.to_string()))?;
    }
    let metrics = Metrics::new();
    let settings = OutputSettings {
        templates: Arc::new(templates),
        jitter_latency_ms: media.jitter_latency_ms.clamp(20, 5000),
        relay_video_kbps: media.video_kbps.clamp(100, 50_000),
        track_wait: Duration::from_secs(1),
        finish_timeout: Duration::from_secs(5),
        metrics: metrics.media.clone(),
        notifier: None,
        composite: CompositeConfig {
            width: media.composite_size.0,
            height: media.composite_size.1,
            framerate: media.composite_fps.clamp(1, 60),
            video_kbps: media.video_kbps.clamp(100, 50_000),
            ..CompositeConfig::default()
        },
    };
    let mut config = participant_config(room, default_name);
    // Log (and create) every channel the plan logs.
    for channel in &plan.log_channels {
        if !config.channels.contains(channel) {
            config.channels.push(channel.clone());
        }
    }
    let participant = Participant::start(config, metrics.participant.clone())?;
    println!("connecting to {} room {:?}", room.server, room.room);
    let recorder = RoomRecorder::new(plan, settings);
    let (commands, commands_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        stop_signal(duration).await;
        let _ = commands.send(RoomCommand::Stop(crate::recorder::end_reason::EndReason::Stopped));
    });
    let (outcome, reports) = run_room(participant, recorder, commands_rx, |observed| {
        if let Observed::Event(event) = observed {
            print_event(event);
        }
    })
    .await;
    for report in &reports {
        if let Some(file) = &report.file {
            println!("recording {} ({:?}, {})", file.display(), report.state, report.reason);
        }
    }
    println!("left the room");
    match outcome {
        Outcome::Refused(reason) => Err(CommandError::Refused(reason)),
        Outcome::Stopped(_) => Ok(()),
    }
}

/// `rtcio-gateway publish`: publish a stream (and chat) until Ctrl-C, SIGTERM or `--duration`.
pub async fn publish(args: PublishArgs) -> Result<(), CommandError> {
    let metadata =
        args.metadata.as_deref().map(serde_json::from_str::<Value>).transpose().map_err(CommandError::Metadata)?;
    let video = match args.video.as_str() {
        "none" => None,
        v => Some(v.parse().map_err(CommandError::Usage)?),
    };
    let audio = (args.audio != "none").then_some(AudioCodec::Opus);
    let source = MediaSource::start(&SourceConfig {
        input: args.input(),
        video,
        audio,
        width: args.size.0,
        height: args.size.1,
        ..Default::default()
    })?;
    let metrics = Metrics::new();
    let mut participant = Participant::start(participant_config(&args.room, "Publisher"), metrics.participant.clone())?;
    let stream_id = short_id();
    participant.publish(source.stream(&stream_id, &args.event, metadata))?;
    println!("publishing stream {stream_id} as {:?} to {} room {:?}", args.event, args.room.server, args.room.room);
    let chat_channel = args.room.channels.first().cloned();
    let mut chat_timer = tokio::time::interval(Duration::from_secs_f64(args.every.max(0.05)));
    let stop = stop_signal(args.duration);
    tokio::pin!(stop);
    let mut sent = 0u64;
    let mut peers = 0usize;
    let result = loop {
        tokio::select! {
            _ = &mut stop => break Ok(()),
            // Chat goes peer to peer: only worth sending once someone is connected.
            _ = chat_timer.tick(), if args.chat.is_some() && chat_channel.is_some() && peers > 0 => {
                let text = args.chat.as_deref().unwrap_or_default();
                sent += 1;
                participant.emit_on(chat_channel.as_deref().unwrap_or("chat"), "msg", &[Value::String(format!("{text} #{sent}"))])?;
            }
            ev = participant.next_event() => match ev {
                None => break Ok(()),
                Some(ParticipantEvent::Refused { reason }) => break Err(CommandError::Refused(reason)),
                Some(ev) => {
                    match &ev {
                        ParticipantEvent::PeerConnected(_) => peers += 1,
                        ParticipantEvent::PeerDisconnected { .. } => peers = peers.saturating_sub(1),
                        ParticipantEvent::SignalingLost { .. } => peers = 0,
                        _ => {}
                    }
                    print_event(&ev)
                }
            },
        }
    };
    participant.shutdown().await;
    drop(source);
    println!("stopped publishing");
    result
}

async fn stop_signal(duration: Option<u64>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let timer = async {
        match duration {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = timer => {}
    }
}

/// One human-readable line per event.
fn print_event(ev: &ParticipantEvent) {
    let line = match ev {
        ParticipantEvent::Joined { own_id, members } => {
            let names: Vec<_> = members.iter().map(|m| format!("{} ({})", m.name, m.id)).collect();
            format!(
                "joined as {own_id}; already here: {}",
                if names.is_empty() { "nobody".into() } else { names.join(", ") }
            )
        }
        ParticipantEvent::Refused { reason } => format!("refused: {reason}"),
        ParticipantEvent::SignalingLost { reason } => format!("signaling lost ({reason}); reconnecting"),
        ParticipantEvent::PeerConnected(p) => format!("peer connected: {} ({})", p.name, p.id),
        ParticipantEvent::PeerDisconnected { peer, reason } => {
            format!("peer disconnected: {} ({}) [{reason}]", peer.name, peer.id)
        }
        ParticipantEvent::Message(m) => {
            format!("[{}] {}: {} {}", m.channel.name(), m.peer.name, m.event, Value::Array(m.args.clone()))
        }
        ParticipantEvent::Binary { peer, channel, data, .. } => {
            format!("[{}] {}: {} bytes of binary data", channel.name(), peer.name, data.len())
        }
        ParticipantEvent::StreamStarted { peer, stream_id, events, .. } => match events {
            Some(events) => {
                format!("stream {stream_id} from {}: {}", peer.name, serde_json::to_string(events).unwrap_or_default())
            }
            None => format!("stream {stream_id} from {}: no metadata", peer.name),
        },
        ParticipantEvent::StreamMetadata { peer, stream_id, events } => {
            format!(
                "stream {stream_id} from {}: late metadata {}",
                peer.name,
                serde_json::to_string(events).unwrap_or_default()
            )
        }
        ParticipantEvent::Track(track) => {
            let line = format!(
                "track {} of stream {} from {}: {} {} pt={} ssrc={}",
                track.track_id,
                track.stream_id,
                track.peer.name,
                track.kind.as_str(),
                track.codec.mime_type,
                track.codec.payload_type,
                track.ssrc
            );
            line
        }
        ParticipantEvent::StreamEnded { peer, stream_id, reason } => {
            format!("stream {stream_id} from {} ended ({reason})", peer.name)
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `rtcio-gateway pipelines check|list`. Returns whether every template is usable.
pub fn pipelines(dir: Option<&std::path::Path>, strict: bool, list: bool) -> Result<bool, CommandError> {
    let mut templates = TemplateSet::load(dir).map_err(|e| CommandError::Usage(e.to_string()))?;
    let findings = templates.validate().map_err(|e| CommandError::Usage(format!("GStreamer: {e}")))?;
    for t in templates.templates() {
        let video: Vec<&str> = t.video_codecs().collect();
        let audio: Vec<&str> = t.audio_codecs().collect();
        let ext = if t.extension.is_empty() { String::new() } else { format!(" .{}", t.extension) };
        println!(
            "{:<14} {:<6}{ext:<6} video: {:<14} audio: {:<6} ({})",
            t.name,
            t.kind,
            if video.is_empty() { "-".to_string() } else { video.join(",") },
            if audio.is_empty() { "-".to_string() } else { audio.join(",") },
            t.origin
        );
    }
    let mut ok = true;
    for f in &findings {
        let fatal = f.fatal || strict;
        ok &= !fatal;
        if !list || fatal {
            println!("{}: {f}", if fatal { "error" } else { "warning" });
        }
    }
    if !list {
        println!("{}", if ok { "all templates usable" } else { "some templates are unusable" });
    }
    Ok(ok)
}

/// `rtcio-gateway mux`: a progress line on stderr while it runs (when stderr
/// is a terminal), the summary on stdout at the end.
pub fn mux(args: MuxArgs) -> Result<(), CommandError> {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let options = crate::mux::MuxOptions { room_dir: args.room_dir, out: args.out, force: args.force };
    let mut shown = false;
    let result = crate::mux::run(&options, &mut |position, total| {
        if tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", crate::mux::report::progress_line(position, total));
            let _ = err.flush();
            shown = true;
        }
    });
    if shown {
        eprint!("\r\x1b[2K");
    }
    let report = result?;
    print!("{}", crate::mux::report::summary(&report));
    Ok(())
}
