//! Per-rule rate limiting: a token bucket per key (rule id) and a summary
//! of what it suppressed, so a burst cannot flood a SIEM yet nothing
//! disappears without a trace.
//!
//! ```
//! use vigil_outputs::ratelimit::{Decision, RateLimiter};
//! // 2 records at once, then one per second
//! let mut rl = RateLimiter::new(2, 1.0);
//! let s = 1_000_000_000u64;
//! assert_eq!(rl.check("r1", 0), Decision::Pass(None));
//! assert_eq!(rl.check("r1", 1), Decision::Pass(None));
//! assert_eq!(rl.check("r1", 2), Decision::Suppress);
//! assert_eq!(rl.check("r1", 3), Decision::Suppress);
//! // a second later a token is back: the record passes with the summary
//! let Decision::Pass(Some(sum)) = rl.check("r1", s) else { panic!() };
//! assert_eq!((sum.count, sum.first_ns, sum.last_ns), (2, 2, 3));
//! ```

use std::collections::HashMap;

/// What was suppressed for one key since its last summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppressed {
    /// The key (rule id).
    pub key: String,
    /// Records suppressed.
    pub count: u64,
    /// Time of the first one (ns since the epoch, as passed in).
    pub first_ns: u64,
    /// Time of the last one.
    pub last_ns: u64,
}

/// The verdict on one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Deliver it; if records of this key were suppressed before, deliver
    /// the summary first (the engine turns it into a record).
    Pass(Option<Suppressed>),
    /// Drop it (counted in the next summary).
    Suppress,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last_ns: u64,
    suppressed: u64,
    first_ns: u64,
    last_sup_ns: u64,
}

/// Token buckets keyed by rule id.
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per_sec: f64,
    buckets: HashMap<String, Bucket>,
}

impl RateLimiter {
    /// Up to `burst` records at once per key, refilled at `per_sec`
    /// records per second (`per_sec` <= 0: never refilled).
    pub fn new(burst: u32, per_sec: f64) -> RateLimiter {
        RateLimiter {
            burst: f64::from(burst.max(1)),
            per_sec: per_sec.max(0.0),
            buckets: HashMap::new(),
        }
    }

    fn refill(&self, b: &mut Bucket, now_ns: u64) {
        let dt = now_ns.saturating_sub(b.last_ns) as f64 / 1e9;
        b.tokens = (b.tokens + dt * self.per_sec).min(self.burst);
        b.last_ns = b.last_ns.max(now_ns);
    }

    /// Whether a record of `key` at `now_ns` passes.
    pub fn check(&mut self, key: &str, now_ns: u64) -> Decision {
        let burst = self.burst;
        if !self.buckets.contains_key(key) {
            self.buckets.insert(
                key.to_string(),
                Bucket {
                    tokens: burst,
                    last_ns: now_ns,
                    suppressed: 0,
                    first_ns: 0,
                    last_sup_ns: 0,
                },
            );
        }
        let mut b = self.buckets.remove(key).expect("inserted");
        self.refill(&mut b, now_ns);
        let d = if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Decision::Pass(take_summary(key, &mut b))
        } else {
            if b.suppressed == 0 {
                b.first_ns = now_ns;
            }
            b.suppressed += 1;
            b.last_sup_ns = now_ns;
            Decision::Suppress
        };
        self.buckets.insert(key.to_string(), b);
        d
    }

    /// Summaries of keys whose bucket has refilled (at least one token)
    /// while records were suppressed and no new record came to carry the
    /// summary. Call it periodically (each second); it also forgets idle
    /// full buckets so the map stays small.
    pub fn sweep(&mut self, now_ns: u64) -> Vec<Suppressed> {
        let mut out = Vec::new();
        let (burst, per_sec) = (self.burst, self.per_sec);
        self.buckets.retain(|key, b| {
            let dt = now_ns.saturating_sub(b.last_ns) as f64 / 1e9;
            b.tokens = (b.tokens + dt * per_sec).min(burst);
            b.last_ns = b.last_ns.max(now_ns);
            if b.suppressed > 0 && b.tokens >= 1.0 {
                out.extend(take_summary(key, b));
            }
            !(b.suppressed == 0 && b.tokens >= burst)
        });
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

fn take_summary(key: &str, b: &mut Bucket) -> Option<Suppressed> {
    if b.suppressed == 0 {
        return None;
    }
    let s = Suppressed {
        key: key.to_string(),
        count: b.suppressed,
        first_ns: b.first_ns,
        last_ns: b.last_sup_ns,
    };
    b.suppressed = 0;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn burst_then_rate_and_exact_counts() {
        let mut rl = RateLimiter::new(5, 10.0);
        let mut passed = 0;
        let mut summarized = 0;
        // 1000 records over 1 s (one per ms): 5 burst + 10/s refill
        for i in 0..1000u64 {
            match rl.check("flood", i * S / 1000) {
                Decision::Pass(s) => {
                    passed += 1;
                    summarized += s.map_or(0, |s| s.count);
                }
                Decision::Suppress => {}
            }
        }
        summarized += rl.sweep(3 * S).iter().map(|s| s.count).sum::<u64>();
        assert!((14..=16).contains(&passed), "passed {passed}");
        assert_eq!(
            passed + summarized,
            1000,
            "every record passed or was summarized"
        );
        // other keys are independent
        assert_eq!(rl.check("quiet", 0), Decision::Pass(None));
    }

    #[test]
    fn sweep_reports_after_refill_and_forgets_idle() {
        let mut rl = RateLimiter::new(1, 1.0);
        assert_eq!(rl.check("a", 0), Decision::Pass(None));
        assert_eq!(rl.check("a", 10), Decision::Suppress);
        assert_eq!(rl.check("a", 20), Decision::Suppress);
        assert!(rl.sweep(S / 2).is_empty(), "no token yet");
        let s = rl.sweep(2 * S);
        assert_eq!(
            s,
            vec![Suppressed {
                key: "a".into(),
                count: 2,
                first_ns: 10,
                last_ns: 20
            }]
        );
        assert!(rl.sweep(3 * S).is_empty());
        assert!(rl.is_empty(), "idle full bucket forgotten");
    }
}
