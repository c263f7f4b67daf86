//! What reaches a peer session's task besides the room's commands: events
//! forwarded from webrtc-rs callbacks (which must not block) and from the
//! session's own media tasks ([`super::tracks`]).

use std::sync::Arc;

use webrtc::data_channel::DataChannelEvent;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{RTCIceCandidateInit, RTCPeerConnectionState};

use super::events::ReceivedTrack;

/// Events reaching the session task from webrtc-rs callbacks and helper tasks.
pub(super) enum Internal {
    LocalCandidate(RTCIceCandidateInit),
    GatheringComplete,
    Connection(RTCPeerConnectionState),
    RemoteTrack(Arc<dyn TrackRemote>),
    Channel { id: u16, event: DataChannelEvent },
    TrackReady(Box<ReceivedTrack>),
    TrackGone { stream_id: String, track_id: String },
}
