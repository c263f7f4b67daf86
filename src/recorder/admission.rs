//! Admission: which rooms of our own server the recorder's participant joins,
//! and when it gives one up, so that a flood of rooms nobody publishes in
//! costs next to nothing. A sans-IO state machine (`handle(input, now) ->
//! Vec<Action>`, time passed in) that the controller drives; it never joins
//! or leaves anything itself.
//!
//! The policy:
//! - **dwell**: a room is joined once it has had members for `join_after`
//!   without a break; a room that empties sooner is never joined (`too_brief`).
//! - **caps**: at most `max_rooms` rooms have a participant at once, and of
//!   those at most `max_unanswered_rooms` where no peer has ever connected to
//!   it. Rooms over a cap wait (`rooms_cap`, `unanswered_cap`, counted once
//!   per wait) and are admitted oldest first as slots free up.
//! - **unanswered**: a room whose members leave our participant without a
//!   connected peer for `unanswered_leave` is left (`unanswered`) and not
//!   joined again until a member we did not see there arrives. A room where
//!   no peer ever connected is left as soon as it empties (nothing was
//!   recorded, so no grace period is needed).
//! - Rooms the control API asked for (`forced`) are joined at once and never
//!   left by this policy, though they count towards the caps.
//!
//! Rooms without members are not tracked at all, so the state is bounded by
//! the rooms that exist. A leaf module: it depends on nothing in the crate.

use super::end_reason::EndReason;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The policy's settings; zero means "off" for each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// How long a room must have members before it is joined.
    pub join_after: Duration,
    /// Rooms with a participant at once; 0 = unlimited.
    pub max_rooms: usize,
    /// Of those, rooms where no peer has ever connected; 0 = unlimited.
    pub max_unanswered_rooms: usize,
    /// Leave a room with members but no connected peer after this long; `None` = never.
    pub unanswered_leave: Option<Duration>,
}

impl AdmissionConfig {
    /// Every room joined at once, no caps, nothing left early.
    pub fn off() -> Self {
        Self { join_after: Duration::ZERO, max_rooms: 0, max_unanswered_rooms: 0, unanswered_leave: None }
    }
}

/// A room of our server that has members besides our own participants and
/// that the rules (or the API) want a participant in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub room: String,
    /// Socket ids of its members (ours excluded).
    pub members: Vec<String>,
    /// The control API asked for it: join at once, never leave early.
    pub forced: bool,
}

#[derive(Debug)]
pub enum Input<'a> {
    /// Every candidate room, now. A room missing from it is empty or no longer wanted.
    Rooms(&'a [Candidate]),
    /// Our participant in `room` has `connected` peers now.
    Peers { room: &'a str, connected: usize },
    /// The room's participant is gone (left, stopped, refused, failed to start).
    Ended { room: &'a str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Put a participant in this room.
    Join(String),
    /// Take the participant out of this room.
    Leave { room: String, reason: LeaveReason },
    /// Count a refusal (once per room and occasion).
    Refused(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// Members but no connected peer for `unanswered_leave`.
    Unanswered,
    /// The room emptied and no peer ever connected: nothing to finish.
    EmptyNeverAnswered,
}

impl LeaveReason {
    /// The stop reason given to the room (and to any manifest).
    pub fn end_reason(self) -> EndReason {
        match self {
            LeaveReason::Unanswered => EndReason::Unanswered,
            LeaveReason::EmptyNeverAnswered => EndReason::RoomEmpty,
        }
    }
}

/// Why a room did not get (or lost) a participant; the `reason` label of
/// `recorder_admission_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The room emptied before `join_after`.
    TooBrief,
    /// It waited: `max_rooms` rooms had a participant.
    RoomsCap,
    /// It waited: `max_unanswered_rooms` rooms had no peer connected yet.
    UnansweredCap,
    /// Left: nobody connected to our participant there.
    Unanswered,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [Refusal::TooBrief, Refusal::RoomsCap, Refusal::UnansweredCap, Refusal::Unanswered];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooBrief => "too_brief",
            Refusal::RoomsCap => "rooms_cap",
            Refusal::UnansweredCap => "unanswered_cap",
            Refusal::Unanswered => "unanswered",
        }
    }
}

/// An occupied room without a participant.
#[derive(Debug)]
struct Waiting {
    since: Instant,
    /// The cap it was counted as waiting for, if any.
    counted: bool,
}

/// A room with a participant.
#[derive(Debug)]
struct Admitted {
    forced: bool,
    occupied: bool,
    members: HashSet<String>,
    connected: usize,
    ever_answered: bool,
    /// Since when it has members but no connected peer.
    quiet_since: Option<Instant>,
    /// Told to leave; still counted until it has ended.
    leaving: bool,
}

#[derive(Debug)]
pub struct Admission {
    config: AdmissionConfig,
    waiting: HashMap<String, Waiting>,
    admitted: HashMap<String, Admitted>,
    /// Rooms left unanswered, with the members they had then.
    benched: HashMap<String, HashSet<String>>,
    /// Eligible rooms that wait for a slot (after the last `Rooms` input).
    blocked: usize,
    /// The time of the last `Rooms` input.
    last_rooms: Option<Instant>,
}

impl Admission {
    pub fn new(config: AdmissionConfig) -> Self {
        Self {
            config,
            waiting: HashMap::new(),
            admitted: HashMap::new(),
            benched: HashMap::new(),
            blocked: 0,
            last_rooms: None,
        }
    }

    pub fn handle(&mut self, input: Input<'_>, now: Instant) -> Vec<Action> {
        match input {
            Input::Rooms(candidates) => self.on_rooms(candidates, now),
            Input::Peers { room, connected } => {
                if let Some(a) = self.admitted.get_mut(room) {
                    a.connected = connected;
                    if connected > 0 {
                        a.ever_answered = true;
                        a.quiet_since = None;
                    } else if a.occupied {
                        a.quiet_since.get_or_insert(now);
                    }
                }
                Vec::new()
            }
            Input::Ended { room } => {
                self.admitted.remove(room);
                Vec::new()
            }
        }
    }

    /// When the policy has something to decide without new input (a dwell
    /// or an unanswered timeout running out): feed it `Rooms` then.
    pub fn next_deadline(&self) -> Option<Instant> {
        // Rooms whose dwell already passed wait for a slot, which only an
        // input frees: no deadline for them.
        let dwell = self
            .waiting
            .values()
            .map(|w| w.since + self.config.join_after)
            .filter(|due| self.last_rooms.is_none_or(|last| *due > last));
        let quiet = self.config.unanswered_leave.into_iter().flat_map(|after| {
            self.admitted
                .values()
                .filter(|a| !a.forced && !a.leaving)
                .filter_map(move |a| a.quiet_since.map(|q| q + after))
        });
        dwell.chain(quiet).min()
    }

    /// Rooms that could be joined but wait for a slot.
    pub fn blocked(&self) -> usize {
        self.blocked
    }

    /// Rooms with a participant (or one leaving).
    pub fn admitted(&self) -> usize {
        self.admitted.len()
    }

    fn never_answered(&self) -> usize {
        self.admitted.values().filter(|a| !a.ever_answered).count()
    }

    fn on_rooms(&mut self, candidates: &[Candidate], now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.last_rooms = Some(now);
        let leave_unanswered = self.config.unanswered_leave.is_some();
        let present: HashMap<&str, &Candidate> = candidates.iter().map(|c| (c.room.as_str(), c)).collect();

        // Rooms with a participant: occupancy, members, the quiet clock, early leaves.
        for (room, a) in self.admitted.iter_mut() {
            match present.get(room.as_str()) {
                Some(c) => {
                    a.occupied = true;
                    a.forced = c.forced;
                    a.members = c.members.iter().cloned().collect();
                    if a.connected == 0 {
                        a.quiet_since.get_or_insert(now);
                    }
                }
                None => {
                    a.occupied = false;
                    a.quiet_since = None;
                    if leave_unanswered && !a.ever_answered && !a.forced && !a.leaving {
                        a.leaving = true;
                        out.push(Action::Leave { room: room.clone(), reason: LeaveReason::EmptyNeverAnswered });
                    }
                }
            }
            if let (Some(after), Some(quiet)) = (self.config.unanswered_leave, a.quiet_since)
                && !a.forced
                && !a.leaving
                && now.duration_since(quiet) >= after
            {
                a.leaving = true;
                self.benched.insert(room.clone(), a.members.clone());
                out.push(Action::Refused(Refusal::Unanswered));
                out.push(Action::Leave { room: room.clone(), reason: LeaveReason::Unanswered });
            }
        }

        // Benched rooms: forgotten once empty, back once someone new is there.
        self.benched.retain(|room, seen| match present.get(room.as_str()) {
            None => false,
            Some(c) => !c.forced && c.members.iter().all(|m| seen.contains(m)),
        });

        // Waiting rooms: gone before the dwell passed, or still there.
        let join_after = self.config.join_after;
        self.waiting.retain(|room, w| {
            if present.contains_key(room.as_str()) {
                return true;
            }
            if !w.counted && now.duration_since(w.since) < join_after {
                out.push(Action::Refused(Refusal::TooBrief));
            }
            false
        });
        for c in candidates {
            let known = self.admitted.contains_key(&c.room) || self.benched.contains_key(&c.room);
            if !known {
                self.waiting.entry(c.room.clone()).or_insert(Waiting { since: now, counted: false });
            }
        }

        // Admit: forced rooms at once, the rest oldest first while the caps allow.
        let mut eligible: Vec<(Instant, bool, String)> = self
            .waiting
            .iter()
            .filter_map(|(room, w)| {
                let forced = present.get(room.as_str()).is_some_and(|c| c.forced);
                (forced || now.duration_since(w.since) >= join_after).then(|| (w.since, forced, room.clone()))
            })
            .collect();
        eligible.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)).then(a.2.cmp(&b.2)));
        self.blocked = 0;
        for (_, forced, room) in eligible {
            let cap = if forced {
                None
            } else if self.config.max_rooms > 0 && self.admitted.len() >= self.config.max_rooms {
                Some(Refusal::RoomsCap)
            } else if self.config.max_unanswered_rooms > 0 && self.never_answered() >= self.config.max_unanswered_rooms
            {
                Some(Refusal::UnansweredCap)
            } else {
                None
            };
            if let Some(reason) = cap {
                self.blocked += 1;
                let w = self.waiting.get_mut(&room).expect("eligible rooms are waiting");
                if !w.counted {
                    w.counted = true;
                    out.push(Action::Refused(reason));
                }
                continue;
            }
            self.waiting.remove(&room);
            let members = present.get(room.as_str()).map(|c| c.members.iter().cloned().collect()).unwrap_or_default();
            self.admitted.insert(
                room.clone(),
                Admitted {
                    forced,
                    occupied: true,
                    members,
                    connected: 0,
                    ever_answered: false,
                    quiet_since: Some(now),
                    leaving: false,
                },
            );
            out.push(Action::Join(room));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn config() -> AdmissionConfig {
        AdmissionConfig { join_after: 2 * S, max_rooms: 3, max_unanswered_rooms: 2, unanswered_leave: Some(10 * S) }
    }

    fn room(name: &str, members: &[&str]) -> Candidate {
        Candidate { room: name.into(), members: members.iter().map(|m| m.to_string()).collect(), forced: false }
    }

    fn join(r: &str) -> Action {
        Action::Join(r.into())
    }

    fn leave(r: &str, reason: LeaveReason) -> Action {
        Action::Leave { room: r.into(), reason }
    }

    #[test]
    fn a_room_is_joined_once_it_had_members_for_the_dwell_time() {
        let t0 = Instant::now();
        let mut a = Admission::new(config());
        let rooms = [room("r", &["alice"])];
        assert_eq!(a.handle(Input::Rooms(&rooms), t0), vec![]);
        assert_eq!(a.next_deadline(), Some(t0 + 2 * S));
        assert_eq!(a.handle(Input::Rooms(&rooms), t0 + S), vec![]);
        assert_eq!(a.handle(Input::Rooms(&rooms), t0 + 2 * S), vec![join("r")]);
        // Joined once only.
        assert_eq!(a.handle(Input::Rooms(&rooms), t0 + 3 * S), vec![]);
        assert_eq!(a.admitted(), 1);
    }

    #[test]
    fn a_room_that_empties_before_the_dwell_time_is_never_joined_and_counted() {
        let t0 = Instant::now();
        let mut a = Admission::new(config());
        a.handle(Input::Rooms(&[room("brief", &["x"])]), t0);
        assert_eq!(a.handle(Input::Rooms(&[]), t0 + S), vec![Action::Refused(Refusal::TooBrief)]);
        // Back later: the dwell starts again.
        assert_eq!(a.handle(Input::Rooms(&[room("brief", &["x"])]), t0 + 5 * S), vec![]);
        assert_eq!(a.handle(Input::Rooms(&[room("brief", &["x"])]), t0 + 6 * S), vec![]);
        assert_eq!(a.handle(Input::Rooms(&[room("brief", &["x"])]), t0 + 7 * S), vec![join("brief")]);
        assert_eq!(a.next_deadline(), Some(t0 + 17 * S), "the unanswered timeout is next");
    }

    #[test]
    fn with_admission_off_every_room_is_joined_at_once_and_kept() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig::off());
        let rooms: Vec<Candidate> = (0..500).map(|i| room(&format!("r{i}"), &["x"])).collect();
        let joins = a.handle(Input::Rooms(&rooms), t0);
        assert_eq!(joins.len(), 500);
        assert!(joins.iter().all(|j| matches!(j, Action::Join(_))));
        assert_eq!(a.handle(Input::Rooms(&rooms), t0 + 3600 * S), vec![]);
        assert_eq!(a.next_deadline(), None);
        // Emptied rooms are left by the grace rule, not by this policy.
        assert_eq!(a.handle(Input::Rooms(&[]), t0 + 3601 * S), vec![]);
    }

    #[test]
    fn rooms_over_the_unanswered_cap_wait_and_are_admitted_oldest_first() {
        let t0 = Instant::now();
        let mut a = Admission::new(config());
        let rooms = [room("a", &["1"]), room("b", &["2"])];
        a.handle(Input::Rooms(&rooms), t0);
        let later = [room("a", &["1"]), room("b", &["2"]), room("c", &["3"]), room("d", &["4"])];
        a.handle(Input::Rooms(&later), t0 + S);
        let out = a.handle(Input::Rooms(&later), t0 + 3 * S);
        assert_eq!(
            out,
            vec![
                join("a"),
                join("b"),
                Action::Refused(Refusal::UnansweredCap),
                Action::Refused(Refusal::UnansweredCap)
            ]
        );
        assert_eq!(a.blocked(), 2);
        // Counted once per wait.
        assert_eq!(a.handle(Input::Rooms(&later), t0 + 4 * S), vec![]);
        // A peer connects in "a": one unanswered slot frees; "c" and "d" waited as long, "c" comes first by name.
        a.handle(Input::Peers { room: "a", connected: 1 }, t0 + 4 * S);
        assert_eq!(a.handle(Input::Rooms(&later), t0 + 4 * S), vec![join("c")]);
        assert_eq!(a.blocked(), 1);
        // "b" answers too: "d" would fit the unanswered cap, but the rooms cap (3) is full
        // ("d" was counted when it started waiting).
        a.handle(Input::Peers { room: "b", connected: 2 }, t0 + 5 * S);
        assert_eq!(a.handle(Input::Rooms(&later), t0 + 5 * S), vec![]);
        assert_eq!(a.blocked(), 1);
        // The next deadline is c's unanswered timeout: "d" has none of its own (only an input frees a slot).
        assert_eq!(a.next_deadline(), Some(t0 + 14 * S));
        // "a" ends: "d" is admitted.
        a.handle(Input::Ended { room: "a" }, t0 + 6 * S);
        let without_a = [room("b", &["2"]), room("c", &["3"]), room("d", &["4"])];
        assert_eq!(a.handle(Input::Rooms(&without_a), t0 + 6 * S), vec![join("d")]);
        assert_eq!(a.blocked(), 0);
    }

    #[test]
    fn the_oldest_waiting_room_is_admitted_first() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig { max_unanswered_rooms: 1, ..config() });
        a.handle(Input::Rooms(&[room("z-old", &["1"])]), t0);
        a.handle(Input::Rooms(&[room("z-old", &["1"]), room("a-new", &["2"])]), t0 + S);
        let both = [room("z-old", &["1"]), room("a-new", &["2"])];
        assert_eq!(
            a.handle(Input::Rooms(&both), t0 + 4 * S),
            vec![join("z-old"), Action::Refused(Refusal::UnansweredCap)]
        );
    }

    #[test]
    fn a_room_nobody_answers_in_is_left_and_not_rejoined_until_someone_new_arrives() {
        let t0 = Instant::now();
        let mut a = Admission::new(config());
        let hostile = [room("h", &["bot"])];
        a.handle(Input::Rooms(&hostile), t0);
        assert_eq!(a.handle(Input::Rooms(&hostile), t0 + 2 * S), vec![join("h")]);
        assert_eq!(a.next_deadline(), Some(t0 + 12 * S));
        assert_eq!(a.handle(Input::Rooms(&hostile), t0 + 11 * S), vec![]);
        assert_eq!(
            a.handle(Input::Rooms(&hostile), t0 + 12 * S),
            vec![Action::Refused(Refusal::Unanswered), leave("h", LeaveReason::Unanswered)]
        );
        // Leaving takes a moment: no second leave.
        assert_eq!(a.handle(Input::Rooms(&hostile), t0 + 13 * S), vec![]);
        a.handle(Input::Ended { room: "h" }, t0 + 13 * S);
        // The same members: never again.
        assert_eq!(a.handle(Input::Rooms(&hostile), t0 + 100 * S), vec![]);
        assert_eq!(a.next_deadline(), None);
        // Someone new: the dwell starts over.
        let joined = [room("h", &["bot", "alice"])];
        assert_eq!(a.handle(Input::Rooms(&joined), t0 + 101 * S), vec![]);
        assert_eq!(a.handle(Input::Rooms(&joined), t0 + 103 * S), vec![join("h")]);
    }

    #[test]
    fn a_benched_room_that_empties_is_forgotten() {
        let t0 = Instant::now();
        let mut a = Admission::new(config());
        let hostile = [room("h", &["bot"])];
        a.handle(Input::Rooms(&hostile), t0);
        a.handle(Input::Rooms(&hostile), t0 + 2 * S);
        a.handle(Input::Rooms(&hostile), t0 + 12 * S);
        a.handle(Input::Ended { room: "h" }, t0 + 12 * S);
        a.handle(Input::Rooms(&[]), t0 + 13 * S);
        // The same socket id later in a new room of that name is a new room.
        a.handle(Input::Rooms(&hostile), t0 + 20 * S);
        assert_eq!(a.handle(Input::Rooms(&hostile), t0 + 22 * S), vec![join("h")]);
    }

    #[test]
    fn an_answered_room_stays_and_is_left_if_its_peers_stay_gone_while_members_remain() {
        let t0 = Instant::now();
        let mut a = Admission::new(config());
        let r = [room("r", &["alice", "bot"])];
        a.handle(Input::Rooms(&r), t0);
        a.handle(Input::Rooms(&r), t0 + 2 * S);
        a.handle(Input::Peers { room: "r", connected: 1 }, t0 + 3 * S);
        assert_eq!(a.handle(Input::Rooms(&r), t0 + 60 * S), vec![]);
        assert_eq!(a.next_deadline(), None);
        // Alice's connection is gone, the bot stays.
        a.handle(Input::Peers { room: "r", connected: 0 }, t0 + 61 * S);
        assert_eq!(a.next_deadline(), Some(t0 + 71 * S));
        // Back within the timeout: nothing happens.
        a.handle(Input::Peers { room: "r", connected: 1 }, t0 + 65 * S);
        assert_eq!(a.handle(Input::Rooms(&r), t0 + 72 * S), vec![]);
        a.handle(Input::Peers { room: "r", connected: 0 }, t0 + 80 * S);
        assert_eq!(
            a.handle(Input::Rooms(&r), t0 + 90 * S),
            vec![Action::Refused(Refusal::Unanswered), leave("r", LeaveReason::Unanswered)]
        );
    }

    #[test]
    fn an_emptied_room_is_left_at_once_only_if_nobody_ever_answered() {
        let t0 = Instant::now();
        let mut a = Admission::new(config());
        let two = [room("quiet", &["1"]), room("talked", &["2"])];
        a.handle(Input::Rooms(&two), t0);
        a.handle(Input::Rooms(&two), t0 + 2 * S);
        a.handle(Input::Peers { room: "talked", connected: 1 }, t0 + 3 * S);
        a.handle(Input::Peers { room: "talked", connected: 0 }, t0 + 4 * S);
        assert_eq!(a.handle(Input::Rooms(&[]), t0 + 4 * S), vec![leave("quiet", LeaveReason::EmptyNeverAnswered)]);
        // "talked" keeps its participant for the grace period (the controller's rule);
        // empty, it is not "unanswered".
        assert_eq!(a.handle(Input::Rooms(&[]), t0 + 30 * S), vec![]);
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn forced_rooms_skip_the_dwell_and_the_caps_and_are_never_left_early() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig { max_rooms: 1, ..config() });
        let mut r = [room("auto", &["1"]), room("api", &["2"])];
        r[1].forced = true;
        assert_eq!(a.handle(Input::Rooms(&r), t0), vec![join("api")]);
        // The forced room fills the rooms cap.
        assert_eq!(a.handle(Input::Rooms(&r), t0 + 2 * S), vec![Action::Refused(Refusal::RoomsCap)]);
        assert_eq!(a.handle(Input::Rooms(&r), t0 + 100 * S), vec![]);
        assert_eq!(a.handle(Input::Rooms(&[]), t0 + 101 * S), vec![], "forced: the grace rule applies");
    }

    #[test]
    fn a_flood_of_brief_rooms_joins_nothing() {
        let t0 = Instant::now();
        let mut a = Admission::new(config());
        let mut joins = 0;
        let mut too_brief = 0;
        // 30 clients, each in a new room every 250 ms, for 20 s; the policy sees the registry every 100 ms.
        for tick in 0..200u32 {
            let now = t0 + Duration::from_millis(100) * tick;
            let generation = tick / 3;
            let rooms: Vec<Candidate> =
                (0..30).map(|c| room(&format!("flood-{c}-{generation}"), &[&format!("c{c}")])).collect();
            for action in a.handle(Input::Rooms(&rooms), now) {
                match action {
                    Action::Join(_) => joins += 1,
                    Action::Refused(Refusal::TooBrief) => too_brief += 1,
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(joins, 0);
        assert_eq!(too_brief, 30 * 66);
        a.handle(Input::Rooms(&[]), t0 + 30 * S);
        assert_eq!((a.waiting.len(), a.admitted.len(), a.benched.len()), (0, 0, 0), "nothing kept");
    }
}
