//! What a room composite shows, and when: its streams, their inputs, its
//! tiles and where they go. Sans-IO, in the house shape
//! (`participant/negotiation.rs`): [`Scene::handle`] takes an input and the
//! running time, and says what the driver must do.
//!
//! Decisions:
//! - A stream with video is one tile (its camera or screen); a member none
//!   of whose streams has video gets one name-card tile while it has audio.
//!   Members who publish nothing (viewers, the gateway itself) get no tile.
//!   Tiles keep the order their streams started in.
//! - Every audio track is an input of the mix, whatever the tiles.
//! - **A change shows at the moment it happened on the room clock.** The
//!   output shows what was captured `delay` ago ([`super::placement`]), so
//!   a layout change decided now is applied at running time `now + delay`:
//!   a joiner's tile appears with their first frames, a leaver's goes after
//!   their last, and the others re-arrange at that instant, not `delay`
//!   before. Inputs are added at once (their packets are early by `delay`)
//!   and removed after their tile went.
//! - The speaker layout's focus is the active speaker
//!   ([`super::speaker::ActiveSpeaker`], from the mix inputs' levels),
//!   mapped to their stream's tile or their name card.

use std::collections::BTreeMap;
use std::time::Duration;

use super::layout::{self, LayoutKind, Placement, Tile};
use super::speaker::{ActiveSpeaker, SpeakerConfig};
use crate::media::kind::MediaKind;

/// An input of the pipeline (a video branch, an audio branch or a name card).
pub type InputId = u64;

/// A stream of the room: `(peer id, stream id)`.
pub type StreamKey = (String, String);

#[derive(Debug, Clone)]
pub struct SceneConfig {
    pub layout: LayoutKind,
    pub canvas: (u32, u32),
    /// How long after capture the output shows a frame (the room clock's delay).
    pub delay: Duration,
    pub speaker: SpeakerConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SceneInput {
    /// A stream started; `screen`: emitted under the configured screen-share event.
    StreamStarted { key: StreamKey, peer_name: String, screen: bool, kinds: Vec<MediaKind> },
    /// A track of a started stream arrived.
    Track { key: StreamKey, kind: MediaKind },
    /// The stream's events changed (a screen share can be announced late).
    Screen { key: StreamKey, screen: bool },
    /// A video input's decoded picture size.
    PictureSize { input: InputId, width: u32, height: u32 },
    /// The level (RMS dBFS) of an audio input.
    Level { input: InputId, rms_db: f64 },
    StreamEnded { key: StreamKey },
    /// Time passes (the driver calls it every few tens of ms).
    Tick,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SceneAction {
    /// Add a branch decoding this stream's track (its packets follow).
    AddTrackInput { input: InputId, key: StreamKey, kind: MediaKind, label: String },
    /// Add a name card (a still tile with the name).
    AddNameCard { input: InputId, label: String },
    /// The stream's media ends: let its buffered packets play out.
    EndInput { input: InputId },
    /// Remove the input's branch (its tile is gone; it may be mid-EOS).
    RemoveInput { input: InputId },
    /// Place the tiles: every visible input's rectangle; inputs absent are hidden.
    Layout { placements: Vec<Placement> },
}

#[derive(Debug)]
struct StreamState {
    peer_id: String,
    peer_name: String,
    screen: bool,
    started: u64,
    video: Option<InputId>,
    audio: Option<InputId>,
    expects_video: bool,
}

#[derive(Debug)]
struct Pending {
    at: Duration,
    actions: Vec<SceneAction>,
}

pub struct Scene {
    config: SceneConfig,
    streams: BTreeMap<StreamKey, StreamState>,
    /// Name cards by peer id.
    cards: BTreeMap<String, InputId>,
    sizes: BTreeMap<InputId, (u32, u32)>,
    speaker: ActiveSpeaker,
    next_input: InputId,
    started: u64,
    /// Changes due later on the running time, in order.
    pending: Vec<Pending>,
    /// The last layout asked for (to say nothing when it did not change).
    last_layout: Option<Vec<Placement>>,
}

impl Scene {
    pub fn new(config: SceneConfig) -> Scene {
        Scene {
            speaker: ActiveSpeaker::new(config.speaker.clone()),
            config,
            streams: BTreeMap::new(),
            cards: BTreeMap::new(),
            sizes: BTreeMap::new(),
            next_input: 1,
            started: 0,
            pending: Vec::new(),
            last_layout: None,
        }
    }

    pub fn layout_kind(&self) -> LayoutKind {
        self.config.layout
    }

    /// The peers shown or heard, by name (for the manifest).
    pub fn members(&self) -> Vec<String> {
        let mut names: Vec<String> = self.streams.values().map(|s| s.peer_name.clone()).collect();
        names.dedup();
        names
    }

    pub fn handle(&mut self, input: SceneInput, now: Duration) -> Vec<SceneAction> {
        let mut out = Vec::new();
        let mut removals = Vec::new();
        let mut relayout = false;
        match input {
            SceneInput::StreamStarted { key, peer_name, screen, kinds } => {
                if !self.streams.contains_key(&key) {
                    self.started += 1;
                    let expects_video = kinds.contains(&MediaKind::Video);
                    let state = StreamState {
                        peer_id: key.0.clone(),
                        peer_name,
                        screen,
                        started: self.started,
                        video: None,
                        audio: None,
                        expects_video,
                    };
                    // Its tile comes with its first track.
                    self.streams.insert(key, state);
                }
            }
            SceneInput::Track { key, kind } => {
                let id = self.next_input;
                let Some(stream) = self.streams.get_mut(&key) else { return out };
                let slot = match kind {
                    MediaKind::Video => &mut stream.video,
                    MediaKind::Audio => &mut stream.audio,
                };
                if slot.is_some() {
                    return out;
                }
                *slot = Some(id);
                self.next_input += 1;
                if kind == MediaKind::Video {
                    stream.expects_video = true;
                }
                let label = stream.peer_name.clone();
                out.push(SceneAction::AddTrackInput { input: id, key, kind, label });
                relayout = true;
            }
            SceneInput::Screen { key, screen } => {
                if let Some(stream) = self.streams.get_mut(&key)
                    && stream.screen != screen
                {
                    stream.screen = screen;
                    relayout = true;
                }
            }
            SceneInput::PictureSize { input, width, height } => {
                if self.sizes.insert(input, (width, height)) != Some((width, height)) {
                    relayout = true;
                }
            }
            SceneInput::Level { input, rms_db } => {
                self.speaker.on_level(input, rms_db, now);
            }
            SceneInput::StreamEnded { key } => {
                if let Some(stream) = self.streams.remove(&key) {
                    for input in stream.video.into_iter().chain(stream.audio) {
                        self.speaker.remove(input);
                        out.push(SceneAction::EndInput { input });
                        // Removed once the tile is gone (the layout below, due at the same time).
                        removals.push(SceneAction::RemoveInput { input });
                    }
                    relayout = true;
                }
            }
            SceneInput::Tick => {}
        }
        if self.speaker.take_changed() && self.config.layout == LayoutKind::Speaker {
            relayout = true;
        }
        if relayout {
            let (cards_added, cards_gone) = self.cards_update();
            out.extend(cards_added);
            removals.extend(cards_gone);
            let mut actions = vec![SceneAction::Layout { placements: self.placements() }];
            actions.extend(removals);
            self.pending.push(Pending { at: now + self.config.delay, actions });
        }
        out.extend(self.due(now));
        out
    }

    /// Name cards to add now, and those to remove once the layout no longer shows them.
    fn cards_update(&mut self) -> (Vec<SceneAction>, Vec<SceneAction>) {
        let mut added = Vec::new();
        let mut wanted: BTreeMap<String, String> = BTreeMap::new();
        for s in self.streams.values() {
            if s.audio.is_some() {
                wanted.entry(s.peer_id.clone()).or_insert_with(|| s.peer_name.clone());
            }
        }
        for s in self.streams.values().filter(|s| s.expects_video) {
            wanted.remove(&s.peer_id);
        }
        for (peer, name) in &wanted {
            if !self.cards.contains_key(peer) {
                let id = self.next_input;
                self.next_input += 1;
                self.cards.insert(peer.clone(), id);
                added.push(SceneAction::AddNameCard { input: id, label: name.clone() });
            }
        }
        let gone: Vec<String> = self.cards.keys().filter(|p| !wanted.contains_key(*p)).cloned().collect();
        let removed = gone.iter().filter_map(|p| self.cards.remove(p)).map(|input| SceneAction::RemoveInput { input }).collect();
        (added, removed)
    }

    /// The tiles in stream-start order, placed.
    fn placements(&self) -> Vec<Placement> {
        let mut tiles: Vec<(u64, Tile)> = Vec::new();
        for s in self.streams.values() {
            if let Some(video) = s.video {
                tiles.push((s.started, Tile { id: video, size: self.sizes.get(&video).copied(), screen: s.screen }));
            }
        }
        for (peer, &card) in &self.cards {
            let started = self.streams.values().filter(|s| &s.peer_id == peer).map(|s| s.started).min().unwrap_or(0);
            tiles.push((started, Tile { id: card, size: None, screen: false }));
        }
        tiles.sort_by_key(|(started, t)| (*started, t.id));
        let tiles: Vec<Tile> = tiles.into_iter().map(|(_, t)| t).collect();
        let focus = self.speaker.current().and_then(|audio| self.tile_of_audio(audio));
        layout::layout(self.config.layout, self.config.canvas, &tiles, focus)
    }

    /// The tile showing the member an audio input belongs to.
    fn tile_of_audio(&self, audio: InputId) -> Option<InputId> {
        let stream = self.streams.values().find(|s| s.audio == Some(audio))?;
        stream
            .video
            .or_else(|| self.streams.values().filter(|s| s.peer_id == stream.peer_id).find_map(|s| s.video))
            .or_else(|| self.cards.get(&stream.peer_id).copied())
    }

    /// The changes due by `now`, in order; a layout equal to the last one is left out.
    fn due(&mut self, now: Duration) -> Vec<SceneAction> {
        let mut out = Vec::new();
        let (due, later): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending).into_iter().partition(|p| p.at <= now);
        self.pending = later;
        for action in due.into_iter().flat_map(|p| p.actions) {
            if let SceneAction::Layout { placements } = &action {
                if self.last_layout.as_ref() == Some(placements) {
                    continue;
                }
                self.last_layout = Some(placements.clone());
            }
            out.push(action);
        }
        out
    }

    /// Everything still to do, at once (the composite is ending).
    pub fn flush(&mut self) -> Vec<SceneAction> {
        self.due(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn scene(layout: LayoutKind) -> Scene {
        Scene::new(SceneConfig {
            layout,
            canvas: (1280, 720),
            delay: ms(300),
            speaker: SpeakerConfig::default(),
        })
    }

    fn key(peer: &str) -> StreamKey {
        (peer.to_string(), format!("{peer}-stream"))
    }

    fn start(scene: &mut Scene, peer: &str, kinds: &[MediaKind], now: Duration) -> Vec<SceneAction> {
        let mut out = scene.handle(
            SceneInput::StreamStarted { key: key(peer), peer_name: peer.to_uppercase(), screen: false, kinds: kinds.to_vec() },
            now,
        );
        for &kind in kinds {
            out.extend(scene.handle(SceneInput::Track { key: key(peer), kind }, now));
        }
        out
    }

    fn layouts(actions: &[SceneAction]) -> Vec<Vec<u64>> {
        actions
            .iter()
            .filter_map(|a| match a {
                SceneAction::Layout { placements } => Some(placements.iter().map(|p| p.id).collect()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_joiner_gets_inputs_at_once_and_a_tile_after_the_delay() {
        let mut s = scene(LayoutKind::Grid);
        let both = [MediaKind::Video, MediaKind::Audio];
        let out = start(&mut s, "alice", &both, ms(1_000));
        let added: Vec<_> = out.iter().filter(|a| matches!(a, SceneAction::AddTrackInput { .. })).collect();
        assert_eq!(added.len(), 2, "{out:?}");
        assert!(layouts(&out).is_empty(), "no layout before the delay: {out:?}");
        assert!(layouts(&s.handle(SceneInput::Tick, ms(1_299))).is_empty());
        assert_eq!(layouts(&s.handle(SceneInput::Tick, ms(1_300))), vec![vec![1]]);
        start(&mut s, "bob", &both, ms(2_000));
        assert_eq!(layouts(&s.handle(SceneInput::Tick, ms(2_300))), vec![vec![1, 3]]);
        // Nothing changed: nothing said.
        assert!(s.handle(SceneInput::Tick, ms(5_000)).is_empty());
    }

    #[test]
    fn a_leaver_plays_out_then_its_tile_goes_then_its_inputs() {
        let mut s = scene(LayoutKind::Grid);
        let both = [MediaKind::Video, MediaKind::Audio];
        start(&mut s, "alice", &both, ms(0));
        start(&mut s, "bob", &both, ms(0));
        s.handle(SceneInput::Tick, ms(300));
        let out = s.handle(SceneInput::StreamEnded { key: key("bob") }, ms(5_000));
        assert_eq!(out, vec![SceneAction::EndInput { input: 3 }, SceneAction::EndInput { input: 4 }]);
        let out = s.handle(SceneInput::Tick, ms(5_300));
        assert_eq!(layouts(&out), vec![vec![1]]);
        let removed: Vec<_> = out.iter().filter(|a| matches!(a, SceneAction::RemoveInput { .. })).cloned().collect();
        assert_eq!(removed, vec![SceneAction::RemoveInput { input: 3 }, SceneAction::RemoveInput { input: 4 }]);
        let layout_at = out.iter().position(|a| matches!(a, SceneAction::Layout { .. })).unwrap();
        let first_removal = out.iter().position(|a| matches!(a, SceneAction::RemoveInput { .. })).unwrap();
        assert!(layout_at < first_removal, "the tile goes before its branch: {out:?}");
    }

    #[test]
    fn an_audio_only_member_gets_a_name_card_that_goes_when_they_leave() {
        let mut s = scene(LayoutKind::Grid);
        start(&mut s, "alice", &[MediaKind::Video, MediaKind::Audio], ms(0));
        let out = start(&mut s, "carol", &[MediaKind::Audio], ms(0));
        let card = out
            .iter()
            .find_map(|a| match a {
                SceneAction::AddNameCard { input, label } => Some((*input, label.clone())),
                _ => None,
            })
            .expect("a name card");
        assert_eq!(card.1, "CAROL");
        // Both joins are due at once: the last layout says where everyone goes.
        assert_eq!(layouts(&s.handle(SceneInput::Tick, ms(300))).last(), Some(&vec![1, card.0]));
        s.handle(SceneInput::StreamEnded { key: key("carol") }, ms(1_000));
        let out = s.handle(SceneInput::Tick, ms(1_300));
        assert_eq!(layouts(&out), vec![vec![1]]);
        assert!(out.contains(&SceneAction::RemoveInput { input: card.0 }), "{out:?}");
    }

    #[test]
    fn viewers_get_no_tile() {
        let mut s = scene(LayoutKind::Grid);
        let out = start(&mut s, "viewer", &[], ms(0));
        assert!(out.is_empty());
        let out = s.handle(SceneInput::Tick, ms(300));
        assert!(layouts(&out).iter().all(|l| l.is_empty()), "{out:?}");
    }

    #[test]
    fn picture_sizes_and_screen_shares_re_layout() {
        let mut s = scene(LayoutKind::Screen);
        start(&mut s, "alice", &[MediaKind::Video], ms(0));
        start(&mut s, "bob", &[MediaKind::Video], ms(0));
        s.handle(SceneInput::Tick, ms(300));
        // 4:3 where 16:9 was assumed.
        let out = s.handle(SceneInput::PictureSize { input: 2, width: 640, height: 480 }, ms(400));
        assert!(layouts(&out).is_empty());
        assert_eq!(layouts(&s.handle(SceneInput::Tick, ms(700))).len(), 1);
        s.handle(SceneInput::Screen { key: key("bob"), screen: true }, ms(800));
        assert_eq!(layouts(&s.handle(SceneInput::Tick, ms(1_100))).len(), 1);
    }
}
