//! Random identifiers (stream and track ids, SSRCs): unpredictable enough for
//! ids that only need to be unique, without a random-number crate.

use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// 64 random bits (std's per-instance SipHash keys, mixed with the clock).
pub fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

/// A 16-hex-digit id, e.g. for a published stream.
pub fn short_id() -> String {
    format!("{:016x}", random_u64())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_differ() {
        assert_ne!(super::short_id(), super::short_id());
        assert_eq!(super::short_id().len(), 16);
    }
}
