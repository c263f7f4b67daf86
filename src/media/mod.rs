//! GStreamer media plumbing.
//!
//! - [`source`]: encoded test media (or a file) as RTP, for the participant to publish.
//! - [`templates`]: the pipeline templates of `pipelines/` (loading, validation, choice).

pub mod source;
pub mod templates;

/// Initialise GStreamer once per process; the error says what is missing.
pub fn init() -> Result<(), glib::Error> {
    gstreamer::init()
}
