//! Prometheus metrics that every connection's writer updates on the delivery path, without a
//! lock or a cache line shared between cores.
//!
//! `prometheus-client`'s `Histogram` keeps its counts behind one mutex, so a histogram observed
//! for every frame delivered puts a lock shared by every connection on the delivery path (a
//! fan-out to 10,000 members took it 10,000 times per message); its `Counter` is one atomic,
//! one cache line written by every core. These keep their counts in atomics, in a few shards
//! padded apart; a thread always adds to the same shard, so two cores do not write the same
//! line. A scrape adds the shards up. They encode exactly as `prometheus-client`'s own types
//! do (tests compare them).

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Shards: more than the cores this server is meant for, so threads rarely share one.
const SHARDS: usize = 8;
/// Buckets a histogram may have, the overflow bucket included.
const MAX_BUCKETS: usize = 24;

/// Cloneable: clones observe into the same counts (one is registered, others observe).
#[derive(Debug, Clone)]
pub struct Histogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Upper bounds, ascending; the overflow bucket (`+Inf`) follows them implicitly.
    bounds: Vec<f64>,
    shards: [Shard; SHARDS],
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    /// Observations per bucket (not cumulative); index `bounds.len()` is the overflow.
    counts: [AtomicU64; MAX_BUCKETS],
    /// The sum of the observations (the bits of an `f64`: seconds, like prometheus-client's;
    /// an integer count of nanoseconds would wrap within days under heavy fan-out).
    sum: AtomicU64,
}

impl Histogram {
    /// A histogram with these upper bounds (seconds). Like `prometheus-client`'s, non-finite
    /// bounds are dropped: the overflow bucket is always there.
    ///
    /// # Panics
    /// With more than 23 finite bounds, or bounds out of order: a programming error.
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let bounds: Vec<f64> = bounds.into_iter().filter(|b| b.is_finite()).collect();
        assert!(bounds.len() < MAX_BUCKETS, "too many histogram buckets");
        assert!(bounds.is_sorted(), "histogram bounds out of order");
        Self(Arc::new(Inner {
            bounds,
            shards: Default::default(),
        }))
    }

    /// Records one observation of `seconds` (not negative; durations are never NaN).
    pub fn observe(&self, seconds: f64) {
        let bucket = self.0.bounds.partition_point(|bound| *bound < seconds);
        let shard = &self.0.shards[shard_of_this_thread()];
        shard.counts[bucket].fetch_add(1, Ordering::Relaxed);
        // Only threads that share this shard race here (rarely): the loop is one pass.
        let _ = shard
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + seconds).to_bits())
            });
    }

    /// The sum, the count, and each bucket's upper bound with its (non-cumulative) count, as
    /// `prometheus-client`'s encoder takes them.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let inner = &self.0;
        let mut buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .map(|bound| (bound, 0))
            .collect();
        let mut sum = 0.0;
        for shard in &inner.shards {
            for (bucket, count) in buckets.iter_mut().zip(&shard.counts) {
                bucket.1 += count.load(Ordering::Relaxed);
            }
            sum += f64::from_bits(shard.sum.load(Ordering::Relaxed));
        }
        let count = buckets.iter().map(|(_, n)| n).sum();
        (sum, count, buckets)
    }
}

/// This thread's shard: handed out in turn as threads first observe.
fn shard_of_this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
    }
    SHARD.with(|shard| {
        shard.get().unwrap_or_else(|| {
            let picked = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            shard.set(Some(picked));
            picked
        })
    })
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A counter: `inc_by` is one `fetch_add` on this thread's shard.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<[PaddedCount; SHARDS]>);

#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedCount(AtomicU64);

impl Counter {
    pub fn inc_by(&self, n: u64) {
        self.0[shard_of_this_thread()]
            .0
            .fetch_add(n, Ordering::Relaxed);
    }

    /// The total so far.
    pub fn get(&self) -> u64 {
        self.0.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

impl TypedMetric for Counter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for Counter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter as TheirCounter;
    use prometheus_client::metrics::histogram::{Histogram as TheirHistogram, exponential_buckets};
    use prometheus_client::registry::Registry;

    fn text(register: impl FnOnce(&mut Registry)) -> String {
        let mut registry = Registry::default();
        register(&mut registry);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        out
    }

    /// Same bounds, same observations (bounds themselves included: a bound is inclusive):
    /// the same text as `prometheus-client`'s own histogram.
    #[test]
    fn it_encodes_as_prometheus_clients_histogram_does() {
        let bounds = || exponential_buckets(0.000_05, 2.0, 16);
        let ours = Histogram::new(bounds());
        let theirs = TheirHistogram::new(bounds());
        for v in [
            0.0, 0.000_05, 0.000_051, 0.003, 0.1, 0.25, 1.0, 1.638_4, 2.0, 60.0,
        ] {
            ours.observe(v);
            theirs.observe(v);
        }
        let ours = text(|r| r.register("delivery_seconds", "Latency", ours));
        let theirs = text(|r| r.register("delivery_seconds", "Latency", theirs));
        assert_eq!(ours, theirs);
        assert!(ours.contains("delivery_seconds_count 10\n"), "{ours}");
        assert!(
            ours.contains("delivery_seconds_bucket{le=\"0.0001\"} 3\n"),
            "{ours}"
        );
        assert!(
            ours.contains("delivery_seconds_bucket{le=\"+Inf\"} 10\n"),
            "{ours}"
        );
    }

    #[test]
    fn observations_from_many_threads_are_all_counted() {
        let histogram = Histogram::new([0.001, 0.01]);
        std::thread::scope(|s| {
            for t in 0..12 {
                let histogram = histogram.clone();
                s.spawn(move || {
                    for _ in 0..1_000 {
                        histogram.observe(if t % 2 == 0 { 0.000_5 } else { 0.5 });
                    }
                });
            }
        });
        let (sum, count, buckets) = histogram.snapshot();
        assert_eq!(count, 12_000);
        assert_eq!(
            buckets,
            vec![(0.001, 6_000), (0.01, 0), (f64::INFINITY, 6_000)]
        );
        assert!((sum - 3_003.0).abs() < 1e-6, "{sum}");
    }

    #[test]
    fn a_counter_adds_every_threads_increments_and_encodes_as_prometheus_clients_does() {
        let ours = Counter::default();
        std::thread::scope(|s| {
            for _ in 0..12 {
                let ours = ours.clone();
                s.spawn(move || {
                    for _ in 0..1_000 {
                        ours.inc_by(3);
                    }
                });
            }
        });
        assert_eq!(ours.get(), 36_000);
        let theirs: TheirCounter = TheirCounter::default();
        theirs.inc_by(36_000);
        let ours = text(|r| r.register("frames_out", "Frames", ours));
        let theirs = text(|r| r.register("frames_out", "Frames", theirs));
        assert_eq!(ours, theirs);
        assert!(ours.contains("frames_out_total 36000\n"), "{ours}");
    }
}
