//! Recording and relaying rooms.
//!
//! - [`naming`]: safe paths and file names (pure).
//! - [`manifest`]: the `.json` sidecar of each recording.
//! - [`chat_log`]: a room's `chat.jsonl`.
//! - `record_file`: one recording file: its free name, its manifest, its byte count.
//! - [`stream`]: one received stream → its recording and relay pipelines (media policy lives here).
//! - [`room`]: one room's streams and chat log, driven by participant events.
//! - [`runner`]: a participant feeding a room recorder until stopped.
//! - [`auto`]: joins our own server's rooms while they have members (for `serve`).

pub mod auto;
pub mod chat_log;
pub mod manifest;
pub mod naming;
mod record_file;
pub mod room;
pub mod runner;
pub mod stream;
