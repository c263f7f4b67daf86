//! DataChannel bookkeeping, sans-IO: which negotiated channels exist for every
//! peer (ctrl id 0 plus one per configured broadcast name, ids per the FNV-1a
//! rule), and how their messages are read and written (`{e, d}` envelopes,
//! size cap, reserved names). The session driver does the I/O.

use serde::Serialize;
use serde_json::Value;

use crate::protocol::channels::{CTRL_CHANNEL_ID, broadcast_channel_id, is_reserved_event};

/// The rtc.io client drops envelopes over 1 MiB; so do we.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
pub const CTRL_LABEL: &str = "rtcio:ctrl";
pub const BROADCAST_PREFIX: &str = "rtcio:ch:";

/// Which channel a message travelled on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum Channel {
    /// `rtcio:ctrl`, carrying `socket.emit(...)`.
    #[serde(serialize_with = "ser_ctrl")]
    Ctrl,
    /// `rtcio:ch:<name>`.
    Broadcast(String),
}

fn ser_ctrl<S: serde::Serializer>(s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("ctrl")
}

impl Channel {
    /// `ctrl` or the broadcast channel's name, as logs and chat.jsonl show it.
    pub fn name(&self) -> &str {
        match self {
            Channel::Ctrl => "ctrl",
            Channel::Broadcast(n) => n,
        }
    }
}

/// One negotiated channel to create on every peer connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    pub channel: Channel,
    pub label: String,
    pub id: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChannelConfigError {
    #[error("broadcast channel names must not be empty")]
    EmptyName,
    #[error(
        "broadcast channels {0:?} and {1:?} hash to the same SCTP stream id {2}; the rtc.io client could not tell them apart"
    )]
    IdCollision(String, String, u16),
}

/// The ctrl channel plus the configured broadcast channels (deduplicated).
pub fn channel_specs(broadcast: &[String]) -> Result<Vec<ChannelSpec>, ChannelConfigError> {
    let mut specs = vec![ChannelSpec { channel: Channel::Ctrl, label: CTRL_LABEL.into(), id: CTRL_CHANNEL_ID }];
    for name in broadcast {
        if name.is_empty() {
            return Err(ChannelConfigError::EmptyName);
        }
        if specs.iter().any(|s| s.channel == Channel::Broadcast(name.clone())) {
            continue;
        }
        let id = broadcast_channel_id(name);
        if let Some(other) = specs.iter().find(|s| s.id == id) {
            return Err(ChannelConfigError::IdCollision(other.channel.name().into(), name.clone(), id));
        }
        specs.push(ChannelSpec {
            channel: Channel::Broadcast(name.clone()),
            label: format!("{BROADCAST_PREFIX}{name}"),
            id,
        });
    }
    Ok(specs)
}

/// A parsed `{e, d}` envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMessage {
    pub event: String,
    pub args: Vec<Value>,
}

/// Why an incoming message was dropped (the metric label is [`DropReason::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Oversized,
    InvalidJson,
    /// Valid JSON but not `{e: string, d: [...]}`.
    Malformed,
    NonArrayArgs,
    ReservedEvent,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Oversized => "oversized",
            DropReason::InvalidJson => "invalid_json",
            DropReason::Malformed => "malformed",
            DropReason::NonArrayArgs => "non_array_args",
            DropReason::ReservedEvent => "reserved_event",
        }
    }

    pub const ALL: [DropReason; 5] =
        [Self::Oversized, Self::InvalidJson, Self::Malformed, Self::NonArrayArgs, Self::ReservedEvent];
}

/// Read a text message of any channel.
pub fn parse_text(text: &str) -> Result<EventMessage, DropReason> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(DropReason::Oversized);
    }
    let value: Value = serde_json::from_str(text).map_err(|_| DropReason::InvalidJson)?;
    let Value::Object(mut obj) = value else { return Err(DropReason::Malformed) };
    let Some(Value::String(event)) = obj.remove("e") else { return Err(DropReason::Malformed) };
    let args = match obj.remove("d") {
        Some(Value::Array(args)) => args,
        None | Some(Value::Null) => return Err(DropReason::NonArrayArgs),
        Some(_) => return Err(DropReason::NonArrayArgs),
    };
    if is_reserved_event(&event) {
        return Err(DropReason::ReservedEvent);
    }
    Ok(EventMessage { event, args })
}

/// Check a binary message's size.
pub fn check_binary(len: usize) -> Result<(), DropReason> {
    if len > MAX_MESSAGE_BYTES { Err(DropReason::Oversized) } else { Ok(()) }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    #[error("event name {0:?} is reserved by rtc.io")]
    Reserved(String),
    #[error("message of {0} bytes is over the 1 MiB limit")]
    TooLarge(usize),
}

#[derive(Serialize)]
struct Envelope<'a> {
    e: &'a str,
    d: &'a [Value],
}

/// Encode an outgoing `{e, d}` envelope.
pub fn encode(event: &str, args: &[Value]) -> Result<String, SendError> {
    if is_reserved_event(event) {
        return Err(SendError::Reserved(event.into()));
    }
    let text = serde_json::to_string(&Envelope { e: event, d: args }).expect("JSON values serialize");
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(SendError::TooLarge(text.len()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn specs_have_protocol_ids_and_labels() {
        let s = channel_specs(&["chat".into(), "file".into(), "chat".into()]).unwrap();
        assert_eq!(
            s,
            vec![
                ChannelSpec { channel: Channel::Ctrl, label: "rtcio:ctrl".into(), id: 0 },
                ChannelSpec { channel: Channel::Broadcast("chat".into()), label: "rtcio:ch:chat".into(), id: 721 },
                ChannelSpec { channel: Channel::Broadcast("file".into()), label: "rtcio:ch:file".into(), id: 139 },
            ]
        );
        assert_eq!(channel_specs(&["".into()]), Err(ChannelConfigError::EmptyName));
    }

    #[test]
    fn colliding_names_are_refused() {
        // Find two names with the same id by brute force.
        let mut seen = std::collections::HashMap::new();
        let mut pair = None;
        for i in 0..5000 {
            let n = format!("c{i}");
            if let Some(prev) = seen.insert(broadcast_channel_id(&n), n.clone()) {
                pair = Some((prev, n));
                break;
            }
        }
        let (a, b) = pair.unwrap();
        assert!(matches!(channel_specs(&[a, b]), Err(ChannelConfigError::IdCollision(..))));
    }

    #[test]
    fn parses_envelopes() {
        assert_eq!(
            parse_text(r#"{"e":"chat","d":["hi",{"x":1}]}"#),
            Ok(EventMessage { event: "chat".into(), args: vec![json!("hi"), json!({"x": 1})] })
        );
        assert_eq!(parse_text(r#"{"e":"x","d":[]}"#).unwrap().args.len(), 0);
    }

    #[test]
    fn drops_hostile_messages() {
        assert_eq!(parse_text("not json"), Err(DropReason::InvalidJson));
        assert_eq!(parse_text(r#"[1,2]"#), Err(DropReason::Malformed));
        assert_eq!(parse_text(r#"{"d":[]}"#), Err(DropReason::Malformed));
        assert_eq!(parse_text(r#"{"e":5,"d":[]}"#), Err(DropReason::Malformed));
        assert_eq!(parse_text(r#"{"e":"x","d":"str"}"#), Err(DropReason::NonArrayArgs));
        assert_eq!(parse_text(r#"{"e":"x"}"#), Err(DropReason::NonArrayArgs));
        for reserved in ["#rtcio:message", "peer-connect", "peer-disconnect", "track-added", "track-removed"] {
            assert_eq!(parse_text(&format!(r#"{{"e":"{reserved}","d":[]}}"#)), Err(DropReason::ReservedEvent));
        }
        let big = format!(r#"{{"e":"x","d":["{}"]}}"#, "a".repeat(MAX_MESSAGE_BYTES));
        assert_eq!(parse_text(&big), Err(DropReason::Oversized));
        assert_eq!(check_binary(MAX_MESSAGE_BYTES + 1), Err(DropReason::Oversized));
        assert_eq!(check_binary(10), Ok(()));
    }

    #[test]
    fn encodes_and_refuses_reserved_or_huge() {
        assert_eq!(encode("chat", &[json!("hi")]).unwrap(), r#"{"e":"chat","d":["hi"]}"#);
        assert_eq!(encode("peer-connect", &[]), Err(SendError::Reserved("peer-connect".into())));
        assert!(matches!(encode("x", &[json!("a".repeat(MAX_MESSAGE_BYTES))]), Err(SendError::TooLarge(_))));
        // Round trip.
        let t = encode("recording", &[json!({"state": "started"})]).unwrap();
        assert_eq!(parse_text(&t).unwrap().event, "recording");
    }

    #[test]
    fn channel_names_serialize_as_logged() {
        assert_eq!(serde_json::to_value(Channel::Ctrl).unwrap(), json!("ctrl"));
        assert_eq!(serde_json::to_value(Channel::Broadcast("chat".into())).unwrap(), json!("chat"));
    }
}
