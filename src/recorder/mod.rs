//! Recording and relaying rooms.
//!
//! - [`naming`]: safe paths and file names (pure).
//! - [`manifest`]: the `.json` sidecar of each recording.
//! - [`chat_log`]: a room's `chat.jsonl`.
//! - [`timeline`]: a room's timeline `room.json` — its files' `t0` and its events on one clock (sans-IO).
//! - [`vtt`]: the WebVTT sidecar of a recording: its messages as cues on the file's time line (pure).
//! - [`timeline_file`]: reading, archiving and atomically writing `room.json` and the `.vtt` sidecars.
//! - [`room_timeline`]: a room task's timeline: events and manifests in, `room.json` and `.vtt` out when due.
//! - `record_file`: one recording file: its free name, its manifest, its byte count.
//! - [`file_events`]: each manifest a stream task writes, copied to its room (a leaf).
//! - [`stream_context`]: who and what a received stream is (a leaf).
//! - [`stream`]: one received stream → its recording and relay pipelines (its media policy is a sans-IO machine there).
//! - [`end_reason`]: why an output or a room run ended (a leaf).
//! - [`room`]: one room's streams and chat log, driven by participant events.
//! - [`runner`]: a participant feeding a room recorder until stopped.
//! - [`status`]: what a room's streams and outputs are doing now (read by the API and gauges).
//! - [`rules`]: which rooms of our own server to record, with which template and cap.
//! - [`admission`]: which rooms of our own server get a participant by rule, and when one is given up (sans-IO).
//! - [`controller`]: every room the gateway is in — by rule or by API, ours or remote.

pub mod admission;
pub mod chat_log;
pub mod composite;
pub mod controller;
pub mod end_reason;
pub mod file_events;
pub mod manifest;
pub mod naming;
mod record_file;
pub mod room;
pub mod room_timeline;
pub mod rules;
pub mod runner;
pub mod status;
pub mod stream;
pub mod stream_context;
pub mod timeline;
pub mod timeline_file;
pub mod vtt;
