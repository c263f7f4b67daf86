//! What to make of a stream: a recording in a room directory, or a relay to
//! a URL. A leaf of the stream module.

use std::path::PathBuf;

use crate::media::templates::TemplateKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Files in this room directory; `template` overrides the choice by codec.
    Record { room_dir: PathBuf, template: Option<String> },
    /// A live feed to this URL.
    Relay { url: String, template: Option<String> },
}

impl Target {
    pub fn kind(&self) -> TemplateKind {
        match self {
            Target::Record { .. } => TemplateKind::Record,
            Target::Relay { .. } => TemplateKind::Relay,
        }
    }

    /// The template asked for, if any (otherwise the first one that takes the codecs).
    pub fn template(&self) -> Option<&str> {
        match self {
            Target::Record { template, .. } | Target::Relay { template, .. } => template.as_deref(),
        }
    }
}
