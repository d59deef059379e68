//! Process-wide allocator settings measured on the append path (benchmarks.md, "Allocator").
//!
//! Records are allocated by the threads that decode them (callers, the daemon's request
//! workers) and freed by the shard writers once published. With glibc's fast bins, each of
//! those frees leaves a small chunk in the allocating thread's arena, unmerged, until a later
//! large allocation merges them all at once: after a million records freed that took one
//! append 50–100 ms on the development VM (operations.md, "Starting"). Without fast bins the
//! chunks are merged as they are freed.

// The one call into the C library's allocator (`mallopt`).
#![allow(unsafe_code)]

/// Turns glibc's fast bins off for the whole process (`mallopt(M_MXFAST, 0)`, what
/// `GLIBC_TUNABLES=glibc.malloc.mxfast=0` does at start). Call it before starting threads, as
/// the daemon does; an embedder chooses for its own process. Returns whether it was applied:
/// `false` with another C library, where there is nothing to turn off.
pub fn disable_malloc_fast_bins() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes the allocator's parameters; M_MXFAST 0 is a documented
        // value (glibc's malloc(3)) and is honoured at any time.
        unsafe { libc::mallopt(libc::M_MXFAST, 0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_it_and_allocation_goes_on() {
        assert!(disable_malloc_fast_bins(), "mallopt(M_MXFAST, 0) refused");
        // Small chunks freed by another thread, then a large allocation: the pattern the
        // setting is for; nothing may break.
        let small: Vec<Box<[u8; 48]>> = (0..10_000).map(|i| Box::new([i as u8; 48])).collect();
        std::thread::spawn(move || drop(small)).join().unwrap();
        let big = vec![7u8; 1 << 20];
        assert_eq!(big.iter().map(|&b| u64::from(b)).sum::<u64>(), 7 << 20);
    }
}
