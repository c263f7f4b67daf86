//! The room composite: every video stream of a room in one picture, every
//! audio track in one mix.
//!
//! - [`layout`] (sans-IO): where each tile goes, per layout;
//! - [`speaker`] (sans-IO): who the active speaker is, with hysteresis;
//! - [`placement`] (sans-IO): when each input's packets are shown, on the room clock;
//! - [`scene`] (sans-IO): the composite's members and tiles, and what changes when;
//! - [`pipeline`]: the GStreamer driver (compositor, mixer, one branch per input).

pub mod layout;
pub mod pipeline;
pub mod placement;
pub mod scene;
pub mod speaker;
