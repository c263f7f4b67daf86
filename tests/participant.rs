//! The headless participant, over real sockets and real WebRTC on loopback:
//! participants talk to each other through the gateway's own signaling server.

mod common;

use std::time::Duration;

use common::*;
use rtcio_gateway::media::source::{MediaSource, SourceConfig, VideoCodec};
use rtcio_gateway::metrics::Metrics;
use rtcio_gateway::participant::channels::Channel;
use rtcio_gateway::participant::events::{MediaKind, ParticipantEvent, ReceivedTrack};
use rtcio_gateway::participant::link::LinkConfig;
use rtcio_gateway::participant::room::{Participant, ParticipantConfig};
use rtcio_gateway::server::Gateway;
use serde_json::json;

const LONG: Duration = Duration::from_secs(20);

fn config(gw: &Gateway, room: &str, name: &str) -> ParticipantConfig {
    ParticipantConfig {
        link: LinkConfig { server: url(gw), room: room.into(), name: name.into(), password: None, token: None },
        channels: vec!["chat".into()],
        udp_bind: "127.0.0.1".parse().unwrap(),
        ice_servers: vec![],
    }
}

fn start(gw: &Gateway, room: &str, name: &str, metrics: &Metrics) -> Peer {
    Peer::new(Participant::start(config(gw, room, name), metrics.participant.clone()).unwrap())
}

/// A participant plus the events it reported that no test step has taken yet.
struct Peer {
    p: Participant,
    backlog: Vec<ParticipantEvent>,
}

impl Peer {
    fn new(p: Participant) -> Self {
        Self { p, backlog: Vec::new() }
    }

    /// Take the first event (already received or still to come) matching `pred`.
    async fn take<F>(&mut self, what: &str, mut pred: F) -> ParticipantEvent
    where
        F: FnMut(&ParticipantEvent) -> bool,
    {
        if let Some(i) = self.backlog.iter().position(&mut pred) {
            return self.backlog.remove(i);
        }
        let deadline = tokio::time::Instant::now() + LONG;
        loop {
            match tokio::time::timeout_at(deadline, self.p.next_event()).await {
                Ok(Some(ev)) if pred(&ev) => return ev,
                Ok(Some(ev)) => self.backlog.push(ev),
                Ok(None) => panic!("participant stopped while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}; backlog: {:?}", self.backlog),
            }
        }
    }
}

async fn packets(track: &mut ReceivedTrack, n: usize) -> usize {
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + LONG;
    while got < n {
        match tokio::time::timeout_at(deadline, track.packets.recv()).await {
            Ok(Some(_)) => got += 1,
            _ => break,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_and_receiver_exchange_events_and_media() {
    let gw = start_gateway().await;
    let metrics = Metrics::new();
    let mut receiver = start(&gw, "room", "Recorder", &metrics);
    receiver.take("joined", |e| matches!(e, ParticipantEvent::Joined { .. })).await;

    let mut publisher = start(&gw, "room", "alice", &metrics);
    let source = MediaSource::start(&SourceConfig { video: Some(VideoCodec::Vp8), ..Default::default() }).unwrap();
    publisher.p.publish(source.stream("stream-a", "camera", Some(json!({"name": "alice"})))).unwrap();

    receiver.take("peer connect", |e| matches!(e, ParticipantEvent::PeerConnected(p) if p.name == "alice")).await;
    publisher.take("peer connect", |e| matches!(e, ParticipantEvent::PeerConnected(p) if p.name == "Recorder")).await;

    publisher.p.emit("hello", &[json!("world"), json!({"n": 1})]).unwrap();
    publisher.p.emit_on("chat", "msg", &[json!("hi there")]).unwrap();

    let ParticipantEvent::StreamStarted { stream_id, events, peer } =
        receiver.take("stream", |e| matches!(e, ParticipantEvent::StreamStarted { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(stream_id, "stream-a");
    assert_eq!(peer.name, "alice");
    let events = events.expect("metadata resolved");
    assert_eq!(events["camera"], vec![json!({"cam": "[RTCIOStream] stream-a", "metadata": {"name": "alice"}})]);
    let ParticipantEvent::Message(ctrl) =
        receiver.take("ctrl message", |e| matches!(e, ParticipantEvent::Message(m) if m.channel == Channel::Ctrl)).await
    else {
        unreachable!()
    };
    assert_eq!((ctrl.event.as_str(), ctrl.args.clone()), ("hello", vec![json!("world"), json!({"n": 1})]));
    assert_eq!(ctrl.peer.name, "alice");
    let ParticipantEvent::Message(chat) =
        receiver.take("chat message", |e| matches!(e, ParticipantEvent::Message(m) if m.channel != Channel::Ctrl)).await
    else {
        unreachable!()
    };
    assert_eq!(chat.channel, Channel::Broadcast("chat".into()));
    assert_eq!((chat.event.as_str(), chat.args.clone()), ("msg", vec![json!("hi there")]));
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let ParticipantEvent::Track(mut t) =
            receiver.take("track", |e| matches!(e, ParticipantEvent::Track(t) if t.kind == kind)).await
        else {
            unreachable!()
        };
        assert_eq!(t.stream_id, "stream-a");
        let want = if kind == MediaKind::Video { "video/VP8" } else { "audio/opus" };
        assert!(t.codec.mime_type.eq_ignore_ascii_case(want), "{:?}", t.codec);
        assert!(t.codec.payload_type > 0);
        assert_eq!(packets(&mut t, 20).await, 20, "{kind:?} RTP flows");
    }
    publisher.p.shutdown().await;
    receiver.p.shutdown().await;
    gw.shutdown().await.unwrap();
}
