//! Empirical CDFs of heat, the Strava post's normalisation: a pixel's level is the share of lit
//! pixels (of its tile, or of a neighbourhood of tiles) with less heat.
//!
//! A `Cdf` is the distinct lit values with, for each, how many pixels lie below it and at it. It
//! can be sampled down to a few breakpoints (denser toward the high end, where the interesting
//! heat is) and ranks are interpolated between them. Mixtures add the counts of several CDFs,
//! which is how a tile's neighbourhood CDF is made from the summaries of its neighbours.

use crate::encoding::stored::{compress, from_planes, inflate, to_planes};
use crate::error::{CoreError, CoreResult};

/// Distinct values `Cdf::of` keeps in a sorted table before it sorts the rest instead.
const FEW_VALUES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Step {
    value: f64,
    below: f64,
    at: f64,
}

/// An empirical CDF of lit (> 0) heat values, exact or sampled to breakpoints; the default is
/// empty (describes no pixels).
#[derive(Clone, Debug, Default)]
pub struct Cdf {
    /// Lit pixels described.
    n: f64,
    /// Ascending by value.
    steps: Vec<Step>,
    /// Made from values as this version reads them (counted here, or decoded from the form
    /// this version writes): only then may its values stand for a tile's counts
    /// ([`Cdf::exact_values`]). 0.1.0 summarised f64 sums, which now read as fixed-point ones.
    current: bool,
}

/// Two CDFs are equal when they describe the same pixels, whatever made them.
impl PartialEq for Cdf {
    fn eq(&self, other: &Cdf) -> bool {
        self.n == other.n && self.steps == other.steps
    }
}

const MAGIC: &[u8; 4] = b"VTCD";
/// [`Cdf::to_bytes`]: the plain form's words in byte planes, compressed.
const STORED_MAGIC: &[u8; 4] = b"VTCZ";
/// Steps a stored CDF may hold: a neighbourhood CDF keeps at most a few thousand; decoding
/// refuses more (bounded memory).
const MAX_STEPS: usize = 1 << 14;

impl Cdf {
    /// The exact CDF of the lit (> 0) values.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Cdf {
        // Tiles hold thousands of lit pixels but few distinct values (about 74 in a tile of
        // city activities): those are counted in a small sorted table; past FEW_VALUES the
        // rest are sorted once. Runs of equal values (along a path) count at once. Lit values
        // are positive: their bit patterns sort as the values do.
        let mut few: Vec<(u64, u64)> = Vec::new();
        let mut many: Vec<(u64, u64)> = Vec::new();
        let mut add = |bits: u64, n: u64| match few.binary_search_by_key(&bits, |e| e.0) {
            Ok(i) => few[i].1 += n,
            Err(i) if few.len() < FEW_VALUES => few.insert(i, (bits, n)),
            Err(_) => many.push((bits, n)),
        };
        let mut run = (0u64, 0u64);
        for bits in values.into_iter().filter(|&v| v > 0.0).map(f64::to_bits) {
            if bits == run.0 {
                run.1 += 1;
            } else {
                if run.1 > 0 {
                    add(run.0, run.1);
                }
                run = (bits, 1);
            }
        }
        if run.1 > 0 {
            add(run.0, run.1);
        }
        many.extend(few);
        many.sort_unstable();
        let mut counted: Vec<(u64, u64)> = Vec::with_capacity(many.len());
        for (bits, n) in many {
            match counted.last_mut() {
                Some(last) if last.0 == bits => last.1 += n,
                _ => counted.push((bits, n)),
            }
        }
        Cdf::of_counted(counted.into_iter().map(|(b, n)| (f64::from_bits(b), n)))
    }

    /// The exact CDF of distinct lit (> 0) values in ascending order, each with how many pixels
    /// hold it (as `of` would find them).
    pub fn of_counted(counted: impl IntoIterator<Item = (f64, u64)>) -> Cdf {
        let mut steps = Vec::new();
        let mut n = 0u64;
        for (value, at) in counted {
            debug_assert!(value > 0.0 && steps.last().is_none_or(|s: &Step| s.value < value));
            steps.push(Step {
                value,
                below: n as f64,
                at: at as f64,
            });
            n += at;
        }
        Cdf {
            n: n as f64,
            steps,
            current: true,
        }
    }

    /// The exact CDF of lit (> 0) values already in ascending order.
    pub fn of_sorted(lit: &[f64]) -> Cdf {
        debug_assert!(lit.windows(2).all(|w| w[0] <= w[1]) && lit.iter().all(|&v| v > 0.0));
        let mut steps = Vec::new();
        let mut i = 0;
        while i < lit.len() {
            let j = i + lit[i..].partition_point(|&v| v == lit[i]);
            steps.push(Step {
                value: lit[i],
                below: i as f64,
                at: (j - i) as f64,
            });
            i = j;
        }
        Cdf {
            n: lit.len() as f64,
            steps,
            current: true,
        }
    }

    /// A CDF of no pixels.
    pub const fn empty() -> Cdf {
        Cdf {
            n: 0.0,
            steps: Vec::new(),
            current: true,
        }
    }

    /// The values (as f64 bits, ascending) when every one is kept (not sampled down): then they
    /// are all the distinct lit values of what the CDF describes.
    pub fn exact_values(&self) -> Option<Vec<u64>> {
        if !self.current {
            return None;
        }
        let mut next = 0.0;
        for s in &self.steps {
            if s.below != next {
                return None;
            }
            next = s.below + s.at;
        }
        (next == self.n).then(|| self.steps.iter().map(|s| s.value.to_bits()).collect())
    }

    /// Lit pixels described.
    pub fn lit(&self) -> f64 {
        self.n
    }

    /// Describes no lit pixels (then every rank is 0).
    pub fn is_empty(&self) -> bool {
        self.n == 0.0
    }

    /// Keep at most `max_steps` breakpoints, the first and the last always, sampled more densely
    /// toward the high end: breakpoint k of m sits at index (1 - (1 - k/m)^2) of the steps.
    pub fn sampled(mut self, max_steps: usize) -> Cdf {
        self.steps = biased_sample(self.steps, max_steps);
        self
    }

    /// Pixels below `h` and pixels exactly at `h`. Between breakpoints that sampling dropped,
    /// the count below is interpolated linearly in value.
    fn below_at(&self, h: f64) -> (f64, f64) {
        self.below_at_step(self.steps.partition_point(|s| s.value < h), h)
    }

    /// `below_at(h)` given `k`, the number of breakpoints below `h`.
    #[inline]
    fn below_at_step(&self, k: usize, h: f64) -> (f64, f64) {
        match (k.checked_sub(1).map(|i| self.steps[i]), self.steps.get(k)) {
            (_, Some(s)) if s.value == h => (s.below, s.at),
            (None, _) => (0.0, 0.0),
            (Some(lo), None) => (lo.below + lo.at, 0.0),
            (Some(lo), Some(hi)) => {
                let f = (h - lo.value) / (hi.value - lo.value);
                let start = lo.below + lo.at;
                (start + f * (hi.below - start), 0.0)
            }
        }
    }

    /// Normalised heat in [0, 1]: the share of lit pixels below `h`, plus a part of the share at
    /// `h`. That part is min(1, h / low_heat): counts are integers, and in quiet areas most lit
    /// pixels hold 1, 2 or 3, so the plain CDF would throw single hits halfway up the colormap
    /// (the quantisation artefact the Strava post guards against).
    pub fn rank(&self, h: f64, low_heat: f64) -> f64 {
        if self.n == 0.0 || h <= 0.0 {
            return 0.0;
        }
        self.rank_of(self.below_at(h), h, low_heat)
    }

    /// [`Cdf::rank`] of values given in ascending order, with one walk over the breakpoints
    /// instead of a search per value (a tile's lit pixels, sorted by heat).
    pub fn ranks_ascending(&self, low_heat: f64) -> impl FnMut(f64) -> f64 + '_ {
        let mut k = 0;
        move |h| {
            if self.n == 0.0 || h <= 0.0 {
                return 0.0;
            }
            while k < self.steps.len() && self.steps[k].value < h {
                k += 1;
            }
            self.rank_of(self.below_at_step(k, h), h, low_heat)
        }
    }

    #[inline]
    fn rank_of(&self, (below, at): (f64, f64), h: f64, low_heat: f64) -> f64 {
        let guard = if low_heat > 0.0 {
            (h / low_heat).min(1.0)
        } else {
            1.0
        };
        ((below + guard * at) / self.n).clamp(0.0, 1.0)
    }

    /// The CDF of the union of the pixels the parts describe, with at most `max_steps`
    /// breakpoints (the parts' own breakpoints, sampled toward the high end).
    pub fn mixture(parts: &[&Cdf], max_steps: usize) -> Cdf {
        // Breakpoint values are positive (`of` and `from_bytes` see to it): their bit patterns
        // sort as the values do, and faster.
        let mut values: Vec<u64> = parts
            .iter()
            .flat_map(|p| p.steps.iter().map(|s| s.value.to_bits()))
            .collect();
        values.sort_unstable();
        values.dedup();
        let values = biased_sample(values, max_steps);
        // Each part is walked once, its cursor at its first breakpoint not below the value.
        let mut cursors = vec![0usize; parts.len()];
        let steps = values
            .into_iter()
            .map(|bits| {
                let value = f64::from_bits(bits);
                let (below, at) =
                    parts
                        .iter()
                        .zip(cursors.iter_mut())
                        .fold((0.0, 0.0), |(b, a), (p, k)| {
                            while *k < p.steps.len() && p.steps[*k].value < value {
                                *k += 1;
                            }
                            let (pb, pa) = p.below_at_step(*k, value);
                            (b + pb, a + pa)
                        });
                Step { value, below, at }
            })
            .collect();
        Cdf {
            n: parts.iter().map(|p| p.n).sum(),
            steps,
            current: false,
        }
    }

    /// Bytes: magic `VTCZ`, then a zstd frame of the lit pixels and per step value, below and
    /// at (f64), laid out in byte planes (`encoding::planes`): a tile's summary in about a
    /// sixth of the bytes of the plain form (magic `VTCD`, step count (u32), then the same f64s
    /// little-endian), which `from_bytes` still reads.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut words = Vec::with_capacity(1 + self.steps.len() * 3);
        words.push(self.n.to_bits());
        for s in &self.steps {
            words.extend([s.value, s.below, s.at].map(f64::to_bits));
        }
        let mut out = STORED_MAGIC.to_vec();
        out.extend(compress(&to_planes(&words)));
        out
    }

    /// Decode [`Cdf::to_bytes`], or the plain form. Untrusted input: a wrong length, a frame
    /// that does not inflate or inflates past `MAX_STEPS` steps, values not strictly ascending
    /// or not finite and > 0, or negative or NaN counts are an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> CoreResult<Cdf> {
        let bad = || CoreError::out_of_range("heat CDF", "is not a valid vasttile CDF summary");
        let current = bytes.starts_with(STORED_MAGIC);
        let words: Vec<f64> = if let Some(frame) = bytes.strip_prefix(STORED_MAGIC) {
            let planes = inflate(frame, (1 + MAX_STEPS * 3) * 8).ok_or_else(bad)?;
            from_planes(&planes)
                .ok_or_else(bad)?
                .into_iter()
                .map(f64::from_bits)
                .collect()
        } else {
            if bytes.len() < 16 || &bytes[..4] != MAGIC {
                return Err(bad());
            }
            let count = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
            if bytes.len() != 16 + count * 24 {
                return Err(bad());
            }
            bytes[8..]
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        if words.is_empty() || !(words.len() - 1).is_multiple_of(3) {
            return Err(bad());
        }
        let n = words[0];
        let steps: Vec<Step> = words[1..]
            .chunks_exact(3)
            .map(|w| Step {
                value: w[0],
                below: w[1],
                at: w[2],
            })
            .collect();
        let ordered = steps.windows(2).all(|w| w[0].value < w[1].value);
        // Counts are finite and not negative (an infinite one would rank every pixel as 0 or
        // NaN); NaN fails every comparison.
        let count_ok = |c: f64| c >= 0.0 && c.is_finite();
        let finite = steps
            .iter()
            .all(|s| s.value > 0.0 && s.value.is_finite() && count_ok(s.below) && count_ok(s.at));
        if !ordered || !finite || !count_ok(n) {
            return Err(bad());
        }
        Ok(Cdf { n, steps, current })
    }
}

/// At most `max` items of an ascending list, first and last kept, denser toward the end.
fn biased_sample<T: Copy>(items: Vec<T>, max: usize) -> Vec<T> {
    if items.len() <= max || max < 2 {
        return items;
    }
    let last = items.len() - 1;
    let mut out: Vec<T> = Vec::with_capacity(max);
    let mut prev = usize::MAX;
    for k in 0..max {
        let q = k as f64 / (max - 1) as f64;
        let i = ((1.0 - (1.0 - q) * (1.0 - q)) * last as f64).round() as usize;
        if i != prev {
            out.push(items[i]);
            prev = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixtures_equal_a_search_per_breakpoint() {
        let mut next = crate::test_numbers(11);
        let parts: Vec<Cdf> = (0..40)
            .map(|i| {
                let n = (next() % 3000) as usize;
                let scale = if i % 3 == 0 { 0.25 } else { 1.0 };
                Cdf::of((0..n).map(|_| (next() % (50 + 40 * i)) as f64 * scale)).sampled(256)
            })
            .collect();
        let refs: Vec<&Cdf> = parts.iter().collect();
        for max_steps in [16, 1024, 100_000] {
            let mut values: Vec<f64> = refs
                .iter()
                .flat_map(|p| p.steps.iter().map(|s| s.value))
                .collect();
            values.sort_unstable_by(|a, b| a.total_cmp(b));
            values.dedup();
            let steps: Vec<Step> = biased_sample(values, max_steps)
                .into_iter()
                .map(|value| {
                    let (below, at) = refs.iter().fold((0.0, 0.0), |(b, a), p| {
                        let (pb, pa) = p.below_at(value);
                        (b + pb, a + pa)
                    });
                    Step { value, below, at }
                })
                .collect();
            let mixed = Cdf::mixture(&refs, max_steps);
            assert_eq!(mixed.steps, steps, "{max_steps}");
            assert!(mixed.steps.len() > 10);
        }
    }

    #[test]
    fn ranks_of_an_exact_cdf() {
        let c = Cdf::of([0.0, 1.0, 1.0, 2.0, 8.0]);
        assert_eq!(c.lit(), 4.0);
        assert_eq!(c.rank(8.0, 0.0), 1.0);
        assert_eq!(c.rank(1.0, 0.0), 0.5);
        assert_eq!(c.rank(1.0, 4.0), 0.125); // guarded: a quarter of its share
        assert_eq!(c.rank(2.0, 0.0), 0.75);
        assert_eq!(c.rank(0.5, 0.0), 0.0);
        assert_eq!(c.rank(100.0, 0.0), 1.0);
        // Between values: the share below.
        assert_eq!(c.rank(5.0, 0.0), 0.75);
        // Between breakpoints that sampling dropped: interpolated.
        let s = Cdf::of([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).sampled(2);
        assert_eq!(s.steps.len(), 2);
        assert!((s.rank(4.5, 0.0) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn sampling_keeps_the_ends_and_favours_the_top() {
        let c = Cdf::of((1..=10_000).map(|v| v as f64)).sampled(100);
        assert!(c.steps.len() <= 100);
        assert_eq!(c.steps[0].value, 1.0);
        assert_eq!(c.steps.last().unwrap().value, 10_000.0);
        let top = c.steps.iter().filter(|s| s.value > 9_000.0).count();
        let bottom = c.steps.iter().filter(|s| s.value <= 1_000.0).count();
        assert!(top > 3 * bottom, "top {top} bottom {bottom}");
        // Ranks stay close to the exact ones.
        let exact = Cdf::of((1..=10_000).map(|v| v as f64));
        for h in [3.0, 500.0, 5_000.0, 9_999.0] {
            assert!((c.rank(h, 0.0) - exact.rank(h, 0.0)).abs() < 0.01, "{h}");
        }
    }

    #[test]
    fn a_mixture_is_the_cdf_of_the_union() {
        let a = [1.0, 1.0, 3.0, 7.0];
        let b = [2.0, 3.0, 3.0, 9.0, 9.0];
        let (ca, cb) = (Cdf::of(a), Cdf::of(b));
        let mix = Cdf::mixture(&[&ca, &cb], 1000);
        let union = Cdf::of(a.iter().chain(&b).copied());
        assert_eq!(mix, union);
        assert_eq!(Cdf::from_bytes(&mix.to_bytes()).unwrap(), mix);
        assert!(Cdf::from_bytes(b"VTCD").is_err());
        assert_eq!(Cdf::mixture(&[], 10).rank(1.0, 0.0), 0.0);
    }

    /// Counting by table (few distinct values) and by sort (many) give the CDF of the sorted
    /// values, in runs or scattered.
    #[test]
    fn of_equals_the_cdf_of_the_sorted_values() {
        let mut next = crate::test_numbers(3);
        for distinct in [1u64, 7, 255, 256, 257, 3000] {
            let mut values: Vec<f64> = (0..20_000)
                .map(|i| {
                    if i % 5 == 0 {
                        0.0
                    } else {
                        (1 + next() % distinct) as f64 * 0.25
                    }
                })
                .collect();
            values.extend(std::iter::repeat_n(0.5, 300));
            let mut sorted: Vec<f64> = values.iter().copied().filter(|&v| v > 0.0).collect();
            sorted.sort_by(f64::total_cmp);
            assert_eq!(
                Cdf::of(values),
                Cdf::of_sorted(&sorted),
                "{distinct} distinct"
            );
        }
    }

    /// Stored summaries are untrusted: infinite counts are corruption, like negative ones.
    #[test]
    fn infinite_counts_in_stored_bytes_are_refused() {
        let cdf = Cdf::of([1.0, 2.0, 2.0, 5.0]);
        // The plain form (0.1.0's) and the compressed one, each forged word by word.
        let mut words = vec![cdf.n];
        for s in &cdf.steps {
            words.extend([s.value, s.below, s.at]);
        }
        let plain = |w: &[f64]| {
            let mut b = MAGIC.to_vec();
            b.extend(((w.len() - 1) as u32 / 3).to_le_bytes());
            w.iter().for_each(|v| b.extend(v.to_le_bytes()));
            b
        };
        let stored = |w: &[f64]| {
            let mut b = STORED_MAGIC.to_vec();
            let bits: Vec<u64> = w.iter().map(|v| v.to_bits()).collect();
            b.extend(compress(&to_planes(&bits)));
            b
        };
        assert_eq!(Cdf::from_bytes(&plain(&words)).unwrap(), cdf);
        assert_eq!(Cdf::from_bytes(&stored(&words)).unwrap(), cdf);
        // Only the form this version writes stands for a tile's counts (0.1.0 summarised f64
        // sums, which read back as fixed-point ones).
        assert!(cdf.exact_values().is_some());
        assert!(Cdf::from_bytes(&plain(&words))
            .unwrap()
            .exact_values()
            .is_none());
        assert!(Cdf::from_bytes(&stored(&words))
            .unwrap()
            .exact_values()
            .is_some());
        assert_eq!(Cdf::from_bytes(&cdf.to_bytes()).unwrap(), cdf);
        for at in [0, 2, 3] {
            let mut forged = words.clone();
            forged[at] = f64::INFINITY;
            assert!(
                Cdf::from_bytes(&plain(&forged)).is_err(),
                "infinity at {at}"
            );
            assert!(
                Cdf::from_bytes(&stored(&forged)).is_err(),
                "infinity at {at}"
            );
        }
        // A frame inflating past any summary's size is refused before it is held.
        assert!(Cdf::from_bytes(&stored(&vec![1.0; 1 + (MAX_STEPS + 1) * 3])).is_err());
    }
}
