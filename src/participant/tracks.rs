//! Media tasks of a peer session: reading a received track (RTP to its
//! consumer, PLIs to its sender) and feeding a published track into one peer
//! connection (SSRC and negotiated payload type rewritten, keyframe requests
//! passed back to the source).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::rtp_transceiver::RtpSender;

use super::events::{ReceivedTrack, RtpPacket};
use super::session::Internal;
use crate::metrics::ParticipantMetrics;

pub(super) fn rand_ssrc() -> u32 {
    (crate::ids::random_u64() as u32).max(1)
}

/// While packets flow, a track's reader takes what webrtc-rs has queued for
/// it on this period instead of waking for every packet. The ticks are on one
/// grid for the whole process, so every reader (and anything else on the grid)
/// wakes in the same turn of the runtime. The consumer reads every 20 ms
/// while packets flow, so this adds at most one period of latency.
pub const READ_EVERY: Duration = Duration::from_millis(20);

/// The first tick of the process-wide grid of `every` strictly after `now`.
pub fn next_tick(now: Instant, every: Duration) -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| now);
    let every_ns = every.as_nanos().max(1);
    let since = now.saturating_duration_since(epoch).as_nanos();
    let ticks = since / every_ns + 1;
    epoch + Duration::from_nanos((ticks * every_ns) as u64)
}

/// Read one remote track until it ends or is cancelled: RTP to the consumer,
/// PLIs to the sender. The track is handed to the session (and so to the
/// consumer) with its first packet, when its payload type is known. The first
/// packet after a pause is passed on at once; while packets keep coming they
/// are read in batches every [`READ_EVERY`].
pub(super) async fn read_track(
    track: Arc<dyn TrackRemote>,
    pending: Option<ReceivedTrack>,
    packets: mpsc::Sender<RtpPacket>,
    mut pli_requests: mpsc::UnboundedReceiver<()>,
    cancel: tokio_util::sync::CancellationToken,
    session: mpsc::UnboundedSender<Internal>,
    metrics: ParticipantMetrics,
) {
    let Some(info) = pending.as_ref() else { return };
    let kind = info.kind.as_str();
    let (stream_id, track_id) = (info.stream_id.clone(), info.track_id.clone());
    let mut reader = Reader {
        ssrc: info.ssrc,
        pending,
        packets,
        session,
        // Resolved once: a label lookup per packet costs a hash and a lock.
        packets_total: metrics.rtp_packets_total.with_label_values(&[kind]),
        bytes_total: metrics.rtp_bytes_total.with_label_values(&[kind]),
        dropped_total: metrics.rtp_dropped_total.with_label_values(&[kind]),
    };
    let mut flowing = false;
    loop {
        if flowing {
            // Let packets queue up in webrtc-rs until the next tick, then take them all.
            let tick = tokio::time::Instant::from_std(next_tick(Instant::now(), READ_EVERY));
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(()) = pli_requests.recv() => {
                    send_pli(&track, &mut pli_requests, reader.ssrc, &metrics).await;
                    continue;
                }
                _ = tokio::time::sleep_until(tick) => {}
            }
            let mut taken = 0;
            loop {
                match track.poll().now_or_never() {
                    Some(ev) => {
                        if !reader.on_event(ev) {
                            return reader.gone(stream_id, track_id);
                        }
                        taken += 1;
                    }
                    None => break,
                }
            }
            // Nothing came during a whole period: wait for the next packet instead.
            flowing = taken > 0;
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(()) = pli_requests.recv() => send_pli(&track, &mut pli_requests, reader.ssrc, &metrics).await,
            ev = track.poll() => {
                if !reader.on_event(ev) {
                    break;
                }
                flowing = true;
            }
        }
    }
    reader.gone(stream_id, track_id);
}

/// Coalesce a burst of keyframe requests into one PLI to the sender.
async fn send_pli(
    track: &Arc<dyn TrackRemote>,
    requests: &mut mpsc::UnboundedReceiver<()>,
    ssrc: u32,
    metrics: &ParticipantMetrics,
) {
    while requests.try_recv().is_ok() {}
    let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc };
    if track.write_rtcp(vec![Box::new(pli)]).await.is_ok() {
        metrics.plis_sent_total.inc();
    }
}

/// What [`read_track`] does with each event of its track.
struct Reader {
    ssrc: u32,
    pending: Option<ReceivedTrack>,
    packets: mpsc::Sender<RtpPacket>,
    session: mpsc::UnboundedSender<Internal>,
    packets_total: prometheus::IntCounter,
    bytes_total: prometheus::IntCounter,
    dropped_total: prometheus::IntCounter,
}

impl Reader {
    /// Pass a packet on; false when the track (or the session) is gone.
    fn on_event(&mut self, ev: Option<TrackRemoteEvent>) -> bool {
        match ev {
            Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                self.packets_total.inc();
                self.bytes_total.inc_by(packet.payload.len() as u64);
                self.ssrc = packet.header.ssrc;
                if let Some(mut ready) = self.pending.take() {
                    ready.codec.payload_type = packet.header.payload_type;
                    ready.ssrc = self.ssrc;
                    if self.session.send(Internal::TrackReady(Box::new(ready))).is_err() {
                        return false;
                    }
                }
                if self.packets.try_send(packet).is_err() {
                    self.dropped_total.inc();
                }
                true
            }
            Some(TrackRemoteEvent::OnEnded) | None => false,
            Some(_) => true,
        }
    }

    fn gone(self, stream_id: String, track_id: String) {
        let _ = self.session.send(Internal::TrackGone { stream_id, track_id });
    }
}

/// Copy a published track's packets to one peer connection, with this
/// connection's SSRC and negotiated payload type; pass keyframe requests back.
pub(super) async fn forward_local_track(
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    mime_type: String,
    ssrc: u32,
    mut packets: tokio::sync::broadcast::Receiver<RtpPacket>,
    keyframe_requests: mpsc::UnboundedSender<()>,
    connected: tokio::sync::watch::Receiver<bool>,
) {
    let rtcp_track = track.clone();
    let rtcp = tokio::spawn(async move {
        while let Some(TrackLocalEvent::OnRtcpPacket(pkts)) = rtcp_track.poll().await {
            if pkts.iter().any(|p| p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>()) {
                let _ = keyframe_requests.send(());
            }
        }
    });
    let mut payload_type: Option<u8> = None;
    loop {
        let mut packet = match packets.recv().await {
            Ok(p) => p,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!(skipped = n, "local track forwarder lagged");
                continue;
            }
            Err(_) => break,
        };
        if !*connected.borrow() {
            continue;
        }
        if payload_type.is_none() {
            payload_type = negotiated_payload_type(&sender, &mime_type).await;
        }
        let Some(pt) = payload_type else { continue };
        packet.header.ssrc = ssrc;
        packet.header.payload_type = pt;
        if track.write_rtp(packet).await.is_err() {
            // Not bound yet (before negotiation completes): try the payload type again later.
            payload_type = None;
        }
    }
    rtcp.abort();
}

async fn negotiated_payload_type(sender: &Arc<dyn RtpSender>, mime_type: &str) -> Option<u8> {
    let params = sender.get_parameters().await.ok()?;
    params
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime_type))
        .map(|c| c.payload_type)
}

/// A remote track that went inactive may come back: webrtc-rs keys remote
/// tracks by track id, so a peer that removes a track and adds it again (a
/// new transceiver, same track id) sends its packets to the old track object
/// without announcing it again. Its first packet makes it a new track for us.
pub(super) async fn watch_for_reuse(track: Arc<dyn TrackRemote>, internal: mpsc::UnboundedSender<Internal>) {
    loop {
        match track.poll().await {
            Some(TrackRemoteEvent::OnRtpPacket(_)) => {
                let _ = internal.send(Internal::RemoteTrack(track));
                return;
            }
            Some(TrackRemoteEvent::OnEnded) | None => return,
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_on_one_grid_after_now() {
        let every = Duration::from_millis(20);
        let start = Instant::now();
        let first = next_tick(start, every);
        assert!(first > start && first - start <= every);
        // Any instant before a tick gets that tick; the tick itself gets the next one.
        for offset_ms in [0, 1, 7, 19] {
            let now = first - every + Duration::from_millis(offset_ms);
            if now > start {
                assert_eq!(next_tick(now, every), first, "{offset_ms} ms into the period");
            }
        }
        assert_eq!(next_tick(first, every), first + every);
        assert_eq!(next_tick(first + every * 3 + Duration::from_micros(1), every), first + every * 4);
    }
}
