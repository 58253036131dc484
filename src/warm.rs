//! Warming up at start-up what the first connection of a process would otherwise pay for, so
//! it does not land in the first flow's timing facts (ClientHello → ServerHello).
//!
//! Measured with `perf record -e cpu-clock` on the first connection:
//! - aws-lc seeds its random generator from CPU-jitter entropy on first use (tens of ms that
//!   the first handshake's key share paid);
//! - the allocator's first pages on a new thread are fresh memory the kernel zeroes on first
//!   touch (transparent huge pages: 2 MiB at a time).
//!
//! Every runtime thread does both once when it starts. Release build, `reverse` to nginx: the
//! first connection's ClientHello → ServerHello went from 37–57 ms to 0.25–0.32 ms (later
//! connections: 0.2–0.3 ms).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Warm the calling thread (the first call in a process also seeds the process-wide random
/// generator).
pub fn thread() {
    let mut bytes = [0u8; 32];
    // A failure here is the crypto library's to report when a handshake needs randomness.
    let _ = SystemRandom::new().fill(&mut bytes);
    touch_heap();
}

/// Allocate, write and free the sizes a handshake and a relay allocate, so this thread's heap
/// has its first pages mapped before a connection needs them.
fn touch_heap() {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for size in [32usize, 128, 512, 2048, 8192, 16 * 1024, 64 * 1024] {
        for _ in 0..16 {
            let mut v = vec![0u8; size];
            v[size - 1] = 1;
            kept.push(std::hint::black_box(v));
        }
    }
    drop(std::hint::black_box(kept));
}

#[cfg(test)]
mod tests {
    #[test]
    fn warming_a_thread_is_harmless_and_repeatable() {
        super::thread();
        super::thread();
        std::thread::spawn(super::thread).join().unwrap();
    }
}
