//! Keyframes in received RTP video, and when to ask the sender for one.
//!
//! [`starts_keyframe`] reads the RTP payload formats (VP8 RFC 7741, VP9
//! RFC 9628, H264 RFC 6184) just far enough to tell whether a packet begins
//! a keyframe. [`KeyframeGate`] is the sans-IO policy around it: drop video
//! until a keyframe starts (so nothing undecodable is written), ask for one
//! when an output starts and every 500 ms until it arrives, and again when
//! the source changes or a pipeline asks (after loss it cannot repair).

use std::time::{Duration, Instant};

/// Video codecs whose keyframes we can recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    Vp9,
    H264,
    /// Anything else: every packet passes, keyframes are never "seen".
    Other,
}

impl VideoCodec {
    /// From the encoding name (`VP8`, `H264`, ...), case-insensitive.
    pub fn from_encoding_name(name: &str) -> VideoCodec {
        match name.to_ascii_uppercase().as_str() {
            "VP8" => VideoCodec::Vp8,
            "VP9" => VideoCodec::Vp9,
            "H264" => VideoCodec::H264,
            _ => VideoCodec::Other,
        }
    }
}

/// Does this RTP payload begin a keyframe (for H264: carry an SPS or IDR
/// slice, the start of what a decoder needs)?
pub fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_starts_keyframe(payload),
        VideoCodec::Vp9 => vp9_starts_keyframe(payload),
        VideoCodec::H264 => h264_starts_keyframe(payload),
        VideoCodec::Other => false,
    }
}

fn vp8_starts_keyframe(p: &[u8]) -> bool {
    let Some(&first) = p.first() else { return false };
    let extended = first & 0x80 != 0;
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x07;
    if !start_of_partition || partition_id != 0 {
        return false;
    }
    let mut i = 1;
    if extended {
        let Some(&x) = p.get(1) else { return false };
        i = 2;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            let Some(&pid) = p.get(i) else { return false };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID / KEYIDX
        }
    }
    // The VP8 frame tag: bit 0 is the inverse key frame flag.
    p.get(i).is_some_and(|tag| tag & 0x01 == 0)
}

fn vp9_starts_keyframe(p: &[u8]) -> bool {
    // I P L F B E V Z: B = start of frame, P = inter-picture predicted.
    let Some(&first) = p.first() else { return false };
    let inter_predicted = first & 0x40 != 0;
    let begins_frame = first & 0x08 != 0;
    begins_frame && !inter_predicted
}

fn h264_starts_keyframe(p: &[u8]) -> bool {
    let Some(&first) = p.first() else { return false };
    let is_key_nal = |t: u8| t == 5 || t == 7;
    match first & 0x1f {
        24 => {
            // STAP-A: 16-bit size + NAL, repeated.
            let mut i = 1;
            while i + 2 < p.len() {
                let size = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                if is_key_nal(p[i + 2] & 0x1f) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => p.get(1).is_some_and(|h| h & 0x80 != 0 && is_key_nal(h & 0x1f)),
        t => is_key_nal(t),
    }
}

/// What the caller should do with a video packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateDecision {
    /// Write the packet (false: still waiting for a keyframe).
    pub pass: bool,
    /// Send a PLI now.
    pub request_keyframe: bool,
    /// This packet is the first keyframe since the gate (re)opened.
    pub first_keyframe: bool,
}

/// Keyframe policy for one video output.
#[derive(Debug)]
pub struct KeyframeGate {
    codec: VideoCodec,
    waiting_since: Option<Instant>,
    last_request: Option<Instant>,
    retry: Duration,
    min_request_gap: Duration,
    keyframes_seen: u64,
    last_keyframe_timestamp: Option<u32>,
}

/// Ask again every this long while waiting for a keyframe.
pub const KEYFRAME_RETRY: Duration = Duration::from_millis(500);
/// Pipeline-initiated requests closer together than this are coalesced.
const MIN_REQUEST_GAP: Duration = Duration::from_millis(200);

impl KeyframeGate {
    /// A closed gate: it waits for the first keyframe (and wants one now).
    pub fn new(codec: VideoCodec) -> KeyframeGate {
        KeyframeGate {
            codec,
            waiting_since: None,
            last_request: None,
            retry: KEYFRAME_RETRY,
            min_request_gap: MIN_REQUEST_GAP,
            keyframes_seen: 0,
            last_keyframe_timestamp: None,
        }
    }

    pub fn is_waiting(&self) -> bool {
        self.waiting_since.is_some() || (self.last_request.is_none() && self.codec != VideoCodec::Other)
    }

    /// Distinct keyframes seen so far (counted once per RTP timestamp).
    pub fn keyframes_seen(&self) -> u64 {
        self.keyframes_seen
    }

    /// Close the gate again (a new source: SSRC change, track re-added):
    /// everything until its next keyframe is dropped. Returns whether to send a PLI now.
    pub fn restart(&mut self, now: Instant) -> bool {
        if self.codec == VideoCodec::Other {
            return false;
        }
        self.waiting_since = Some(now);
        self.last_request = Some(now);
        true
    }

    /// A packet arrived.
    pub fn on_packet(&mut self, now: Instant, timestamp: u32, payload: &[u8]) -> GateDecision {
        self.on_packet_seen(now, timestamp, starts_keyframe(self.codec, payload))
    }

    /// A packet arrived; `keyframe`: it starts a keyframe (the caller ran
    /// [`starts_keyframe`] on its payload once for every gate).
    pub fn on_packet_seen(&mut self, now: Instant, timestamp: u32, keyframe: bool) -> GateDecision {
        if self.codec == VideoCodec::Other {
            return GateDecision { pass: true, request_keyframe: false, first_keyframe: false };
        }
        let mut request_keyframe = false;
        if self.waiting_since.is_none() && self.last_request.is_none() {
            // The very first packet: the output just started.
            self.waiting_since = Some(now);
            self.last_request = Some(now);
            request_keyframe = true;
        }
        if keyframe && self.last_keyframe_timestamp != Some(timestamp) {
            self.keyframes_seen += 1;
            self.last_keyframe_timestamp = Some(timestamp);
        }
        match self.waiting_since {
            Some(_) if keyframe => {
                self.waiting_since = None;
                GateDecision { pass: true, request_keyframe: false, first_keyframe: true }
            }
            Some(_) => {
                if !request_keyframe && self.last_request.is_none_or(|t| now.duration_since(t) >= self.retry) {
                    self.last_request = Some(now);
                    request_keyframe = true;
                }
                GateDecision { pass: false, request_keyframe, first_keyframe: false }
            }
            None => {
                // Once open, packets of the frame in progress (same timestamp) and later pass.
                GateDecision { pass: true, request_keyframe: false, first_keyframe: false }
            }
        }
    }

    /// Still waiting with no packet arriving: is a retry due? (Call from a timer.)
    pub fn on_tick(&mut self, now: Instant) -> bool {
        match (self.waiting_since, self.last_request) {
            (Some(_), Some(last)) if now.duration_since(last) >= self.retry => {
                self.last_request = Some(now);
                true
            }
            _ => false,
        }
    }

    /// A pipeline element asked for a keyframe (loss it could not repair).
    /// Returns whether to send a PLI (requests are coalesced).
    pub fn on_pipeline_request(&mut self, now: Instant) -> bool {
        if self.codec == VideoCodec::Other {
            return false;
        }
        if self.last_request.is_some_and(|t| now.duration_since(t) < self.min_request_gap) {
            return false;
        }
        self.last_request = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Payloads as seen from GStreamer's payloaders and from Chrome.
    const VP8_GST_KEY: &[u8] = &[0x10, 0xd0, 0x49, 0x00, 0x9d, 0x01, 0x2a];
    const VP8_GST_DELTA: &[u8] = &[0x10, 0x31, 0x02, 0x00];
    const VP8_CHROME_KEY: &[u8] = &[0x90, 0x80, 0x81, 0x23, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a];
    const VP8_CHROME_DELTA: &[u8] = &[0x90, 0x80, 0x81, 0x24, 0x31, 0x02];
    const VP8_CONTINUATION: &[u8] = &[0x00, 0x50, 0x42];

    #[test]
    fn vp8_keyframes_with_short_and_extended_descriptors() {
        assert!(starts_keyframe(VideoCodec::Vp8, VP8_GST_KEY));
        assert!(!starts_keyframe(VideoCodec::Vp8, VP8_GST_DELTA));
        assert!(starts_keyframe(VideoCodec::Vp8, VP8_CHROME_KEY));
        assert!(!starts_keyframe(VideoCodec::Vp8, VP8_CHROME_DELTA));
        assert!(!starts_keyframe(VideoCodec::Vp8, VP8_CONTINUATION));
        // 7-bit PictureID, TL0PICIDX and TID present.
        assert!(starts_keyframe(VideoCodec::Vp8, &[0x90, 0xe0, 0x05, 0x07, 0x40, 0x50]));
        assert!(!starts_keyframe(VideoCodec::Vp8, &[]));
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x90, 0x80]));
    }

    #[test]
    fn h264_keyframes_single_stap_a_and_fu_a() {
        assert!(starts_keyframe(VideoCodec::H264, &[0x65, 0x88])); // IDR
        assert!(starts_keyframe(VideoCodec::H264, &[0x67, 0x42])); // SPS
        assert!(!starts_keyframe(VideoCodec::H264, &[0x41, 0x9a])); // non-IDR slice
        // STAP-A [SPS, PPS, IDR]
        let stap = [0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x65, 0x88];
        assert!(starts_keyframe(VideoCodec::H264, &stap));
        // STAP-A of non-key NALs (SEI + PPS)
        assert!(!starts_keyframe(VideoCodec::H264, &[0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x68, 0xce]));
        assert!(starts_keyframe(VideoCodec::H264, &[0x7c, 0x85])); // FU-A start of IDR
        assert!(!starts_keyframe(VideoCodec::H264, &[0x7c, 0x05])); // FU-A continuation
        assert!(!starts_keyframe(VideoCodec::H264, &[0x7c, 0x81])); // FU-A start of non-IDR
    }

    #[test]
    fn vp9_keyframes() {
        assert!(starts_keyframe(VideoCodec::Vp9, &[0x88])); // I=1, B=1, P=0
        assert!(!starts_keyframe(VideoCodec::Vp9, &[0xc8])); // inter-predicted
        assert!(!starts_keyframe(VideoCodec::Vp9, &[0x80])); // not the start of a frame
    }

    #[test]
    fn gate_drops_until_keyframe_and_retries_every_500ms() {
        let t0 = Instant::now();
        let mut gate = KeyframeGate::new(VideoCodec::Vp8);
        assert!(gate.is_waiting());
        let d = gate.on_packet(t0, 1000, VP8_GST_DELTA);
        assert_eq!(d, GateDecision { pass: false, request_keyframe: true, first_keyframe: false });
        let d = gate.on_packet(t0 + Duration::from_millis(100), 2000, VP8_GST_DELTA);
        assert!(!d.pass && !d.request_keyframe);
        assert!(!gate.on_tick(t0 + Duration::from_millis(400)));
        assert!(gate.on_tick(t0 + Duration::from_millis(500)));
        let d = gate.on_packet(t0 + Duration::from_millis(900), 3000, VP8_GST_DELTA);
        assert!(!d.pass && !d.request_keyframe);
        let d = gate.on_packet(t0 + Duration::from_millis(1000), 4000, VP8_GST_DELTA);
        assert!(!d.pass && d.request_keyframe);
        let d = gate.on_packet(t0 + Duration::from_millis(1100), 5000, VP8_GST_KEY);
        assert_eq!(d, GateDecision { pass: true, request_keyframe: false, first_keyframe: true });
        // The rest of the keyframe and later frames pass.
        assert!(gate.on_packet(t0 + Duration::from_millis(1101), 5000, VP8_CONTINUATION).pass);
        assert!(gate.on_packet(t0 + Duration::from_millis(1130), 6000, VP8_GST_DELTA).pass);
        assert!(!gate.is_waiting());
        assert!(!gate.on_tick(t0 + Duration::from_secs(5)));
        assert_eq!(gate.keyframes_seen(), 1);
    }

    #[test]
    fn gate_restarts_on_a_new_source_and_coalesces_pipeline_requests() {
        let t0 = Instant::now();
        let mut gate = KeyframeGate::new(VideoCodec::H264);
        assert!(gate.on_packet(t0, 10, &[0x65]).first_keyframe);
        assert!(gate.on_pipeline_request(t0 + Duration::from_millis(300)));
        assert!(!gate.on_pipeline_request(t0 + Duration::from_millis(400)));
        assert!(gate.on_pipeline_request(t0 + Duration::from_millis(600)));
        assert!(gate.restart(t0 + Duration::from_secs(1)));
        assert!(!gate.on_packet(t0 + Duration::from_millis(1010), 20, &[0x41]).pass);
        let d = gate.on_packet(t0 + Duration::from_millis(1020), 30, &[0x78, 0x00, 0x01, 0x67, 0x00, 0x01, 0x68]);
        assert!(d.pass && d.first_keyframe);
        // The same keyframe split over two packets counts once.
        gate.on_packet(t0 + Duration::from_millis(1021), 30, &[0x65]);
        assert_eq!(gate.keyframes_seen(), 2);
    }

    #[test]
    fn unknown_codecs_pass_through() {
        let mut gate = KeyframeGate::new(VideoCodec::Other);
        assert!(gate.on_packet(Instant::now(), 0, &[1, 2, 3]).pass);
        assert!(!gate.is_waiting());
        assert!(!gate.restart(Instant::now()));
    }
}
