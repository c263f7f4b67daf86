//! Event names and payloads exchanged between rtc.io clients and the signaling
//! server (PROTOCOL.md §2), plus the gateway's own `signaling-error` event.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Signaling envelope relayed between peers.
pub const EV_MESSAGE: &str = "#rtcio:message";
/// Server → existing member: "make an offer to `source`".
pub const EV_INIT_OFFER: &str = "#rtcio:init-offer";
/// Server → room: "`id` is leaving".
pub const EV_PEER_LEFT: &str = "#rtcio:peer-left";
pub const EV_JOIN_ROOM: &str = "join-room";
pub const EV_JOIN_OK: &str = "join-ok";
pub const EV_JOIN_ERROR: &str = "join-error";
pub const EV_CHECK_ROOM: &str = "check-room";
pub const EV_ROOM_CHECK_OK: &str = "room-check-ok";
pub const EV_LEAVE_ROOM: &str = "leave-room";
pub const EV_USER_CONNECTED: &str = "user-connected";
pub const EV_USER_DISCONNECTED: &str = "user-disconnected";
pub const EV_MEDIA_STATE: &str = "media-state";
pub const EV_STOP_SCREEN_SHARE: &str = "stopScreenShare";
pub const EV_CHAT_MESSAGE: &str = "chat-message";
/// Gateway → sender: an event of yours was refused (never sent to honest rtc.io clients).
pub const EV_SIGNALING_ERROR: &str = "signaling-error";

/// A `#rtcio:message` envelope `{source, target, data, ...}`, read in one
/// pass: the routing ids are decoded, every member (including unknown ones)
/// is kept as raw JSON in its original order, so the relayed envelope is the
/// sender's, member for member. The server never looks inside `data`.
#[derive(Debug)]
pub struct Envelope<'a> {
    pub source: Cow<'a, str>,
    pub target: Cow<'a, str>,
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Envelope<'a> {
    /// Parse an envelope from the raw JSON of the event argument.
    pub fn parse(raw: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(raw)
    }

    /// Bytes of JSON this envelope serializes to (approximately: without separators).
    pub fn raw_len(&self) -> usize {
        self.members.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum::<usize>() + 2
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Envelope<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Envelope<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an envelope {source, target, data}")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Envelope<'a>, M::Error> {
                use serde::de::Error;
                let (mut source, mut target, mut has_data) = (None, None, false);
                let mut members = Vec::with_capacity(3);
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    match key.as_ref() {
                        "source" => {
                            source = Some(serde_json::from_str::<Cow<str>>(value.get()).map_err(M::Error::custom)?)
                        }
                        "target" => {
                            target = Some(serde_json::from_str::<Cow<str>>(value.get()).map_err(M::Error::custom)?)
                        }
                        "data" => has_data = true,
                        _ => {}
                    }
                    members.push((key, value));
                }
                let source = source.ok_or_else(|| M::Error::missing_field("source"))?;
                let target = target.ok_or_else(|| M::Error::missing_field("target"))?;
                if !has_data {
                    return Err(M::Error::missing_field("data"));
                }
                Ok(Envelope { source, target, members })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

impl Serialize for Envelope<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.members.len()))?;
        for (k, v) in &self.members {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `join-error {reason, roomId}` reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JoinErrorReason {
    InvalidRoom,
    InvalidName,
    PasswordRequired,
    WrongPassword,
    RoomFull,
    /// The socket is already in `max_rooms_per_socket` rooms (gateway hardening).
    TooManyRooms,
    /// The room does not exist and the client's address created
    /// `room_creations_per_minute` rooms lately (gateway hardening).
    RoomCreationLimited,
}

impl JoinErrorReason {
    pub const ALL: [JoinErrorReason; 7] = [
        Self::InvalidRoom,
        Self::InvalidName,
        Self::PasswordRequired,
        Self::WrongPassword,
        Self::RoomFull,
        Self::TooManyRooms,
        Self::RoomCreationLimited,
    ];

    /// The wire string, also used as the `result` label of the joins metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRoom => "invalid-room",
            Self::InvalidName => "invalid-name",
            Self::PasswordRequired => "password-required",
            Self::WrongPassword => "wrong-password",
            Self::RoomFull => "room-full",
            Self::TooManyRooms => "too-many-rooms",
            Self::RoomCreationLimited => "room-creation-limited",
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinError<'a> {
    pub reason: JoinErrorReason,
    /// Echoed back like the reference server does (absent when it was not a string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinOk<'a> {
    pub room_id: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomCheckOk<'a> {
    pub room_id: &'a str,
    pub password_required: bool,
}

#[derive(Debug, Serialize)]
pub struct UserConnected<'a> {
    pub id: &'a str,
    pub name: &'a str,
}

/// `user-disconnected {id}` and `#rtcio:peer-left {id}`.
#[derive(Debug, Serialize)]
pub struct PeerId<'a> {
    pub id: &'a str,
}

#[derive(Debug, Serialize)]
pub struct InitOffer<'a> {
    pub source: &'a str,
}

/// Cached media state replayed to a late joiner: `media-state {id, roomId, mic, cam}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaStateReplay<'a> {
    pub id: &'a str,
    pub room_id: &'a str,
    pub mic: bool,
    pub cam: bool,
}

/// Why the gateway refused one of the sender's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalCode {
    /// `#rtcio:message` whose `source` is not the sender's id.
    SpoofedSource,
    /// `#rtcio:message` whose `target` shares no room with the sender (or is gone).
    ForeignTarget,
    /// The payload has the wrong shape (not JSON of the expected form, wrong types, binary).
    InvalidPayload,
    /// The event is over the configured size cap.
    PayloadTooLarge,
    /// The sender is over its event-rate budget.
    RateLimited,
    /// A room-scoped event for a room the sender is not a member of.
    NotInRoom,
    /// An event name this server does not handle.
    UnknownEvent,
    /// The target exists but its outgoing buffer is full.
    TargetUnavailable,
}

impl RefusalCode {
    /// Wire form, sent in `signaling-error {code}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SpoofedSource => "spoofed-source",
            Self::ForeignTarget => "foreign-target",
            Self::InvalidPayload => "invalid-payload",
            Self::PayloadTooLarge => "payload-too-large",
            Self::RateLimited => "rate-limited",
            Self::NotInRoom => "not-in-room",
            Self::UnknownEvent => "unknown-event",
            Self::TargetUnavailable => "target-unavailable",
        }
    }

    /// Prometheus label form (`snake_case`).
    pub fn metric_label(self) -> &'static str {
        match self {
            Self::SpoofedSource => "spoofed_source",
            Self::ForeignTarget => "foreign_target",
            Self::InvalidPayload => "invalid_payload",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::NotInRoom => "not_in_room",
            Self::UnknownEvent => "unknown_event",
            Self::TargetUnavailable => "target_unavailable",
        }
    }

    pub const ALL: [RefusalCode; 8] = [
        Self::SpoofedSource,
        Self::ForeignTarget,
        Self::InvalidPayload,
        Self::PayloadTooLarge,
        Self::RateLimited,
        Self::NotInRoom,
        Self::UnknownEvent,
        Self::TargetUnavailable,
    ];
}

/// `signaling-error {code, event, message}`.
#[derive(Debug, Serialize)]
pub struct SignalingError<'a> {
    pub code: &'static str,
    pub event: &'a str,
    pub message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_member_for_member() {
        let text =
            r#"{"target":"b","source":"a","data":{"candidate":{"candidate":"x y","n":[1,2.50,"\u00e9"]}},"extra":1}"#;
        let e = Envelope::parse(text).unwrap();
        assert_eq!(e.source, "a");
        assert_eq!(e.target, "b");
        // Same members, same order, values byte-identical (no re-formatting of numbers or escapes).
        assert_eq!(serde_json::to_string(&e).unwrap(), text);
        assert!(e.raw_len() >= text.len() - 4);
        let escaped = Envelope::parse(r#"{"source":"\u0061","target":"b","data":null}"#).unwrap();
        assert_eq!(escaped.source, "a");
    }

    #[test]
    fn envelope_requires_string_ids_and_data() {
        for bad in [
            r#"{"source":"a","target":"b"}"#,
            r#"{"source":1,"target":"b","data":{}}"#,
            r#"{"target":"b","data":{}}"#,
            r#"{"source":"a","target":null,"data":{}}"#,
            r#"[1,2,3]"#,
            r#""str""#,
            r#"{"source":"a","target":"b","data":{}"#,
        ] {
            assert!(Envelope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn join_error_wire_form() {
        let e = JoinError { reason: JoinErrorReason::PasswordRequired, room_id: Some("r") };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"reason":"password-required","roomId":"r"}"#);
        let e = JoinError { reason: JoinErrorReason::InvalidRoom, room_id: None };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"reason":"invalid-room"}"#);
        for r in JoinErrorReason::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }
}
