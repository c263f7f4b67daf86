//! What the participant reports to the rest of the gateway (recorder, CLI,
//! tests), and the media it is given to publish.

use std::time::SystemTime;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, watch};

/// Re-exported for the participant's users; defined in the leaf [`crate::media::kind`].
pub use crate::media::kind::MediaKind;
pub use crate::media::sender_clock::SenderReports;
pub use rtc::rtp::packet::Packet as RtpPacket;

use super::channels::Channel;
use super::streams::StreamEvents;

/// A remote peer as the room knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub id: String,
    pub name: String,
}

/// The negotiated codec of a received track.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CodecInfo {
    /// e.g. `video/VP8`, `video/H264`, `audio/opus`.
    pub mime_type: String,
    pub clock_rate: u32,
    pub channels: u16,
    pub fmtp: String,
    pub payload_type: u8,
}

impl CodecInfo {
    /// The encoding name as GStreamer's RTP caps want it (`VP8`, `H264`, `OPUS`, ...).
    pub fn encoding_name(&self) -> String {
        self.mime_type.rsplit('/').next().unwrap_or("").to_ascii_uppercase()
    }
}

/// Asks the sender of a received video track for a keyframe (RTCP PLI).
#[derive(Clone)]
pub struct KeyframeRequester {
    pub(crate) request: mpsc::UnboundedSender<()>,
}

impl KeyframeRequester {
    /// Send a picture loss indication (non-blocking; coalesced by the session).
    pub fn request(&self) {
        let _ = self.request.send(());
    }
}

impl std::fmt::Debug for KeyframeRequester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyframeRequester")
    }
}

/// A received media track: its description and its RTP packets as they arrive.
/// The packet channel closes when the track ends.
#[derive(Debug)]
pub struct ReceivedTrack {
    pub peer: PeerInfo,
    pub stream_id: String,
    pub track_id: String,
    pub kind: MediaKind,
    pub codec: CodecInfo,
    pub ssrc: u32,
    pub packets: mpsc::Receiver<RtpPacket>,
    /// The sender's RTCP sender reports for the track, the latest and how many.
    pub reports: watch::Receiver<SenderReports>,
    pub keyframes: KeyframeRequester,
}

/// A text message received on a data channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelMessage {
    pub peer: PeerInfo,
    pub channel: Channel,
    pub event: String,
    pub args: Vec<Value>,
    pub at: SystemTime,
}

#[derive(Debug)]
pub enum ParticipantEvent {
    /// Joined (or re-joined after a reconnect) with this socket id.
    Joined {
        own_id: String,
        members: Vec<PeerInfo>,
    },
    /// The server refused us (wrong password, bad token, ...); the participant stopped.
    Refused {
        reason: String,
    },
    /// The signaling connection dropped; peers are closed, a re-join follows.
    SignalingLost {
        reason: String,
    },
    /// The ctrl channel to the peer opened (rtc.io's `peer-connect`).
    PeerConnected(PeerInfo),
    /// A peer that was connected is gone (rtc.io's `peer-disconnect`).
    PeerDisconnected {
        peer: PeerInfo,
        reason: String,
    },
    Message(ChannelMessage),
    Binary {
        peer: PeerInfo,
        channel: Channel,
        data: Bytes,
        at: SystemTime,
    },
    /// A received stream is ready: its event names and arguments (`None`:
    /// the peer never answered the metadata request). Its tracks follow as
    /// [`ParticipantEvent::Track`].
    StreamStarted {
        peer: PeerInfo,
        stream_id: String,
        events: Option<StreamEvents>,
        /// The kinds of track the peer's description says the stream carries
        /// (empty when it does not say); they may arrive some time apart.
        kinds: Vec<MediaKind>,
    },
    /// Metadata that arrived after the stream was announced without it.
    StreamMetadata {
        peer: PeerInfo,
        stream_id: String,
        events: StreamEvents,
    },
    Track(ReceivedTrack),
    StreamEnded {
        peer: PeerInfo,
        stream_id: String,
        reason: StreamEnd,
    },
}

/// Why a received stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The peer (or our connection to it) went away.
    PeerLeft,
    /// The peer stopped publishing the stream (removed its tracks).
    Unpublished,
}

impl std::fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamEnd::PeerLeft => "peer-left",
            StreamEnd::Unpublished => "stream-ended",
        })
    }
}

/// One track we publish: its codec and a broadcast of its RTP packets
/// (payload type and SSRC are rewritten per peer connection).
#[derive(Clone)]
pub struct LocalTrack {
    pub track_id: String,
    pub kind: MediaKind,
    /// `video/VP8`, `video/H264`, `audio/opus`.
    pub mime_type: String,
    pub clock_rate: u32,
    pub channels: u16,
    pub fmtp: String,
    pub packets: broadcast::Sender<RtpPacket>,
    /// Keyframe requests from any receiver reach the source here.
    pub keyframe_requests: mpsc::UnboundedSender<()>,
}

/// A stream we publish, as `socket.emit(event, ...args)` would.
#[derive(Clone)]
pub struct LocalStream {
    pub stream_id: String,
    pub event: String,
    /// The emit's arguments; the string `[RTCIOStream] <stream id>` stands for the stream.
    pub args: Vec<Value>,
    pub tracks: Vec<LocalTrack>,
}
