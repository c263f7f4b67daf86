//! Why a recording, a relay or a whole room run ended: one typed value
//! from the decision to the manifest (`end_reason`), the webhooks and the
//! logs, instead of string literals compared with `==`.
//!
//! A leaf: it depends on nothing in the crate.

/// Why an output (file or relay) or a room run ended. Serialised as the
/// kebab-case names users see in manifests and webhooks (`"peer-left"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// The publishing peer left the room (its session ended).
    PeerLeft,
    /// The peer stopped publishing the stream (every track removed).
    StreamEnded,
    /// Stopped on request (API, command line, a rule no longer matching).
    Stopped,
    /// The gateway is shutting down.
    Shutdown,
    /// Nobody is left in the room.
    RoomEmpty,
    /// The room's members never answered the gateway's participant.
    Unanswered,
    /// The set of tracks changed for good (a kind appeared or went, a codec
    /// changed): this file ends and a new one continues the stream.
    TracksChanged,
    /// The output's pipeline failed (full disk, RTMP server gone, ...).
    PipelineError,
    /// The room's recording reached its size cap.
    SizeCap,
    /// The room's recording reached its duration cap.
    TimeCap,
    /// The rtc.io server refused the gateway's participant.
    Refused,
    /// The gateway's participant ended on its own (signaling gone for good).
    ParticipantEnded,
}

impl EndReason {
    pub const ALL: [EndReason; 12] = [
        EndReason::PeerLeft,
        EndReason::StreamEnded,
        EndReason::Stopped,
        EndReason::Shutdown,
        EndReason::RoomEmpty,
        EndReason::Unanswered,
        EndReason::TracksChanged,
        EndReason::PipelineError,
        EndReason::SizeCap,
        EndReason::TimeCap,
        EndReason::Refused,
        EndReason::ParticipantEnded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::PeerLeft => "peer-left",
            EndReason::StreamEnded => "stream-ended",
            EndReason::Stopped => "stopped",
            EndReason::Shutdown => "shutdown",
            EndReason::RoomEmpty => "room-empty",
            EndReason::Unanswered => "unanswered",
            EndReason::TracksChanged => "tracks-changed",
            EndReason::PipelineError => "pipeline-error",
            EndReason::SizeCap => "size-cap",
            EndReason::TimeCap => "time-cap",
            EndReason::Refused => "refused",
            EndReason::ParticipantEnded => "participant-ended",
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_the_documented_names() {
        for reason in EndReason::ALL {
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json, serde_json::Value::String(reason.as_str().to_string()));
            assert_eq!(serde_json::from_value::<EndReason>(json).unwrap(), reason);
        }
    }
}
