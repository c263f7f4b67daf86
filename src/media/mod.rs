//! GStreamer media plumbing.
//!
//! - [`source`]: encoded test media (or a file) as RTP, for the participant to publish.
//! - [`keyframes`]: keyframe detection in RTP and the PLI policy (sans-IO).
//! - [`continuity`]: one continuous RTP stream across SSRC changes (sans-IO).
//! - [`output`]: one running recording/relay pipeline built from a template.
//! - [`templates`]: the pipeline templates of `pipelines/` (loading, validation, choice).

pub mod continuity;
pub mod keyframes;
pub mod output;
pub mod source;
pub mod templates;

/// Initialise GStreamer once per process; the error says what is missing.
pub fn init() -> Result<(), glib::Error> {
    gstreamer::init()
}
