//! Stream metadata, sans-IO: grouping received tracks by MediaStream id,
//! resolving each stream's event name and arguments with `{mid}` requests
//! (retried with backoff), and answering the peers' `{mid}` requests for the
//! streams we publish (PROTOCOL.md §3–§4).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::Value;

/// When requests for a stream's metadata are sent, relative to its first track.
pub const REQUEST_SCHEDULE: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_millis(500),
    Duration::from_millis(1500),
    Duration::from_millis(3500),
    Duration::from_millis(7500),
];
/// A stream whose metadata has not arrived by then is announced as unknown
/// (requests continue; a late answer is reported as [`StreamAction::LateMetadata`]).
pub const ANNOUNCE_DEADLINE: Duration = Duration::from_secs(2);

/// `events` of a `{mid, events}` response: event name → that emit's arguments.
pub type StreamEvents = BTreeMap<String, Vec<Value>>;

/// The text rtc.io puts in place of the stream object in metadata arguments.
pub fn stream_placeholder(stream_id: &str) -> String {
    format!("[RTCIOStream] {stream_id}")
}

#[derive(Debug, Clone, PartialEq)]
pub enum StreamAction {
    /// Send `{mid: stream_id}` to the peer.
    RequestMetadata(String),
    /// The stream is ready for consumers; `None` means the peer never said what it is.
    Announce { stream_id: String, events: Option<StreamEvents> },
    /// Metadata arrived after the stream was announced as unknown.
    LateMetadata { stream_id: String, events: StreamEvents },
    /// Every track of the stream ended.
    Ended(String),
}

/// Why a `{mid, events}` response was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataDrop {
    /// For a stream we have no track of (never asked).
    UnknownStream,
    /// `events` is not an object of argument arrays.
    Invalid,
    /// The stream already has its metadata.
    Duplicate,
}

impl MetadataDrop {
    pub fn as_str(self) -> &'static str {
        match self {
            MetadataDrop::UnknownStream => "unknown_stream",
            MetadataDrop::Invalid => "invalid_metadata",
            MetadataDrop::Duplicate => "duplicate_metadata",
        }
    }
}

#[derive(Debug)]
struct Received {
    tracks: Vec<String>,
    first_track_at: Instant,
    requests_sent: usize,
    events: Option<StreamEvents>,
    announced: bool,
}

/// Metadata state of every stream received from one peer.
#[derive(Debug, Default)]
pub struct ReceivedStreams {
    streams: HashMap<String, Received>,
}

impl ReceivedStreams {
    pub fn new() -> Self {
        Self::default()
    }

    /// A track of `stream_id` started arriving.
    pub fn track_added(&mut self, stream_id: &str, track_id: &str, now: Instant) -> Vec<StreamAction> {
        let mut out = Vec::new();
        let s = self.streams.entry(stream_id.to_string()).or_insert_with(|| Received {
            tracks: Vec::new(),
            first_track_at: now,
            requests_sent: 0,
            events: None,
            announced: false,
        });
        if !s.tracks.iter().any(|t| t == track_id) {
            s.tracks.push(track_id.to_string());
        }
        if s.requests_sent == 0 {
            s.requests_sent = 1;
            out.push(StreamAction::RequestMetadata(stream_id.to_string()));
        }
        out
    }

    /// A track ended; when it was the stream's last, the stream ends.
    pub fn track_ended(&mut self, stream_id: &str, track_id: &str) -> Vec<StreamAction> {
        let Some(s) = self.streams.get_mut(stream_id) else { return Vec::new() };
        s.tracks.retain(|t| t != track_id);
        if s.tracks.is_empty() {
            let announced = s.announced;
            self.streams.remove(stream_id);
            if announced {
                return vec![StreamAction::Ended(stream_id.to_string())];
            }
        }
        Vec::new()
    }

    /// A `{mid, events}` response.
    pub fn metadata(&mut self, stream_id: &str, events: &Value) -> Result<Vec<StreamAction>, MetadataDrop> {
        let s = self.streams.get_mut(stream_id).ok_or(MetadataDrop::UnknownStream)?;
        if s.events.is_some() {
            return Err(MetadataDrop::Duplicate);
        }
        let events = parse_events(events).ok_or(MetadataDrop::Invalid)?;
        s.events = Some(events.clone());
        if s.announced {
            Ok(vec![StreamAction::LateMetadata { stream_id: stream_id.into(), events }])
        } else {
            s.announced = true;
            Ok(vec![StreamAction::Announce { stream_id: stream_id.into(), events: Some(events) }])
        }
    }

    /// Retries and announcement deadlines.
    pub fn tick(&mut self, now: Instant) -> Vec<StreamAction> {
        let mut out = Vec::new();
        for (id, s) in &mut self.streams {
            if s.events.is_some() {
                continue;
            }
            let age = now.saturating_duration_since(s.first_track_at);
            if s.requests_sent < REQUEST_SCHEDULE.len() && age >= REQUEST_SCHEDULE[s.requests_sent] {
                s.requests_sent += 1;
                out.push(StreamAction::RequestMetadata(id.clone()));
            }
            if !s.announced && age >= ANNOUNCE_DEADLINE {
                s.announced = true;
                out.push(StreamAction::Announce { stream_id: id.clone(), events: None });
            }
        }
        out
    }

    /// Streams currently known, with their track ids.
    pub fn stream_ids(&self) -> impl Iterator<Item = &str> {
        self.streams.keys().map(String::as_str)
    }
}

fn parse_events(v: &Value) -> Option<StreamEvents> {
    let obj = v.as_object()?;
    let mut out = BTreeMap::new();
    for (event, args) in obj {
        out.insert(event.clone(), args.as_array()?.clone());
    }
    Some(out)
}

/// Streams we publish, and what we answer to `{mid}` requests about them.
#[derive(Debug, Default, Clone)]
pub struct PublishedStreams {
    streams: HashMap<String, StreamEvents>,
}

impl PublishedStreams {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record that `stream_id` was emitted under `event` with `args`; a string
    /// argument equal to [`stream_placeholder`] stands for the stream itself.
    pub fn publish(&mut self, stream_id: &str, event: &str, args: Vec<Value>) {
        self.streams.entry(stream_id.into()).or_default().insert(event.into(), args);
    }

    pub fn unpublish(&mut self, stream_id: &str) {
        self.streams.remove(stream_id);
    }

    /// The `{mid, events}` response for a request, or `None` (ignored silently, as rtc.io does).
    pub fn answer(&self, stream_id: &str) -> Option<Value> {
        let events = self.streams.get(stream_id)?;
        Some(serde_json::json!({"mid": stream_id, "events": events}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_then_announce_with_metadata() {
        let t = Instant::now();
        let mut r = ReceivedStreams::new();
        assert_eq!(r.track_added("s1", "audio", t), vec![StreamAction::RequestMetadata("s1".into())]);
        assert_eq!(r.track_added("s1", "video", t), vec![], "one request per stream");
        let events = json!({"camera": [{"cam": "[RTCIOStream] s1", "metadata": {"name": "alice"}}]});
        let out = r.metadata("s1", &events).unwrap();
        let StreamAction::Announce { stream_id, events: Some(ev) } = &out[0] else { panic!("{out:?}") };
        assert_eq!(stream_id, "s1");
        assert_eq!(ev["camera"][0]["metadata"]["name"], "alice");
        assert_eq!(r.tick(t + Duration::from_secs(30)), vec![], "no retries once resolved");
        assert_eq!(r.metadata("s1", &events), Err(MetadataDrop::Duplicate));
    }

    #[test]
    fn retries_with_backoff_then_announces_unknown_and_accepts_late_answers() {
        let t = Instant::now();
        let mut r = ReceivedStreams::new();
        r.track_added("s", "v", t);
        let mut requests = 1;
        let mut announced_at = None;
        for ms in (0..10_000).step_by(50) {
            for a in r.tick(t + Duration::from_millis(ms)) {
                match a {
                    StreamAction::RequestMetadata(_) => requests += 1,
                    StreamAction::Announce { events: None, .. } => announced_at = Some(ms),
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(requests, REQUEST_SCHEDULE.len());
        assert_eq!(announced_at, Some(2000));
        assert_eq!(
            r.metadata("s", &json!({"screen": []})).unwrap(),
            vec![StreamAction::LateMetadata { stream_id: "s".into(), events: [("screen".to_string(), vec![])].into() }]
        );
    }

    #[test]
    fn hostile_responses_are_dropped() {
        let t = Instant::now();
        let mut r = ReceivedStreams::new();
        assert_eq!(r.metadata("nope", &json!({})), Err(MetadataDrop::UnknownStream));
        r.track_added("s", "v", t);
        assert_eq!(r.metadata("s", &json!("x")), Err(MetadataDrop::Invalid));
        assert_eq!(r.metadata("s", &json!({"camera": "not-args"})), Err(MetadataDrop::Invalid));
        assert!(r.metadata("s", &json!({"camera": []})).is_ok());
    }

    #[test]
    fn stream_ends_with_its_last_track() {
        let t = Instant::now();
        let mut r = ReceivedStreams::new();
        r.track_added("s", "a", t);
        r.track_added("s", "v", t);
        r.metadata("s", &json!({"camera": []})).unwrap();
        assert_eq!(r.track_ended("s", "a"), vec![]);
        assert_eq!(r.track_ended("s", "v"), vec![StreamAction::Ended("s".into())]);
        assert_eq!(r.stream_ids().count(), 0);
        // A stream never announced ends silently.
        r.track_added("q", "a", t);
        assert_eq!(r.track_ended("q", "a"), vec![]);
    }

    #[test]
    fn published_streams_answer_only_their_own() {
        let mut p = PublishedStreams::new();
        p.publish("s1", "camera", vec![json!({"cam": stream_placeholder("s1"), "metadata": {"k": 1}})]);
        assert_eq!(
            p.answer("s1").unwrap(),
            json!({"mid": "s1", "events": {"camera": [{"cam": "[RTCIOStream] s1", "metadata": {"k": 1}}]}})
        );
        assert_eq!(p.answer("other"), None);
        p.unpublish("s1");
        assert_eq!(p.answer("s1"), None);
    }
}
