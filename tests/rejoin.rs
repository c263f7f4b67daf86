//! A peer that leaves the room (`leave-room`) and joins it again from the same
//! socket while `serve` records it. The server then sends the recorder
//! `user-disconnected` and, right after, `#rtcio:init-offer` with the same
//! peer id, so the recorder's participant replaces that peer's session while
//! the old one is still ending. Every stretch must be recorded — the old
//! session's late end must not remove its successor.

mod common;

use std::path::{Path, PathBuf};

use common::media::*;
use common::peers::*;
use common::*;
use rtcio_gateway::media::source::VideoCodec;
use rtcio_gateway::metrics::Metrics;
use rtcio_gateway::participant::events::ParticipantEvent;
use rtcio_gateway::participant::room::Participant;
use serde_json::Value;

/// Bytes a recording must have grown past to count as being recorded.
const RECORDING: u64 = 40_000;

/// Wait (up to [`LONG`]) until a recording of `room_dir` not in `except` is
/// being written and its file has more than [`RECORDING`] bytes.
async fn recording_grows(room_dir: &Path, except: &[PathBuf]) -> (PathBuf, Value) {
    wait_for_value("a new recording to grow", LONG, || async {
        let all = manifests(room_dir);
        let growing = all.iter().find(|(path, m)| {
            m["state"] == "recording"
                && !except.contains(path)
                && std::fs::metadata(file_of(path, m)).map(|f| f.len()).unwrap_or(0) > RECORDING
        });
        growing.cloned().ok_or_else(|| format!("in {}: {all:#?}", room_dir.display()))
    })
    .await
}

async fn joined_id(p: &mut Participant) -> String {
    match wait_for(p, "joined", |e| matches!(e, ParticipantEvent::Joined { .. })).await {
        ParticipantEvent::Joined { own_id, .. } => own_id,
        _ => unreachable!(),
    }
}

/// Re-joins per test: the replaced session's end races the new session's
/// start (it loses only sometimes), so a few re-joins make a regression show.
const REJOINS: usize = 4;

/// Alice publishes on `server`, leaves and re-joins from the same socket
/// [`REJOINS`] times, then leaves for good; the room (recorded into
/// `room_dir`) must hold one finished `peer-left` recording of her socket
/// per stretch, each decoding.
async fn leave_and_rejoin_is_recorded_every_time(server: &str, room: &str, room_dir: &Path) {
    let metrics = Metrics::new();
    let mut alice = publisher(server, room, "alice", &metrics);
    let socket_id = joined_id(&mut alice).await;
    recorder_connected(&mut alice).await;
    let media = source(Some(VideoCodec::Vp8));
    alice.publish(media.stream("cam", "camera", None)).unwrap();
    let mut stretches = vec![recording_grows(room_dir, &[]).await.0];

    for rejoin in 1..=REJOINS {
        alice.rejoin().unwrap();
        assert_eq!(joined_id(&mut alice).await, socket_id, "re-joined from the same socket");
        recorder_connected(&mut alice).await;
        // The new stretch is recorded into a file of its own...
        stretches.push(recording_grows(room_dir, &stretches).await.0);
        // ...and every earlier one ended when alice left.
        let ended = finished_manifests(room_dir, rejoin, LONG).await;
        assert_eq!(ended.len(), rejoin, "only the earlier stretches ended: {ended:#?}");
        assert!(ended.iter().all(|(_, m)| m["end_reason"] == "peer-left"), "{ended:#?}");
    }
    alice.shutdown().await;

    let done = finished_manifests(room_dir, REJOINS + 1, LONG).await;
    assert_eq!(manifests(room_dir).len(), REJOINS + 1, "one file per stretch: {done:#?}");
    assert_eq!(done.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(), stretches);
    for (path, manifest) in &done {
        assert_eq!(manifest["state"], "finished", "{manifest}");
        assert_eq!(manifest["end_reason"], "peer-left", "{manifest}");
        assert_eq!(manifest["peer"]["id"], socket_id.as_str());
        let file = file_of(path, manifest);
        let probe = ffprobe(&file);
        assert!(stream(&probe, "video").is_some() && stream(&probe, "audio").is_some(), "{probe}");
        let (decoded, errors, last_frame) = decode(&file);
        assert!(decoded && errors.is_empty(), "{}: {errors}", file.display());
        assert!(last_frame > 0.5, "{}: video decodes to {last_frame:.2}s only", file.display());
    }
}

/// Our server sends `user-disconnected` on `leave-room`, then
/// `#rtcio:init-offer` for the same socket id when it joins again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_leaves_and_rejoins_from_the_same_socket_is_recorded_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |_| {}).await;
    leave_and_rejoin_is_recorded_every_time(&url(&gw), "rejoin", &dir.path().join("rejoin")).await;
    gw.shutdown().await.unwrap();
}

/// The Node reference server has no `leave-room` handler: the socket stays in
/// the room, and its second `join-room` sends the recorder `#rtcio:init-offer`
/// for the same id with no `user-disconnected` before — the recorder replaces
/// a session that is still alive (recorded here by `rtcio-gateway join`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_offer_for_a_connected_peer_replaces_its_session_and_every_stretch_is_recorded() {
    init_tracing();
    let (_server, url) = start_node_reference_server();
    let dir = tempfile::tempdir().unwrap();
    let _recorder = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_rtcio-gateway"))
            .args(["join", "--server", &url, "--room", "rejoin", "--name", "recorder", "--udp-bind", "127.0.0.1"])
            .arg("--recordings")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the gateway runs"),
    );
    // The recorder is in the room first (alice waits for it to connect to her).
    leave_and_rejoin_is_recorded_every_time(&url, "rejoin", &dir.path().join("rejoin")).await;
}
