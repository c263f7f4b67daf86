//! Media to publish: a GStreamer pipeline that encodes test sources (or
//! decodes and re-encodes a file) and packetizes them as RTP, one appsink per
//! track. Every packet goes to a broadcast channel that each peer session
//! reads (rewriting SSRC and payload type for its own connection); keyframe
//! requests from any receiver force a keyframe at the video encoder.
//!
//! Capture times and sender reports (what `--sync-marks` relies on).
//! webrtc-rs 0.21's sender-report interceptor (rtc-interceptor
//! `report/sender_stream.rs`) remembers, for the first packet of each frame
//! (a new RTP timestamp), that timestamp and the instant the packet was
//! written to the track; a report then pairs NTP *now* with that timestamp
//! plus the elapsed time at the clock rate. A report so says a frame's RTP
//! time is the moment its first packet was *sent*, not captured. Our
//! payloaders stamp RTP time = their random `timestamp-offset` + running
//! time (the buffer's PTS) × clock rate, and the participant rewrites only
//! SSRC and payload type (`participant::tracks`), so a receiver placing
//! media by the reports puts each stream at capture + its own capture-to-send
//! delay. Measured here (sync marks, 8 s, capture to appsink): Opus 17.0 ms
//! median (max 29.5: a 20 ms frame of 10 ms buffers), VP8 1.9 ms median (max
//! 14.3) — audio would be placed ≈ 15 ms late against video. The sync-mark
//! input therefore hands both over at capture + [`SYNC_MARKS_SEND_DELAY`]
//! (appsinks with `sync=true`, a fixed pipeline latency): both left 40.2 ms
//! after capture (median; p99 41.3 / 41.0 ms), and its marks decoded from
//! packets stamped at sending are within 4 ms (−3.6…+3.8 ms, 4 runs) (`tests/sync.rs`). The
//! other inputs send as soon as encoded (their A/V is not measured).

use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use rtc::shared::marshal::Unmarshal;
use tokio::sync::{broadcast, mpsc};

use crate::media::sync_marks;
use crate::participant::events::{LocalStream, LocalTrack, MediaKind, RtpPacket};
use crate::participant::streams::stream_placeholder;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
}

impl FromStr for VideoCodec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "vp8" => Ok(VideoCodec::Vp8),
            "h264" => Ok(VideoCodec::H264),
            other => Err(format!("unsupported video codec {other:?} (vp8, h264)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    Opus,
}

/// Where the pictures and sound come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// `videotestsrc` / `audiotestsrc` (a moving ball and a sine tone).
    TestPattern,
    /// Any file GStreamer can decode (`uridecodebin`), re-encoded.
    File(std::path::PathBuf),
    /// Black video with one white frame and silence with a 100 ms 1 kHz
    /// beep at every even second of UTC ([`crate::media::sync_marks`]),
    /// captured on the wall clock and sent at a fixed delay after capture.
    SyncMarks,
    /// One solid colour (`0xRRGGBB`) and one steady sine tone (`tone_hz`,
    /// 0 = silence) at `volume` (0–1): what a composite's tests tell apart
    /// by content (which tile shows whom, which tones are in the mix).
    Solid { rgb: u32, tone_hz: f64, volume: f64 },
}

/// The colours `publish --colour` knows by name, as `0xRRGGBB`: saturated
/// primaries and secondaries (far apart after chroma subsampling and lossy coding).
pub const NAMED_COLOURS: &[(&str, u32)] = &[
    ("red", 0xff0000),
    ("green", 0x00ff00),
    ("blue", 0x0000ff),
    ("yellow", 0xffff00),
    ("magenta", 0xff00ff),
    ("cyan", 0x00ffff),
    ("white", 0xffffff),
];

/// A colour by name ([`NAMED_COLOURS`]) or as `0xRRGGBB` / `#RRGGBB`.
pub fn parse_colour(s: &str) -> Result<u32, String> {
    let lower = s.trim().to_ascii_lowercase();
    if let Some(&(_, rgb)) = NAMED_COLOURS.iter().find(|(name, _)| *name == lower) {
        return Ok(rgb);
    }
    let hex = lower.strip_prefix("0x").or_else(|| lower.strip_prefix('#'));
    match hex {
        Some(h) if h.len() == 6 && h.chars().all(|c| c.is_ascii_hexdigit()) => {
            u32::from_str_radix(h, 16).map_err(|e| e.to_string())
        }
        _ => {
            let names: Vec<&str> = NAMED_COLOURS.iter().map(|(n, _)| *n).collect();
            Err(format!("unknown colour {s:?} (one of {}, or 0xRRGGBB)", names.join(", ")))
        }
    }
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub input: Input,
    pub video: Option<VideoCodec>,
    pub audio: Option<AudioCodec>,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    /// Target video bitrate in kbit/s.
    pub video_kbps: u32,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            input: Input::TestPattern,
            video: Some(VideoCodec::Vp8),
            audio: Some(AudioCodec::Opus),
            width: 640,
            height: 480,
            framerate: 30,
            video_kbps: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("GStreamer: {0}")]
    Glib(#[from] glib::Error),
    #[error("GStreamer: {0}")]
    Bool(#[from] glib::BoolError),
    #[error("cannot start the source pipeline: {0}")]
    State(#[from] gst::StateChangeError),
    #[error("nothing to publish: both video and audio are off")]
    Empty,
}

/// A running source; dropping it stops the pipeline.
pub struct MediaSource {
    pipeline: gst::Pipeline,
    tracks: Vec<LocalTrack>,
}

const VIDEO_PT: u8 = 96;
const AUDIO_PT: u8 = 111;

impl MediaSource {
    pub fn start(config: &SourceConfig) -> Result<MediaSource, SourceError> {
        if config.video.is_none() && config.audio.is_none() {
            return Err(SourceError::Empty);
        }
        crate::media::init()?;
        let description = pipeline_description(config);
        tracing::debug!(%description, "source pipeline");
        let pipeline = gst::parse::launch(&description)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| glib::bool_error!("source description is not a pipeline"))?;
        if config.input == Input::SyncMarks {
            clock_sync_marks(&pipeline)?;
        }
        let mut tracks = Vec::new();
        if let Some(codec) = config.video {
            let (mime, fmtp) = match codec {
                VideoCodec::Vp8 => ("video/VP8", String::new()),
                VideoCodec::H264 => {
                    ("video/H264", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".to_string())
                }
            };
            tracks.push(attach(&pipeline, "video", MediaKind::Video, mime, 90_000, 0, fmtp)?);
        }
        if config.audio.is_some() {
            tracks.push(attach(
                &pipeline,
                "audio",
                MediaKind::Audio,
                "audio/opus",
                48_000,
                2,
                "minptime=10;useinbandfec=1".into(),
            )?);
        }
        pipeline.set_state(gst::State::Playing)?;
        Ok(MediaSource { pipeline, tracks })
    }

    /// Change the picture size mid-stream (as a browser does under load);
    /// the encoder starts a new keyframe at the new size.
    pub fn set_video_size(&self, width: u32, height: u32) {
        if let Some(filter) = self.pipeline.by_name("size") {
            let current = filter.property::<gst::Caps>("caps");
            let mut caps = current.copy();
            if let Some(s) = caps.make_mut().structure_mut(0) {
                s.set("width", width as i32);
                s.set("height", height as i32);
            }
            filter.set_property("caps", &caps);
        }
    }

    /// Stop (or resume) sending video while the track stays published, as
    /// a browser's `replaceTrack(null)` does; audio keeps flowing.
    pub fn pause_video(&self, paused: bool) {
        if let Some(valve) = self.pipeline.by_name("video_valve") {
            valve.set_property("drop", paused);
        }
    }

    pub fn tracks(&self) -> &[LocalTrack] {
        &self.tracks
    }

    /// A stream to publish under `event`; `metadata` (if any) travels like
    /// `socket.emit(event, {cam: stream, metadata})`, else like `socket.emit(event, stream)`.
    pub fn stream(&self, stream_id: &str, event: &str, metadata: Option<serde_json::Value>) -> LocalStream {
        let placeholder = serde_json::Value::String(stream_placeholder(stream_id));
        let args = match metadata {
            Some(m) => vec![serde_json::json!({"cam": placeholder, "metadata": m})],
            None => vec![placeholder],
        };
        LocalStream { stream_id: stream_id.into(), event: event.into(), args, tracks: self.tracks.clone() }
    }
}

impl Drop for MediaSource {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn pipeline_description(c: &SourceConfig) -> String {
    let (w, h, fps) = (c.width, c.height, c.framerate);
    let mut parts = Vec::new();
    let (video_in, audio_in) = match &c.input {
        Input::TestPattern => (
            format!(
                "videotestsrc is-live=true pattern=ball ! capsfilter name=size caps=video/x-raw,width={w},height={h},framerate={fps}/1"
            ),
            "audiotestsrc is-live=true wave=sine freq=440 volume=0.2".to_string(),
        ),
        Input::Solid { rgb, tone_hz, volume } => (
            format!(
                "videotestsrc is-live=true pattern=solid-color foreground-color=0x{argb:08x} ! capsfilter name=size caps=video/x-raw,width={w},height={h},framerate={fps}/1",
                argb = 0xff00_0000 | (rgb & 0x00ff_ffff)
            ),
            if *tone_hz > 0.0 {
                format!("audiotestsrc is-live=true wave=sine freq={tone_hz} volume={}", volume.clamp(0.0, 1.0))
            } else {
                "audiotestsrc is-live=true wave=silence".to_string()
            },
        ),
        Input::SyncMarks => (
            format!(
                "videotestsrc is-live=true pattern=black ! capsfilter name=size caps=video/x-raw,format=I420,width={w},height={h},framerate={fps}/1"
            ),
            "audiotestsrc is-live=true wave=silence samplesperbuffer=480 ! capsfilter name=marks_audio caps=audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2"
                .to_string(),
        ),
        Input::File(path) => {
            let uri = glib::filename_to_uri(path, None).map(|u| u.to_string()).unwrap_or_default();
            parts.push(format!("uridecodebin uri=\"{uri}\" name=dec"));
            (
                format!(
                    "dec. ! queue ! videoconvert ! videoscale ! videorate ! capsfilter name=size caps=video/x-raw,width={w},height={h},framerate={fps}/1"
                ),
                "dec. ! queue ! audioconvert ! audioresample".to_string(),
            )
        }
    };
    // A file decodes as fast as the CPU allows: pace it to the clock. Live
    // test sources pace themselves; sync marks are sent at capture + the
    // pipeline's latency, the same for audio and video (see `clock_sync_marks`).
    let sync = matches!(c.input, Input::File(_) | Input::SyncMarks);
    if let Some(codec) = c.video {
        let kbps = c.video_kbps;
        let enc = match codec {
            VideoCodec::Vp8 => format!(
                "vp8enc deadline=1 cpu-used=8 target-bitrate={} keyframe-max-dist={} error-resilient=partitions ! rtpvp8pay pt={VIDEO_PT} mtu=1200 picture-id-mode=15-bit",
                kbps * 1000,
                fps * 2
            ),
            VideoCodec::H264 => format!(
                "videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} key-int-max={} ! video/x-h264,profile=constrained-baseline ! rtph264pay pt={VIDEO_PT} mtu=1200 config-interval=-1 aggregate-mode=zero-latency",
                fps * 2
            ),
        };
        parts.push(format!(
            "{video_in} ! queue ! valve name=video_valve ! {enc} ! appsink name=video sync={sync} max-buffers=512 drop=true"
        ));
    }
    if c.audio.is_some() {
        parts.push(format!(
            "{audio_in} ! audio/x-raw,rate=48000,channels=2 ! opusenc bitrate=64000 frame-size=20 ! rtpopuspay pt={AUDIO_PT} ! appsink name=audio sync={sync} max-buffers=512 drop=true"
        ));
    }
    parts.join("  ")
}

/// How long after capture a sync-mark packet is handed to the peer
/// connections, audio and video alike (the pipeline's latency, fixed: left
/// to itself GStreamer chose 53 ms). Measured on this machine without the
/// wait (capture to appsink, 8 s, the appsink callback timed in a run of `tests/sync.rs`, instrumentation not kept):
/// Opus 17.0 ms median, 29.5 ms max (a 20 ms frame of 10 ms buffers);
/// VP8 1.9 ms median, 14.3 ms max. With it both left at 40.2 ms median
/// (p99 41.3 ms audio, 41.0 ms video).
pub const SYNC_MARKS_SEND_DELAY: gst::ClockTime = gst::ClockTime::from_mseconds(40);

/// Put the sync-mark pipeline on the wall clock and paint its marks.
///
/// The pipeline runs on the realtime system clock, so a buffer's
/// `base time + PTS` (its running time, the sources' segments start at 0)
/// is its capture instant in UTC. Pad probes behind the test sources
/// overwrite each buffer: white or black pictures, beep or silence; the
/// first picture fixes the frame grid ([`sync_marks::FrameGrid`]) that says
/// which frame flashes and when each beep starts. The appsinks then hand
/// over each RTP packet at `base time + PTS +` [`SYNC_MARKS_SEND_DELAY`]
/// (the pipeline's latency, the same for both sinks), so audio and video
/// leave equally long after their capture — which is what webrtc-rs's sender reports
/// assume (they pair a packet's RTP timestamp with the moment it is
/// written), whatever opusenc's and vp8enc's own delays are.
fn clock_sync_marks(pipeline: &gst::Pipeline) -> Result<(), SourceError> {
    let clock = glib::Object::builder::<gst::SystemClock>().property("clock-type", gst::ClockType::Realtime).build();
    pipeline.use_clock(Some(&clock));
    pipeline.set_latency(SYNC_MARKS_SEND_DELAY);
    let grid: Arc<OnceLock<sync_marks::FrameGrid>> = Arc::default();
    let base_time = |pad: &gst::Pad| pad.parent_element().and_then(|e| e.base_time()).map_or(0, |t| t.nseconds());
    if let Some(pad) = pipeline.by_name("size").and_then(|e| e.static_pad("src")) {
        let grid = grid.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let caps = pad.current_caps();
            let Some(video) = caps.as_ref().and_then(|c| gstreamer_video::VideoInfo::from_caps(c).ok()) else {
                return gst::PadProbeReturn::Ok;
            };
            let base = base_time(pad);
            if let Some(buffer) = info.buffer_mut()
                && let Some(pts) = buffer.pts()
            {
                let start = base + pts.nseconds();
                let fps = video.fps();
                let grid = grid.get_or_init(|| {
                    sync_marks::FrameGrid::new(start, fps.numer().max(1) as u32, fps.denom().max(1) as u32)
                });
                paint(buffer.make_mut(), &video, grid.is_flash_frame(start));
            }
            gst::PadProbeReturn::Ok
        });
    }
    if let Some(pad) = pipeline.by_name("marks_audio").and_then(|e| e.static_pad("src")) {
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let base = base_time(pad);
            if let Some(buffer) = info.buffer_mut()
                && let Some(pts) = buffer.pts()
            {
                let buffer = buffer.make_mut();
                if let Ok(mut map) = buffer.map_writable() {
                    let bytes = map.as_mut_slice();
                    let mut samples: Vec<i16> =
                        bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
                    sync_marks::fill_beep_s16(base + pts.nseconds(), 48_000, 2, grid.get(), &mut samples);
                    for (b, s) in bytes.chunks_exact_mut(2).zip(samples) {
                        b.copy_from_slice(&s.to_le_bytes());
                    }
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
    Ok(())
}

/// A whole I420 picture white (Y 235) or black (Y 16), neutral chroma.
fn paint(buffer: &mut gst::BufferRef, info: &gstreamer_video::VideoInfo, white: bool) {
    let Ok(mut frame) = gstreamer_video::VideoFrameRef::from_buffer_ref_writable(buffer, info) else { return };
    let luma = if white { 235 } else { 16 };
    for plane in 0..info.n_planes() {
        if let Ok(data) = frame.plane_data_mut(plane) {
            data.fill(if plane == 0 { luma } else { 128 });
        }
    }
}

fn attach(
    pipeline: &gst::Pipeline,
    name: &str,
    kind: MediaKind,
    mime: &str,
    clock_rate: u32,
    channels: u16,
    fmtp: String,
) -> Result<LocalTrack, SourceError> {
    let sink = pipeline
        .by_name(name)
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| glib::bool_error!("no appsink named {name}"))?;
    let (packets, _) = broadcast::channel::<RtpPacket>(1024);
    let tx = packets.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let mut bytes = map.as_slice();
                if let Ok(packet) = RtpPacket::unmarshal(&mut bytes) {
                    // No receiver yet is fine: nobody is connected.
                    let _ = tx.send(packet);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let (keyframe_tx, mut keyframe_rx) = mpsc::unbounded_channel::<()>();
    if kind == MediaKind::Video {
        let weak = sink.downgrade();
        tokio::spawn(async move {
            while keyframe_rx.recv().await.is_some() {
                while keyframe_rx.try_recv().is_ok() {}
                let Some(sink) = weak.upgrade() else { break };
                let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
                sink.send_event(event);
                // At most a few forced keyframes per second.
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        });
    }
    Ok(LocalTrack {
        track_id: format!("{name}-{}", short_id()),
        kind,
        mime_type: mime.into(),
        clock_rate,
        channels,
        fmtp,
        packets,
        keyframe_requests: keyframe_tx,
    })
}

pub use crate::ids::short_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_the_appsinks() {
        let d = pipeline_description(&SourceConfig::default());
        assert!(d.contains("vp8enc") && d.contains("appsink name=video") && d.contains("appsink name=audio"));
        let d =
            pipeline_description(&SourceConfig { video: Some(VideoCodec::H264), audio: None, ..Default::default() });
        assert!(d.contains("x264enc") && !d.contains("opusenc"));
        assert_eq!("H264".parse::<VideoCodec>(), Ok(VideoCodec::H264));
        assert!("av2".parse::<VideoCodec>().is_err());
    }

    #[test]
    fn solid_input_paints_its_colour_and_plays_its_tone() {
        let solid =
            |rgb, tone_hz, volume| SourceConfig { input: Input::Solid { rgb, tone_hz, volume }, ..Default::default() };
        let d = pipeline_description(&solid(0x00ff00, 660.0, 0.8));
        assert!(d.contains("pattern=solid-color foreground-color=0xff00ff00"), "{d}");
        assert!(d.contains("wave=sine freq=660 volume=0.8"), "{d}");
        assert!(d.contains("capsfilter name=size") && d.contains("appsink name=video sync=false"), "{d}");
        let d = pipeline_description(&solid(0x123456, 0.0, 0.5));
        assert!(d.contains("foreground-color=0xff123456") && d.contains("wave=silence") && !d.contains("freq="), "{d}");
        let d = pipeline_description(&solid(0xff0000, 440.0, 7.0));
        assert!(d.contains("volume=1 "), "volume is clamped to 0–1: {d}");
    }

    #[test]
    fn colours_parse_by_name_and_by_hex() {
        assert_eq!(parse_colour("red"), Ok(0xff0000));
        assert_eq!(parse_colour("Magenta"), Ok(0xff00ff));
        assert_eq!(parse_colour("0x00FF80"), Ok(0x00ff80));
        assert_eq!(parse_colour("#102030"), Ok(0x102030));
        for bad in ["", "purple", "0xfff", "0x1234567", "0xgg0000", "ff0000"] {
            assert!(parse_colour(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
