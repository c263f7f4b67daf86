//! One received stream and the outputs made of it: its recording and, if
//! asked, its relay. One task per stream reads the stream's tracks once and
//! feeds every output.
//!
//! - [`policy`]: every decision about the stream's media (track waits,
//!   splits, continuity, keyframes, supervision of outputs with back-off),
//!   as a sans-IO state machine.
//! - [`driver`]: the task that runs the policy: track channels, GStreamer
//!   outputs, files and manifests, clock, metrics, status and webhooks.
//! - [`target`]: what to make of a stream (a recording or a relay).

pub mod driver;
pub mod policy;
pub mod target;

pub use driver::{OutputNotifier, OutputReport, OutputSettings, StreamCommand, StreamHandle};
pub use target::Target;
