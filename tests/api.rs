//! The control API end to end: a real gateway, real publishing peers on
//! loopback WebRTC, real files; responses checked against the OpenAPI
//! document the gateway serves.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::media::*;
use common::peers::*;
use common::webhooks::*;
use common::*;
use rtcio_gateway::api::{OPENAPI, ROUTES};
use rtcio_gateway::media::source::VideoCodec;
use rtcio_gateway::metrics::Metrics;
use rtcio_gateway::participant::channels::Channel;
use rtcio_gateway::participant::events::{MediaKind, ParticipantEvent};
use rtcio_gateway::participant::room::Participant;
use serde_json::{Value, json};

const TOKEN: &str = "test-token-0123456789";

/// One API call; returns status, headers and the body (JSON if it parses, else a string).
async fn call(
    gw_url: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let client = reqwest::Client::new();
    let url = format!("{gw_url}{path}");
    let mut request = match method {
        "get" => client.get(&url),
        "post" => client.post(&url),
        "delete" => client.delete(&url),
        other => panic!("method {other}"),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(format!("<{} bytes>", bytes.len())));
    (status, headers, value)
}

/// Checks responses against the OpenAPI document and remembers which routes were exercised.
struct Contract {
    doc: Value,
    covered: BTreeSet<(String, String)>,
}

impl Contract {
    fn new() -> Contract {
        Contract { doc: serde_json::from_str(OPENAPI).unwrap(), covered: BTreeSet::new() }
    }

    /// Call `template` (a documented path) with `concrete` as the real path; assert the status is
    /// `expect`, that it is documented, and that a JSON body validates against its schema.
    async fn check(
        &mut self,
        gw: &str,
        method: &str,
        template: &str,
        concrete: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let (status, _, value) = call(gw, method, concrete, body, None).await;
        assert_eq!(status, expect, "{method} {concrete}: {value}");
        let operation = &self.doc["paths"][template][method];
        assert!(operation.is_object(), "{method} {template} is not documented");
        let documented = &operation["responses"][status.to_string()];
        assert!(documented.is_object(), "{method} {template} answered {status}, which is not documented: {value}");
        if let Some(schema) = documented["content"]["application/json"]["schema"].as_object() {
            let mut root = self.doc.clone();
            root.as_object_mut().unwrap().extend(schema.clone());
            let validator = jsonschema::validator_for(&root).expect("the document's schema compiles");
            let errors: Vec<String> =
                validator.iter_errors(&value).map(|e| format!("{e} at {}", e.instance_path())).collect();
            assert!(
                errors.is_empty(),
                "{method} {concrete} → {status} does not match the document: {errors:#?}\n{value:#}"
            );
        }
        self.covered.insert((method.to_string(), template.to_string()));
        value
    }
}

fn enc(room: &str) -> String {
    url::form_urlencoded::byte_serialize(room.as_bytes()).collect::<String>().replace('+', "%20")
}

/// Poll GET /api/v1/rooms/{room} until `pred` holds.
async fn room_until(gw: &str, room: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let pred = &pred;
    wait_for_value(what, LONG, || async move {
        let (status, _, value) = call(gw, "get", &format!("/api/v1/rooms/{}", enc(room)), None, None).await;
        if status == 200 && pred(&value) { Ok(value) } else { Err(format!("{status} {value:#}")) }
    })
    .await
}

/// The sessions GET /api/v1/sessions lists.
async fn sessions(gw: &str) -> Vec<Value> {
    let (_, _, sessions) = call(gw, "get", "/api/v1/sessions", None, None).await;
    sessions["sessions"].as_array().unwrap().clone()
}

/// Poll GET /api/v1/sessions until it lists none (the gateway left every room); fails after `within`.
async fn sessions_until_empty(gw: &str, within: Duration) {
    wait_for_value("the gateway to leave every room", within, || async move {
        let now = sessions(gw).await;
        if now.is_empty() { Ok(()) } else { Err(format!("{now:#?}")) }
    })
    .await
}

/// Wait for the ctrl event `recording` with this state from the gateway.
async fn told(p: &mut Participant, state: &str) {
    let event = wait_for(p, &format!("recording {state}"), |e| {
        matches!(e, ParticipantEvent::Message(m) if m.channel == Channel::Ctrl && m.event == "recording" && m.args[0]["state"] == state)
    })
    .await;
    let ParticipantEvent::Message(m) = event else { unreachable!() };
    assert_eq!(m.args[0], json!({"state": state, "by": "rtcio-gateway"}));
    assert!(m.peer.name.contains("recorder"), "told by {:?}", m.peer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_answers_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |_| {}).await;
    let base = url(&gw);
    let room = "api room/1";
    let r = enc(room);
    let metrics = Metrics::new();
    let mut alice = publisher(&base, room, "alice", &metrics);
    recorder_connected(&mut alice).await;
    let media = source(Some(VideoCodec::Vp8));
    alice.publish(media.stream("cam", "camera", None)).unwrap();
    room_until(&base, room, "bytes recorded", |v| v["recording"]["bytes"].as_u64().unwrap_or(0) > 0).await;

    let mut c = Contract::new();
    let (status, _, doc) = call(&base, "get", "/api/v1/openapi.json", None, None).await;
    assert_eq!((status, doc), (200, c.doc.clone()));
    c.covered.insert(("get".into(), "/api/v1/openapi.json".into()));

    let rooms = c.check(&base, "get", "/api/v1/rooms", "/api/v1/rooms", None, 200).await;
    let listed = &rooms["rooms"][0];
    assert_eq!(listed["room"], room);
    let names: BTreeSet<&str> =
        listed["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(names.contains("alice") && names.iter().any(|n| n.contains("recorder")), "{names:?}");
    assert_eq!(listed["recording"]["by"], "rule");
    assert_eq!(listed["streams"][0]["kinds"], json!(["video", "audio"]));
    assert_eq!(listed["streams"][0]["recording"], true);

    let one = "/api/v1/rooms/{room}";
    c.check(&base, "get", one, &format!("/api/v1/rooms/{r}"), None, 200).await;
    c.check(&base, "get", one, "/api/v1/rooms/nobody-here", None, 404).await;

    let rec = "/api/v1/rooms/{room}/recording";
    let concrete = format!("/api/v1/rooms/{r}/recording");
    let e = c.check(&base, "post", rec, &concrete, Some(json!({"template": "nope"})), 400).await;
    assert_eq!(e["error"]["code"], "template_not_found");
    let e = c.check(&base, "post", rec, &concrete, Some(json!({"templat": "record-webm"})), 400).await;
    assert_eq!(e["error"]["code"], "invalid_request");
    let e = c.check(&base, "post", rec, &concrete, Some(json!({"template": "relay-rtmp"})), 400).await;
    assert_eq!(e["error"]["code"], "template_not_found");
    let e = c.check(&base, "post", rec, "/api/v1/rooms/empty/recording", None, 404).await;
    assert_eq!(e["error"]["code"], "room_not_found");
    let now = c.check(&base, "post", rec, &concrete, None, 200).await;
    assert_eq!(now["recording"]["by"], "api", "the API took over from the rule");

    let relay = "/api/v1/rooms/{room}/relay";
    let relay_path = format!("/api/v1/rooms/{r}/relay");
    let e = c.check(&base, "delete", relay, &relay_path, None, 409).await;
    assert_eq!(e["error"]["code"], "not_relaying");
    let e = c.check(&base, "post", relay, &relay_path, Some(json!({"url": "http://not-rtmp/x"})), 400).await;
    assert_eq!(e["error"]["code"], "invalid_request");

    let sessions = c.check(&base, "get", "/api/v1/sessions", "/api/v1/sessions", None, 200).await;
    assert_eq!(sessions["sessions"][0]["room"], room);
    assert_eq!(sessions["sessions"][0]["state"], "joined");

    let far = json!({"server": "http://127.0.0.1:9", "room": "far"});
    for route in ["/api/v1/remote/recording/stop", "/api/v1/remote/relay/stop"] {
        c.check(&base, "post", route, route, Some(far.clone()), 409).await;
    }
    let e = c
        .check(
            &base,
            "post",
            "/api/v1/remote/recording",
            "/api/v1/remote/recording",
            Some(json!({"server": "ftp://x", "room": "r"})),
            400,
        )
        .await;
    assert_eq!(e["error"]["code"], "invalid_request");
    let e = c.check(&base, "post", "/api/v1/remote/relay", "/api/v1/remote/relay", Some(far.clone()), 400).await;
    assert!(e["error"]["message"].as_str().unwrap().contains("url"), "{e}");

    let list = c.check(&base, "get", "/api/v1/recordings", "/api/v1/recordings", None, 200).await;
    let live = list["recordings"][0].clone();
    assert_eq!(live["state"], "recording");
    assert_eq!(live["room"], room);
    let id = live["id"].as_str().unwrap().to_string();
    c.check(&base, "get", "/api/v1/recordings", "/api/v1/recordings?state=bogus", None, 400).await;
    let filtered = c
        .check(&base, "get", "/api/v1/recordings", &format!("/api/v1/recordings?room={r}&state=recording"), None, 200)
        .await;
    assert_eq!(filtered["recordings"].as_array().unwrap().len(), 1);

    let one_rec = "/api/v1/recordings/{room_dir}/{stem}";
    let got = c.check(&base, "get", one_rec, &format!("/api/v1/recordings/{id}"), None, 200).await;
    assert_eq!(got["manifest"]["peer"]["name"], "alice");
    c.check(&base, "get", one_rec, "/api/v1/recordings/x/y", None, 404).await;
    c.check(&base, "get", one_rec, "/api/v1/recordings/..%2F..%2Fetc/passwd", None, 404).await;
    let e = c.check(&base, "delete", one_rec, &format!("/api/v1/recordings/{id}"), None, 409).await;
    assert_eq!(e["error"]["code"], "recording_active");

    // Stop: the file ends, the participant leaves (nothing else to do in the room).
    let stopped = c.check(&base, "delete", rec, &concrete, None, 200).await;
    assert!(stopped["recording"].is_null(), "{stopped}");
    let e = c.check(&base, "delete", rec, &concrete, None, 409).await;
    assert_eq!(e["error"]["code"], "not_recording");
    let room_dir = dir.path().join(id.split('/').next().unwrap());
    let done = finished_manifests(&room_dir, 1, LONG).await;
    assert_eq!(done[0].1["end_reason"], "stopped");

    let media_route = "/api/v1/recordings/{room_dir}/{stem}/media";
    let (status, headers, _) = call(&base, "get", &format!("/api/v1/recordings/{id}/media"), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "video/webm");
    let size = std::fs::metadata(file_of(&done[0].0, &done[0].1)).unwrap().len();
    assert_eq!(headers["content-length"].to_str().unwrap().parse::<u64>().unwrap(), size);
    let ranged = reqwest::Client::new()
        .get(format!("{base}/api/v1/recordings/{id}/media"))
        .header("Range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status().as_u16(), 206);
    assert_eq!(ranged.headers()["content-range"].to_str().unwrap(), format!("bytes 0-99/{size}"));
    assert_eq!(ranged.bytes().await.unwrap().len(), 100);
    c.check(&base, "get", media_route, "/api/v1/recordings/x/y/media", None, 404).await;
    c.covered.insert(("get".into(), media_route.into()));

    // The room's timeline (written within a second of the file's end) and the sidecar.
    let room_dir_name = id.split('/').next().unwrap();
    let timeline_route = "/api/v1/timelines/{room_dir}";
    let timeline_path = format!("/api/v1/timelines/{room_dir_name}");
    let timeline = wait_for_value("the finished file in room.json", LONG, || async {
        let (status, _, doc) = call(&base, "get", &timeline_path, None, None).await;
        let finished = doc["runs"][0]["files"][0]["state"] == "finished";
        if status == 200 && finished { Ok(doc) } else { Err(format!("{status} {doc}")) }
    })
    .await;
    let checked = c.check(&base, "get", timeline_route, &timeline_path, None, 200).await;
    assert_eq!(checked["room"], room);
    assert_eq!(timeline["runs"][0]["files"][0]["file"], done[0].1["file"]);
    let types: Vec<&str> =
        timeline["runs"][0]["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types.iter().copied().filter(|t| t.starts_with("recording-")).collect::<Vec<_>>(),
        ["recording-started", "recording-started", "recording-stopped"],
        "by the rule, taken over by the API, stopped: {timeline}"
    );
    let events = timeline["runs"][0]["events"].as_array().unwrap();
    let by: Vec<&str> = events.iter().filter_map(|e| e["by"].as_str()).collect();
    assert_eq!(by, ["rule", "api", "api"]);
    let e = c.check(&base, "get", timeline_route, "/api/v1/timelines/no-such-room", None, 404).await;
    assert_eq!(e["error"]["code"], "timeline_not_found");
    c.check(&base, "get", timeline_route, "/api/v1/timelines/..%2F..%2Fetc", None, 404).await;
    let got = c.check(&base, "get", one_rec, &format!("/api/v1/recordings/{id}"), None, 200).await;
    assert_eq!(got["vtt_url"], format!("/api/v1/recordings/{id}/vtt"), "{got}");
    assert_eq!(got["timeline_url"], format!("/api/v1/timelines/{room_dir_name}"), "{got}");
    let vtt_route = "/api/v1/recordings/{room_dir}/{stem}/vtt";
    let (status, headers, _) = call(&base, "get", &format!("/api/v1/recordings/{id}/vtt"), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/vtt");
    c.covered.insert(("get".into(), vtt_route.into()));
    let e = c.check(&base, "get", vtt_route, "/api/v1/recordings/x/y/vtt", None, 404).await;
    assert_eq!(e["error"]["code"], "recording_not_found");

    c.check(&base, "delete", one_rec, &format!("/api/v1/recordings/{id}"), None, 204).await;
    c.check(&base, "get", one_rec, &format!("/api/v1/recordings/{id}"), None, 404).await;
    assert!(manifests(&room_dir).is_empty(), "file and manifest deleted");
    assert!(!room_dir.join(format!("{}.vtt", id.split('/').nth(1).unwrap())).exists(), "the sidecar too");

    // Unknown API routes and methods are JSON errors too.
    let (status, _, e) = call(&base, "get", "/api/v1/nope", None, None).await;
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, _, e) = call(&base, "delete", "/api/v1/sessions", None, None).await;
    assert_eq!((status, e["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{e}");

    let routes: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let missing: Vec<_> = routes.difference(&c.covered).collect();
    // The remote starts are exercised (202) in remote_rooms_are_recorded_and_stopped_over_the_api.
    let expected_missing = [
        ("post", "/api/v1/remote/recording"),
        ("post", "/api/v1/remote/relay"),
        ("post", "/api/v1/rooms/{room}/relay"),
    ];
    let expected_missing: Vec<(String, String)> =
        expected_missing.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert!(missing.iter().all(|m| expected_missing.contains(m)), "routes not exercised: {missing:?}");
    assert!(metric(&gw, "rtcio_gateway_api_requests_total{status=\"4xx\"}").await >= 10.0);
    alice.shutdown().await;
    gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_and_stopping_over_the_api_tells_every_peer() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, deliveries) = webhook_receiver().await;
    // No rule records anything: only the API does.
    let gw = recording_gateway(dir.path(), move |c| {
        c.recording.enabled = false;
        c.webhooks.urls = vec![hook];
        c.webhooks.secret = WEBHOOK_SECRET.into();
    })
    .await;
    let base = url(&gw);
    let metrics = Metrics::new();
    let mut alice = publisher(&base, "standup", "alice", &metrics);
    let mut bob = publisher(&base, "standup", "bob", &metrics);
    let media = source(Some(VideoCodec::Vp8));
    alice.publish(media.stream("cam", "camera", None)).unwrap();
    // The room is live (bob gets alice's video), and for a while nothing is recorded.
    wait_for(&mut bob, "alice's video", |e| matches!(e, ParticipantEvent::Track(t) if t.kind == MediaKind::Video))
        .await;
    let standup = dir.path().join("standup");
    assert_stays_sync("nothing recorded before the API asks", Duration::from_secs(1), || {
        let found = manifests(&standup);
        if found.is_empty() { Ok(()) } else { Err(format!("{found:#?}")) }
    })
    .await;

    let (status, _, room) =
        call(&base, "post", "/api/v1/rooms/standup/recording", Some(json!({"template": "record-webm"})), None).await;
    assert_eq!(status, 200, "{room}");
    assert_eq!(room["recording"]["template"], "record-webm");
    told(&mut alice, "started").await;
    told(&mut bob, "started").await;
    let first = room_until(&base, "standup", "bytes", |v| v["recording"]["bytes"].as_u64().unwrap_or(0) > 0).await;
    let first_bytes = first["recording"]["bytes"].as_u64().unwrap();
    room_until(&base, "standup", "growing bytes", |v| v["recording"]["bytes"].as_u64().unwrap_or(0) > first_bytes)
        .await;
    // A peer arriving later is told too.
    let mut carol = publisher(&base, "standup", "carol", &metrics);
    told(&mut carol, "started").await;

    let (status, _, room) = call(&base, "delete", "/api/v1/rooms/standup/recording", None, None).await;
    assert_eq!(status, 200, "{room}");
    told(&mut alice, "stopped").await;
    told(&mut bob, "stopped").await;
    let done = finished_manifests(&dir.path().join("standup"), 1, LONG).await;
    assert_eq!(done[0].1["end_reason"], "stopped");
    let (ok, errors, _) = decode(&file_of(&done[0].0, &done[0].1));
    assert!(ok && errors.is_empty(), "{errors}");

    // Signed webhooks said so, with the manifest.
    let finished = delivered(&deliveries, "recording.finished").await;
    let started = deliveries_of(&deliveries, "recording.started");
    assert_eq!(started.len(), 1, "{started:#?}");
    assert_eq!(started[0]["data"]["room"], "standup");
    assert_eq!(started[0]["data"]["manifest"]["state"], "recording");
    assert_eq!(finished[0]["data"]["manifest"]["state"], "finished");
    assert_eq!(finished[0]["data"]["manifest"]["end_reason"], "stopped");
    assert_eq!(finished[0]["data"]["manifest"]["file"], done[0].1["file"]);
    assert_ne!(started[0]["id"], finished[0]["id"]);
    assert_eq!(metric(&gw, "rtcio_gateway_webhook_deliveries_total{result=\"delivered\"}").await, 2.0);
    // The gateway's participant left: it had nothing else to do in the room.
    sessions_until_empty(&base, LONG).await;
    for p in [alice, bob, carol] {
        p.shutdown().await;
    }
    gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_reaches_its_size_cap_stops_recording_until_it_empties() {
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |c| c.recording.max_room_bytes = 150_000).await;
    let base = url(&gw);
    let metrics = Metrics::new();
    let mut alice = publisher(&base, "capped", "alice", &metrics);
    recorder_connected(&mut alice).await;
    told(&mut alice, "started").await;
    let media = source(Some(VideoCodec::Vp8));
    alice.publish(media.stream("cam", "camera", None)).unwrap();
    told(&mut alice, "stopped").await;
    let room_dir = dir.path().join("capped");
    let done = finished_manifests(&room_dir, 1, LONG).await;
    assert_eq!(done[0].1["end_reason"], "size-cap");
    let size = done[0].1["size_bytes"].as_u64().unwrap();
    // Checked every second (bytes counted every 2 s): within a few seconds of media.
    assert!((150_000..3_000_000).contains(&size), "{size}");
    assert_stays_sync("the capped room not being recorded again", Duration::from_secs(3), || {
        let found = manifests(&room_dir);
        if found.len() == 1 { Ok(()) } else { Err(format!("{found:#?}")) }
    })
    .await;
    let (_, _, room) = call(&base, "get", "/api/v1/rooms/capped", None, None).await;
    assert!(room["recording"].is_null(), "{room}");
    alice.shutdown().await;
    gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_room_keeps_its_recorder_for_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |c| c.recording.empty_room_grace_secs = 3).await;
    let base = url(&gw);
    let metrics = Metrics::new();
    let mut alice = publisher(&base, "brief", "alice", &metrics);
    recorder_connected(&mut alice).await;
    alice.shutdown().await;
    let left = Instant::now();
    let b = &base;
    assert_stays(
        "the recorder staying in the room within the grace period",
        Duration::from_millis(1500),
        || async move {
            let now = sessions(b).await;
            if now.first().is_some_and(|s| s["room"] == "brief") { Ok(()) } else { Err(format!("{now:#?}")) }
        },
    )
    .await;
    sessions_until_empty(&base, Duration::from_secs(15).saturating_sub(left.elapsed())).await;
    assert!(left.elapsed() >= Duration::from_secs(3), "left after {:?}, before the grace period", left.elapsed());
    assert_eq!(metric(&gw, "rtcio_gateway_rooms_recorded").await, 0.0);
    gw.shutdown().await.unwrap();
}

/// A local IPv4 address of this machine that is not loopback.
fn non_loopback_ip() -> std::net::IpAddr {
    // Connecting a UDP socket sends nothing; it only picks the outgoing interface.
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.connect("10.255.255.255:9").expect("a route out of loopback (any network interface)");
    let ip = socket.local_addr().unwrap().ip();
    assert!(!ip.is_loopback() && !ip.is_unspecified(), "this machine has no non-loopback address: {ip}");
    ip
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_its_token_or_a_loopback_client() {
    let open = start_with(|c| c.server.listen = "0.0.0.0:0".parse().unwrap()).await;
    let port = open.local_addr().port();
    let (status, _, _) = call(&format!("http://127.0.0.1:{port}"), "get", "/api/v1/rooms", None, None).await;
    assert_eq!(status, 200, "loopback clients are served without a token");
    let outside = format!("http://{}:{port}", non_loopback_ip());
    let (status, _, e) = call(&outside, "get", "/api/v1/rooms", None, None).await;
    assert_eq!((status, e["error"]["code"].as_str()), (403, Some("forbidden")), "{e}");
    let (status, _, _) = call(&outside, "get", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200, "the document itself is public");
    open.shutdown().await.unwrap();

    let locked = start_with(|c| c.api.token = TOKEN.into()).await;
    let base = url(&locked);
    let (status, _, e) = call(&base, "get", "/api/v1/rooms", None, None).await;
    assert_eq!((status, e["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (status, _, _) = call(&base, "get", "/api/v1/rooms", None, Some("wrong-token-0123456789")).await;
    assert_eq!(status, 401);
    let (status, _, _) = call(&base, "get", "/api/v1/rooms", None, Some(TOKEN)).await;
    assert_eq!(status, 200);
    let (status, _, _) = call(&base, "get", &format!("/api/v1/recordings?access_token={TOKEN}"), None, None).await;
    assert_eq!(status, 200, "the token also works as a query parameter (for <video src>)");
    let (status, _, _) = call(&base, "delete", "/api/v1/rooms/x/recording", None, None).await;
    assert_eq!(status, 401, "writes need the token too");
    locked.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_rooms_are_recorded_and_stopped_over_the_api() {
    // `remote` is any rtc.io server: here a second gateway that records nothing itself.
    let remote = start_with(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |c| c.recording.enabled = false).await;
    let base = url(&gw);
    let metrics = Metrics::new();
    let mut erin = publisher(&url(&remote), "far away", "erin", &metrics);
    let media = source(Some(VideoCodec::Vp8));
    erin.publish(media.stream("cam", "camera", None)).unwrap();

    let mut c = Contract::new();
    let start = json!({"server": url(&remote), "room": "far away", "name": "Archive recorder"});
    let session =
        c.check(&base, "post", "/api/v1/remote/recording", "/api/v1/remote/recording", Some(start.clone()), 202).await;
    assert_eq!(session["server"], url(&remote));
    assert!(["joining", "joined"].contains(&session["state"].as_str().unwrap()), "{session}");
    // The room's peers see the gateway under the requested name and are told.
    wait_for(
        &mut erin,
        "the gateway",
        |e| matches!(e, ParticipantEvent::PeerConnected(p) if p.name == "Archive recorder"),
    )
    .await;
    told(&mut erin, "started").await;

    let room_dir = wait_for_value("a recording of the remote room", LONG, || {
        // "far away" is filed as far_away-<hash> (sanitised names get a hash suffix).
        let found =
            std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.path()).find(|p| !manifests(p).is_empty());
        std::future::ready(found.ok_or_else(|| "no room directory with a manifest".to_string()))
    })
    .await;
    assert_eq!(manifests(&room_dir)[0].1["server"], url(&remote));
    let relay = json!({"server": url(&remote), "room": "far away", "url": "rtmp://127.0.0.1:1/live/key"});
    let with_relay = c.check(&base, "post", "/api/v1/remote/relay", "/api/v1/remote/relay", Some(relay), 202).await;
    assert_eq!(with_relay["relay"]["url"], "rtmp://127.0.0.1:1/live/key***", "the stream key is redacted");
    let b = &base;
    wait_for_value("the relay to take erin's stream", LONG, || async move {
        let now = sessions(b).await;
        let far = now.iter().find(|s| s["room"] == "far away");
        let relayed = far.and_then(|s| s["streams"].as_array()).is_some_and(|s| s.iter().any(|s| s["relayed"] == true));
        if relayed { Ok(()) } else { Err(format!("{far:#?}")) }
    })
    .await;

    let stop = json!({"server": url(&remote), "room": "far away"});
    let (status, _, after) = call(&base, "post", "/api/v1/remote/recording/stop", Some(stop.clone()), None).await;
    assert_eq!(status, 200, "{after}");
    assert!(after["recording"].is_null() && after["relay"].is_object(), "the relay goes on: {after}");
    told(&mut erin, "stopped").await;
    let done = finished_manifests(&room_dir, 1, LONG).await;
    assert_eq!(done[0].1["end_reason"], "stopped");
    let (status, _, after) = call(&base, "post", "/api/v1/remote/relay/stop", Some(stop), None).await;
    assert_eq!((status, after["state"].as_str()), (200, Some("left")), "{after}");

    // A room with a password the gateway was not given: the session shows why it ended.
    let mut frank = publisher_with_password(&url(&remote), "locked", "frank", Some("s3cret"), &metrics);
    wait_for(&mut frank, "joined", |e| matches!(e, ParticipantEvent::Joined { .. })).await;
    let wrong = json!({"server": url(&remote), "room": "locked", "password": "guess"});
    let (status, _, _) = call(&base, "post", "/api/v1/remote/recording", Some(wrong), None).await;
    assert_eq!(status, 202);
    let (b, contract) = (&base, tokio::sync::Mutex::new(c));
    let session = wait_for_value("the session of the locked room to be refused", LONG, || async {
        let sessions = contract.lock().await.check(b, "get", "/api/v1/sessions", "/api/v1/sessions", None, 200).await;
        let locked = sessions["sessions"].as_array().unwrap().iter().find(|s| s["room"] == "locked").cloned();
        locked.filter(|s| s["state"] == "refused").ok_or_else(|| format!("{sessions:#}"))
    })
    .await;
    assert!(session["error"].as_str().unwrap().contains("password"), "{session}");
    frank.shutdown().await;
    erin.shutdown().await;
    gw.shutdown().await.unwrap();
    remote.shutdown().await.unwrap();
}
