//! Perfect negotiation for one remote peer, as a sans-IO state machine.
//!
//! The driver ([`super::session`]) feeds every event of one peer — signaling
//! envelopes, results of the operations it was asked to run, connection state
//! changes, clock ticks — into [`Negotiator::handle`] strictly in order, and
//! runs the returned [`Action`]s in order, each to completion, before feeding
//! the next input. Every decision of the W3C perfect-negotiation pattern as
//! rtc.io uses it (PROTOCOL.md §4) lives here and is unit-tested without
//! sockets:
//!
//! - role: polite when we got `#rtcio:init-offer` (we offer first), impolite
//!   when the peer's first envelope created the connection;
//! - collisions: an offer arriving while ours is outstanding is ignored by the
//!   impolite side, and answered after an explicit rollback by the polite side
//!   (webrtc-rs has no implicit rollback);
//! - answers arriving in `stable` are stale and dropped;
//! - at most one offer in flight; renegotiation requests are coalesced;
//! - remote candidates are queued until a remote description is applied;
//! - `failed` triggers an ICE restart; a connection that stays
//!   disconnected/failed is closed after 12 s, or 2.5 s when a
//!   `#rtcio:peer-left` hint for the peer arrived in the last 30 s;
//! - the server saying the peer is gone from the room (`user-disconnected`:
//!   its socket disconnected or it sent `leave-room`) closes the connection at
//!   once — ICE would notice only ≈ 5 s later — whatever its state.

use std::time::{Duration, Instant};

/// How long a disconnected/failed connection may stay so before it is closed.
pub const STUCK_GRACE: Duration = Duration::from_secs(12);
/// The same, shortened by a recent `#rtcio:peer-left` hint.
pub const STUCK_GRACE_AFTER_HINT: Duration = Duration::from_millis(2500);
/// How long a `#rtcio:peer-left` hint stays relevant.
pub const HINT_VALIDITY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We received `#rtcio:init-offer`: we make the first offer and yield on collisions.
    Polite,
    /// The peer's first envelope created the connection: we answer and win collisions.
    Impolite,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Polite => "polite",
            Role::Impolite => "impolite",
        }
    }
}

/// A trickled ICE candidate (`RTCIceCandidateInit` as JSON); `candidate == ""` is end-of-candidates.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub candidate: String,
    #[serde(default)]
    pub sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_mline_index: Option<u16>,
    #[serde(default)]
    pub username_fragment: Option<String>,
}

impl Candidate {
    pub fn is_end_of_candidates(&self) -> bool {
        self.candidate.trim().is_empty()
    }

    /// Host candidates hidden behind an mDNS name (`<uuid>.local`), which we cannot resolve.
    pub fn is_mdns(&self) -> bool {
        // candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
        self.candidate.split_whitespace().nth(4).is_some_and(|addr| addr.ends_with(".local"))
    }
}

/// Connection state as reported by the peer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

/// Which operation an [`Input::OperationFailed`] refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    MakeOffer,
    AcceptOffer,
    AcceptAnswer,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Our side has something new to negotiate (channels/tracks added or removed).
    NegotiationNeeded,
    /// A remote offer.
    RemoteOffer(String),
    /// A remote answer.
    RemoteAnswer(String),
    /// A remote trickled candidate.
    RemoteCandidate(Candidate),
    /// `MakeOffer` done: our offer is the local description.
    OfferApplied(String),
    /// `AcceptOffer` done: the remote offer is applied and our answer is the local description.
    AnswerApplied(String),
    /// `AcceptAnswer` done.
    RemoteAnswerApplied,
    OperationFailed(Operation, String),
    ConnectionState(ConnState),
    /// `#rtcio:peer-left` for this peer: it is probably leaving (PROTOCOL.md §4 grace rules).
    PeerLeftHint,
    /// `user-disconnected` for this peer: the server no longer has it in the room.
    PeerGone,
    /// Time passes (the driver ticks about every 250 ms).
    Tick,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// create_offer (with an ICE restart if asked) + set_local_description; report `OfferApplied`.
    MakeOffer {
        ice_restart: bool,
    },
    /// [rollback our pending offer] + set_remote_description(offer) + create_answer +
    /// set_local_description; report `AnswerApplied`.
    AcceptOffer {
        sdp: String,
        rollback_first: bool,
    },
    /// set_remote_description(answer); report `RemoteAnswerApplied`.
    AcceptAnswer {
        sdp: String,
    },
    /// Send `{description: {type, sdp}}` to the peer.
    SendOffer(String),
    SendAnswer(String),
    /// add_ice_candidate.
    AddCandidate(Candidate),
    /// Close the connection and forget the peer.
    Close(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Disconnected/failed longer than the grace window.
    Stuck,
    /// The peer connection closed itself.
    Closed,
    /// The signaling server reported the peer gone from the room.
    PeerLeft,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Stuck => "connection stuck",
            CloseReason::Closed => "closed",
            CloseReason::PeerLeft => "peer left the room",
        }
    }
}

/// Things worth counting that need no action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub ignored_offers: u64,
    pub stale_answers: u64,
    pub rollbacks: u64,
    pub ice_restarts: u64,
    pub mdns_candidates_dropped: u64,
    pub failures: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signaling {
    Stable,
    /// Our offer is (being) applied and sent; waiting for the answer.
    HaveLocalOffer,
    /// We are applying a remote offer and answering.
    Answering,
    /// We asked for an offer to be made and await `OfferApplied`.
    MakingOffer,
}

/// See the module docs.
#[derive(Debug)]
pub struct Negotiator {
    role: Role,
    signaling: Signaling,
    /// A renegotiation was requested while another was in progress.
    offer_wanted: bool,
    ice_restart_wanted: bool,
    remote_description_set: bool,
    queued_candidates: Vec<Candidate>,
    conn: ConnState,
    stuck_since: Option<Instant>,
    hint_at: Option<Instant>,
    closed: bool,
    pub counters: Counters,
}

impl Negotiator {
    pub fn new(role: Role) -> Self {
        Self {
            role,
            signaling: Signaling::Stable,
            offer_wanted: false,
            ice_restart_wanted: false,
            remote_description_set: false,
            queued_candidates: Vec::new(),
            conn: ConnState::New,
            stuck_since: None,
            hint_at: None,
            closed: false,
            counters: Counters::default(),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn connection_state(&self) -> ConnState {
        self.conn
    }

    /// Has a remote description ever been applied?
    pub fn has_remote_description(&self) -> bool {
        self.remote_description_set
    }

    pub fn is_stable(&self) -> bool {
        self.signaling == Signaling::Stable
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Process one input; the returned actions must be run in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        if self.closed {
            return Vec::new();
        }
        let mut out = Vec::new();
        match input {
            Input::NegotiationNeeded => {
                self.offer_wanted = true;
                self.maybe_offer(&mut out);
            }
            Input::RemoteOffer(sdp) => {
                let collision = self.signaling != Signaling::Stable;
                if collision && self.role == Role::Impolite {
                    // Ours wins; the polite peer rolls back and answers it.
                    self.counters.ignored_offers += 1;
                } else {
                    if collision {
                        self.counters.rollbacks += 1;
                        // Our offer is abandoned; make a new one once stable.
                        self.offer_wanted = true;
                    }
                    self.signaling = Signaling::Answering;
                    out.push(Action::AcceptOffer { sdp, rollback_first: collision });
                }
            }
            Input::RemoteAnswer(sdp) => {
                if self.signaling == Signaling::HaveLocalOffer {
                    out.push(Action::AcceptAnswer { sdp });
                } else {
                    self.counters.stale_answers += 1;
                }
            }
            Input::RemoteCandidate(c) => {
                if c.is_mdns() {
                    self.counters.mdns_candidates_dropped += 1;
                } else if self.remote_description_set {
                    out.push(Action::AddCandidate(c));
                } else {
                    self.queued_candidates.push(c);
                }
            }
            Input::OfferApplied(sdp) => {
                if self.signaling == Signaling::MakingOffer {
                    self.signaling = Signaling::HaveLocalOffer;
                    out.push(Action::SendOffer(sdp));
                }
            }
            Input::AnswerApplied(sdp) => {
                self.signaling = Signaling::Stable;
                self.remote_description_set = true;
                out.push(Action::SendAnswer(sdp));
                self.flush_candidates(&mut out);
                self.maybe_offer(&mut out);
            }
            Input::RemoteAnswerApplied => {
                self.signaling = Signaling::Stable;
                self.remote_description_set = true;
                self.flush_candidates(&mut out);
                self.maybe_offer(&mut out);
            }
            Input::OperationFailed(op, _error) => {
                self.counters.failures += 1;
                match op {
                    // Back to stable; try again on the next request or ICE restart.
                    Operation::MakeOffer | Operation::AcceptAnswer | Operation::AcceptOffer => {
                        self.signaling = Signaling::Stable;
                    }
                }
                if op == Operation::AcceptAnswer {
                    // Our offer was not accepted: renegotiate from scratch.
                    self.offer_wanted = true;
                    self.maybe_offer(&mut out);
                }
            }
            Input::ConnectionState(state) => {
                self.conn = state;
                match state {
                    ConnState::Disconnected | ConnState::Failed => {
                        self.stuck_since.get_or_insert(now);
                        if state == ConnState::Failed {
                            self.ice_restart_wanted = true;
                            self.offer_wanted = true;
                            self.maybe_offer(&mut out);
                        }
                    }
                    ConnState::Closed => {
                        self.closed = true;
                        out.push(Action::Close(CloseReason::Closed));
                    }
                    _ => self.stuck_since = None,
                }
            }
            Input::PeerLeftHint => {
                self.hint_at = Some(now);
                self.check_stuck(now, &mut out);
            }
            Input::PeerGone => {
                self.closed = true;
                out.push(Action::Close(CloseReason::PeerLeft));
            }
            Input::Tick => self.check_stuck(now, &mut out),
        }
        out
    }

    fn maybe_offer(&mut self, out: &mut Vec<Action>) {
        if !self.offer_wanted || self.signaling != Signaling::Stable {
            return;
        }
        // The impolite side answers first: it never opens the negotiation
        // before the polite peer's offer was applied.
        if self.role == Role::Impolite && !self.remote_description_set {
            return;
        }
        self.offer_wanted = false;
        let ice_restart = std::mem::take(&mut self.ice_restart_wanted);
        if ice_restart {
            self.counters.ice_restarts += 1;
        }
        self.signaling = Signaling::MakingOffer;
        out.push(Action::MakeOffer { ice_restart });
    }

    fn flush_candidates(&mut self, out: &mut Vec<Action>) {
        out.extend(self.queued_candidates.drain(..).map(Action::AddCandidate));
    }

    fn check_stuck(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(since) = self.stuck_since else { return };
        let hinted = self.hint_at.is_some_and(|h| now.saturating_duration_since(h) <= HINT_VALIDITY);
        let grace = if hinted { STUCK_GRACE_AFTER_HINT } else { STUCK_GRACE };
        if now.saturating_duration_since(since) >= grace {
            self.closed = true;
            out.push(Action::Close(CloseReason::Stuck));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    fn cand(s: &str) -> Candidate {
        Candidate { candidate: s.into(), sdp_mid: Some("0".into()), sdp_mline_index: Some(0), username_fragment: None }
    }

    #[test]
    fn polite_side_offers_first_and_completes() {
        let now = t0();
        let mut n = Negotiator::new(Role::Polite);
        assert_eq!(n.handle(Input::NegotiationNeeded, now), vec![Action::MakeOffer { ice_restart: false }]);
        assert_eq!(n.handle(Input::OfferApplied("o1".into()), now), vec![Action::SendOffer("o1".into())]);
        assert_eq!(n.handle(Input::RemoteAnswer("a1".into()), now), vec![Action::AcceptAnswer { sdp: "a1".into() }]);
        assert_eq!(n.handle(Input::RemoteAnswerApplied, now), vec![]);
        assert!(n.is_stable());
    }

    #[test]
    fn impolite_side_waits_for_the_first_offer_then_renegotiates() {
        let now = t0();
        let mut n = Negotiator::new(Role::Impolite);
        // Channels created before anything was received: no offer yet.
        assert_eq!(n.handle(Input::NegotiationNeeded, now), vec![]);
        assert_eq!(
            n.handle(Input::RemoteOffer("o1".into()), now),
            vec![Action::AcceptOffer { sdp: "o1".into(), rollback_first: false }]
        );
        // After answering, the pending request becomes our renegotiation offer.
        assert_eq!(
            n.handle(Input::AnswerApplied("a1".into()), now),
            vec![Action::SendAnswer("a1".into()), Action::MakeOffer { ice_restart: false }]
        );
    }

    #[test]
    fn candidates_wait_for_a_remote_description() {
        let now = t0();
        let mut n = Negotiator::new(Role::Impolite);
        assert_eq!(n.handle(Input::RemoteCandidate(cand("candidate:1 1 udp 1 10.0.0.1 5000 typ host")), now), vec![]);
        n.handle(Input::RemoteOffer("o".into()), now);
        let out = n.handle(Input::AnswerApplied("a".into()), now);
        assert_eq!(
            out,
            vec![
                Action::SendAnswer("a".into()),
                Action::AddCandidate(cand("candidate:1 1 udp 1 10.0.0.1 5000 typ host"))
            ]
        );
        // Afterwards they go straight through.
        let c = cand("candidate:2 1 udp 1 10.0.0.1 5001 typ host");
        assert_eq!(n.handle(Input::RemoteCandidate(c.clone()), now), vec![Action::AddCandidate(c)]);
        // End of candidates is passed on too.
        assert_eq!(n.handle(Input::RemoteCandidate(cand("")), now), vec![Action::AddCandidate(cand(""))]);
    }

    #[test]
    fn mdns_candidates_are_dropped_and_counted() {
        let now = t0();
        let mut n = Negotiator::new(Role::Polite);
        let c =
            cand("candidate:1 1 udp 2122260223 3f1c1e2a-2b8e-4b5e-9d0c-1c2d3e4f5a6b.local 54321 typ host generation 0");
        assert!(c.is_mdns());
        assert_eq!(n.handle(Input::RemoteCandidate(c), now), vec![]);
        assert_eq!(n.counters.mdns_candidates_dropped, 1);
        assert!(!cand("candidate:1 1 udp 1 192.168.1.2 5000 typ host").is_mdns());
    }

    #[test]
    fn glare_impolite_ignores_and_polite_rolls_back() {
        let now = t0();
        let mut polite = Negotiator::new(Role::Polite);
        let mut impolite = Negotiator::new(Role::Impolite);
        // Both already negotiated once.
        for n in [&mut polite, &mut impolite] {
            n.remote_description_set = true;
        }
        // Both want to renegotiate at the same time.
        assert_eq!(polite.handle(Input::NegotiationNeeded, now), vec![Action::MakeOffer { ice_restart: false }]);
        assert_eq!(impolite.handle(Input::NegotiationNeeded, now), vec![Action::MakeOffer { ice_restart: false }]);
        polite.handle(Input::OfferApplied("P".into()), now);
        impolite.handle(Input::OfferApplied("I".into()), now);
        // The offers cross.
        assert_eq!(impolite.handle(Input::RemoteOffer("P".into()), now), vec![]);
        assert_eq!(impolite.counters.ignored_offers, 1);
        assert_eq!(
            polite.handle(Input::RemoteOffer("I".into()), now),
            vec![Action::AcceptOffer { sdp: "I".into(), rollback_first: true }]
        );
        // The polite side answers, then re-offers what it wanted to send.
        assert_eq!(
            polite.handle(Input::AnswerApplied("pa".into()), now),
            vec![Action::SendAnswer("pa".into()), Action::MakeOffer { ice_restart: false }]
        );
        assert_eq!(
            impolite.handle(Input::RemoteAnswer("pa".into()), now),
            vec![Action::AcceptAnswer { sdp: "pa".into() }]
        );
        assert_eq!(impolite.handle(Input::RemoteAnswerApplied, now), vec![]);
        polite.handle(Input::OfferApplied("P2".into()), now);
        assert_eq!(
            impolite.handle(Input::RemoteOffer("P2".into()), now),
            vec![Action::AcceptOffer { sdp: "P2".into(), rollback_first: false }]
        );
        assert_eq!(impolite.handle(Input::AnswerApplied("ia".into()), now), vec![Action::SendAnswer("ia".into())]);
        assert_eq!(
            polite.handle(Input::RemoteAnswer("ia".into()), now),
            vec![Action::AcceptAnswer { sdp: "ia".into() }]
        );
        polite.handle(Input::RemoteAnswerApplied, now);
        assert!(polite.is_stable() && impolite.is_stable());
        assert_eq!(polite.counters.rollbacks, 1);
    }

    #[test]
    fn stale_answers_are_dropped() {
        let now = t0();
        let mut n = Negotiator::new(Role::Polite);
        assert_eq!(n.handle(Input::RemoteAnswer("late".into()), now), vec![]);
        assert_eq!(n.counters.stale_answers, 1);
    }

    #[test]
    fn renegotiation_requests_are_coalesced_into_one_offer_in_flight() {
        let now = t0();
        let mut n = Negotiator::new(Role::Polite);
        assert_eq!(n.handle(Input::NegotiationNeeded, now).len(), 1);
        // Three more requests while the offer is outstanding: nothing now...
        for _ in 0..3 {
            assert_eq!(n.handle(Input::NegotiationNeeded, now), vec![]);
        }
        n.handle(Input::OfferApplied("o1".into()), now);
        assert_eq!(n.handle(Input::NegotiationNeeded, now), vec![]);
        n.handle(Input::RemoteAnswer("a1".into()), now);
        // ...and exactly one follow-up offer once stable.
        assert_eq!(n.handle(Input::RemoteAnswerApplied, now), vec![Action::MakeOffer { ice_restart: false }]);
        n.handle(Input::OfferApplied("o2".into()), now);
        n.handle(Input::RemoteAnswer("a2".into()), now);
        assert_eq!(n.handle(Input::RemoteAnswerApplied, now), vec![]);
    }

    #[test]
    fn failure_restarts_ice_once() {
        let now = t0();
        let mut n = Negotiator::new(Role::Impolite);
        n.handle(Input::RemoteOffer("o".into()), now);
        n.handle(Input::AnswerApplied("a".into()), now);
        n.handle(Input::ConnectionState(ConnState::Connected), now);
        assert_eq!(
            n.handle(Input::ConnectionState(ConnState::Failed), now),
            vec![Action::MakeOffer { ice_restart: true }]
        );
        assert_eq!(n.counters.ice_restarts, 1);
        // Still failed while restarting: no second offer in flight.
        assert_eq!(n.handle(Input::ConnectionState(ConnState::Failed), now), vec![]);
        n.handle(Input::OfferApplied("r".into()), now);
        n.handle(Input::RemoteAnswer("ra".into()), now);
        n.handle(Input::RemoteAnswerApplied, now);
        assert_eq!(n.handle(Input::ConnectionState(ConnState::Connected), now), vec![]);
        assert_eq!(n.handle(Input::Tick, now + Duration::from_secs(60)), vec![]);
    }

    #[test]
    fn stuck_connections_close_after_the_grace_window() {
        let now = t0();
        let mut n = Negotiator::new(Role::Polite);
        n.handle(Input::ConnectionState(ConnState::Connected), now);
        n.handle(Input::ConnectionState(ConnState::Disconnected), now);
        assert_eq!(n.handle(Input::Tick, now + Duration::from_secs(11)), vec![]);
        assert_eq!(n.handle(Input::Tick, now + Duration::from_secs(12)), vec![Action::Close(CloseReason::Stuck)]);
        assert!(n.is_closed());
        assert_eq!(n.handle(Input::Tick, now + Duration::from_secs(13)), vec![]);
    }

    #[test]
    fn a_recent_peer_left_hint_shortens_the_grace() {
        let now = t0();
        let mut n = Negotiator::new(Role::Polite);
        n.handle(Input::ConnectionState(ConnState::Connected), now);
        assert_eq!(n.handle(Input::PeerLeftHint, now), vec![], "a hint alone does not close a healthy connection");
        n.handle(Input::ConnectionState(ConnState::Disconnected), now + Duration::from_secs(1));
        assert_eq!(n.handle(Input::Tick, now + Duration::from_secs(3)), vec![]);
        assert_eq!(n.handle(Input::Tick, now + Duration::from_millis(3600)), vec![Action::Close(CloseReason::Stuck)]);
    }

    #[test]
    fn a_peer_gone_from_the_room_closes_at_once_whatever_the_connection_state() {
        for state in [ConnState::New, ConnState::Connecting, ConnState::Connected, ConnState::Disconnected] {
            let now = t0();
            let mut n = Negotiator::new(Role::Polite);
            n.handle(Input::ConnectionState(state), now);
            assert_eq!(n.handle(Input::PeerGone, now), vec![Action::Close(CloseReason::PeerLeft)], "{state:?}");
            assert!(n.is_closed());
            // Nothing follows a close: no ICE restart, no second close.
            assert_eq!(n.handle(Input::ConnectionState(ConnState::Failed), now), vec![]);
            assert_eq!(n.handle(Input::Tick, now + STUCK_GRACE), vec![]);
        }
    }

    #[test]
    fn a_hint_then_the_peer_gone_closes_without_waiting_for_ice() {
        let now = t0();
        let mut n = Negotiator::new(Role::Impolite);
        n.handle(Input::ConnectionState(ConnState::Connected), now);
        // Servers send `#rtcio:peer-left` and `user-disconnected` together.
        assert_eq!(n.handle(Input::PeerLeftHint, now), vec![]);
        assert_eq!(
            n.handle(Input::PeerGone, now + Duration::from_millis(1)),
            vec![Action::Close(CloseReason::PeerLeft)]
        );
    }

    #[test]
    fn an_old_hint_does_not_shorten_the_grace() {
        let now = t0();
        let mut n = Negotiator::new(Role::Polite);
        n.handle(Input::PeerLeftHint, now);
        n.handle(Input::ConnectionState(ConnState::Disconnected), now + Duration::from_secs(40));
        assert_eq!(n.handle(Input::Tick, now + Duration::from_secs(45)), vec![]);
        assert_eq!(n.handle(Input::Tick, now + Duration::from_secs(52)), vec![Action::Close(CloseReason::Stuck)]);
    }

    #[test]
    fn recovering_clears_the_stuck_timer() {
        let now = t0();
        let mut n = Negotiator::new(Role::Polite);
        n.handle(Input::ConnectionState(ConnState::Disconnected), now);
        n.handle(Input::ConnectionState(ConnState::Connected), now + Duration::from_secs(5));
        assert_eq!(n.handle(Input::Tick, now + Duration::from_secs(20)), vec![]);
    }

    #[test]
    fn a_failed_answer_leads_to_a_fresh_offer() {
        let now = t0();
        let mut n = Negotiator::new(Role::Polite);
        n.handle(Input::NegotiationNeeded, now);
        n.handle(Input::OfferApplied("o".into()), now);
        n.handle(Input::RemoteAnswer("bad".into()), now);
        assert_eq!(
            n.handle(Input::OperationFailed(Operation::AcceptAnswer, "x".into()), now),
            vec![Action::MakeOffer { ice_restart: false }]
        );
    }

    #[test]
    fn candidate_json_matches_the_browser_form() {
        let c: Candidate = serde_json::from_str(
            r#"{"candidate":"candidate:1 1 udp 1 ::1 5 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"u"}"#,
        )
        .unwrap();
        assert_eq!(c.sdp_mline_index, Some(0));
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["sdpMLineIndex"], 0);
        assert_eq!(back["usernameFragment"], "u");
        let minimal: Candidate = serde_json::from_str(r#"{"candidate":""}"#).unwrap();
        assert!(minimal.is_end_of_candidates());
    }
}
