//! The `join` and `publish` subcommands: a participant in one room of any
//! rtc.io server, printing what happens as it happens (one line per event on
//! stdout; progress and diagnostics go to the log on stderr).

use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use crate::cli::{JoinArgs, PublishArgs, RoomArgs};
use crate::media::source::{AudioCodec, Input, MediaSource, SourceConfig, short_id};
use crate::metrics::Metrics;
use crate::participant::events::{ParticipantEvent, ReceivedTrack};
use crate::participant::link::LinkConfig;
use crate::participant::room::{Participant, ParticipantConfig};

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

/// `rtcio-gateway join`: listen to a room until Ctrl-C, SIGTERM or `--duration`.
pub async fn join(args: JoinArgs) -> Result<(), CommandError> {
    let metrics = Metrics::new();
    let mut participant = Participant::start(participant_config(&args.room, "Recorder"), metrics.participant.clone())?;
    println!("connecting to {} room {:?}", args.room.server, args.room.room);
    let stop = stop_signal(args.duration);
    tokio::pin!(stop);
    let result = loop {
        tokio::select! {
            _ = &mut stop => break Ok(()),
            ev = participant.next_event() => match ev {
                None => break Ok(()),
                Some(ParticipantEvent::Refused { reason }) => break Err(CommandError::Refused(reason)),
                Some(ev) => print_event(ev),
            },
        }
    };
    participant.shutdown().await;
    println!("left the room");
    result
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
        input: args.file.clone().map(Input::File).unwrap_or(Input::TestPattern),
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
                    print_event(ev)
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
fn print_event(ev: ParticipantEvent) {
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
            format!("[{}] {}: {} {}", m.channel.name(), m.peer.name, m.event, Value::Array(m.args))
        }
        ParticipantEvent::Binary { peer, channel, data, .. } => {
            format!("[{}] {}: {} bytes of binary data", channel.name(), peer.name, data.len())
        }
        ParticipantEvent::StreamStarted { peer, stream_id, events } => match events {
            Some(events) => {
                format!("stream {stream_id} from {}: {}", peer.name, serde_json::to_string(&events).unwrap_or_default())
            }
            None => format!("stream {stream_id} from {}: no metadata", peer.name),
        },
        ParticipantEvent::StreamMetadata { peer, stream_id, events } => {
            format!(
                "stream {stream_id} from {}: late metadata {}",
                peer.name,
                serde_json::to_string(&events).unwrap_or_default()
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
            tokio::spawn(drain_track(track));
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

/// Count a track's packets (nothing records them yet) and say how many arrived.
async fn drain_track(mut track: ReceivedTrack) {
    let (mut packets, mut bytes) = (0u64, 0usize);
    while let Some(p) = track.packets.recv().await {
        packets += 1;
        bytes += p.payload.len();
    }
    println!("track {} from {} ended after {packets} packets ({bytes} bytes)", track.track_id, track.peer.name);
}
