//! The headless rtc.io participant: joins a room through any rtc.io signaling
//! server and behaves towards every peer like another rtc.io client.
//!
//! - [`negotiation`], [`channels`], [`streams`], [`sdp_hints`]: the protocol logic, sans-IO.
//! - [`session`]: one task per remote peer, carrying out those decisions with webrtc-rs;
//!   [`peer_connection`] builds its connection (and owns its [`peer_connection::NetConfig`]),
//!   [`tracks`] runs its media tasks, `session_events` is what they report back to it.
//! - [`link`]: the signaling connection (join, reconnect, re-join).
//! - [`room`]: one participant in one room: the link plus a session per peer.
//! - [`events`]: what the participant reports and the media it publishes.

pub mod channels;
pub mod events;
pub mod link;
pub mod negotiation;
pub mod peer_connection;
pub mod room;
pub mod sdp_hints;
pub mod session;
mod session_events;
pub mod streams;
pub mod tracks;
