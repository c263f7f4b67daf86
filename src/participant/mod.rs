//! The headless rtc.io participant: joins a room through any rtc.io signaling
//! server and behaves towards every peer like another rtc.io client.
//!
//! - [`negotiation`], [`channels`], [`streams`]: the protocol logic, sans-IO.
//! - [`session`]: the only code that touches webrtc-rs; one task per remote peer.
//! - [`link`]: the signaling connection (join, reconnect, re-join).
//! - [`room`]: one participant in one room: the link plus a session per peer.

pub mod channels;
pub mod events;
pub mod link;
pub mod negotiation;
pub mod room;
pub mod session;
pub mod streams;
