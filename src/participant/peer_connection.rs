//! How every peer connection of the participant is built: codecs,
//! interceptors (with a forwarder that lets receivers' keyframe requests reach
//! our local tracks and senders' reports our received ones), and the settings the Chrome traps in STACK.md call for.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize;
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceServer, Registry, SettingEngineBuilder, register_default_interceptors,
};

/// Network settings of the participant's peer connections.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Local address to bind the UDP socket to (`0.0.0.0` for every interface).
    pub udp_bind: IpAddr,
    /// STUN/TURN URLs.
    pub ice_servers: Vec<String>,
}

pub(super) async fn build_peer_connection(
    net: &NetConfig,
    handler: impl PeerConnectionEventHandler,
) -> Result<Arc<dyn PeerConnection>, webrtc::error::Error> {
    let mut media = MediaEngine::default();
    media.register_default_codecs()?;
    let registry = register_default_interceptors(Registry::new(), &mut media)?;
    // Lets receivers' PLI/FIR reach our local tracks (the application).
    let registry = registry.with(Slot::from(14_000), KeyframeRequestForwarder::default());
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_answering_dtls_role(RTCDtlsRole::Server)
        .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(256 * 1024))
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        .build();
    let ice_servers = if net.ice_servers.is_empty() {
        vec![]
    } else {
        vec![RTCIceServer { urls: net.ice_servers.clone(), ..Default::default() }]
    };
    let config = RTCConfigurationBuilder::new().with_ice_servers(ice_servers).build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(handler))
        .with_udp_addrs(vec![SocketAddr::new(net.udp_bind, 0)])
        .build()
        .await?;
    Ok(Arc::new(pc))
}

/// Marks inbound keyframe requests (PLI, FIR) and sender reports for
/// delivery to the application (local tracks answer the first, received
/// tracks' recordings are placed on the sender's clock by the second); all
/// other inbound RTCP stays with the interceptors that consume it.
#[derive(Default)]
struct KeyframeRequestForwarder {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestForwarder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let keep: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| {
                    let p = p.as_any();
                    p.is::<PictureLossIndication>() || p.is::<FullIntraRequest>() || p.is::<SenderReport>()
                })
                .cloned()
                .collect();
            if keep.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(keep);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for KeyframeRequestForwarder {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
