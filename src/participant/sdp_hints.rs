//! SDP text helpers (pure): hints we add to the descriptions we send, and
//! what a received description says about a stream's tracks.
//!
//! Chrome starts sending video at ~300 kbit/s and raises it only as its
//! bandwidth estimate grows: a recording would begin at 320x240 and take
//! ~20 s to reach the camera's resolution. `x-google-start-bitrate` in the
//! fmtp of our video codecs (Chrome reads it from the remote description)
//! makes it start where a recording wants to be; the estimate still adapts
//! down on a poor link. Other browsers ignore unknown fmtp parameters.

/// Start bitrate we ask browsers for, kbit/s.
pub const START_BITRATE_KBPS: u32 = 1500;
const PARAM: &str = "x-google-start-bitrate";
const VIDEO_CODECS: [&str; 4] = ["VP8", "VP9", "H264", "AV1"];

/// `sdp` with `x-google-start-bitrate=<kbps>` on every VP8/VP9/H264/AV1 payload type.
pub fn with_start_bitrate(sdp: &str, kbps: u32) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = sdp.split(eol).collect();
    // Payload types of video codecs, per the rtpmap lines of video sections.
    let mut video_pts = Vec::new();
    let mut in_video = false;
    for line in &lines {
        if let Some(m) = line.strip_prefix("m=") {
            in_video = m.starts_with("video ");
        } else if in_video && let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let mut parts = rest.splitn(2, ' ');
            if let (Some(pt), Some(codec)) = (parts.next(), parts.next()) {
                let name = codec.split('/').next().unwrap_or("").to_ascii_uppercase();
                if VIDEO_CODECS.contains(&name.as_str()) {
                    video_pts.push(pt.to_string());
                }
            }
        }
    }
    let has_fmtp =
        |pt: &str| lines.iter().any(|l| l.strip_prefix("a=fmtp:").is_some_and(|r| r.split(' ').next() == Some(pt)));
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + video_pts.len());
    for line in &lines {
        if let Some(rest) = line.strip_prefix("a=fmtp:") {
            let pt = rest.split(' ').next().unwrap_or("");
            if video_pts.iter().any(|p| p == pt) && !line.contains(PARAM) {
                out.push(format!("{line};{PARAM}={kbps}"));
                continue;
            }
        }
        out.push(line.to_string());
        if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let pt = rest.split(' ').next().unwrap_or("");
            if video_pts.iter().any(|p| p == pt) && !has_fmtp(pt) {
                out.push(format!("a=fmtp:{pt} {PARAM}={kbps}"));
            }
        }
    }
    out.join(eol)
}

/// The media kinds (`audio`/`video`) a description says its sender sends
/// for a MediaStream: every m-section that is `sendonly`/`sendrecv` and
/// carries `a=msid:<stream id> ...` (or an `a=ssrc:... msid:<stream id>`).
pub fn sent_kinds_of_stream(sdp: &str, stream_id: &str) -> Vec<String> {
    let mut kinds = Vec::new();
    let mut section: Option<(String, bool, bool)> = None; // (kind, sends, has the stream)
    let mut finish = |section: &mut Option<(String, bool, bool)>| {
        if let Some((kind, sends, has_stream)) = section.take()
            && sends
            && has_stream
        {
            kinds.push(kind);
        }
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            finish(&mut section);
            let kind = m.split(' ').next().unwrap_or("").to_string();
            // Without a direction attribute a section is sendrecv.
            section = Some((kind, true, false));
        } else if let Some((_, sends, has_stream)) = section.as_mut() {
            match line {
                "a=sendonly" | "a=sendrecv" => *sends = true,
                "a=recvonly" | "a=inactive" => *sends = false,
                _ => {
                    let msid = line
                        .strip_prefix("a=msid:")
                        .or_else(|| line.strip_prefix("a=ssrc:").and_then(|r| r.split_once(" msid:").map(|(_, m)| m)));
                    if msid.and_then(|m| m.split(' ').next()) == Some(stream_id) {
                        *has_stream = true;
                    }
                }
            }
        }
    }
    finish(&mut section);
    kinds.retain(|k| k == "audio" || k == "video");
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 102\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

    #[test]
    fn video_codecs_get_the_start_bitrate_and_nothing_else_changes() {
        let out = with_start_bitrate(SDP, 1500);
        assert!(out.contains("a=rtpmap:96 VP8/90000\r\na=fmtp:96 x-google-start-bitrate=1500\r\n"), "{out}");
        assert!(out.contains("a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f;x-google-start-bitrate=1500\r\n"));
        assert!(out.contains("a=fmtp:97 apt=96\r\n"), "rtx untouched");
        assert!(out.contains("a=fmtp:111 minptime=10;useinbandfec=1\r\n"), "audio untouched");
        assert_eq!(with_start_bitrate(&out, 1500), out, "idempotent");
        assert!(out.ends_with("\r\n"));
    }

    #[test]
    fn data_only_descriptions_are_unchanged() {
        let sdp = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sctp-port:5000\r\n";
        assert_eq!(with_start_bitrate(sdp, 1500), sdp);
    }
}

#[cfg(test)]
mod stream_tests {
    use super::sent_kinds_of_stream;

    #[test]
    fn kinds_of_a_stream_come_from_its_sending_sections() {
        let sdp = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\na=msid:cam a1\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\na=msid:cam v1\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=inactive\r\na=msid:old v0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\na=ssrc:1234 msid:screen v2\r\n";
        assert_eq!(sent_kinds_of_stream(sdp, "cam"), vec!["audio", "video"]);
        assert_eq!(sent_kinds_of_stream(sdp, "screen"), vec!["video"]);
        assert!(sent_kinds_of_stream(sdp, "old").is_empty(), "inactive sections send nothing");
        assert!(sent_kinds_of_stream(sdp, "nope").is_empty());
    }
}
