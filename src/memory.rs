//! Handing freed heap memory back to the operating system.
//!
//! glibc's malloc keeps memory that was freed in its arenas for reuse and
//! returns only what sits at the top of a heap. After a burst of rooms (a
//! room flood: thousands of participants, each with its socket, peer
//! connection state and buffers, all freed again) almost none of it sits at
//! the top, so the process stayed at 4–5× its resident size with nothing
//! left running. `malloc_trim(0)` walks the arenas and releases every free
//! page (`MADV_DONTNEED`); the recorder calls it after room tasks end.
//! Measured in README, "Room floods". On other C libraries this does nothing.

/// Release the free pages of every malloc arena (blocking: call it off the async threads).
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        let before = resident_bytes();
        // SAFETY: malloc_trim only takes the arenas' own locks; it is safe to call from any thread at any time.
        let released = unsafe { libc::malloc_trim(0) } == 1;
        tracing::debug!(
            released,
            rss_before_mib = before.unwrap_or(0) / (1 << 20),
            rss_after_mib = resident_bytes().unwrap_or(0) / (1 << 20),
            took_ms = started.elapsed().as_secs_f64() * 1000.0,
            "handed freed heap memory back to the OS"
        );
    }
}

/// This process's resident set size, from `/proc/self/statm`.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_memory_goes_back_to_the_os() {
        // Many small blocks, freed all but every 64th (fragmentation, as a
        // flood leaves it), held on another thread so they land in a non-main arena.
        let grown = std::thread::spawn(|| {
            let mut blocks: Vec<Vec<u8>> = (0..200_000).map(|i| vec![(i % 251) as u8; 1024]).collect();
            let kept: Vec<Vec<u8>> = blocks.iter().step_by(64).cloned().collect();
            let peak = resident_bytes().unwrap();
            blocks.clear();
            blocks.shrink_to_fit();
            let held = resident_bytes().unwrap();
            release_freed_memory();
            let after = resident_bytes().unwrap();
            drop(kept);
            (peak, held, after)
        })
        .join()
        .unwrap();
        let (peak, held, after) = grown;
        // 200 MB were allocated; glibc keeps most of them after the free (fragmented), the trim hands them back.
        assert!(peak > 150 << 20, "peak {peak}");
        assert!(held > after + (100 << 20), "held {held}, after trim {after}");
    }

    #[test]
    fn resident_size_is_read() {
        assert!(resident_bytes().unwrap() > 1 << 20);
    }
}
