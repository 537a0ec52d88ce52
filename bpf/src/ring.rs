//! Async ring-buffer consumer.
//!
//! The kernel side batches wakeups (`BPF_RB_NO_WAKEUP` until
//! `cfg_wakeup_bytes` are pending), so the reader also drains on a timer:
//! latency is bounded by the drain interval at low rates, and at high rates
//! the forced wakeups keep the buffer from filling.

use aya::maps::{MapData, RingBuf};
use std::io;
use std::time::Duration;
use tokio::io::{Interest, unix::AsyncFd};
use tokio::time::{Interval, MissedTickBehavior};

/// Reads records from the sensors' ring buffer.
pub struct RingReader {
    afd: AsyncFd<RingBuf<MapData>>,
    tick: Interval,
}

impl RingReader {
    /// Wraps the ring buffer; `drain_interval` bounds delivery latency when
    /// wakeups are batched. Must be called inside a tokio runtime.
    pub fn new(ring: RingBuf<MapData>, drain_interval: Duration) -> io::Result<RingReader> {
        // SAFETY: the RingBuf owns its map fd, and the AsyncFd owns the
        // RingBuf, so the fd outlives the registration.
        let afd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }?;
        let mut tick = tokio::time::interval(drain_interval.max(Duration::from_micros(100)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(RingReader { afd, tick })
    }

    /// Waits until the kernel signals data or the drain timer fires, then
    /// hands the available records to `f`, at most `MAX_BATCH` (8192) per call.
    /// Returns how many were read.
    ///
    /// The bound matters under a flood: producers refill the buffer as fast
    /// as it is read, and an unbounded drain never returned, so the caller's
    /// other work (drop reports, metrics, output flushes, signals) starved
    /// for as long as the flood lasted. When the bound is hit the fd stays
    /// marked readable, so the next call continues at once.
    pub async fn read_batch(&mut self, mut f: impl FnMut(&[u8])) -> io::Result<usize> {
        tokio::select! {
            r = self.afd.readable_mut() => {
                let mut guard = r?;
                let n = drain_ring(guard.get_inner_mut(), &mut f, MAX_BATCH);
                if n == MAX_BATCH {
                    return Ok(n);
                }
                guard.clear_ready();
                // A record may have landed between the drain and clear_ready;
                // drain again so it does not wait for the next wakeup.
                Ok(n + drain_ring(self.afd.get_mut(), &mut f, MAX_BATCH - n))
            }
            _ = self.tick.tick() => Ok(drain_ring(self.afd.get_mut(), &mut f, MAX_BATCH)),
        }
    }

    /// Reads whatever is available now, without waiting (no bound: for the
    /// final drain, once the sensors stopped emitting).
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        drain_ring(self.afd.get_mut(), &mut f, usize::MAX)
    }
}

/// Most records `RingReader::read_batch` hands over per call (a few
/// milliseconds of work at full speed).
pub const MAX_BATCH: usize = 8192;

fn drain_ring(rb: &mut RingBuf<MapData>, f: &mut impl FnMut(&[u8]), max: usize) -> usize {
    let mut n = 0;
    while n < max {
        let Some(item) = rb.next() else { break };
        f(&item);
        n += 1;
    }
    n
}
