//! DataChannel naming rules shared by every rtc.io peer (PROTOCOL.md §5):
//! the SCTP stream id of a broadcast channel and the reserved event names.

/// Stream id of the negotiated ctrl channel `rtcio:ctrl`.
pub const CTRL_CHANNEL_ID: u16 = 0;

/// SCTP stream id of the broadcast channel `rtcio:ch:<name>`:
/// `fnv1a32(name) % 1023 + 1`, hashing the name's UTF-16 code units as
/// JavaScript's `charCodeAt` does.
pub fn broadcast_channel_id(name: &str) -> u16 {
    let mut hash: u32 = 0x811c_9dc5;
    for unit in name.encode_utf16() {
        hash ^= u32::from(unit);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % 1023 + 1) as u16
}

/// Event names a peer must never be allowed to deliver to the application.
pub fn is_reserved_event(name: &str) -> bool {
    name.starts_with("#rtcio:") || matches!(name, "peer-connect" | "peer-disconnect" | "track-added" | "track-removed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_match_the_protocol_check_values() {
        for (name, id) in
            [("chat", 721), ("file", 139), ("room:main", 84), ("whiteboard", 814), ("é-ü", 1013), ("😀", 480)]
        {
            assert_eq!(broadcast_channel_id(name), id, "{name}");
        }
    }

    #[test]
    fn reserved_names() {
        assert!(is_reserved_event("#rtcio:message"));
        assert!(is_reserved_event("peer-connect"));
        assert!(is_reserved_event("track-removed"));
        assert!(!is_reserved_event("chat"));
        assert!(!is_reserved_event("rtcio:message"));
    }
}
