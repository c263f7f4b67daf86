//! A participant in one room feeding a [`RoomRecorder`] until it is told to
//! stop (then every file is finalised before the participant leaves) or the
//! server refuses it.

use tokio::sync::oneshot;

use super::room::RoomRecorder;
use super::stream::OutputReport;
use crate::participant::events::ParticipantEvent;
use crate::participant::room::Participant;

/// Why a room run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Told to stop, with this reason (`shutdown`, `room-empty`, ...).
    Stopped(String),
    /// The server refused the participant (wrong password, bad token, ...).
    Refused(String),
}

/// Run until `stop` fires (its value is the reason recorded in manifests) or
/// the participant is refused. `observe` sees every event first.
pub async fn run_room(
    mut participant: Participant,
    mut recorder: RoomRecorder,
    mut stop: oneshot::Receiver<String>,
    mut observe: impl FnMut(&ParticipantEvent),
) -> (Outcome, Vec<OutputReport>) {
    let outcome = loop {
        tokio::select! {
            reason = &mut stop => break Outcome::Stopped(reason.unwrap_or_else(|_| "stopped".to_string())),
            event = participant.next_event() => match event {
                None => break Outcome::Stopped("participant-ended".to_string()),
                Some(ParticipantEvent::Refused { reason }) => break Outcome::Refused(reason),
                Some(event) => {
                    observe(&event);
                    recorder.on_event(event);
                }
            },
        }
    };
    let reason = match &outcome {
        Outcome::Stopped(reason) => reason.clone(),
        Outcome::Refused(_) => "refused".to_string(),
    };
    // Files first (the peers are still sending), then leave the room.
    let reports = recorder.stop(&reason).await;
    participant.shutdown().await;
    (outcome, reports)
}
