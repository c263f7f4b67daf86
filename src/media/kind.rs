//! The kind of a media track (audio or video): shared by the participant,
//! which receives and publishes tracks, and the media pipelines, which take
//! them as inputs. A leaf: it depends on nothing in the crate.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}
