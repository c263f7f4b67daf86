//! The bytes of a received RTP packet as a pipeline gets them: its stream
//! identity (SSRC, payload type) and continuity (sequence number, timestamp)
//! replaced, written in one allocation with one copy of the payload.
//!
//! This module owns that serialisation. It writes the 12-byte fixed header,
//! the CSRC list and the payload, and leaves out what no depayloader of ours
//! reads: header extensions (the appsrc caps name none) and padding (already
//! stripped from the payload when the packet was parsed). Compared with
//! setting the header fields and calling `Marshal::marshal`, it skips
//! re-encoding the extensions and the size computation that goes with them.

use bytes::{BufMut, Bytes, BytesMut};
use rtc::rtp::packet::Packet;

/// RTP version 2, in the top bits of the first header byte.
const VERSION: u8 = 2 << 6;
/// The fixed part of an RTP header (RFC 3550 §5.1).
const FIXED_HEADER_LEN: usize = 12;
/// At most 15 CSRCs fit the 4-bit count.
const MAX_CSRCS: usize = 15;

/// The header fields the gateway replaces in every packet it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewHeader {
    pub ssrc: u32,
    pub payload_type: u8,
    pub sequence_number: u16,
    pub timestamp: u32,
}

/// `packet` serialised with `new`'s SSRC, payload type, sequence number and
/// timestamp; its marker bit, CSRCs and payload kept; no extensions, no padding.
pub fn rewrite(packet: &Packet, new: NewHeader) -> Bytes {
    let csrcs = &packet.header.csrc[..packet.header.csrc.len().min(MAX_CSRCS)];
    let mut out = BytesMut::with_capacity(FIXED_HEADER_LEN + 4 * csrcs.len() + packet.payload.len());
    out.put_u8(VERSION | csrcs.len() as u8);
    out.put_u8(((packet.header.marker as u8) << 7) | (new.payload_type & 0x7f));
    out.put_u16(new.sequence_number);
    out.put_u32(new.timestamp);
    out.put_u32(new.ssrc);
    for csrc in csrcs {
        out.put_u32(*csrc);
    }
    out.put_slice(&packet.payload);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::header::{Extension, Header};
    use rtc::shared::marshal::{Marshal, Unmarshal};

    fn received(extensions: Vec<Extension>, csrc: Vec<u32>, marker: bool, padding: bool) -> Packet {
        let header = Header {
            version: 2,
            padding,
            extension: !extensions.is_empty(),
            marker,
            payload_type: 111,
            sequence_number: 40_000,
            timestamp: 3_000_000_000,
            ssrc: 0xdead_beef,
            csrc,
            extension_profile: if extensions.is_empty() { 0 } else { 0xBEDE },
            extensions,
            ..Default::default()
        };
        // Serialise and parse again, as webrtc-rs hands it to us.
        let wire =
            Packet { header, payload: Bytes::from_static(&[0x90, 0x80, 0x00, 1, 2, 3, 4, 5]) }.marshal().unwrap();
        Packet::unmarshal(&mut wire.freeze()).unwrap()
    }

    const NEW: NewHeader = NewHeader { ssrc: 1, payload_type: 96, sequence_number: 65_535, timestamp: 7 };

    /// What setting the fields and calling `marshal` produces, without extensions.
    fn marshalled_without_extensions(packet: &Packet) -> Bytes {
        let mut p = packet.clone();
        p.header.ssrc = NEW.ssrc;
        p.header.payload_type = NEW.payload_type;
        p.header.sequence_number = NEW.sequence_number;
        p.header.timestamp = NEW.timestamp;
        p.header.extension = false;
        p.header.extensions.clear();
        p.header.extension_profile = 0;
        p.header.padding = false;
        p.marshal().unwrap().freeze()
    }

    #[test]
    fn matches_marshal_for_a_plain_packet() {
        let packet = received(vec![], vec![], true, false);
        assert_eq!(rewrite(&packet, NEW), marshalled_without_extensions(&packet));
    }

    #[test]
    fn keeps_marker_csrcs_and_payload_and_drops_extensions_and_padding() {
        let ext = vec![Extension { id: 1, payload: Bytes::from_static(&[0xaa, 0xbb]) }];
        for marker in [false, true] {
            let packet = received(ext.clone(), vec![10, 20, 30], marker, true);
            let bytes = rewrite(&packet, NEW);
            assert_eq!(bytes, marshalled_without_extensions(&packet));
            let parsed = Packet::unmarshal(&mut bytes.clone()).unwrap();
            assert_eq!(parsed.header.version, 2);
            assert_eq!(parsed.header.marker, marker);
            assert_eq!(parsed.header.payload_type, NEW.payload_type);
            assert_eq!(parsed.header.sequence_number, NEW.sequence_number);
            assert_eq!(parsed.header.timestamp, NEW.timestamp);
            assert_eq!(parsed.header.ssrc, NEW.ssrc);
            assert_eq!(parsed.header.csrc, vec![10, 20, 30]);
            assert!(!parsed.header.extension && !parsed.header.padding);
            assert_eq!(parsed.payload, packet.payload);
            assert_eq!(bytes.len(), 12 + 12 + packet.payload.len());
        }
    }

    #[test]
    fn a_payload_type_above_127_cannot_set_the_marker_bit() {
        let packet = received(vec![], vec![], false, false);
        let bytes = rewrite(&packet, NewHeader { payload_type: 0xff, ..NEW });
        assert_eq!(bytes[1], 0x7f);
    }
}
