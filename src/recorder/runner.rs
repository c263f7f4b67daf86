//! A participant feeding a [`RoomRecorder`] until it is told to stop (then
//! every file is finalised before the participant leaves) or the server
//! refuses it. While running it takes commands (start/stop recording or
//! relaying), enforces the recording's size/time cap, and tells every peer
//! over the ctrl channel whether the room is being recorded (event
//! `recording`, `{state: "started" | "stopped", by: "rtcio-gateway"}`),
//! including peers that connect later.

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;

use super::end_reason::EndReason;
use super::room::{RecordSpec, RelaySpec, RoomRecorder};
use super::stream::OutputReport;
use crate::participant::events::ParticipantEvent;
use crate::participant::room::Participant;

/// The ctrl event that tells peers about recording.
pub const RECORDING_EVENT: &str = "recording";
/// The `by` of that event.
pub const RECORDING_BY: &str = "rtcio-gateway";
const TICK: Duration = Duration::from_millis(250);
/// A peer whose ctrl channel just opened is told the recording state after
/// these delays, not at the instant the channel opens: a message sent then
/// is occasionally lost (webrtc-rs peers may not have bound the channel
/// yet; see the participant's known issues). The event is a state, so
/// hearing it twice is harmless.
const TELL_AFTER: [Duration; 2] = [Duration::from_millis(500), Duration::from_millis(2500)];

/// Why a room run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Told to stop, with this reason (`shutdown`, `room-empty`, ...).
    Stopped(EndReason),
    /// The server refused the participant (wrong password, bad token, ...).
    Refused(String),
}

/// What the owner of a running room can ask of it.
#[derive(Debug)]
pub enum RoomCommand {
    /// Finalise everything and leave; the reason goes into the manifests.
    Stop(EndReason),
    /// Start (`Some`), change or stop (`None`) recording the room.
    SetRecording(Option<RecordSpec>, EndReason),
    /// Start, change or stop the room's relay.
    SetRelay(Option<RelaySpec>, EndReason),
}

/// Something the room run reports to its owner while it goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomNotice {
    /// Recording stopped because it reached its cap (`size-cap`, `time-cap`).
    CapReached(EndReason),
}

/// What a room run tells its owner, in order; [`RoomReport::Ended`] comes
/// last. The owner keeps its own picture of the room from these alone (the
/// room run shares no state with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomReport {
    /// The participant joined (or re-joined after a reconnect) with this socket id.
    Joined {
        own_id: String,
    },
    /// A peer's ctrl channel opened.
    PeerConnected {
        peer: String,
    },
    /// A peer that was connected is gone.
    PeerDisconnected {
        peer: String,
    },
    /// The signaling connection dropped: every peer is gone until a re-join.
    SignalingLost,
    Notice(RoomNotice),
    /// The run is over, with its outcome (`None`: the run panicked).
    Ended(Option<Outcome>),
}

impl RoomReport {
    /// The report an observation of [`run_room`] makes, if any.
    pub fn of(observed: Observed<'_>) -> Option<RoomReport> {
        match observed {
            Observed::Event(ParticipantEvent::Joined { own_id, .. }) => {
                Some(RoomReport::Joined { own_id: own_id.clone() })
            }
            Observed::Event(ParticipantEvent::PeerConnected(peer)) => {
                Some(RoomReport::PeerConnected { peer: peer.id.clone() })
            }
            Observed::Event(ParticipantEvent::PeerDisconnected { peer, .. }) => {
                Some(RoomReport::PeerDisconnected { peer: peer.id.clone() })
            }
            Observed::Event(ParticipantEvent::SignalingLost { .. }) => Some(RoomReport::SignalingLost),
            Observed::Event(_) => None,
            Observed::Notice(notice) => Some(RoomReport::Notice(notice)),
        }
    }
}

/// Run until told to stop (or the command sender is dropped) or the
/// participant is refused. `observe` sees every participant event first and
/// every [`RoomNotice`].
pub async fn run_room(
    mut participant: Participant,
    mut recorder: RoomRecorder,
    mut commands: mpsc::UnboundedReceiver<RoomCommand>,
    mut observe: impl FnMut(Observed<'_>),
) -> (Outcome, Vec<OutputReport>) {
    let mut cap_check = tokio::time::interval(TICK);
    cap_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retell: Vec<(tokio::time::Instant, String)> = Vec::new();
    let mut server_events = participant.take_server_events();
    let outcome = loop {
        let was_recording = recorder.is_recording();
        tokio::select! {
            command = commands.recv() => match command {
                None => break Outcome::Stopped(EndReason::Stopped),
                Some(RoomCommand::Stop(reason)) => break Outcome::Stopped(reason),
                Some(RoomCommand::SetRecording(spec, reason)) => recorder.set_recording(spec, reason),
                Some(RoomCommand::SetRelay(spec, reason)) => recorder.set_relay(spec, reason),
            },
            event = participant.next_event() => match event {
                None => break Outcome::Stopped(EndReason::ParticipantEnded),
                Some(ParticipantEvent::Refused { reason }) => break Outcome::Refused(reason),
                Some(event) => {
                    if let ParticipantEvent::PeerConnected(peer) = &event {
                        let now = tokio::time::Instant::now();
                        retell.extend(TELL_AFTER.iter().map(|after| (now + *after, peer.id.clone())));
                    }
                    observe(Observed::Event(&event));
                    recorder.on_event(event);
                }
            },
            update = recorder.next_file_update() => recorder.on_file_update(update),
            Some(server) = async { server_events.as_mut()?.recv().await } => {
                recorder.on_server_event(&server);
            }
            _ = cap_check.tick() => {
                let now = tokio::time::Instant::now();
                recorder.flush_timeline(now.into_std());
                for (_, peer) in retell.extract_if(.., |(due, _)| *due <= now) {
                    if recorder.is_recording() {
                        let _ = participant.emit_to(&peer, RECORDING_EVENT, &[recording_state(true)]);
                    }
                }
                if let Some(cap) = recorder.cap_reached() {
                    tracing::info!(room = %recorder.plan().room, %cap, "recording cap reached; recording stopped");
                    recorder.set_recording(None, cap);
                    observe(Observed::Notice(RoomNotice::CapReached(cap)));
                }
            }
        }
        if recorder.is_recording() != was_recording {
            let _ = participant.emit(RECORDING_EVENT, &[recording_state(recorder.is_recording())]);
        }
    };
    let reason = match &outcome {
        Outcome::Stopped(reason) => *reason,
        Outcome::Refused(_) => EndReason::Refused,
    };
    if recorder.is_recording() {
        let _ = participant.emit(RECORDING_EVENT, &[recording_state(false)]);
    }
    // Files first (the peers are still sending), then leave the room.
    let reports = recorder.stop(reason).await;
    participant.shutdown().await;
    (outcome, reports)
}

/// What `run_room` shows its owner.
#[derive(Debug)]
pub enum Observed<'a> {
    Event(&'a ParticipantEvent),
    Notice(RoomNotice),
}

/// The argument of the ctrl `recording` event.
pub fn recording_state(recording: bool) -> serde_json::Value {
    json!({"state": if recording { "started" } else { "stopped" }, "by": RECORDING_BY})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_become_reports() {
        let peer = crate::participant::events::PeerInfo { id: "p1".into(), name: "alice".into() };
        let joined = ParticipantEvent::Joined { own_id: "me".into(), members: vec![peer.clone()] };
        assert_eq!(RoomReport::of(Observed::Event(&joined)), Some(RoomReport::Joined { own_id: "me".into() }));
        let connected = ParticipantEvent::PeerConnected(peer.clone());
        assert_eq!(RoomReport::of(Observed::Event(&connected)), Some(RoomReport::PeerConnected { peer: "p1".into() }));
        let gone = ParticipantEvent::PeerDisconnected { peer, reason: "closed".into() };
        assert_eq!(RoomReport::of(Observed::Event(&gone)), Some(RoomReport::PeerDisconnected { peer: "p1".into() }));
        let lost = ParticipantEvent::SignalingLost { reason: "x".into() };
        assert_eq!(RoomReport::of(Observed::Event(&lost)), Some(RoomReport::SignalingLost));
        let refused = ParticipantEvent::Refused { reason: "x".into() };
        assert_eq!(RoomReport::of(Observed::Event(&refused)), None);
        assert_eq!(
            RoomReport::of(Observed::Notice(RoomNotice::CapReached(EndReason::SizeCap))),
            Some(RoomReport::Notice(RoomNotice::CapReached(EndReason::SizeCap)))
        );
    }

    #[test]
    fn the_recording_event_says_what_and_who() {
        assert_eq!(recording_state(true), json!({"state": "started", "by": "rtcio-gateway"}));
        assert_eq!(recording_state(false), json!({"state": "stopped", "by": "rtcio-gateway"}));
    }
}
