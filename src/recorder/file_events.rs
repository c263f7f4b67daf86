//! What a stream task tells its room about the files it writes: each time a
//! file's manifest is written (created, metadata arrived, clock learnt,
//! finished), the room gets a copy, so the room task can keep its timeline
//! without reading the directory. A leaf of the recorder.

use tokio::sync::mpsc;

use super::manifest::Manifest;

/// A recording file's manifest, as just written.
#[derive(Debug, Clone)]
pub struct FileUpdate {
    pub manifest: Manifest,
}

/// Where a stream task sends its [`FileUpdate`]s (nowhere by default).
#[derive(Debug, Clone, Default)]
pub struct FileEvents(Option<mpsc::UnboundedSender<FileUpdate>>);

impl FileEvents {
    pub fn new(sender: mpsc::UnboundedSender<FileUpdate>) -> FileEvents {
        FileEvents(Some(sender))
    }

    pub fn send(&self, manifest: &Manifest) {
        if let Some(sender) = &self.0 {
            let _ = sender.send(FileUpdate { manifest: manifest.clone() });
        }
    }
}
