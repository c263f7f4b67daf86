//! Who and what a received stream is: the room, the peer, the stream's id
//! and metadata, the kinds of track announced, and where its status goes.
//! Shared by the stream task and the recording files it writes (a leaf of
//! the recorder).

use super::file_events::FileEvents;
use super::status::RoomStatus;
use crate::media::kind::MediaKind;
use crate::participant::events::PeerInfo;
use crate::participant::streams::StreamEvents;

#[derive(Debug, Clone)]
pub struct StreamContext {
    /// The rtc.io server of the room when it is not our own.
    pub server: Option<String>,
    pub room: String,
    pub peer: PeerInfo,
    pub stream_id: String,
    pub events: Option<StreamEvents>,
    /// The kinds of track the peer announced for the stream (empty: unknown).
    pub expected_kinds: Vec<MediaKind>,
    /// Where the stream task reports what its outputs do.
    pub status: RoomStatus,
    /// Where each manifest written for the stream's files is copied.
    pub files: FileEvents,
}
