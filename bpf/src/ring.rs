//! Async consumer of the two ring buffers (priority and bulk).
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

/// Reads records from the sensors' two ring buffers: `priority` (alert
/// candidates and process lifecycle) and `events` (bulk).
pub struct RingReader {
    prio: AsyncFd<RingBuf<MapData>>,
    bulk: AsyncFd<RingBuf<MapData>>,
    tick: Interval,
    /// The previous batch hit its bound: records are waiting, read at once.
    more: bool,
}

impl RingReader {
    /// Wraps the priority and bulk ring buffers; `drain_interval` bounds
    /// delivery latency when wakeups are batched. Must be called inside a
    /// tokio runtime.
    pub fn new(
        prio: RingBuf<MapData>,
        bulk: RingBuf<MapData>,
        drain_interval: Duration,
    ) -> io::Result<RingReader> {
        // SAFETY: each RingBuf owns its map fd, and its AsyncFd owns the
        // RingBuf, so the fd outlives the registration.
        let prio = unsafe { AsyncFd::register_with_interest(prio, Interest::READABLE) }?;
        let bulk = unsafe { AsyncFd::register_with_interest(bulk, Interest::READABLE) }?;
        let mut tick = tokio::time::interval(drain_interval.max(Duration::from_micros(100)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(RingReader {
            prio,
            bulk,
            tick,
            more: false,
        })
    }

    /// Waits until the kernel signals data on either ring or the drain
    /// timer fires, then hands the available records to `f`, at most
    /// `MAX_BATCH` (8192) per call. Returns how many were read.
    ///
    /// The priority ring is read first, up to `MAX_BATCH - BULK_SHARE`
    /// records, then the bulk ring with what is left of the bound (at least
    /// `BULK_SHARE`), then the priority ring again: alert candidates never
    /// wait behind a flood, and a flood of priority records cannot starve
    /// the bulk ring either.
    ///
    /// The bound matters under a flood: producers refill the buffers as fast
    /// as they are read, and an unbounded drain never returned, so the
    /// caller's other work (drop reports, metrics, output flushes, signals)
    /// starved for as long as the flood lasted. When the bound is hit the
    /// next call reads again at once, without waiting.
    pub async fn read_batch(&mut self, mut f: impl FnMut(&[u8])) -> io::Result<usize> {
        if !self.more {
            // Readiness is cleared before the drain: a record landing after
            // it marks the fd ready again, so none waits for the timer.
            tokio::select! {
                r = self.prio.readable_mut() => r?.clear_ready(),
                r = self.bulk.readable_mut() => r?.clear_ready(),
                _ = self.tick.tick() => {}
            }
        }
        let n = self.drain_fair(&mut f, MAX_BATCH);
        self.more = n == MAX_BATCH;
        Ok(n)
    }

    fn drain_fair(&mut self, f: &mut impl FnMut(&[u8]), max: usize) -> usize {
        let mut n = drain_ring(self.prio.get_mut(), f, max.saturating_sub(BULK_SHARE));
        n += drain_ring(self.bulk.get_mut(), f, max - n);
        n + drain_ring(self.prio.get_mut(), f, max - n)
    }

    /// Reads whatever is available now on both rings, priority first,
    /// without waiting (no bound: for the final drain, once the sensors
    /// stopped emitting).
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        drain_ring(self.prio.get_mut(), &mut f, usize::MAX)
            + drain_ring(self.bulk.get_mut(), &mut f, usize::MAX)
    }
}

/// Most records `RingReader::read_batch` hands over per call (a few
/// milliseconds of work at full speed).
pub const MAX_BATCH: usize = 8192;

/// Records of each batch kept for the bulk ring when it has them.
pub const BULK_SHARE: usize = MAX_BATCH / 4;

fn drain_ring(rb: &mut RingBuf<MapData>, f: &mut impl FnMut(&[u8]), max: usize) -> usize {
    let mut n = 0;
    while n < max {
        let Some(item) = rb.next() else { break };
        f(&item);
        n += 1;
    }
    n
}
