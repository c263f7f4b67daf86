//! A small socket.io v4 client (Engine.IO 4 over WebSocket) that, unlike the
//! available client crates, tells its own socket id — the participant needs
//! it as the `source` of every envelope — and lets tests send malformed
//! frames on purpose.
//!
//! Packet encoding is the socket.io libraries' own (`engineioxide-core` for
//! Engine.IO packets, `socketioxide-parser-common` for socket.io packets);
//! this module only drives the handshake, heartbeat and framing.
//! Reconnection is the caller's business (see the participant).

use std::time::Duration;

use engineioxide_core::{Packet as EioPacket, ProtocolVersion};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use socketioxide_core::packet::{Packet, PacketData};
use socketioxide_core::parser::{Parse, ParseConfig, ParserState};
use socketioxide_core::{Str, Value};
use socketioxide_parser_common::CommonParser;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Something the server sent us.
#[derive(Debug, Clone, PartialEq)]
pub enum SioEvent {
    /// `socket.emit(name, ...args)` from the server.
    Event { name: String, args: Vec<serde_json::Value> },
    /// An event as its raw JSON text `["name", ...args]`, when connected with
    /// [`ConnectOptions::raw_events`] (load generators skip the parsing).
    Raw(String),
    /// The connection is over (server disconnect, transport closed or failed).
    Disconnected { reason: String },
}

/// How to connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The handshake `auth` object (e.g. `{"token": "<jwt>"}`).
    pub auth: Option<serde_json::Value>,
    /// Deliver events as [`SioEvent::Raw`] instead of parsing them.
    pub raw_events: bool,
}

impl SioEvent {
    /// The first argument of an event, if this is one named `name`.
    pub fn arg_of(&self, name: &str) -> Option<&serde_json::Value> {
        match self {
            SioEvent::Event { name: n, args } if n == name => args.first(),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server refused the namespace connection (`connect_error`).
    #[error("connection refused by the server: {0}")]
    Refused(String),
    #[error("invalid server URL {0:?} (expected http://host:port or ws://host:port)")]
    BadUrl(String),
    #[error("transport error: {0}")]
    Transport(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("timed out waiting for the server")]
    Timeout,
}

#[derive(Debug, thiserror::Error)]
#[error("the socket.io connection is closed")]
pub struct Closed;

/// A connected socket.io client.
pub struct SioClient {
    sid: String,
    sender: SioSender,
    events: mpsc::UnboundedReceiver<SioEvent>,
    task: JoinHandle<()>,
}

/// The sending half of a client (see [`SioClient::split`]); cheap to clone.
#[derive(Clone)]
pub struct SioSender {
    out: mpsc::UnboundedSender<Outgoing>,
}

/// The receiving half of a client (see [`SioClient::split`]).
pub struct SioReceiver {
    events: mpsc::UnboundedReceiver<SioEvent>,
}

enum Outgoing {
    Text(String),
    Close,
}

/// `http://host:port[/]` or `ws://...` → the Engine.IO WebSocket endpoint.
pub fn websocket_url(server: &str) -> Result<String, ConnectError> {
    let mut url = url::Url::parse(server).map_err(|_| ConnectError::BadUrl(server.into()))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return Err(ConnectError::BadUrl(server.into())),
    };
    url.set_scheme(scheme).map_err(|_| ConnectError::BadUrl(server.into()))?;
    let path = if url.path().ends_with("/socket.io/") {
        url.path().to_string()
    } else {
        format!("{}/socket.io/", url.path().trim_end_matches('/'))
    };
    url.set_path(&path);
    url.set_query(Some("EIO=4&transport=websocket"));
    Ok(url.into())
}

impl SioClient {
    /// Connect to the default namespace, with an optional handshake `auth` object.
    pub async fn connect(server: &str, auth: Option<serde_json::Value>) -> Result<SioClient, ConnectError> {
        Self::connect_with(server, ConnectOptions { auth, ..Default::default() }).await
    }

    pub async fn connect_with(server: &str, options: ConnectOptions) -> Result<SioClient, ConnectError> {
        tokio::time::timeout(Duration::from_secs(10), Self::connect_inner(server, options))
            .await
            .map_err(|_| ConnectError::Timeout)?
    }

    async fn connect_inner(server: &str, options: ConnectOptions) -> Result<SioClient, ConnectError> {
        let ConnectOptions { auth, raw_events } = options;
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(websocket_url(server)?, None, true).await?;
        // Engine.IO open packet.
        match next_engine_packet(&mut ws).await? {
            EioPacket::Open(_) => {}
            other => return Err(ConnectError::Protocol(format!("expected an open packet, got {other:?}"))),
        }
        let auth = auth.map(|a| Value::Str(Str::from(a.to_string()), None));
        send_socketio(&mut ws, Packet::connect("/", auth)).await?;
        let sid = loop {
            match next_engine_packet(&mut ws).await? {
                EioPacket::Ping => ws.send(Message::text(String::from(EioPacket::Pong))).await?,
                // CONNECT_ERROR (`4{"message":...}`) is not decoded by the server-side parser.
                EioPacket::Message(text) if text.as_str().starts_with('4') => {
                    return Err(ConnectError::Refused(connect_error_message(&text.as_str()[1..])));
                }
                EioPacket::Message(text) => match decode(text)?.inner {
                    PacketData::Connect(Some(Value::Str(data, _))) => {
                        #[derive(serde::Deserialize)]
                        struct ConnectPayload {
                            sid: String,
                        }
                        let payload: ConnectPayload = serde_json::from_str(data.as_str())
                            .map_err(|e| ConnectError::Protocol(format!("connect payload: {e}")))?;
                        break payload.sid;
                    }
                    other => return Err(ConnectError::Protocol(format!("expected connect, got {other:?}"))),
                },
                other => return Err(ConnectError::Protocol(format!("expected connect, got {other:?}"))),
            }
        };
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(ws, out_rx, ev_tx, raw_events));
        Ok(SioClient { sid, sender: SioSender { out: out_tx }, events: ev_rx, task })
    }

    /// Our socket id, as the server and other clients know it.
    pub fn id(&self) -> &str {
        &self.sid
    }

    /// `socket.emit(event, data)` with one argument.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), Closed> {
        self.sender.emit(event, data)
    }

    /// See [`SioSender::send_engine_message`].
    pub fn send_engine_message(&self, socketio_packet: &str) -> Result<(), Closed> {
        self.sender.send_engine_message(socketio_packet)
    }

    /// Separate sending and receiving (e.g. to receive in another task).
    /// The connection lives until [`SioSender::close_now`] or the server ends it.
    pub fn split(self) -> (SioSender, SioReceiver) {
        (self.sender, SioReceiver { events: self.events })
    }

    /// Next event from the server; `None` once the connection task is gone.
    pub async fn recv(&mut self) -> Option<SioEvent> {
        self.events.recv().await
    }

    /// Next event, or `None` after `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<SioEvent> {
        tokio::time::timeout(timeout, self.events.recv()).await.ok().flatten()
    }

    /// Wait (up to `timeout`) for the event named `name`, skipping others;
    /// returns its first argument.
    pub async fn expect(&mut self, name: &str, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.events.recv()).await.ok().flatten()?;
            if let Some(arg) = ev.arg_of(name) {
                return Some(arg.clone());
            }
        }
    }

    /// Disconnect from the namespace and close the transport.
    pub async fn close(self) {
        self.sender.close_now();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }

    /// Drop the connection without a goodbye (like a crashed tab).
    pub fn abort(self) {
        self.task.abort();
    }
}

impl SioSender {
    /// `socket.emit(event, data)` with one argument.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), Closed> {
        let value = CommonParser.encode_value(data, Some(event)).map_err(|_| Closed)?;
        self.send_packet(Packet::event("/", value))
    }

    fn send_packet(&self, packet: Packet) -> Result<(), Closed> {
        match CommonParser.encode(packet) {
            Value::Str(text, _) => self.send_engine_message(text.as_str()),
            Value::Bytes(_) => Err(Closed),
        }
    }

    /// Send an Engine.IO message whose payload is `socketio_packet` verbatim
    /// (e.g. `2["event",{}]`) — for load generators and for testing how the
    /// server copes with bad input.
    pub fn send_engine_message(&self, socketio_packet: &str) -> Result<(), Closed> {
        self.out
            .send(Outgoing::Text(String::from(EioPacket::Message(Str::from(socketio_packet.to_string())))))
            .map_err(|_| Closed)
    }

    /// Say goodbye to the namespace and close the transport, without waiting.
    pub fn close_now(&self) {
        let _ = self.send_packet(Packet::disconnect("/"));
        let _ = self.out.send(Outgoing::Close);
    }
}

impl SioReceiver {
    /// Next event from the server; `None` once the connection is gone.
    pub async fn recv(&mut self) -> Option<SioEvent> {
        self.events.recv().await
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn run(
    ws: Ws,
    mut out: mpsc::UnboundedReceiver<Outgoing>,
    events: mpsc::UnboundedSender<SioEvent>,
    raw_events: bool,
) {
    let (mut sink, mut stream) = ws.split();
    let reason = loop {
        tokio::select! {
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None => break "transport closed".to_string(),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break format!("transport error: {e}"),
                };
                match EioPacket::parse(ProtocolVersion::V4, text.as_str().to_owned()) {
                    Ok(EioPacket::Ping)
                        if sink.send(Message::text(String::from(EioPacket::Pong))).await.is_err() => {
                            break "transport error".to_string();
                        }
                    Ok(EioPacket::Message(m)) => match decode(m) {
                        Ok(Packet { inner: PacketData::Event(Value::Str(data, _), _), .. }) => {
                            if raw_events {
                                let _ = events.send(SioEvent::Raw(data.as_str().to_owned()));
                            } else if let Some(ev) = event_of(data.as_str()) {
                                let _ = events.send(ev);
                            }
                        }
                        Ok(Packet { inner: PacketData::Disconnect, .. }) => break "server disconnect".to_string(),
                        _ => {}
                    },
                    Ok(EioPacket::Close) => break "server closed the session".to_string(),
                    _ => {}
                }
            }
            cmd = out.recv() => match cmd {
                Some(Outgoing::Text(t)) => {
                    // Batch whatever else is queued into one flush.
                    let mut res = sink.feed(Message::text(t)).await;
                    let mut closing = false;
                    while res.is_ok() {
                        match out.try_recv() {
                            Ok(Outgoing::Text(t)) => res = sink.feed(Message::text(t)).await,
                            Ok(Outgoing::Close) => { closing = true; break }
                            Err(_) => break,
                        }
                    }
                    if res.is_err() || sink.flush().await.is_err() {
                        break "transport error".to_string();
                    }
                    if closing {
                        let _ = sink.close().await;
                        break "client closed".to_string();
                    }
                }
                Some(Outgoing::Close) | None => {
                    let _ = sink.close().await;
                    break "client closed".to_string();
                }
            },
        }
    };
    let _ = events.send(SioEvent::Disconnected { reason });
}

fn event_of(data: &str) -> Option<SioEvent> {
    let mut parts: Vec<serde_json::Value> = serde_json::from_str(data).ok()?;
    if parts.is_empty() {
        return None;
    }
    let name = match parts.remove(0) {
        serde_json::Value::String(s) => s,
        _ => return None,
    };
    Some(SioEvent::Event { name, args: parts })
}

fn decode(text: Str) -> Result<Packet, ConnectError> {
    CommonParser
        .decode_str(&ParseConfig::default(), &ParserState::default(), text)
        .map_err(|e| ConnectError::Protocol(format!("bad socket.io packet: {e}")))
}

/// socket.io v5 sends `{"message": "..."}` as connect_error data.
fn connect_error_message(raw: &str) -> String {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| raw.to_string())
}

async fn next_engine_packet(ws: &mut Ws) -> Result<EioPacket, ConnectError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                // The server-only open packet is not covered by `Packet::parse`.
                // Its session id is server-specific (Node's are 20 characters, engineioxide's 16),
                // so only its JSON shape is checked: nothing in it is needed over WebSocket.
                if let Some(open) = t.as_str().strip_prefix('0') {
                    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(open)
                        .map_err(|e| ConnectError::Protocol(format!("bad open packet: {e}")))?;
                    return Ok(EioPacket::Open(Default::default()));
                }
                return EioPacket::parse(ProtocolVersion::V4, t.as_str().to_owned())
                    .map_err(|e| ConnectError::Protocol(format!("bad engine.io packet: {e}")));
            }
            Some(Ok(Message::Close(_))) | None => return Err(ConnectError::Protocol("closed during handshake".into())),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

async fn send_socketio(ws: &mut Ws, packet: Packet) -> Result<(), ConnectError> {
    match CommonParser.encode(packet) {
        Value::Str(text, _) => Ok(ws.send(Message::text(String::from(EioPacket::Message(text)))).await?),
        Value::Bytes(_) => Err(ConnectError::Protocol("binary packet".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls() {
        assert_eq!(
            websocket_url("http://127.0.0.1:3000").unwrap(),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            websocket_url("https://x.example/").unwrap(),
            "wss://x.example/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(websocket_url("ws://h:1/socket.io/").unwrap(), "ws://h:1/socket.io/?EIO=4&transport=websocket");
        assert!(websocket_url("ftp://h").is_err());
        assert!(websocket_url("not a url").is_err());
    }

    #[test]
    fn events_and_errors_decode() {
        assert_eq!(
            event_of(r#"["join-ok",{"roomId":"r"}]"#),
            Some(SioEvent::Event { name: "join-ok".into(), args: vec![serde_json::json!({"roomId": "r"})] })
        );
        assert_eq!(event_of("[]"), None);
        assert_eq!(connect_error_message(r#"{"message":"unauthorized: x"}"#), "unauthorized: x");
    }
}
