//! Media tasks of a peer session: reading a received track (RTP and the
//! sender's reports to its consumer, PLIs to its sender) and feeding a published track into one peer
//! connection (SSRC and negotiated payload type rewritten, keyframe requests
//! passed back to the source).

use std::sync::Arc;

use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::rtp_transceiver::RtpSender;

use super::events::{ReceivedTrack, RtpPacket, SenderReports};
use super::session_events::Internal;
use crate::metrics::ParticipantMetrics;

pub(super) fn rand_ssrc() -> u32 {
    (crate::ids::random_u64() as u32).max(1)
}

/// Read one remote track until it ends or is cancelled: RTP to the consumer,
/// PLIs to the sender. The track is handed to the session (and so to the
/// consumer) with its first packet, when its payload type is known.
pub(super) async fn read_track(
    track: Arc<dyn TrackRemote>,
    mut pending: Option<ReceivedTrack>,
    (packets, reports): (mpsc::Sender<RtpPacket>, tokio::sync::watch::Sender<SenderReports>),
    mut pli_requests: mpsc::UnboundedReceiver<()>,
    cancel: tokio_util::sync::CancellationToken,
    session: mpsc::UnboundedSender<Internal>,
    metrics: ParticipantMetrics,
) {
    let Some(info) = pending.as_ref() else { return };
    let kind = info.kind.as_str();
    let (stream_id, track_id, mut ssrc) = (info.stream_id.clone(), info.track_id.clone(), info.ssrc);
    // Resolved once: a label lookup per packet costs a hash and a lock.
    let packets_total = metrics.rtp_packets_total.with_label_values(&[kind]);
    let bytes_total = metrics.rtp_bytes_total.with_label_values(&[kind]);
    let dropped_total = metrics.rtp_dropped_total.with_label_values(&[kind]);
    let sender_reports_total = metrics.sender_reports_total.with_label_values(&[kind]);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(()) = pli_requests.recv() => {
                // Coalesce a burst of requests into one PLI.
                while pli_requests.try_recv().is_ok() {}
                let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc };
                if track.write_rtcp(vec![Box::new(pli)]).await.is_ok() {
                    metrics.plis_sent_total.inc();
                }
            }
            ev = track.poll() => match ev {
                Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                    packets_total.inc();
                    bytes_total.inc_by(packet.payload.len() as u64);
                    ssrc = packet.header.ssrc;
                    if let Some(mut ready) = pending.take() {
                        ready.codec.payload_type = packet.header.payload_type;
                        ready.ssrc = ssrc;
                        if session.send(Internal::TrackReady(Box::new(ready))).is_err() {
                            break;
                        }
                    }
                    if packets.try_send(packet).is_err() {
                        dropped_total.inc();
                    }
                }
                Some(TrackRemoteEvent::OnRtcpPacket(rtcp)) => {
                    // Sender reports of the track's source (the forwarder passes only those and PLI/FIR).
                    for sr in rtcp.iter().filter_map(|p| p.as_any().downcast_ref::<SenderReport>()) {
                        if sr.ssrc != ssrc {
                            continue;
                        }
                        let report = crate::media::sender_clock::SenderReport {
                            ssrc: sr.ssrc,
                            ntp_time: sr.ntp_time,
                            rtp_time: sr.rtp_time,
                            arrived: std::time::SystemTime::now(),
                        };
                        reports.send_modify(|r| {
                            r.latest = Some(report);
                            r.count += 1;
                        });
                        sender_reports_total.inc();
                    }
                }
                Some(TrackRemoteEvent::OnEnded) | None => break,
                Some(_) => {}
            }
        }
    }
    let _ = session.send(Internal::TrackGone { stream_id, track_id });
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
