//! GStreamer media plumbing.
//!
//! - [`source`]: encoded test media (or a file) as RTP, for the participant to publish.

pub mod source;

/// Initialise GStreamer once per process; the error says what is missing.
pub fn init() -> Result<(), glib::Error> {
    gstreamer::init()
}
