//! The rtc.io signaling server on socketioxide.
//!
//! [`Signaling`] (in `state`) owns the room registry and the limits; `glue` plugs it into
//! socketioxide ([`Signaling::attach`]); `handlers` implements each client event of PROTOCOL.md §2
//! on top of the pure [`crate::rooms`] registry and [`crate::protocol`] rules.
//!
//! Every event of one socket is handled synchronously, in arrival order, on
//! that socket's receive path (see `glue` for why this matters), and every
//! room change plus the notifications it causes happen under one lock, so
//! clients observe the same event order as with the single-threaded Node
//! reference server.

pub mod auth;
mod glue;
mod handlers;
pub mod limits;
mod state;

pub use auth::{AuthError, JwtVerifier, internal_token};
pub use state::Signaling;
