//! The participant's signaling link: a socket.io connection to any rtc.io
//! server that joins one room, and after a lost connection reconnects with
//! backoff and joins again (with a new socket id: rtc.io servers have no
//! connection-state recovery, so peers see us leave and come back). Asked to,
//! it also leaves the room and joins it again on the same connection (same
//! socket id), as an app does that leaves a room and comes back.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::protocol::*;
use crate::sio_client::{ConnectError, ConnectOptions, SioClient, SioEvent, SioSender};

#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Server URL, e.g. `http://127.0.0.1:3000`.
    pub server: String,
    pub room: String,
    pub name: String,
    pub password: Option<String>,
    /// JWT sent as the handshake's `auth.token`.
    pub token: Option<String>,
}

/// What the link reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// Connected and joined: our socket id and the members already there.
    Joined {
        own_id: String,
        members: Vec<(String, String)>,
    },
    /// The server refused to let us in; the link stops.
    Refused {
        reason: String,
    },
    /// The connection dropped; the link reconnects by itself.
    Lost {
        reason: String,
    },
    /// We sent `leave-room` (see [`Link::rejoin`]); `Joined` follows once back in.
    LeftRoom,
    UserConnected {
        id: String,
        name: String,
    },
    UserDisconnected {
        id: String,
    },
    PeerLeft {
        id: String,
    },
    InitOffer {
        source: String,
    },
    /// A `#rtcio:message` addressed to us.
    Message {
        source: String,
        data: Value,
    },
    /// Any other server event (media-state, chat-message, signaling-error, ...).
    Other {
        event: String,
        arg: Value,
    },
}

/// Handle to a running link.
pub struct Link {
    commands: mpsc::UnboundedSender<Command>,
}

enum Command {
    Envelope { target: String, data: Value },
    Emit { event: String, arg: Value },
    Rejoin,
}

impl Link {
    /// Start the link task; events arrive on the returned receiver until `cancel`.
    pub fn start(config: LinkConfig, cancel: CancellationToken) -> (Link, mpsc::UnboundedReceiver<LinkEvent>) {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(config, cancel, cmd_rx, ev_tx));
        (Link { commands: cmd_tx }, ev_rx)
    }

    /// Send a `#rtcio:message` envelope (our current id is filled in as `source`).
    /// Dropped while disconnected: the sessions are rebuilt after a re-join anyway.
    pub fn send_envelope(&self, target: &str, data: Value) {
        let _ = self.commands.send(Command::Envelope { target: target.into(), data });
    }

    /// Emit a server event (e.g. `media-state`).
    pub fn emit(&self, event: &str, arg: Value) {
        let _ = self.commands.send(Command::Emit { event: event.into(), arg });
    }

    /// Leave the room (`leave-room`) and join it again on the same connection:
    /// `LeftRoom`, then `Joined` (same socket id) or `Refused`.
    pub fn rejoin(&self) {
        let _ = self.commands.send(Command::Rejoin);
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

async fn run(
    config: LinkConfig,
    cancel: CancellationToken,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<LinkEvent>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let attempt = tokio::select! {
            _ = cancel.cancelled() => return,
            r = connect_and_join(&config) => r,
        };
        let JoinAnswer { client, own_id, members, early } = match attempt {
            Ok(joined) => joined,
            Err(JoinFailure::Refused(reason)) => {
                let _ = events.send(LinkEvent::Refused { reason });
                return;
            }
            Err(JoinFailure::Transient(reason)) => {
                tracing::info!(server = %config.server, %reason, retry_in = ?backoff, "signaling connection failed");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        tracing::info!(room = %config.room, id = %own_id, members = members.len(), "joined room");
        let _ = events.send(LinkEvent::Joined { own_id: own_id.clone(), members });
        // What the server sent with its answer (the members' cached media-state), after it.
        for (name, arg) in early {
            if let Some(e) = link_event(&own_id, name, vec![arg]) {
                let _ = events.send(e);
            }
        }
        // Anything queued while we were away was addressed to the old session.
        while commands.try_recv().is_ok() {}
        let (sender, mut receiver) = client.split();
        // Members announced since our re-join's `join-room`, until its answer.
        let mut rejoining: Option<Vec<(String, String)>> = None;
        let reason = loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    sender.close_now();
                    return;
                }
                cmd = commands.recv() => match cmd {
                    Some(Command::Rejoin) => {
                        let _ = sender.emit(EV_LEAVE_ROOM, &json!({"roomId": config.room}));
                        let _ = events.send(LinkEvent::LeftRoom);
                        let _ = sender.emit(EV_JOIN_ROOM, &join_payload(&config));
                        rejoining = Some(Vec::new());
                    }
                    Some(cmd) => send_command(&sender, &own_id, cmd),
                    None => { sender.close_now(); return; }
                },
                ev = receiver.recv() => match ev {
                    Some(SioEvent::Event { name, args }) if rejoining.is_some() => {
                        match rejoin_answer(&own_id, rejoining.as_mut().expect("rejoining"), name, args) {
                            RejoinStep::Waiting => {}
                            RejoinStep::Event(e) => { let _ = events.send(e); }
                            RejoinStep::Done(e) => {
                                let refused = matches!(e, LinkEvent::Refused { .. });
                                rejoining = None;
                                let _ = events.send(e);
                                if refused {
                                    sender.close_now();
                                    return;
                                }
                            }
                        }
                    }
                    Some(SioEvent::Event { name, args }) => {
                        if let Some(e) = link_event(&own_id, name, args) {
                            let _ = events.send(e);
                        }
                    }
                    Some(SioEvent::Disconnected { reason }) => break reason,
                    Some(SioEvent::Raw(_)) => {}
                    None => break "connection task ended".to_string(),
                },
            }
        };
        tracing::warn!(%reason, "signaling connection lost; reconnecting");
        let _ = events.send(LinkEvent::Lost { reason });
    }
}

fn send_command(sender: &SioSender, own_id: &str, cmd: Command) {
    let _ = match cmd {
        Command::Envelope { target, data } => {
            sender.emit(EV_MESSAGE, &json!({"source": own_id, "target": target, "data": data}))
        }
        Command::Emit { event, arg } => sender.emit(&event, &arg),
        Command::Rejoin => Ok(()),
    };
}

fn join_payload(config: &LinkConfig) -> Value {
    let mut join = json!({"roomId": config.room, "name": config.name});
    if let Some(p) = &config.password {
        join["password"] = json!(p);
    }
    join
}

enum RejoinStep {
    /// Part of the answer to our `join-room` (a member's `user-connected`).
    Waiting,
    /// Anything else, passed on as usual.
    Event(LinkEvent),
    /// The answer: `Joined` (with the members announced before it) or `Refused`.
    Done(LinkEvent),
}

/// One server event while a re-join's `join-room` awaits its answer (pure).
fn rejoin_answer(own_id: &str, members: &mut Vec<(String, String)>, name: String, args: Vec<Value>) -> RejoinStep {
    match name.as_str() {
        EV_USER_CONNECTED => match link_event(own_id, name, args) {
            Some(LinkEvent::UserConnected { id, name }) => {
                members.push((id, name));
                RejoinStep::Waiting
            }
            _ => RejoinStep::Waiting,
        },
        EV_JOIN_OK => {
            RejoinStep::Done(LinkEvent::Joined { own_id: own_id.to_string(), members: std::mem::take(members) })
        }
        EV_JOIN_ERROR => {
            let arg = args.into_iter().next().unwrap_or(Value::Null);
            let reason = arg["reason"].as_str().unwrap_or("unknown");
            RejoinStep::Done(LinkEvent::Refused { reason: format!("join-error: {reason}") })
        }
        _ => match link_event(own_id, name, args) {
            Some(e) => RejoinStep::Event(e),
            None => RejoinStep::Waiting,
        },
    }
}

enum JoinFailure {
    /// Worth retrying (network, server restart).
    Transient(String),
    /// Retrying cannot help (wrong password, refused handshake).
    Refused(String),
}

/// A joined connection: our id, the members already there, and the other
/// events the server sent before `join-ok` (their cached `media-state`).
struct JoinAnswer {
    client: SioClient,
    own_id: String,
    members: Vec<(String, String)>,
    early: Vec<(String, Value)>,
}

/// Events kept from before `join-ok` (a server sends one `media-state` per member).
const EARLY_EVENTS: usize = 1024;

async fn connect_and_join(config: &LinkConfig) -> Result<JoinAnswer, JoinFailure> {
    let auth = config.token.as_ref().map(|t| json!({"token": t}));
    let mut client = match SioClient::connect_with(&config.server, ConnectOptions { auth, raw_events: false }).await {
        Ok(c) => c,
        // A server that is shutting down (or still starting) has no namespace yet: try again.
        Err(ConnectError::Refused(m)) if m == "Invalid namespace" => return Err(JoinFailure::Transient(m)),
        Err(ConnectError::Refused(m)) => return Err(JoinFailure::Refused(format!("connection refused: {m}"))),
        Err(ConnectError::BadUrl(u)) => return Err(JoinFailure::Refused(format!("invalid server URL {u:?}"))),
        Err(e) => return Err(JoinFailure::Transient(e.to_string())),
    };
    client.emit(EV_JOIN_ROOM, &join_payload(config)).map_err(|e| JoinFailure::Transient(e.to_string()))?;
    let mut members = Vec::new();
    let mut early = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline, client.recv())
            .await
            .map_err(|_| JoinFailure::Transient("no answer to join-room within 10 s".into()))?;
        match ev {
            Some(SioEvent::Event { name, args }) => {
                let arg = args.into_iter().next().unwrap_or(Value::Null);
                match name.as_str() {
                    EV_USER_CONNECTED => {
                        if let Some(id) = arg["id"].as_str() {
                            members.push((id.to_string(), arg["name"].as_str().unwrap_or("").to_string()));
                        }
                    }
                    EV_JOIN_OK => {
                        let own_id = client.id().to_string();
                        return Ok(JoinAnswer { client, own_id, members, early });
                    }
                    EV_JOIN_ERROR => {
                        let reason = arg["reason"].as_str().unwrap_or("unknown").to_string();
                        return Err(JoinFailure::Refused(format!("join-error: {reason}")));
                    }
                    _ if early.len() < EARLY_EVENTS => early.push((name, arg)),
                    _ => {}
                }
            }
            Some(SioEvent::Disconnected { reason }) => return Err(JoinFailure::Transient(reason)),
            Some(SioEvent::Raw(_)) => {}
            None => return Err(JoinFailure::Transient("connection closed".into())),
        }
    }
}

/// Map a server event to a [`LinkEvent`] (pure).
fn link_event(own_id: &str, name: String, args: Vec<Value>) -> Option<LinkEvent> {
    let arg = args.into_iter().next().unwrap_or(Value::Null);
    let s = |k: &str| arg.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    Some(match name.as_str() {
        EV_USER_CONNECTED => LinkEvent::UserConnected { id: s("id")?, name: s("name").unwrap_or_default() },
        EV_USER_DISCONNECTED => LinkEvent::UserDisconnected { id: s("id")? },
        EV_PEER_LEFT => LinkEvent::PeerLeft { id: s("id")? },
        EV_INIT_OFFER => LinkEvent::InitOffer { source: s("source")? },
        EV_MESSAGE => {
            // Only envelopes addressed to us, from someone else.
            if s("target").as_deref() != Some(own_id) {
                return None;
            }
            let source = s("source").filter(|src| src != own_id)?;
            LinkEvent::Message { source, data: arg.get("data").cloned().unwrap_or(Value::Null) }
        }
        _ => LinkEvent::Other { event: name, arg },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_server_events() {
        let me = "me";
        assert_eq!(
            link_event(me, "#rtcio:init-offer".into(), vec![json!({"source": "b"})]),
            Some(LinkEvent::InitOffer { source: "b".into() })
        );
        assert_eq!(
            link_event(me, "#rtcio:message".into(), vec![json!({"source": "b", "target": "me", "data": {"mid": "x"}})]),
            Some(LinkEvent::Message { source: "b".into(), data: json!({"mid": "x"}) })
        );
        // Not for us, or pretending to be us: ignored.
        assert_eq!(
            link_event(me, "#rtcio:message".into(), vec![json!({"source": "b", "target": "c", "data": {}})]),
            None
        );
        assert_eq!(
            link_event(me, "#rtcio:message".into(), vec![json!({"source": "me", "target": "me", "data": {}})]),
            None
        );
        assert_eq!(link_event(me, "#rtcio:peer-left".into(), vec![json!({"nope": 1})]), None);
        assert_eq!(
            link_event(me, "user-connected".into(), vec![json!({"id": "b"})]),
            Some(LinkEvent::UserConnected { id: "b".into(), name: "".into() })
        );
        assert_eq!(
            link_event(me, "media-state".into(), vec![json!({"mic": true})]),
            Some(LinkEvent::Other { event: "media-state".into(), arg: json!({"mic": true}) })
        );
    }

    #[test]
    fn a_rejoin_collects_the_members_until_join_ok() {
        let mut members = Vec::new();
        let step = |m: &mut Vec<_>, name: &str, arg: Value| rejoin_answer("me", m, name.into(), vec![arg]);
        assert!(matches!(step(&mut members, "user-connected", json!({"id": "b", "name": "rec"})), RejoinStep::Waiting));
        assert!(matches!(
            step(&mut members, "media-state", json!({"id": "b", "mic": true, "cam": false})),
            RejoinStep::Event(LinkEvent::Other { .. })
        ));
        let RejoinStep::Done(joined) = step(&mut members, "join-ok", json!({"roomId": "r"})) else { panic!() };
        assert_eq!(joined, LinkEvent::Joined { own_id: "me".into(), members: vec![("b".into(), "rec".into())] });
        let RejoinStep::Done(refused) = step(&mut members, "join-error", json!({"reason": "wrong-password"})) else {
            panic!()
        };
        assert_eq!(refused, LinkEvent::Refused { reason: "join-error: wrong-password".into() });
    }
}
