//! The signaling server driven by real socket.io clients over WebSocket
//! (our Rust client); the Node `socket.io-client` suite in `tests/node`
//! covers long-polling and the upgrade path.

mod common;

use std::time::Duration;

use common::*;
use rtcio_gateway::sio_client::{SioClient, SioEvent};
use serde_json::{Value, json};

#[tokio::test]
async fn three_members_see_the_reference_join_sequence() {
    let gw = start().await;
    let mut a = joined(&gw, "room", "alice").await;
    let mut b = connect(&gw).await;
    b.emit("join-room", &json!({"roomId": "room", "name": "bob"})).unwrap();
    let b_events = drain(&mut b).await;
    assert_eq!(
        b_events,
        vec![
            ("user-connected".into(), json!({"id": a.id(), "name": "alice"})),
            ("join-ok".into(), json!({"roomId": "room"})),
        ]
    );
    let a_events = drain(&mut a).await;
    assert_eq!(
        a_events,
        vec![
            ("user-connected".into(), json!({"id": b.id(), "name": "bob"})),
            ("#rtcio:init-offer".into(), json!({"source": b.id()})),
        ]
    );

    let mut c = connect(&gw).await;
    c.emit("join-room", &json!({"roomId": "room", "name": "carol"})).unwrap();
    assert_eq!(
        drain(&mut c).await,
        vec![
            ("user-connected".into(), json!({"id": a.id(), "name": "alice"})),
            ("user-connected".into(), json!({"id": b.id(), "name": "bob"})),
            ("join-ok".into(), json!({"roomId": "room"})),
        ]
    );
    for x in [&mut a, &mut b] {
        assert_eq!(
            drain(x).await,
            vec![
                ("user-connected".into(), json!({"id": c.id(), "name": "carol"})),
                ("#rtcio:init-offer".into(), json!({"source": c.id()})),
            ]
        );
    }
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_room_members").await, 3.0);
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_rooms").await, 1.0);
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_joins_total{result=\"ok\"}").await, 3.0);
}

#[tokio::test]
async fn envelopes_are_relayed_verbatim_and_in_order() {
    let gw = start().await;
    let a = joined(&gw, "r", "a").await;
    let mut b = joined(&gw, "r", "b").await;
    drain(&mut b).await;
    let sdp = "v=0\r\n".repeat(800);
    let mut sent = Vec::new();
    for i in 0..400 {
        let data = if i % 8 == 0 {
            json!({"description": {"type": "offer", "sdp": sdp, "seq": i}})
        } else {
            json!({"candidate": {"candidate": format!("candidate:{i} 1 udp 2122260223 127.0.0.1 5{i} typ host"), "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": null}})
        };
        // Extra fields must survive too: the server forwards the envelope unchanged.
        let env = json!({"source": a.id(), "target": b.id(), "data": data, "x-extra": [i, "é😀"]});
        a.emit("#rtcio:message", &env).unwrap();
        sent.push(env);
    }
    let mut got = Vec::new();
    while got.len() < sent.len() {
        match b.recv_timeout(WAIT).await {
            Some(SioEvent::Event { name, mut args }) if name == "#rtcio:message" => got.push(args.remove(0)),
            Some(other) => panic!("unexpected {other:?}"),
            None => break,
        }
    }
    assert_eq!(got.len(), sent.len(), "every envelope arrives");
    assert!(got == sent, "envelopes arrive unchanged and in order");
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_relayed_messages_total").await, 400.0);
    assert!(metric(&gw, "rtcio_gateway_signaling_relayed_bytes_total").await > 50.0 * 4000.0);
}

/// Members "a" and "b" of `room`, with their presence events already drained.
async fn pair(gw: &rtcio_gateway::server::Gateway, room: &str) -> (SioClient, SioClient) {
    let mut a = joined(gw, room, "a").await;
    let mut b = joined(gw, room, "b").await;
    drain(&mut a).await;
    drain(&mut b).await;
    (a, b)
}

/// Sends `env` from `sender`, expects `signaling-error {code}` back and nothing at `watchers`.
async fn expect_refused(
    sender: &mut SioClient,
    event: &str,
    payload: &Value,
    code: &str,
    watchers: &mut [&mut SioClient],
) {
    sender.emit(event, payload).unwrap();
    let err =
        sender.expect("signaling-error", WAIT).await.unwrap_or_else(|| panic!("no signaling-error for {payload}"));
    assert_eq!(err["code"], code, "{payload}");
    assert_eq!(err["event"], event);
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    for w in watchers.iter_mut() {
        assert_eq!(drain(w).await, vec![], "nothing delivered for {payload}");
    }
}

#[tokio::test]
async fn spoofed_sources_and_foreign_targets_are_dropped() {
    let gw = start().await;
    let mut a = joined(&gw, "r1", "a").await;
    let mut b = joined(&gw, "r1", "b").await;
    let mut c = joined(&gw, "r2", "c").await;
    drain(&mut a).await;
    drain(&mut b).await;

    // source is B's id, sent by A.
    let spoof = json!({"source": b.id(), "target": b.id(), "data": {"candidate": {}}});
    expect_refused(&mut a, "#rtcio:message", &spoof, "spoofed-source", &mut [&mut b, &mut c]).await;
    // C shares no room with A.
    let foreign = envelope(&a, c.id(), json!({"mid": "x"}));
    expect_refused(&mut a, "#rtcio:message", &foreign, "foreign-target", &mut [&mut b, &mut c]).await;
    // Not a socket id at all, and A itself.
    let own = a.id().to_string();
    for target in ["nonsense", "AAAAAAAAAAAAAAAA", own.as_str()] {
        let env = envelope(&a, target, json!({}));
        expect_refused(&mut a, "#rtcio:message", &env, "foreign-target", &mut [&mut b]).await;
    }
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_dropped_messages_total{reason=\"spoofed_source\"}").await, 1.0);
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_dropped_messages_total{reason=\"foreign_target\"}").await, 4.0);

    // Honest traffic still flows both ways.
    a.emit("#rtcio:message", &envelope(&a, b.id(), json!({"mid": "m"}))).unwrap();
    assert_eq!(b.expect("#rtcio:message", WAIT).await.unwrap()["data"]["mid"], "m");
    b.emit("#rtcio:message", &envelope(&b, a.id(), json!({"mid": "n"}))).unwrap();
    assert_eq!(a.expect("#rtcio:message", WAIT).await.unwrap()["data"]["mid"], "n");
}

#[tokio::test]
async fn malformed_envelopes_get_invalid_payload() {
    let gw = start().await;
    let (mut a, mut b) = pair(&gw, "r").await;
    for bad in [
        json!("a string"),
        json!(42),
        json!(null),
        json!([1, 2]),
        json!({"source": a.id(), "target": b.id()}),
        json!({"source": 5, "target": b.id(), "data": {}}),
        json!({"source": a.id(), "target": {"id": b.id()}, "data": {}}),
    ] {
        expect_refused(&mut a, "#rtcio:message", &bad, "invalid-payload", &mut [&mut b]).await;
    }
    // No argument at all. (Binary attachments are covered by the Node client suite.)
    a.send_engine_message(r##"2["#rtcio:message"]"##).unwrap();
    assert_eq!(a.expect("signaling-error", WAIT).await.unwrap()["code"], "invalid-payload");
    // Unknown events are refused with their name.
    a.emit("make-me-admin", &json!({})).unwrap();
    let err = a.expect("signaling-error", WAIT).await.unwrap();
    assert_eq!(err, json!({"code": "unknown-event", "event": "make-me-admin", "message": err["message"]}));
    // Still healthy.
    a.emit("#rtcio:message", &envelope(&a, b.id(), json!({"mid": "ok"}))).unwrap();
    assert_eq!(b.expect("#rtcio:message", WAIT).await.unwrap()["data"]["mid"], "ok");
}

#[tokio::test]
async fn unparsable_frames_cost_only_the_sender_its_connection() {
    let gw = start().await;
    let (a, mut b) = pair(&gw, "r").await;
    let mut evil = joined(&gw, "r", "evil").await;
    for frame in [r##"2["#rtcio:message",{"##, "2not json at all", "9", r#"2{"a":1}"#] {
        let _ = evil.send_engine_message(frame);
    }
    // Whatever the transport does with the garbage, the others keep working.
    a.emit("#rtcio:message", &envelope(&a, b.id(), json!({"mid": "still"}))).unwrap();
    assert_eq!(b.expect("#rtcio:message", WAIT).await.unwrap()["data"]["mid"], "still");
    let _ = evil.recv_timeout(QUIET).await;
    let _ = evil;
}

#[tokio::test]
async fn join_validation_refuses_bad_ids_and_names() {
    let gw = start_with(|c| c.signaling.max_room_id_chars = 20).await;
    let mut a = connect(&gw).await;
    let long = "x".repeat(21);
    for (payload, reason) in [
        (json!({"name": "a"}), "invalid-room"),
        (json!({"roomId": "", "name": "a"}), "invalid-room"),
        (json!({"roomId": 7, "name": "a"}), "invalid-room"),
        (json!({"roomId": ["r"], "name": "a"}), "invalid-room"),
        (json!({"roomId": long, "name": "a"}), "invalid-room"),
        (json!({"roomId": "a\u{0}b", "name": "a"}), "invalid-room"),
        (json!({"roomId": "a\nb", "name": "a"}), "invalid-room"),
        (json!("just a string"), "invalid-room"),
        (json!(null), "invalid-room"),
        (json!({"roomId": "ok", "name": 5}), "invalid-name"),
        (json!({"roomId": "ok", "name": {"n": 1}}), "invalid-name"),
        (json!({"roomId": "ok", "name": "bell\u{7}"}), "invalid-name"),
        (json!({"roomId": "ok", "name": "y".repeat(129)}), "invalid-name"),
    ] {
        a.emit("join-room", &payload).unwrap();
        let err = a.expect("join-error", WAIT).await.unwrap_or_else(|| panic!("no join-error for {payload}"));
        assert_eq!(err["reason"], reason, "{payload}");
    }
    // Echo like the reference server: the roomId comes back when it was a string.
    a.emit("join-room", &json!({"roomId": "ok", "name": 5})).unwrap();
    assert_eq!(a.expect("join-error", WAIT).await.unwrap(), json!({"reason": "invalid-name", "roomId": "ok"}));
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_rooms").await, 0.0);
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_joins_total{result=\"invalid-room\"}").await, 9.0);
    // A missing name is accepted (the reference server does), as the empty name.
    a.emit("join-room", &json!({"roomId": "ok"})).unwrap();
    assert!(a.expect("join-ok", WAIT).await.is_some());
}

#[tokio::test]
async fn room_passwords_follow_the_first_joiner_and_are_forgotten_when_empty() {
    let gw = start().await;
    let mut a = connect(&gw).await;
    a.emit("join-room", &json!({"roomId": "p", "name": "a", "password": "  s3cret "})).unwrap();
    a.expect("join-ok", WAIT).await.unwrap();

    let mut b = connect(&gw).await;
    b.emit("check-room", &json!({"roomId": "p"})).unwrap();
    assert_eq!(b.expect("join-error", WAIT).await.unwrap(), json!({"reason": "password-required", "roomId": "p"}));
    b.emit("check-room", &json!({"roomId": "p", "password": "s3cret"})).unwrap();
    assert_eq!(b.expect("room-check-ok", WAIT).await.unwrap(), json!({"roomId": "p", "passwordRequired": true}));
    b.emit("check-room", &json!({"roomId": "elsewhere"})).unwrap();
    assert_eq!(
        b.expect("room-check-ok", WAIT).await.unwrap(),
        json!({"roomId": "elsewhere", "passwordRequired": false})
    );
    b.emit("join-room", &json!({"roomId": "p", "name": "b"})).unwrap();
    assert_eq!(b.expect("join-error", WAIT).await.unwrap()["reason"], "password-required");
    b.emit("join-room", &json!({"roomId": "p", "name": "b", "password": "guess"})).unwrap();
    assert_eq!(b.expect("join-error", WAIT).await.unwrap()["reason"], "wrong-password");
    assert_eq!(drain(&mut a).await, vec![], "refused joins are invisible to members");
    b.emit("join-room", &json!({"roomId": "p", "name": "b", "password": "s3cret"})).unwrap();
    b.expect("join-ok", WAIT).await.unwrap();

    // B leaves with leave-room, A disconnects: the room empties and its password is gone.
    b.emit("leave-room", &json!({"roomId": "p"})).unwrap();
    let a_events = drain(&mut a).await;
    assert_eq!(names(&a_events), vec!["user-connected", "#rtcio:init-offer", "#rtcio:peer-left", "user-disconnected"]);
    assert_eq!(a_events[3].1, json!({"id": b.id()}));
    a.close().await;
    wait_until("the room to empty", WAIT, || async { metric(&gw, "rtcio_gateway_signaling_rooms").await == 0.0 }).await;
    let mut c = connect(&gw).await;
    c.emit("join-room", &json!({"roomId": "p", "name": "c"})).unwrap();
    c.expect("join-ok", WAIT).await.expect("open again after emptying");
}

#[tokio::test]
async fn concurrent_first_joiners_cannot_both_set_the_password() {
    let gw = start().await;
    for round in 0..5 {
        let room = format!("race-{round}");
        let mut clients = Vec::new();
        for _ in 0..12 {
            clients.push(connect(&gw).await);
        }
        // All join "at once", each with its own password.
        for (i, c) in clients.iter().enumerate() {
            c.emit("join-room", &json!({"roomId": room, "name": format!("c{i}"), "password": format!("pw{i}")}))
                .unwrap();
        }
        let mut ok = 0;
        let mut wrong = 0;
        for c in clients.iter_mut() {
            loop {
                match c.recv_timeout(WAIT).await {
                    Some(SioEvent::Event { name, .. }) if name == "join-ok" => {
                        ok += 1;
                        break;
                    }
                    Some(SioEvent::Event { name, args }) if name == "join-error" => {
                        assert_eq!(args[0]["reason"], "wrong-password");
                        wrong += 1;
                        break;
                    }
                    Some(_) => continue,
                    None => panic!("no answer"),
                }
            }
        }
        assert_eq!((ok, wrong), (1, 11), "exactly one first joiner in round {round}");
    }
}

#[tokio::test]
async fn room_and_socket_capacity_limits() {
    let gw = start_with(|c| {
        c.signaling.max_members_per_room = 2;
        c.signaling.max_rooms_per_socket = 3;
    })
    .await;
    let _a = joined(&gw, "small", "a").await;
    let _b = joined(&gw, "small", "b").await;
    let mut c = connect(&gw).await;
    c.emit("check-room", &json!({"roomId": "small"})).unwrap();
    assert_eq!(c.expect("join-error", WAIT).await.unwrap()["reason"], "room-full");
    c.emit("join-room", &json!({"roomId": "small", "name": "c"})).unwrap();
    assert_eq!(c.expect("join-error", WAIT).await.unwrap()["reason"], "room-full");
    for i in 0..3 {
        c.emit("join-room", &json!({"roomId": format!("r{i}"), "name": "c"})).unwrap();
        c.expect("join-ok", WAIT).await.unwrap();
    }
    c.emit("join-room", &json!({"roomId": "r3", "name": "c"})).unwrap();
    assert_eq!(c.expect("join-error", WAIT).await.unwrap()["reason"], "too-many-rooms");
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_joins_total{result=\"room-full\"}").await, 1.0);
}

#[tokio::test]
async fn media_state_is_cached_forwarded_and_replayed() {
    let gw = start().await;
    let mut a = joined(&gw, "m", "a").await;
    a.emit("media-state", &json!({"roomId": "m", "mic": true, "cam": false})).unwrap();
    let mut b = connect(&gw).await;
    b.emit("join-room", &json!({"roomId": "m", "name": "b"})).unwrap();
    assert_eq!(
        drain(&mut b).await,
        vec![
            ("user-connected".into(), json!({"id": a.id(), "name": "a"})),
            ("media-state".into(), json!({"id": a.id(), "roomId": "m", "mic": true, "cam": false})),
            ("join-ok".into(), json!({"roomId": "m"})),
        ]
    );
    drain(&mut a).await;
    // Forwarded with the sender's true id, even if it claims another one; extra fields kept.
    a.emit("media-state", &json!({"roomId": "m", "mic": false, "cam": true, "id": "someone-else", "extra": 1}))
        .unwrap();
    assert_eq!(
        b.expect("media-state", WAIT).await.unwrap(),
        json!({"roomId": "m", "mic": false, "cam": true, "id": a.id(), "extra": 1})
    );
    assert_eq!(drain(&mut a).await, vec![], "not echoed to the sender");
    // Non-boolean values are forwarded but not cached: a late joiner sees the last valid state.
    a.emit("media-state", &json!({"roomId": "m", "mic": "yes", "cam": true})).unwrap();
    b.expect("media-state", WAIT).await.unwrap();
    let mut c = connect(&gw).await;
    c.emit("join-room", &json!({"roomId": "m", "name": "c"})).unwrap();
    let replay: Vec<_> = drain(&mut c).await.into_iter().filter(|(n, _)| n == "media-state").collect();
    assert_eq!(
        replay,
        vec![("media-state".to_string(), json!({"id": a.id(), "roomId": "m", "mic": false, "cam": true}))]
    );
    drain(&mut b).await;
    // A room one is not in is refused.
    let mut outsider = joined(&gw, "other", "o").await;
    expect_refused(
        &mut outsider,
        "media-state",
        &json!({"roomId": "m", "mic": true, "cam": true}),
        "not-in-room",
        &mut [&mut b],
    )
    .await;
    expect_refused(&mut outsider, "media-state", &json!({"mic": true}), "invalid-payload", &mut []).await;
}

#[tokio::test]
async fn chat_and_screen_share_events_reach_the_rest_of_the_room_only() {
    let gw = start().await;
    let mut a = joined(&gw, "c", "a").await;
    let mut b = joined(&gw, "c", "b").await;
    let mut other = joined(&gw, "elsewhere", "o").await;
    drain(&mut a).await;
    drain(&mut b).await;
    let msg = json!({"roomId": "c", "text": "hello 👋", "from": "a", "nested": {"k": [1, 2]}});
    a.emit("chat-message", &msg).unwrap();
    assert_eq!(b.expect("chat-message", WAIT).await.unwrap(), msg);
    a.emit("stopScreenShare", &json!({"roomId": "c", "streamId": "s1"})).unwrap();
    assert_eq!(b.expect("stopScreenShare", WAIT).await.unwrap(), json!({"roomId": "c", "streamId": "s1"}));
    assert_eq!(drain(&mut a).await, vec![]);
    assert_eq!(drain(&mut other).await, vec![]);
    expect_refused(
        &mut other,
        "chat-message",
        &json!({"roomId": "c", "text": "spam"}),
        "not-in-room",
        &mut [&mut a, &mut b],
    )
    .await;
    expect_refused(&mut other, "chat-message", &json!({"text": "no room"}), "invalid-payload", &mut [&mut a]).await;
}

#[tokio::test]
async fn rejoining_a_room_is_idempotent() {
    let gw = start().await;
    let (mut a, mut b) = pair(&gw, "r").await;
    b.emit("join-room", &json!({"roomId": "r", "name": "b2"})).unwrap();
    assert_eq!(
        drain(&mut b).await,
        vec![("user-connected".into(), json!({"id": a.id(), "name": "a"})), ("join-ok".into(), json!({"roomId": "r"}))]
    );
    assert_eq!(drain(&mut a).await, vec![], "no second init-offer");
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_room_members").await, 2.0);
}

#[tokio::test]
async fn leaving_a_room_tells_the_others_and_cuts_the_relay() {
    let gw = start().await;
    let mut a = joined(&gw, "r", "a").await;
    let mut b = joined(&gw, "r", "b").await;
    drain(&mut a).await;
    b.emit("leave-room", &json!({"roomId": "r"})).unwrap();
    assert_eq!(
        drain(&mut a).await,
        vec![("#rtcio:peer-left".into(), json!({"id": b.id()})), ("user-disconnected".into(), json!({"id": b.id()}))]
    );
    let env = envelope(&a, b.id(), json!({"mid": "x"}));
    expect_refused(&mut a, "#rtcio:message", &env, "foreign-target", &mut [&mut b]).await;
    expect_refused(&mut b, "leave-room", &json!({"roomId": "r"}), "not-in-room", &mut [&mut a]).await;
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_room_members").await, 1.0);
}

#[tokio::test]
async fn disconnect_fans_out_to_every_room_peer_left_first() {
    let gw = start().await;
    let a = joined(&gw, "r1", "a").await;
    a.emit("join-room", &json!({"roomId": "r2", "name": "a"})).unwrap();
    let mut b = joined(&gw, "r1", "b").await;
    let mut c = joined(&gw, "r2", "c").await;
    drain(&mut b).await;
    drain(&mut c).await;
    let a_id = a.id().to_string();
    a.abort(); // like a closed tab: no goodbye
    for x in [&mut b, &mut c] {
        let ev = x.expect("#rtcio:peer-left", Duration::from_secs(60)).await.expect("peer-left");
        assert_eq!(ev, json!({"id": a_id}));
        assert_eq!(x.expect("user-disconnected", WAIT).await.unwrap(), json!({"id": a_id}));
    }
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_connected_sockets").await, 2.0);
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_room_members").await, 2.0);
}

#[tokio::test]
async fn oversized_events_are_refused_and_huge_ones_cost_the_connection() {
    let gw = start_with(|c| c.signaling.max_payload_bytes = 4096).await;
    let mut a = joined(&gw, "r", "a").await;
    let mut b = joined(&gw, "r", "b").await;
    drain(&mut a).await;
    let fits = envelope(&a, b.id(), json!({"description": {"type": "offer", "sdp": "x".repeat(3500)}}));
    a.emit("#rtcio:message", &fits).unwrap();
    assert_eq!(b.expect("#rtcio:message", WAIT).await.unwrap(), fits);
    let over = envelope(&a, b.id(), json!({"description": {"type": "offer", "sdp": "x".repeat(5000)}}));
    expect_refused(&mut a, "#rtcio:message", &over, "payload-too-large", &mut [&mut b]).await;
    expect_refused(
        &mut a,
        "chat-message",
        &json!({"roomId": "r", "t": "y".repeat(5000)}),
        "payload-too-large",
        &mut [&mut b],
    )
    .await;
    // Beyond twice the cap the transport refuses the frame and drops the sender.
    let huge = envelope(&a, b.id(), json!({"sdp": "z".repeat(20_000)}));
    a.emit("#rtcio:message", &huge).unwrap();
    let mut dropped = false;
    while let Some(ev) = a.recv_timeout(WAIT).await {
        if matches!(ev, SioEvent::Disconnected { .. }) {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the flooding connection is closed");
    // B is fine, and sees A go.
    assert!(b.expect("user-disconnected", WAIT).await.is_some());
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_dropped_messages_total{reason=\"payload_too_large\"}").await, 2.0);
}

#[tokio::test]
async fn event_floods_are_rate_limited_without_hurting_others() {
    let gw = start_with(|c| {
        c.signaling.rate_limit_per_sec = 10.0;
        c.signaling.rate_limit_burst = 20;
    })
    .await;
    let mut a = joined(&gw, "r", "a").await;
    let mut b = joined(&gw, "r", "b").await;
    let mut c = joined(&gw, "r", "c").await;
    drain(&mut a).await;
    drain(&mut b).await;
    drain(&mut c).await;
    for i in 0..500 {
        a.emit("#rtcio:message", &envelope(&a, b.id(), json!({"mid": i}))).unwrap();
    }
    let mut delivered = 0;
    while let Some(SioEvent::Event { name, .. }) = b.recv_timeout(QUIET).await {
        assert_eq!(name, "#rtcio:message");
        delivered += 1;
    }
    // The join used one token of the burst of 20; a little refill while sending.
    assert!((15..=30).contains(&delivered), "delivered {delivered}");
    let errors: Vec<_> = drain(&mut a).await.into_iter().filter(|(n, _)| n == "signaling-error").collect();
    assert!(!errors.is_empty() && errors.len() <= 20, "throttled notices: {}", errors.len());
    assert!(errors.iter().all(|(_, e)| e["code"] == "rate-limited"));
    let dropped = metric(&gw, "rtcio_gateway_signaling_dropped_messages_total{reason=\"rate_limited\"}").await;
    assert_eq!(dropped as usize + delivered, 500);
    // C is unaffected.
    c.emit("#rtcio:message", &envelope(&c, b.id(), json!({"mid": "c"}))).unwrap();
    assert_eq!(b.expect("#rtcio:message", WAIT).await.unwrap()["data"]["mid"], "c");
}

#[tokio::test]
async fn default_limits_let_a_ten_person_room_negotiate() {
    let gw = start().await;
    let mut clients = Vec::new();
    for i in 0..10 {
        clients.push(joined(&gw, "big", &format!("p{i}")).await);
    }
    // Everyone offers to everyone with a 4 KB SDP and 40 trickled candidates, twice
    // (initial negotiation plus a renegotiation), as fast as possible.
    let ids: Vec<String> = clients.iter().map(|c| c.id().to_string()).collect();
    let mut expected = 0;
    for _round in 0..2 {
        for c in &clients {
            for target in ids.iter().filter(|t| *t != c.id()) {
                c.emit(
                    "#rtcio:message",
                    &envelope(c, target, json!({"description": {"type": "offer", "sdp": "a".repeat(4000)}})),
                )
                .unwrap();
                for k in 0..40 {
                    c.emit(
                        "#rtcio:message",
                        &envelope(c, target, json!({"candidate": {"candidate": format!("candidate:{k}")}})),
                    )
                    .unwrap();
                }
                expected += 41;
            }
        }
    }
    let mut got = 0;
    for c in clients.iter_mut() {
        for (name, _) in drain(c).await {
            assert_ne!(name, "signaling-error");
            if name == "#rtcio:message" {
                got += 1;
            }
        }
    }
    assert_eq!(got, expected);
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_dropped_messages_total{reason=\"rate_limited\"}").await, 0.0);
}

#[tokio::test]
async fn thousands_of_rooms_are_tracked_and_released() {
    let gw = start().await;
    let mut clients = Vec::new();
    for i in 0..100 {
        let c = connect(&gw).await;
        for r in 0..16 {
            c.emit("join-room", &json!({"roomId": format!("room-{i}-{r}"), "name": "n"})).unwrap();
        }
        // The 17th is over the per-socket limit.
        c.emit("join-room", &json!({"roomId": format!("room-{i}-extra"), "name": "n"})).unwrap();
        clients.push(c);
    }
    for c in clients.iter_mut() {
        let (mut ok, mut too_many) = (0, 0);
        while ok + too_many < 17 {
            match c.recv_timeout(WAIT).await {
                Some(SioEvent::Event { name, .. }) if name == "join-ok" => ok += 1,
                Some(SioEvent::Event { name, args }) if name == "join-error" => {
                    assert_eq!(args[0]["reason"], "too-many-rooms");
                    too_many += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((ok, too_many), (16, 1));
    }
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_rooms").await, 1600.0);
    for c in clients {
        c.close().await;
    }
    wait_until("every room to empty", WAIT, || async { metric(&gw, "rtcio_gateway_signaling_rooms").await == 0.0 })
        .await;
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_room_members").await, 0.0);
}

#[tokio::test]
async fn jwt_authentication_refuses_with_a_clear_connect_error() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let secret = "a-test-secret-of-32-bytes-length";
    let gw = start_with(|c| c.auth.jwt_secret = secret.into()).await;
    let err = SioClient::connect(&url(&gw), None).await.err().expect("refused without token");
    assert!(err.to_string().contains("missing auth.token"), "{err}");
    let err = SioClient::connect(&url(&gw), Some(json!({"token": "not.a.jwt"}))).await.err().expect("refused");
    assert!(err.to_string().contains("not valid"), "{err}");
    let forged =
        encode(&Header::default(), &json!({"sub": "x"}), &EncodingKey::from_secret(b"some-other-secret-entirely"))
            .unwrap();
    assert!(SioClient::connect(&url(&gw), Some(json!({"token": forged}))).await.is_err());
    let good = encode(&Header::default(), &json!({"sub": "x"}), &EncodingKey::from_secret(secret.as_bytes())).unwrap();
    let mut c = SioClient::connect(&url(&gw), Some(json!({"token": good}))).await.expect("valid token connects");
    c.emit("join-room", &json!({"roomId": "r", "name": "ok"})).unwrap();
    assert!(c.expect("join-ok", WAIT).await.is_some());
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_connections_refused_total{reason=\"unauthorized\"}").await, 3.0);
}

#[tokio::test]
async fn health_readiness_and_metrics_endpoints() {
    let gw = start().await;
    let base = url(&gw);
    assert_eq!(http_get(&format!("{base}/healthz")).await.0, 200);
    assert_eq!(http_get(&format!("{base}/readyz")).await.0, 200);
    let (status, body) = http_get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    for name in [
        "rtcio_gateway_signaling_connected_sockets",
        "rtcio_gateway_signaling_rooms",
        "rtcio_gateway_signaling_room_members",
        "rtcio_gateway_signaling_joins_total",
        "rtcio_gateway_signaling_relayed_messages_total",
        "rtcio_gateway_signaling_relayed_bytes_total",
        "rtcio_gateway_signaling_dropped_messages_total",
        "rtcio_gateway_signaling_event_duration_seconds_bucket",
        "rtcio_gateway_process_resident_memory_bytes",
    ] {
        assert!(body.contains(name), "missing {name}");
    }
    let _a = joined(&gw, "r", "a").await;
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_connected_sockets").await, 1.0);
    assert_eq!(metric(&gw, "rtcio_gateway_signaling_event_duration_seconds_count{event=\"join-room\"}").await, 1.0);
}

#[tokio::test]
async fn shutdown_disconnects_everyone_and_returns() {
    let gw = start().await;
    let mut a = joined(&gw, "r", "a").await;
    let mut b = joined(&gw, "r", "b").await;
    let addr = gw.local_addr();
    let started = std::time::Instant::now();
    gw.shutdown().await.expect("clean shutdown");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    for c in [&mut a, &mut b] {
        let mut gone = false;
        while let Some(ev) = c.recv_timeout(WAIT).await {
            if matches!(ev, SioEvent::Disconnected { .. }) {
                gone = true;
                break;
            }
        }
        assert!(gone);
    }
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer accepting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_event_right_after_connecting_is_never_lost() {
    // socketioxide answers CONNECT before running the connect handler; a client that
    // emits at once must still find its handlers (they are registered before the answer).
    let gw = start_with(|c| c.auth.jwt_secret = "a-test-secret-of-32-bytes-length".into()).await;
    use jsonwebtoken::{EncodingKey, Header, encode};
    let token = encode(
        &Header::default(),
        &json!({"sub": "x"}),
        &EncodingKey::from_secret(b"a-test-secret-of-32-bytes-length"),
    )
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (url, token) = (url(&gw), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = SioClient::connect(&url, Some(json!({"token": token}))).await.unwrap();
            c.emit("join-room", &json!({"roomId": format!("first-{i}"), "name": "n"})).unwrap();
            c.expect("join-ok", WAIT).await.is_some()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 300);
}
