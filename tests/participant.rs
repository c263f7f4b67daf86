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
                Ok(None) => panic!("participant stopped while waiting for {what}; backlog: {:?}", self.backlog),
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
    let mut receiver = start_joined(&gw, "room", "Recorder", &metrics).await;

    let mut publisher = start(&gw, "room", "alice", &metrics);
    let source = MediaSource::start(&SourceConfig { video: Some(VideoCodec::Vp8), ..Default::default() }).unwrap();
    publisher.p.publish(source.stream("stream-a", "camera", Some(json!({"name": "alice"})))).unwrap();

    receiver.take("peer connect", |e| matches!(e, ParticipantEvent::PeerConnected(p) if p.name == "alice")).await;
    publisher.take("peer connect", |e| matches!(e, ParticipantEvent::PeerConnected(p) if p.name == "Recorder")).await;

    publisher.p.emit("hello", &[json!("world"), json!({"n": 1})]).unwrap();
    publisher.p.emit_on("chat", "msg", &[json!("hi there")]).unwrap();

    let ParticipantEvent::StreamStarted { stream_id, events, peer, kinds } =
        receiver.take("stream", |e| matches!(e, ParticipantEvent::StreamStarted { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(stream_id, "stream-a");
    assert_eq!(peer.name, "alice");
    assert!(
        kinds.len() == 2 && kinds.contains(&MediaKind::Audio) && kinds.contains(&MediaKind::Video),
        "from the offer: {kinds:?}"
    );
    let events = events.expect("metadata resolved");
    assert_eq!(events["camera"], vec![json!({"cam": "[RTCIOStream] stream-a", "metadata": {"name": "alice"}})]);
    let ParticipantEvent::Message(ctrl) = receiver
        .take("ctrl message", |e| matches!(e, ParticipantEvent::Message(m) if m.channel == Channel::Ctrl))
        .await
    else {
        unreachable!()
    };
    assert_eq!((ctrl.event.as_str(), ctrl.args.clone()), ("hello", vec![json!("world"), json!({"n": 1})]));
    assert_eq!(ctrl.peer.name, "alice");
    let ParticipantEvent::Message(chat) = receiver
        .take("chat message", |e| matches!(e, ParticipantEvent::Message(m) if m.channel != Channel::Ctrl))
        .await
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
        if kind == MediaKind::Video {
            // A keyframe request reaches the publisher as RTCP PLI.
            t.keyframes.request();
            wait_until_sync("a PLI sent", Duration::from_secs(5), || metrics.participant.plis_sent_total.get() > 0)
                .await;
            assert_eq!(metrics.participant.plis_sent_total.get(), 1);
        }
    }
    publisher.p.shutdown().await;
    receiver.p.shutdown().await;
    gw.shutdown().await.unwrap();
}

/// Publish a VP8 + Opus test stream from `p` under `event`.
fn publish(p: &Peer, stream_id: &str, event: &str) -> MediaSource {
    let source = MediaSource::start(&SourceConfig::default()).unwrap();
    p.p.publish(source.stream(stream_id, event, None)).unwrap();
    source
}

/// Start a participant and wait until it has joined.
async fn start_joined(gw: &Gateway, room: &str, name: &str, metrics: &Metrics) -> Peer {
    let mut p = start(gw, room, name, metrics);
    p.take("joined", |e| matches!(e, ParticipantEvent::Joined { .. })).await;
    p
}

/// Wait until `p` announced a stream `stream_id` and received RTP on both its tracks.
async fn expect_stream(p: &mut Peer, stream_id: &str, event: &str) {
    let sid = stream_id.to_string();
    let ev = p
        .take(
            &format!("stream {stream_id}"),
            |e| matches!(e, ParticipantEvent::StreamStarted { stream_id, .. } if *stream_id == sid),
        )
        .await;
    let ParticipantEvent::StreamStarted { events, .. } = ev else { unreachable!() };
    assert!(events.expect("metadata").contains_key(event));
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let sid = stream_id.to_string();
        let ParticipantEvent::Track(mut t) = p
            .take(
                &format!("{kind:?} track of {stream_id}"),
                |e| matches!(e, ParticipantEvent::Track(t) if t.stream_id == sid && t.kind == kind),
            )
            .await
        else {
            unreachable!()
        };
        assert!(t.codec.payload_type > 0 && t.codec.clock_rate > 0 && t.ssrc != 0, "{t:?}");
        assert_eq!(packets(&mut t, 10).await, 10, "{kind:?} RTP of {stream_id}");
        // Keep the rest of the track flowing into the void.
        tokio::spawn(async move { while t.packets.recv().await.is_some() {} });
    }
}

async fn connected_to(p: &mut Peer, name: &str) {
    let n = name.to_string();
    p.take(&format!("peer-connect {name}"), |e| matches!(e, ParticipantEvent::PeerConnected(p) if p.name == n)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_joining_last_is_impolite_and_still_receives() {
    let gw = start_gateway().await;
    let metrics = Metrics::new();
    let publisher = start_joined(&gw, "late", "alice", &metrics).await;
    // H.264 this time; the stream was published before the receiver existed (replay to a late joiner).
    let source = MediaSource::start(&SourceConfig { video: Some(VideoCodec::H264), ..Default::default() }).unwrap();
    publisher.p.publish(source.stream("cam-alice", "camera", None)).unwrap();
    let mut receiver = start(&gw, "late", "Recorder", &metrics);
    connected_to(&mut receiver, "alice").await;
    expect_stream(&mut receiver, "cam-alice", "camera").await;
    // The receiver was the newcomer: it answered (impolite); alice offered (polite).
    let m = &metrics.participant.negotiations_total;
    assert!(m.with_label_values(&["impolite", "ok"]).get() >= 1);
    assert!(m.with_label_values(&["polite", "ok"]).get() >= 1);
    publisher.p.shutdown().await;
    receiver.p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_form_a_mesh() {
    let gw = start_gateway().await;
    let metrics = Metrics::new();
    let names = ["a", "b", "c"];
    let mut peers = Vec::new();
    let mut sources = Vec::new();
    for n in names {
        let p = start(&gw, "mesh", n, &metrics);
        sources.push(publish(&p, &format!("cam-{n}"), "camera"));
        peers.push(p);
    }
    for (i, p) in peers.iter_mut().enumerate() {
        for (j, other) in names.iter().enumerate() {
            if i != j {
                connected_to(p, other).await;
            }
        }
    }
    for p in peers.iter() {
        p.p.emit("hi", &[json!(true)]).unwrap();
    }
    for (i, p) in peers.iter_mut().enumerate() {
        for (j, other) in names.iter().enumerate() {
            if i == j {
                continue;
            }
            expect_stream(p, &format!("cam-{other}"), "camera").await;
            let o = other.to_string();
            p.take("hi", |e| matches!(e, ParticipantEvent::Message(m) if m.peer.name == o && m.event == "hi")).await;
        }
    }
    for p in peers {
        p.p.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_renegotiation_converges() {
    let gw = start_gateway().await;
    let metrics = Metrics::new();
    let mut a = start_joined(&gw, "glare", "a", &metrics).await;
    let mut b = start(&gw, "glare", "b", &metrics);
    connected_to(&mut a, "b").await;
    connected_to(&mut b, "a").await;
    // Both start publishing in the same instant: both offer, the offers cross.
    let source_a = MediaSource::start(&SourceConfig::default()).unwrap();
    let source_b = MediaSource::start(&SourceConfig::default()).unwrap();
    a.p.publish(source_a.stream("cam-a", "camera", None)).unwrap();
    b.p.publish(source_b.stream("cam-b", "screen", None)).unwrap();
    expect_stream(&mut a, "cam-b", "screen").await;
    expect_stream(&mut b, "cam-a", "camera").await;
    let m = &metrics.participant.negotiations_total;
    let glare =
        m.with_label_values(&["polite", "rolled_back"]).get() + m.with_label_values(&["impolite", "ignored"]).get();
    eprintln!("collisions resolved during this run: {glare}");
    a.p.shutdown().await;
    b.p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_peer_is_cleaned_up_and_reported() {
    let gw = start_gateway().await;
    let metrics = Metrics::new();
    let mut receiver = start_joined(&gw, "leave", "Recorder", &metrics).await;
    let publisher = start(&gw, "leave", "alice", &metrics);
    let source = publish(&publisher, "cam", "camera");
    expect_stream(&mut receiver, "cam", "camera").await;
    assert_eq!(metrics.participant.streams_active.get(), 1);
    let left = std::time::Instant::now();
    publisher.p.shutdown().await;
    drop(source);
    receiver
        .take("stream ended", |e| matches!(e, ParticipantEvent::StreamEnded { stream_id, .. } if stream_id == "cam"))
        .await;
    let ParticipantEvent::PeerDisconnected { peer, .. } =
        receiver.take("peer-disconnect", |e| matches!(e, ParticipantEvent::PeerDisconnected { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(peer.name, "alice");
    assert!(left.elapsed() < Duration::from_secs(5), "noticed after {:?}", left.elapsed());
    assert_eq!(metrics.participant.streams_active.get(), 0);
    receiver.p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_rejoin_after_a_signaling_server_restart() {
    let gw = start_gateway().await;
    let addr = gw.local_addr();
    let metrics = Metrics::new();
    let mut a = start_joined(&gw, "restart", "a", &metrics).await;
    let mut b = start(&gw, "restart", "b", &metrics);
    connected_to(&mut a, "b").await;
    gw.shutdown().await.unwrap();
    a.take("signaling lost", |e| matches!(e, ParticipantEvent::SignalingLost { .. })).await;
    b.take("signaling lost", |e| matches!(e, ParticipantEvent::SignalingLost { .. })).await;
    // Same address, fresh server: both come back, re-join and reconnect to each other.
    let gw = start_with(|c| c.server.listen = addr).await;
    a.take("re-joined", |e| matches!(e, ParticipantEvent::Joined { .. })).await;
    b.take("re-joined", |e| matches!(e, ParticipantEvent::Joined { .. })).await;
    connected_to(&mut a, "b").await;
    connected_to(&mut b, "a").await;
    b.p.emit("back", &[]).unwrap();
    a.take("message after restart", |e| matches!(e, ParticipantEvent::Message(m) if m.event == "back")).await;
    assert!(metrics.participant.joins_total.with_label_values(&["ok"]).get() >= 4);
    a.p.shutdown().await;
    b.p.shutdown().await;
    gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peer_input_is_dropped_and_counted() {
    let gw = start_gateway().await;
    let metrics = Metrics::new();
    let hostile_metrics = Metrics::new();
    let mut receiver = start(&gw, "hostile", "Recorder", &metrics);
    let joined = receiver.take("joined", |e| matches!(e, ParticipantEvent::Joined { .. })).await;
    let ParticipantEvent::Joined { own_id: receiver_id, .. } = joined else { unreachable!() };
    let mut hostile = start(&gw, "hostile", "mallory", &hostile_metrics);
    connected_to(&mut receiver, "mallory").await;
    connected_to(&mut hostile, "Recorder").await;
    let sends = [
        "not json",
        r##"{"e":"#rtcio:message","d":[]}"##,
        r#"{"e":"peer-connect","d":[{"id":"x"}]}"#,
        r#"{"e":"track-added","d":[]}"#,
        r#"{"e":"chat","d":"not an array"}"#,
        r#"{"d":[]}"#,
        r#"[1,2,3]"#,
    ];
    for text in sends {
        hostile.p.send_raw_text(Channel::Ctrl, text.to_string()).unwrap();
    }
    hostile.p.send_raw_text(Channel::Broadcast("chat".into()), "{bad".into()).unwrap();
    // Metadata for a stream that does not exist, and a request for one we do not publish.
    hostile.p.send_raw_envelope(&receiver_id, json!({"mid": "ghost", "events": {"camera": []}})).unwrap();
    hostile.p.send_raw_envelope(&receiver_id, json!({"mid": "ghost"})).unwrap();
    // A large but legal message still arrives, after all the garbage.
    let big = "x".repeat(200 * 1024);
    hostile.p.emit("big", &[json!(big)]).unwrap();
    let ParticipantEvent::Message(m) =
        receiver.take("big message", |e| matches!(e, ParticipantEvent::Message(m) if m.event == "big")).await
    else {
        unreachable!()
    };
    assert_eq!(m.args[0].as_str().map(str::len), Some(200 * 1024));
    assert!(
        !receiver.backlog.iter().any(|e| matches!(e, ParticipantEvent::Message(_))),
        "no hostile message got through: {:?}",
        receiver.backlog
    );
    let dropped = |r: &str| metrics.participant.channel_dropped_total.with_label_values(&[r]).get();
    assert_eq!(dropped("invalid_json"), 2);
    assert_eq!(dropped("reserved_event"), 3);
    assert_eq!(dropped("non_array_args"), 1);
    assert_eq!(dropped("malformed"), 2);
    // Signaling arrives independently of the data channel: wait for it.
    let meta = |r: &str| metrics.participant.metadata_dropped_total.with_label_values(&[r]).get();
    wait_until_sync("two unknown-stream metadata drops", Duration::from_secs(5), || meta("unknown_stream") >= 2).await;
    assert_eq!(meta("unknown_stream"), 2);
    // And the receiver is still fine.
    hostile.p.emit("still-there", &[]).unwrap();
    receiver.take("after hostility", |e| matches!(e, ParticipantEvent::Message(m) if m.event == "still-there")).await;
    hostile.p.shutdown().await;
    receiver.p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_through_a_plain_node_socket_io_server() {
    init_tracing();

    let (server, url) = start_node_reference_server();
    let cfg = |name: &str| ParticipantConfig {
        link: LinkConfig { server: url.clone(), room: "node".into(), name: name.into(), password: None, token: None },
        channels: vec!["chat".into()],
        udp_bind: "127.0.0.1".parse().unwrap(),
        ice_servers: vec![],
    };
    let metrics = Metrics::new();
    let mut receiver = Peer::new(Participant::start(cfg("Recorder"), metrics.participant.clone()).unwrap());
    receiver.take("joined", |e| matches!(e, ParticipantEvent::Joined { .. })).await;
    let publisher = Peer::new(Participant::start(cfg("alice"), metrics.participant.clone()).unwrap());
    let _source = publish(&publisher, "cam-node", "camera");
    connected_to(&mut receiver, "alice").await;
    expect_stream(&mut receiver, "cam-node", "camera").await;
    publisher.p.emit_on("chat", "msg", &[json!("via node")]).unwrap();
    receiver.take("chat", |e| matches!(e, ParticipantEvent::Message(m) if m.args == vec![json!("via node")])).await;
    publisher.p.shutdown().await;
    receiver.p.shutdown().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_arrives_as_h264_and_unpublishing_ends_the_stream() {
    let gw = start_gateway().await;
    let metrics = Metrics::new();
    let mut receiver = start_joined(&gw, "unpub", "Recorder", &metrics).await;
    let publisher = start(&gw, "unpub", "alice", &metrics);
    let source =
        MediaSource::start(&SourceConfig { video: Some(VideoCodec::H264), audio: None, ..Default::default() }).unwrap();
    publisher.p.publish(source.stream("screen-1", "screen", None)).unwrap();
    receiver
        .take("stream", |e| matches!(e, ParticipantEvent::StreamStarted { stream_id, .. } if stream_id == "screen-1"))
        .await;
    let ParticipantEvent::Track(mut t) = receiver.take("track", |e| matches!(e, ParticipantEvent::Track(_))).await
    else {
        unreachable!()
    };
    assert!(t.codec.mime_type.eq_ignore_ascii_case("video/H264"), "{:?}", t.codec);
    assert_eq!(packets(&mut t, 10).await, 10);
    publisher.p.unpublish("screen-1").unwrap();
    // The transceiver goes inactive: the track's packets end and the stream ends, the peer stays.
    receiver
        .take(
            "stream ended",
            |e| matches!(e, ParticipantEvent::StreamEnded { stream_id, .. } if stream_id == "screen-1"),
        )
        .await;
    let deadline = tokio::time::Instant::now() + LONG;
    while tokio::time::timeout_at(deadline, t.packets.recv()).await.expect("track ends").is_some() {}
    assert!(!receiver.backlog.iter().any(|e| matches!(e, ParticipantEvent::PeerDisconnected { .. })));
    publisher.p.emit("still-connected", &[]).unwrap();
    receiver.take("message", |e| matches!(e, ParticipantEvent::Message(m) if m.event == "still-connected")).await;
    publisher.p.shutdown().await;
    receiver.p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_file_can_be_published() {
    use gstreamer::prelude::*;
    let gw = start_gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clip.webm");
    // Make a 3 s VP8 clip with GStreamer itself.
    rtcio_gateway::media::init().unwrap();
    let make = gstreamer::parse::launch(&format!(
        "videotestsrc num-buffers=90 ! video/x-raw,width=320,height=240,framerate=30/1 ! vp8enc deadline=1 ! webmmux ! filesink location={}",
        file.display()
    ))
    .unwrap();
    make.set_state(gstreamer::State::Playing).unwrap();
    let bus = make.bus().unwrap();
    bus.timed_pop_filtered(gstreamer::ClockTime::from_seconds(20), &[gstreamer::MessageType::Eos])
        .expect("clip written");
    make.set_state(gstreamer::State::Null).unwrap();

    let metrics = Metrics::new();
    let mut receiver = start_joined(&gw, "file", "Recorder", &metrics).await;
    let publisher = start(&gw, "file", "alice", &metrics);
    let source = MediaSource::start(&SourceConfig {
        input: rtcio_gateway::media::source::Input::File(file),
        video: Some(VideoCodec::Vp8),
        audio: None,
        ..Default::default()
    })
    .unwrap();
    publisher.p.publish(source.stream("clip", "movie", None)).unwrap();
    receiver
        .take("stream", |e| matches!(e, ParticipantEvent::StreamStarted { stream_id, .. } if stream_id == "clip"))
        .await;
    let ParticipantEvent::Track(mut t) = receiver.take("track", |e| matches!(e, ParticipantEvent::Track(_))).await
    else {
        unreachable!()
    };
    assert_eq!(t.kind, MediaKind::Video);
    assert_eq!(packets(&mut t, 30).await, 30, "the file's frames arrive");
    publisher.p.shutdown().await;
    receiver.p.shutdown().await;
}
