//! What every control API handler is given.

use std::path::PathBuf;
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::recorder::controller::ControlHandle;

#[derive(Clone)]
pub struct ApiState {
    pub control: ControlHandle,
    pub recordings_dir: PathBuf,
    /// Bearer token; `None`: loopback clients only.
    pub token: Option<Arc<str>>,
    pub metrics: Arc<Metrics>,
}
