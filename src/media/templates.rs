//! Pipeline templates: the files in `pipelines/` (built in) and in the
//! configured user directory, which say in gst-launch syntax what a recording
//! or a relay looks like.
//!
//! A template is a TOML file with an `output` fragment (the muxer, named
//! `mux`, and the sink) and one branch per codec under `[video]` and
//! `[audio]`, each from `appsrc name=video|audio` to `mux.`. A pipeline for a
//! stream is `output` plus the branches of the codecs it carries, with the
//! placeholders (`{location}`, `{rtmp_url}`, ...) filled in and quoted.
//!
//! This module owns loading, placeholder substitution, validation (every
//! fragment is parsed by GStreamer at start-up, so a typo or a missing
//! element is reported with the template's name, never mid-call) and the
//! choice of a template for a stream's codecs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;

/// The templates that ship inside the binary (also in `pipelines/`).
const BUILT_IN: &[(&str, &str)] = &[
    ("record-webm", include_str!("../../pipelines/record-webm.toml")),
    ("record-mkv", include_str!("../../pipelines/record-mkv.toml")),
    ("relay-rtmp", include_str!("../../pipelines/relay-rtmp.toml")),
    ("composite-webm", include_str!("../../pipelines/composite-webm.toml")),
    ("composite-mkv", include_str!("../../pipelines/composite-mkv.toml")),
    ("relay-composite-rtmp", include_str!("../../pipelines/relay-composite-rtmp.toml")),
];

/// The one "codec" of a composite template's branches: raw video from the
/// compositor, raw audio from the mixer.
pub const COMPOSITE_INPUT: &str = "RAW";

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] =
    &["location", "rtmp_url", "latency", "video_kbps", "sink_buffer_bytes", "framerate", "keyframe_frames"];

/// `{sink_buffer_bytes}` for a pipeline with video: what a file sink may hold
/// before it writes (one write per 32 KiB instead of one per muxed block).
/// A SIGKILL loses at most that much: 0.17 s of 1.5 Mbit/s video, 0.9 s of
/// 300 kbit/s.
pub const SINK_BUFFER_WITH_VIDEO: u32 = 32 * 1024;
/// `{sink_buffer_bytes}` for an audio-only pipeline: 4 KiB is 0.5 s of Opus
/// at 64 kbit/s, 1 s at 32 kbit/s.
pub const SINK_BUFFER_AUDIO_ONLY: u32 = 4 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateKind {
    /// Writes a file (`{location}`).
    Record,
    /// Sends a live feed (`{rtmp_url}`).
    Relay,
}

impl fmt::Display for TemplateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TemplateKind::Record => "record",
            TemplateKind::Relay => "relay",
        })
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    kind: TemplateKind,
    /// File extension of recordings (record templates only).
    extension: Option<String>,
    output: String,
    /// A room composite's output: `[video] RAW` and `[audio] RAW` take the
    /// compositor's and the mixer's raw output (no appsrc).
    #[serde(default)]
    composite: bool,
    #[serde(default)]
    video: BTreeMap<String, String>,
    #[serde(default)]
    audio: BTreeMap<String, String>,
}

/// One loaded template.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    /// Where it came from: `built-in` or the file's path.
    pub origin: String,
    pub kind: TemplateKind,
    pub extension: String,
    /// A room composite's template (see [`COMPOSITE_INPUT`]); never chosen for one stream.
    pub composite: bool,
    output: String,
    /// Codec (upper case encoding name, e.g. `VP8`) → branch.
    video: BTreeMap<String, String>,
    audio: BTreeMap<String, String>,
    /// Codecs whose branch cannot be built here (missing GStreamer element).
    unavailable: BTreeSet<String>,
}

/// Values for the placeholders of one pipeline.
#[derive(Debug, Clone, Default)]
pub struct Values {
    pub location: Option<PathBuf>,
    pub rtmp_url: Option<String>,
    pub latency_ms: u32,
    pub video_kbps: u32,
    /// Output frame rate (composites).
    pub framerate: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("pipeline template {name} ({origin}): {message}")]
    Invalid { name: String, origin: String, message: String },
    #[error("cannot read the pipeline templates directory {dir}: {message}")]
    Directory { dir: String, message: String },
    #[error("no pipeline template named {0:?}")]
    Unknown(String),
    #[error("no {kind} template handles {wanted}{hint}")]
    NoMatch { kind: TemplateKind, wanted: String, hint: String },
}

/// A problem found by [`TemplateSet::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub template: String,
    /// `output`, `video VP8`, `audio OPUS`, ...
    pub part: String,
    pub message: String,
    /// GStreamer elements that are not installed, if that is the problem.
    pub missing_elements: Vec<String>,
    /// Fatal findings stop the gateway; the others only disable one codec.
    pub fatal: bool,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]: {}", self.template, self.part, self.message)?;
        if !self.missing_elements.is_empty() {
            write!(f, " (missing GStreamer element: {})", self.missing_elements.join(", "))?;
        }
        Ok(())
    }
}

/// Every template the gateway knows, built-in first; a user template with a
/// built-in's name replaces it.
#[derive(Debug, Clone)]
pub struct TemplateSet {
    templates: Vec<Template>,
}

impl Template {
    fn parse(name: &str, origin: &str, text: &str) -> Result<Template, TemplateError> {
        let invalid =
            |message: String| TemplateError::Invalid { name: name.to_string(), origin: origin.to_string(), message };
        let file: TemplateFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let extension = match (file.kind, file.extension) {
            (TemplateKind::Record, Some(ext)) if valid_extension(&ext) => ext,
            (TemplateKind::Record, Some(ext)) => return Err(invalid(format!("bad extension {ext:?}"))),
            (TemplateKind::Record, None) => return Err(invalid("a record template needs `extension`".into())),
            (TemplateKind::Relay, _) => String::new(),
        };
        if file.video.is_empty() && file.audio.is_empty() {
            return Err(invalid("no [video] or [audio] branch".into()));
        }
        let upper = |m: BTreeMap<String, String>| -> BTreeMap<String, String> {
            m.into_iter().map(|(k, v)| (k.to_ascii_uppercase(), v)).collect()
        };
        let template = Template {
            name: name.to_string(),
            origin: origin.to_string(),
            kind: file.kind,
            extension,
            composite: file.composite,
            output: file.output,
            video: upper(file.video),
            audio: upper(file.audio),
            unavailable: BTreeSet::new(),
        };
        for (part, fragment) in template.fragments() {
            check_placeholders(fragment).map_err(|m| invalid(format!("[{part}]: {m}")))?;
        }
        if template.composite {
            let raw_only = |m: &BTreeMap<String, String>| m.len() == 1 && m.contains_key(COMPOSITE_INPUT);
            if !raw_only(&template.video) || !raw_only(&template.audio) {
                return Err(invalid(format!("a composite template has exactly `[video] {COMPOSITE_INPUT}` and `[audio] {COMPOSITE_INPUT}`")));
            }
            if template.fragments().any(|(_, f)| f.contains("appsrc")) {
                return Err(invalid("a composite template's branches start from raw media, without appsrc".into()));
            }
            return Ok(template);
        }
        if template.video.contains_key(COMPOSITE_INPUT) || template.audio.contains_key(COMPOSITE_INPUT) {
            return Err(invalid(format!("`{COMPOSITE_INPUT}` branches need `composite = true`")));
        }
        for (codec, branch) in &template.video {
            if !branch.contains("name=video") {
                return Err(invalid(format!("[video] {codec}: the branch must start with `appsrc name=video`")));
            }
        }
        for (codec, branch) in &template.audio {
            if !branch.contains("name=audio") {
                return Err(invalid(format!("[audio] {codec}: the branch must start with `appsrc name=audio`")));
            }
        }
        let needed = match template.kind {
            TemplateKind::Record => "{location}",
            TemplateKind::Relay => "{rtmp_url}",
        };
        if !template.output.contains(needed) {
            return Err(invalid(format!("`output` must use {needed}")));
        }
        Ok(template)
    }

    fn fragments(&self) -> impl Iterator<Item = (String, &String)> {
        std::iter::once(("output".to_string(), &self.output))
            .chain(self.video.iter().map(|(c, b)| (format!("video {c}"), b)))
            .chain(self.audio.iter().map(|(c, b)| (format!("audio {c}"), b)))
    }

    /// Video codecs this template can take (installed elements only).
    pub fn video_codecs(&self) -> impl Iterator<Item = &str> {
        self.video.keys().filter(|c| !self.unavailable.contains(&format!("video {c}"))).map(String::as_str)
    }

    pub fn audio_codecs(&self) -> impl Iterator<Item = &str> {
        self.audio.keys().filter(|c| !self.unavailable.contains(&format!("audio {c}"))).map(String::as_str)
    }

    fn handles(&self, video: Option<&str>, audio: Option<&str>) -> bool {
        let ok = |codec: Option<&str>, mut available: Box<dyn Iterator<Item = &str> + '_>| match codec {
            None => true,
            Some(c) => available.any(|a| a.eq_ignore_ascii_case(c)),
        };
        ok(video, Box::new(self.video_codecs())) && ok(audio, Box::new(self.audio_codecs()))
    }

    /// The gst-launch description for a stream with these codecs (`None`: no
    /// such track), placeholders filled in.
    pub fn description(&self, video: Option<&str>, audio: Option<&str>, values: &Values) -> Result<String, String> {
        if video.is_none() && audio.is_none() {
            return Err("a pipeline needs at least one track".into());
        }
        let mut parts = vec![self.output.as_str()];
        if let Some(codec) = video {
            let branch = self.video.get(&codec.to_ascii_uppercase());
            parts.push(branch.ok_or_else(|| format!("template {} has no [video] {codec} branch", self.name))?);
        }
        if let Some(codec) = audio {
            let branch = self.audio.get(&codec.to_ascii_uppercase());
            parts.push(branch.ok_or_else(|| format!("template {} has no [audio] {codec} branch", self.name))?);
        }
        let sink_buffer_bytes = if video.is_some() { SINK_BUFFER_WITH_VIDEO } else { SINK_BUFFER_AUDIO_ONLY };
        Ok(fill_placeholders(&parts.join("\n"), values, sink_buffer_bytes))
    }

    /// The gst-launch description of a composite's output: `video_head` and
    /// `audio_head` (the compositor and the mixer, ending where raw media
    /// comes out) joined to the template's branches, placeholders filled in.
    pub fn composite_description(&self, video_head: &str, audio_head: &str, values: &Values) -> Result<String, String> {
        if !self.composite {
            return Err(format!("template {} is not a composite template", self.name));
        }
        let branch = |m: &BTreeMap<String, String>| m.get(COMPOSITE_INPUT).cloned().unwrap_or_default();
        let description = format!(
            "{}\n{video_head} ! {}\n{audio_head} ! {}",
            self.output,
            branch(&self.video),
            branch(&self.audio)
        );
        Ok(fill_placeholders(&description, values, SINK_BUFFER_WITH_VIDEO))
    }
}

fn valid_extension(ext: &str) -> bool {
    !ext.is_empty() && ext.len() <= 8 && ext.chars().all(|c| c.is_ascii_alphanumeric())
}

/// `{name}` tokens with a lower-case identifier are placeholders; caps lists
/// such as `{ I420, NV12 }` are not.
fn placeholder_tokens(fragment: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let bytes = fragment.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            if bytes[i] == b'{' {
                let start = i;
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_lowercase() || bytes[j] == b'_') {
                    j += 1;
                }
                if j < bytes.len() && bytes[j] == b'}' && j > start + 1 {
                    i = j + 1;
                    return Some((start, j + 1, &fragment[start + 1..j]));
                }
            }
            i += 1;
        }
        None
    })
}

fn check_placeholders(fragment: &str) -> Result<(), String> {
    for (_, _, name) in placeholder_tokens(fragment) {
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!("unknown placeholder {{{name}}} (known: {})", PLACEHOLDERS.join(", ")));
        }
    }
    Ok(())
}

/// A value as a gst-launch property value: always double-quoted, with `"`
/// and `\` escaped, so paths and URLs with spaces, `!` or quotes stay one value.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `sink_buffer_bytes` is chosen by the caller from the pipeline's tracks.
fn fill_placeholders(description: &str, values: &Values, sink_buffer_bytes: u32) -> String {
    let mut out = String::with_capacity(description.len() + 64);
    let mut last = 0;
    for (start, end, name) in placeholder_tokens(description) {
        out.push_str(&description[last..start]);
        let value = match name {
            "location" => quote(&values.location.as_deref().unwrap_or(Path::new("/dev/null")).to_string_lossy()),
            "rtmp_url" => quote(values.rtmp_url.as_deref().unwrap_or("rtmp://127.0.0.1/live/unset")),
            "latency" => values.latency_ms.to_string(),
            "video_kbps" => values.video_kbps.to_string(),
            "framerate" => values.framerate.max(1).to_string(),
            // One keyframe every two seconds.
            "keyframe_frames" => (values.framerate.max(1) * 2).to_string(),
            "sink_buffer_bytes" => sink_buffer_bytes.to_string(),
            _ => description[start..end].to_string(),
        };
        out.push_str(&value);
        last = end;
    }
    out.push_str(&description[last..]);
    out
}

impl TemplateSet {
    /// The built-in templates plus every `*.toml` in `user_dir` (if given).
    pub fn load(user_dir: Option<&Path>) -> Result<TemplateSet, TemplateError> {
        let mut templates = Vec::new();
        for (name, text) in BUILT_IN {
            templates.push(Template::parse(name, "built-in", text)?);
        }
        if let Some(dir) = user_dir {
            let dir_error =
                |e: std::io::Error| TemplateError::Directory { dir: dir.display().to_string(), message: e.to_string() };
            let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(dir_error)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let name = path.file_stem().unwrap_or_default().to_string_lossy().to_string();
                let text = std::fs::read_to_string(&path).map_err(dir_error)?;
                let template = Template::parse(&name, &path.display().to_string(), &text)?;
                match templates.iter_mut().find(|t| t.name == name) {
                    Some(existing) => *existing = template,
                    None => templates.push(template),
                }
            }
        }
        Ok(TemplateSet { templates })
    }

    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    pub fn get(&self, name: &str) -> Result<&Template, TemplateError> {
        self.templates.iter().find(|t| t.name == name).ok_or_else(|| TemplateError::Unknown(name.to_string()))
    }

    /// Parse every fragment with GStreamer (nothing is started). A codec
    /// branch that needs an element which is not installed is disabled (a
    /// non-fatal finding); every other problem is fatal.
    pub fn validate(&mut self) -> Result<Vec<Finding>, glib::Error> {
        crate::media::init()?;
        let mut findings = Vec::new();
        for template in &mut self.templates {
            let values = Values { latency_ms: 200, video_kbps: 1000, framerate: 30, ..Values::default() };
            if template.composite {
                // Raw test inputs standing in for the compositor and the mixer.
                let video = "appsrc name=video caps=video/x-raw,format=I420,width=320,height=240,framerate=30/1";
                let audio = "appsrc name=audio caps=audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2";
                let description = template.composite_description(video, audio, &values).expect("a composite template");
                if let Err(mut finding) = check_description(&description, true, true) {
                    finding.template = template.name.clone();
                    finding.part = "composite".into();
                    finding.fatal = true;
                    findings.push(finding);
                }
                continue;
            }
            let mut checks: Vec<(String, Option<String>, Option<String>)> = Vec::new();
            for codec in template.video.keys() {
                checks.push((format!("video {codec}"), Some(codec.clone()), None));
            }
            for codec in template.audio.keys() {
                checks.push((format!("audio {codec}"), None, Some(codec.clone())));
            }
            for (part, video, audio) in checks {
                let description =
                    template.description(video.as_deref(), audio.as_deref(), &values).expect("branch exists");
                if let Err(mut finding) = check_description(&description, video.is_some(), audio.is_some()) {
                    finding.template = template.name.clone();
                    if finding.part.is_empty() {
                        finding.part = part.clone();
                    }
                    if !finding.fatal {
                        template.unavailable.insert(part);
                    }
                    findings.push(finding);
                }
            }
            // Both kinds at once: the output must take a video and an audio branch.
            let first_video = template.video_codecs().next().map(str::to_string);
            let first_audio = template.audio_codecs().next().map(str::to_string);
            if let (Some(v), Some(a)) = (first_video, first_audio) {
                let description = template.description(Some(&v), Some(&a), &values).expect("branches exist");
                if let Err(mut finding) = check_description(&description, true, true) {
                    finding.template = template.name.clone();
                    finding.part = format!("video {v} + audio {a}");
                    finding.fatal = true;
                    findings.push(finding);
                }
            }
            if template.video_codecs().next().is_none() && template.audio_codecs().next().is_none() {
                findings.push(Finding {
                    template: template.name.clone(),
                    part: "all".into(),
                    message: "no branch can be built on this machine".into(),
                    missing_elements: Vec::new(),
                    fatal: true,
                });
            }
        }
        Ok(findings)
    }

    /// The template of a room composite: `preferred` if given (it must be a
    /// composite template of `kind`), else the built-in one: `composite-webm`
    /// to record, `relay-composite-rtmp` to relay.
    pub fn choose_composite(&self, kind: TemplateKind, preferred: Option<&str>) -> Result<&Template, TemplateError> {
        let name = preferred.unwrap_or(match kind {
            TemplateKind::Record => "composite-webm",
            TemplateKind::Relay => "relay-composite-rtmp",
        });
        let t = self.get(name)?;
        if t.kind == kind && t.composite {
            return Ok(t);
        }
        Err(TemplateError::NoMatch {
            kind,
            wanted: "a room composite".into(),
            hint: format!(" (the template {name:?} is not a {kind} composite template)"),
        })
    }

    /// The template for a stream: `preferred` if given (it must handle the
    /// codecs), else the first template of `kind` that handles them.
    pub fn choose(
        &self,
        kind: TemplateKind,
        video: Option<&str>,
        audio: Option<&str>,
        preferred: Option<&str>,
    ) -> Result<&Template, TemplateError> {
        let wanted = describe_codecs(video, audio);
        if let Some(name) = preferred {
            let t = self.get(name)?;
            if t.kind == kind && !t.composite && t.handles(video, audio) {
                return Ok(t);
            }
            return Err(TemplateError::NoMatch {
                kind,
                wanted,
                hint: format!(" (the configured template {name:?} does not)"),
            });
        }
        self.templates.iter().find(|t| t.kind == kind && !t.composite && t.handles(video, audio)).ok_or_else(|| {
            let known: Vec<String> = self
                .templates
                .iter()
                .filter(|t| t.kind == kind && !t.composite)
                .map(|t| {
                    format!("{}: {}", t.name, t.video_codecs().chain(t.audio_codecs()).collect::<Vec<_>>().join("/"))
                })
                .collect();
            TemplateError::NoMatch { kind, wanted, hint: format!(" (available: {})", known.join("; ")) }
        })
    }
}

fn describe_codecs(video: Option<&str>, audio: Option<&str>) -> String {
    match (video, audio) {
        (Some(v), Some(a)) => format!("video {v} + audio {a}"),
        (Some(v), None) => format!("video {v}"),
        (None, Some(a)) => format!("audio {a}"),
        (None, None) => "nothing".into(),
    }
}

/// Parse one description as GStreamer would run it and check its inputs.
fn check_description(description: &str, video: bool, audio: bool) -> Result<(), Finding> {
    let finding = |message: String, missing: Vec<String>, fatal: bool| Finding {
        template: String::new(),
        part: String::new(),
        message,
        missing_elements: missing,
        fatal,
    };
    let mut context = gst::ParseContext::new();
    let element = match gst::parse::launch_full(description, Some(&mut context), gst::ParseFlags::FATAL_ERRORS) {
        Ok(element) => element,
        Err(e) => {
            // Only a missing element makes the context's list meaningful.
            let missing = if e.kind::<gst::ParseError>() == Some(gst::ParseError::NoSuchElement) {
                context.missing_elements()
            } else {
                Vec::new()
            };
            let fatal = missing.is_empty();
            return Err(finding(e.message().to_string(), missing, fatal));
        }
    };
    let pipeline = element.downcast::<gst::Pipeline>().map_err(|_| finding("not a pipeline".into(), vec![], true))?;
    for (wanted, name) in [(video, "video"), (audio, "audio")] {
        if !wanted {
            continue;
        }
        match pipeline.by_name(name) {
            Some(e) if e.is::<gstreamer_app::AppSrc>() => {}
            Some(_) => return Err(finding(format!("element {name:?} must be an appsrc"), vec![], true)),
            None => return Err(finding(format!("no `appsrc name={name}`"), vec![], true)),
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> TemplateSet {
        let mut set = TemplateSet::load(None).unwrap();
        let findings = set.validate().unwrap();
        assert!(findings.iter().all(|f| !f.fatal), "{findings:?}");
        set
    }

    #[test]
    fn built_in_templates_are_valid_and_chosen_by_codec() {
        let set = set();
        assert_eq!(set.choose(TemplateKind::Record, Some("VP8"), Some("OPUS"), None).unwrap().name, "record-webm");
        assert_eq!(set.choose(TemplateKind::Record, Some("vp9"), None, None).unwrap().name, "record-webm");
        assert_eq!(set.choose(TemplateKind::Record, Some("H264"), Some("OPUS"), None).unwrap().name, "record-mkv");
        assert_eq!(set.choose(TemplateKind::Record, None, Some("OPUS"), None).unwrap().name, "record-webm");
        assert_eq!(set.choose(TemplateKind::Relay, Some("VP8"), Some("OPUS"), None).unwrap().name, "relay-rtmp");
        assert_eq!(set.choose(TemplateKind::Relay, Some("H264"), None, None).unwrap().name, "relay-rtmp");
        let err = set.choose(TemplateKind::Record, Some("H265"), None, None).unwrap_err();
        assert!(err.to_string().contains("no record template handles video H265"), "{err}");
        let err = set.choose(TemplateKind::Record, Some("VP8"), None, Some("record-mkv")).unwrap_err();
        assert!(err.to_string().contains("record-mkv"), "{err}");
    }

    #[test]
    fn missing_element_in_a_branch_disables_only_that_codec() {
        let text = r#"
            kind = "record"
            extension = "webm"
            output = "webmmux name=mux ! filesink location={location}"
            [video]
            VP8 = "appsrc name=video ! rtpvp8depay ! mux."
            VP9 = "appsrc name=video ! rtpvp9depayy ! mux."
        "#;
        let mut set = TemplateSet { templates: vec![Template::parse("mine", "test", text).unwrap()] };
        let findings = set.validate().unwrap();
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].missing_elements, vec!["rtpvp9depayy".to_string()]);
        assert!(!findings[0].fatal);
        assert_eq!(
            findings[0].to_string(),
            "mine [video VP9]: no element \"rtpvp9depayy\" (missing GStreamer element: rtpvp9depayy)"
        );
        assert!(set.choose(TemplateKind::Record, Some("VP8"), None, None).is_ok());
        assert!(set.choose(TemplateKind::Record, Some("VP9"), None, None).is_err());
    }

    #[test]
    fn broken_output_or_syntax_is_fatal_and_names_the_template() {
        let broken_output = r#"
            kind = "record"
            extension = "mkv"
            output = "matroskamuxx name=mux ! filesink location={location}"
            [audio]
            OPUS = "appsrc name=audio ! rtpopusdepay ! mux."
        "#;
        let mut set = TemplateSet { templates: vec![Template::parse("out", "test", broken_output).unwrap()] };
        let findings = set.validate().unwrap();
        assert!(findings.iter().any(|f| f.fatal && f.template == "out"), "{findings:?}");

        let bad_property = broken_output.replace("matroskamuxx name=mux", "matroskamux name=mux nosuch=1");
        let mut set = TemplateSet { templates: vec![Template::parse("prop", "test", &bad_property).unwrap()] };
        let findings = set.validate().unwrap();
        assert!(findings[0].fatal && findings[0].message.contains("nosuch"), "{findings:?}");
    }

    #[test]
    fn template_file_errors_are_clear() {
        let err = |text: &str| Template::parse("t", "test", text).unwrap_err().to_string();
        assert!(
            err("kind = \"record\"\noutput = \"x {location}\"\n[video]\nVP8 = \"appsrc name=video\"")
                .contains("extension")
        );
        assert!(
            err("kind = \"relay\"\noutput = \"flvmux name=mux ! fakesink\"\n[video]\nH264=\"appsrc name=video\"")
                .contains("{rtmp_url}")
        );
        assert!(
            err("kind = \"relay\"\noutput = \"{rtmp_url} {colour}\"\n[video]\nH264=\"appsrc name=video\"")
                .contains("unknown placeholder {colour}")
        );
        assert!(
            err("kind = \"record\"\nextension=\"mkv\"\noutput = \"{location}\"\n[video]\nVP8 = \"appsrc name=audio\"")
                .contains("appsrc name=video")
        );
        assert!(err("kind = \"other\"").contains("t (test)"));
    }

    #[test]
    fn placeholders_are_filled_and_quoted() {
        let values = Values {
            location: Some(PathBuf::from("/rec/a b\"c.webm")),
            rtmp_url: Some("rtmp://h/app/key?x=1&y=2".into()),
            latency_ms: 150,
            video_kbps: 2500,
            framerate: 30,
        };
        let filled = fill_placeholders(
            "a location={location} b={rtmp_url} l={latency} caps={ I420, NV12 } k={video_kbps} s={sink_buffer_bytes}",
            &values,
            4096,
        );
        assert_eq!(
            filled,
            "a location=\"/rec/a b\\\"c.webm\" b=\"rtmp://h/app/key?x=1&y=2\" l=150 caps={ I420, NV12 } k=2500 s=4096"
        );
    }

    #[test]
    fn record_sinks_buffer_less_without_video() {
        let set = set();
        let webm = set.get("record-webm").unwrap();
        let values = Values { location: Some(PathBuf::from("/rec/x.webm")), ..Values::default() };
        let with_video = webm.description(Some("VP8"), Some("OPUS"), &values).unwrap();
        assert!(with_video.contains("buffer-mode=full buffer-size=32768"), "{with_video}");
        let audio_only = webm.description(None, Some("OPUS"), &values).unwrap();
        assert!(audio_only.contains("buffer-mode=full buffer-size=4096"), "{audio_only}");
    }

    #[test]
    fn user_templates_are_added_and_replace_built_ins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("record-mkv.toml"),
            "kind = \"record\"\nextension = \"mka\"\noutput = \"matroskamux name=mux ! filesink location={location}\"\n[audio]\nOPUS = \"appsrc name=audio ! rtpopusdepay ! opusparse ! mux.\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let set = TemplateSet::load(Some(dir.path())).unwrap();
        let mkv = set.get("record-mkv").unwrap();
        assert_eq!(mkv.extension, "mka");
        assert!(mkv.origin.ends_with("record-mkv.toml"));
        assert_eq!(set.templates().len(), BUILT_IN.len());
        let gone = dir.path().join("no-such-dir");
        let missing = TemplateSet::load(Some(&gone)).unwrap_err();
        assert!(missing.to_string().contains("no-such-dir"));
    }
}
