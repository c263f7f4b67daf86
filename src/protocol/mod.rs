//! The rtc.io wire protocol as pure data: event names, payload types, validation
//! rules and the channel-id hash. Nothing here touches a socket or a clock, so
//! every rule is unit-tested directly.
//!
//! See `PROTOCOL.md` (shared notes) §2 for the server events and §3/§5 for the
//! envelope and data-channel rules.

pub mod channels;
pub mod events;
pub mod frame;
pub mod validate;

pub use events::*;
