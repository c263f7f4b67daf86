//! The room registry: which socket is in which room under which display name,
//! each room's password, and each socket's last media state.
//!
//! Pure data with no I/O and no locking: the signaling layer owns the one
//! instance behind a lock and does every check-then-act (password check,
//! capacity check, join, member snapshot) in a single call, so two concurrent
//! joins can never both be "the first joiner" of a room, and a room's password
//! is forgotten exactly when its last member leaves.

use std::collections::HashMap;
use std::hash::Hash;

use crate::protocol::JoinErrorReason;

/// Last `media-state` a socket announced (cached only when both are booleans).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaState {
    pub mic: bool,
    pub cam: bool,
}

/// Capacity rules applied at join time; `0` means unlimited.
#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    pub max_members_per_room: usize,
    pub max_rooms_per_socket: usize,
}

/// A member of a room as seen by someone joining it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<Id> {
    pub id: Id,
    pub name: String,
    pub media: Option<MediaState>,
}

/// Result of a successful `join`.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined<Id> {
    /// The socket entered the room; `existing` are the members before it, in join order.
    New { existing: Vec<Member<Id>> },
    /// The socket was already a member: nothing changed (its name is updated).
    Already { existing: Vec<Member<Id>> },
}

#[derive(Debug)]
struct Room<Id> {
    /// Members in join order, with the name each joined under.
    members: Vec<(Id, String)>,
    /// Empty means "open room".
    password: String,
}

#[derive(Debug, Default)]
struct SocketEntry {
    rooms: Vec<String>,
    media: Option<MediaState>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Registry<Id> {
    rooms: HashMap<String, Room<Id>>,
    sockets: HashMap<Id, SocketEntry>,
    memberships: usize,
}

impl<Id> Default for Registry<Id> {
    fn default() -> Self {
        Self { rooms: HashMap::new(), sockets: HashMap::new(), memberships: 0 }
    }
}

impl<Id: Copy + Eq + Hash> Registry<Id> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of non-empty rooms.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Sum of all rooms' member counts.
    pub fn membership_count(&self) -> usize {
        self.memberships
    }

    /// Would `password` get into `room`? `Ok(password_required)` or the join error.
    pub fn check(&self, room: &str, password: &str, limits: RoomLimits) -> Result<bool, JoinErrorReason> {
        match self.rooms.get(room) {
            None => Ok(false),
            Some(r) => {
                check_password(&r.password, password)?;
                if limits.max_members_per_room > 0 && r.members.len() >= limits.max_members_per_room {
                    return Err(JoinErrorReason::RoomFull);
                }
                Ok(!r.password.is_empty())
            }
        }
    }

    /// Check the password and capacity rules, snapshot the members, and join —
    /// all or nothing. The first joiner of an empty room sets its password.
    pub fn join(
        &mut self,
        id: Id,
        room: &str,
        name: &str,
        password: &str,
        limits: RoomLimits,
    ) -> Result<Joined<Id>, JoinErrorReason> {
        if let Some(r) = self.rooms.get_mut(room)
            && let Some(pos) = r.members.iter().position(|(m, _)| *m == id)
        {
            r.members[pos].1 = name.to_owned();
            let existing = snapshot(r, &self.sockets, Some(id));
            return Ok(Joined::Already { existing });
        }
        let entry_rooms = self.sockets.get(&id).map_or(0, |s| s.rooms.len());
        if limits.max_rooms_per_socket > 0 && entry_rooms >= limits.max_rooms_per_socket {
            return Err(JoinErrorReason::TooManyRooms);
        }
        let existing = match self.rooms.get_mut(room) {
            Some(r) => {
                check_password(&r.password, password)?;
                if limits.max_members_per_room > 0 && r.members.len() >= limits.max_members_per_room {
                    return Err(JoinErrorReason::RoomFull);
                }
                let existing = snapshot(r, &self.sockets, None);
                r.members.push((id, name.to_owned()));
                existing
            }
            None => {
                self.rooms.insert(
                    room.to_owned(),
                    Room { members: vec![(id, name.to_owned())], password: password.to_owned() },
                );
                Vec::new()
            }
        };
        self.sockets.entry(id).or_default().rooms.push(room.to_owned());
        self.memberships += 1;
        Ok(Joined::New { existing })
    }

    /// Leave one room. Returns the members that remain (to be told), or `None`
    /// if `id` was not a member.
    pub fn leave(&mut self, id: Id, room: &str) -> Option<Vec<Id>> {
        let entry = self.sockets.get_mut(&id)?;
        let pos = entry.rooms.iter().position(|r| r == room)?;
        entry.rooms.swap_remove(pos);
        Some(self.remove_member(id, room))
    }

    /// Forget a socket entirely. Returns each room it was in with the members
    /// that remain there, in the order the socket joined them.
    pub fn remove_socket(&mut self, id: Id) -> Vec<(String, Vec<Id>)> {
        let Some(entry) = self.sockets.remove(&id) else { return Vec::new() };
        entry
            .rooms
            .into_iter()
            .map(|room| {
                let remaining = self.remove_member(id, &room);
                (room, remaining)
            })
            .collect()
    }

    fn remove_member(&mut self, id: Id, room: &str) -> Vec<Id> {
        let Some(r) = self.rooms.get_mut(room) else { return Vec::new() };
        if let Some(pos) = r.members.iter().position(|(m, _)| *m == id) {
            r.members.remove(pos);
            self.memberships -= 1;
        }
        if r.members.is_empty() {
            // Last one out: the password (and the room) are forgotten.
            self.rooms.remove(room);
            return Vec::new();
        }
        r.members.iter().map(|(m, _)| *m).collect()
    }

    pub fn is_member(&self, id: Id, room: &str) -> bool {
        self.sockets.get(&id).is_some_and(|s| s.rooms.iter().any(|r| r == room))
    }

    /// Do `a` and `b` (distinct sockets) have at least one room in common?
    pub fn shares_room(&self, a: Id, b: Id) -> bool {
        if a == b {
            return false;
        }
        let (Some(ea), Some(eb)) = (self.sockets.get(&a), self.sockets.get(&b)) else { return false };
        ea.rooms.iter().any(|r| eb.rooms.contains(r))
    }

    /// Members of `room` other than `except`.
    pub fn members_except(&self, room: &str, except: Id) -> Vec<Id> {
        self.rooms
            .get(room)
            .map(|r| r.members.iter().map(|(m, _)| *m).filter(|m| *m != except).collect())
            .unwrap_or_default()
    }

    /// Cache a socket's media state (kept while it is connected).
    pub fn set_media_state(&mut self, id: Id, state: MediaState) {
        if let Some(entry) = self.sockets.get_mut(&id) {
            entry.media = Some(state);
        }
    }

    /// Rooms and their members, for status displays. Sorted by room id.
    /// The room's password ("" for an open room), if the room exists.
    pub fn password(&self, room: &str) -> Option<&str> {
        self.rooms.get(room).map(|r| r.password.as_str())
    }

    pub fn rooms_overview(&self) -> Vec<(String, Vec<(Id, String)>)> {
        let mut v: Vec<_> = self.rooms.iter().map(|(k, r)| (k.clone(), r.members.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

fn check_password(stored: &str, supplied: &str) -> Result<(), JoinErrorReason> {
    if stored.is_empty() || stored == supplied {
        Ok(())
    } else if supplied.is_empty() {
        Err(JoinErrorReason::PasswordRequired)
    } else {
        Err(JoinErrorReason::WrongPassword)
    }
}

fn snapshot<Id: Copy + Eq + Hash>(
    room: &Room<Id>,
    sockets: &HashMap<Id, SocketEntry>,
    except: Option<Id>,
) -> Vec<Member<Id>> {
    room.members
        .iter()
        .filter(|(m, _)| Some(*m) != except)
        .map(|(m, name)| Member { id: *m, name: name.clone(), media: sockets.get(m).and_then(|s| s.media) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: RoomLimits = RoomLimits { max_members_per_room: 0, max_rooms_per_socket: 0 };

    fn existing(j: Joined<u32>) -> Vec<u32> {
        match j {
            Joined::New { existing } | Joined::Already { existing } => existing.into_iter().map(|m| m.id).collect(),
        }
    }

    #[test]
    fn snapshot_is_taken_before_joining_in_join_order() {
        let mut r = Registry::new();
        assert_eq!(existing(r.join(1, "a", "one", "", OPEN).unwrap()), Vec::<u32>::new());
        assert_eq!(existing(r.join(2, "a", "two", "", OPEN).unwrap()), vec![1]);
        assert_eq!(existing(r.join(3, "a", "three", "", OPEN).unwrap()), vec![1, 2]);
        assert_eq!(r.room_count(), 1);
        assert_eq!(r.membership_count(), 3);
    }

    #[test]
    fn first_joiner_sets_the_password_until_the_room_empties() {
        let mut r = Registry::new();
        r.join(1, "a", "", "pw", OPEN).unwrap();
        assert_eq!(r.join(2, "a", "", "", OPEN), Err(JoinErrorReason::PasswordRequired));
        assert_eq!(r.join(2, "a", "", "nope", OPEN), Err(JoinErrorReason::WrongPassword));
        assert_eq!(r.check("a", "", OPEN), Err(JoinErrorReason::PasswordRequired));
        assert_eq!(r.check("a", "pw", OPEN), Ok(true));
        r.join(2, "a", "", "pw", OPEN).unwrap();
        r.leave(1, "a").unwrap();
        // Still occupied by 2: password holds.
        assert_eq!(r.join(3, "a", "", "", OPEN), Err(JoinErrorReason::PasswordRequired));
        assert_eq!(r.remove_socket(2), vec![("a".to_string(), vec![])]);
        // Empty now: forgotten, and the next first joiner may open it.
        assert_eq!(r.check("a", "", OPEN), Ok(false));
        r.join(3, "a", "", "", OPEN).unwrap();
        r.join(4, "a", "", "", OPEN).unwrap();
    }

    #[test]
    fn an_empty_first_password_means_open() {
        let mut r = Registry::new();
        r.join(1, "a", "", "", OPEN).unwrap();
        assert_eq!(r.check("a", "whatever", OPEN), Ok(false));
        r.join(2, "a", "", "whatever", OPEN).unwrap();
    }

    #[test]
    fn capacity_limits() {
        let limits = RoomLimits { max_members_per_room: 2, max_rooms_per_socket: 2 };
        let mut r = Registry::new();
        r.join(1, "a", "", "", limits).unwrap();
        r.join(2, "a", "", "", limits).unwrap();
        assert_eq!(r.join(3, "a", "", "", limits), Err(JoinErrorReason::RoomFull));
        assert_eq!(r.check("a", "", limits), Err(JoinErrorReason::RoomFull));
        r.join(1, "b", "", "", limits).unwrap();
        assert_eq!(r.join(1, "c", "", "", limits), Err(JoinErrorReason::TooManyRooms));
        // Re-joining a room one is in is not a new membership.
        assert!(matches!(r.join(1, "a", "", "", limits), Ok(Joined::Already { .. })));
    }

    #[test]
    fn rejoin_is_idempotent_and_renames() {
        let mut r = Registry::new();
        r.join(1, "a", "x", "", OPEN).unwrap();
        r.join(2, "a", "y", "", OPEN).unwrap();
        let j = r.join(2, "a", "z", "", OPEN).unwrap();
        assert_eq!(j, Joined::Already { existing: vec![Member { id: 1, name: "x".into(), media: None }] });
        assert_eq!(r.membership_count(), 2);
        assert_eq!(r.rooms_overview(), vec![("a".to_string(), vec![(1, "x".to_string()), (2, "z".to_string())])]);
    }

    #[test]
    fn media_state_is_part_of_the_snapshot() {
        let mut r = Registry::new();
        r.join(1, "a", "x", "", OPEN).unwrap();
        r.set_media_state(1, MediaState { mic: true, cam: false });
        let Joined::New { existing } = r.join(2, "a", "y", "", OPEN).unwrap() else { panic!() };
        assert_eq!(existing[0].media, Some(MediaState { mic: true, cam: false }));
        // Unknown sockets are not cached.
        r.set_media_state(9, MediaState { mic: true, cam: true });
        assert!(!r.is_member(9, "a"));
    }

    #[test]
    fn shares_room_and_members() {
        let mut r = Registry::new();
        r.join(1, "a", "", "", OPEN).unwrap();
        r.join(2, "a", "", "", OPEN).unwrap();
        r.join(3, "b", "", "", OPEN).unwrap();
        assert!(r.shares_room(1, 2));
        assert!(!r.shares_room(1, 3));
        assert!(!r.shares_room(1, 1));
        assert!(!r.shares_room(1, 99));
        assert_eq!(r.members_except("a", 1), vec![2]);
        assert_eq!(r.leave(2, "a"), Some(vec![1]));
        assert_eq!(r.leave(2, "a"), None);
        assert!(!r.shares_room(1, 2));
    }

    #[test]
    fn remove_socket_reports_every_room() {
        let mut r = Registry::new();
        r.join(1, "a", "", "", OPEN).unwrap();
        r.join(1, "b", "", "", OPEN).unwrap();
        r.join(2, "b", "", "", OPEN).unwrap();
        assert_eq!(r.remove_socket(1), vec![("a".to_string(), vec![]), ("b".to_string(), vec![2])]);
        assert_eq!(r.room_count(), 1);
        assert_eq!(r.membership_count(), 1);
        assert_eq!(r.remove_socket(1), vec![]);
    }
}
