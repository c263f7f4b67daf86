//! Publishing peers for the media tests: a participant of this crate on
//! loopback WebRTC, a test media source, and waiting for its events.

use std::time::Duration;

use rtcio_gateway::media::source::{AudioCodec, MediaSource, SourceConfig, VideoCodec};
use rtcio_gateway::metrics::Metrics;
use rtcio_gateway::participant::events::ParticipantEvent;
use rtcio_gateway::participant::link::LinkConfig;
use rtcio_gateway::participant::room::{Participant, ParticipantConfig};

pub const LONG: Duration = Duration::from_secs(20);

/// A participant joining `room` of the rtc.io server at `server` as `name` (with a `chat` channel).
pub fn publisher(server: &str, room: &str, name: &str, metrics: &Metrics) -> Participant {
    publisher_with_password(server, room, name, None, metrics)
}

/// The same, for a room with a password (the first joiner sets it).
pub fn publisher_with_password(
    server: &str,
    room: &str,
    name: &str,
    password: Option<&str>,
    metrics: &Metrics,
) -> Participant {
    let config = ParticipantConfig {
        link: LinkConfig {
            server: server.into(),
            room: room.into(),
            name: name.into(),
            password: password.map(str::to_string),
            token: None,
        },
        channels: vec!["chat".into()],
        udp_bind: "127.0.0.1".parse().unwrap(),
        ice_servers: vec![],
    };
    Participant::start(config, metrics.participant.clone()).unwrap()
}

/// Wait (up to [`LONG`]) for an event matching `pred`, ignoring others; returns it.
pub async fn wait_for(p: &mut Participant, what: &str, pred: impl Fn(&ParticipantEvent) -> bool) -> ParticipantEvent {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        match tokio::time::timeout_at(deadline, p.next_event()).await {
            Ok(Some(ev)) if pred(&ev) => return ev,
            Ok(Some(_)) => {}
            Ok(None) => panic!("participant stopped while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

/// Wait until the gateway's recording participant is connected to `p`.
pub async fn recorder_connected(p: &mut Participant) {
    wait_for(
        p,
        "the recorder",
        |e| matches!(e, ParticipantEvent::PeerConnected(peer) if peer.name.contains("recorder")),
    )
    .await;
}

/// A live test source: `video` (if any) + Opus audio.
pub fn source(video: Option<VideoCodec>) -> MediaSource {
    MediaSource::start(&SourceConfig { video, audio: Some(AudioCodec::Opus), ..Default::default() }).unwrap()
}
