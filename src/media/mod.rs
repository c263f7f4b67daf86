//! GStreamer media plumbing.
//!
//! - [`source`]: encoded test media (or a file) as RTP, for the participant to publish.
//! - [`kind`]: [`kind::MediaKind`], audio or video (a leaf shared with the participant).
//! - [`keyframes`]: keyframe detection in RTP and the PLI policy (sans-IO).
//! - [`clock_status`]: a file's presentation time zero on the wall clock, and how it was learnt (a leaf).
//! - [`continuity`]: one continuous RTP stream across SSRC changes (sans-IO).
//! - [`output`]: one running recording/relay pipeline built from a template.
//! - [`reorder`]: sequence order of an input's RTP packets before a pipeline (sans-IO).
//! - [`rtp_clock`]: presentation times from RTP timestamps and arrival (sans-IO; a file's times before its first sender report).
//! - [`sender_clock`]: a received track's RTP timestamps on its sender's wall clock, from its RTCP sender reports (sans-IO).
//! - [`sync_clock`]: an output's presentation times on its senders' wall clock, and its time zero (sans-IO).
//! - [`rtp_rewrite`]: a received packet's bytes with its SSRC, payload type, sequence number and timestamp replaced.
//! - [`sync_marks`]: the white frame and the beep of `publish --sync-marks`, as functions of the wall clock (sans-IO).
//! - [`templates`]: the pipeline templates of `pipelines/` (loading, validation, choice).

pub mod clock_status;
pub mod continuity;
pub mod keyframes;
pub mod kind;
pub mod output;
pub mod reorder;
pub mod rtp_clock;
pub mod rtp_rewrite;
pub mod sender_clock;
pub mod source;
pub mod sync_clock;
pub mod sync_marks;
pub mod templates;

/// Initialise GStreamer once per process; the error says what is missing.
pub fn init() -> Result<(), glib::Error> {
    gstreamer::init()
}
