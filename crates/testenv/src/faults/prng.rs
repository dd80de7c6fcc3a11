//! A small seeded PRNG (SplitMix64) for fault schedules: the same seed draws the same schedule on
//! every machine and every run, so a failing run is replayed from the seed it printed.
//!
//! Not for secrets: passwords and ids come from the operating system's CSPRNG (`crate::random`).

/// The variable that replays one schedule: `DBCREDS_FAULT_SEED=0x1f2e...` (hex with `0x`, or
/// decimal).
pub const SEED_VARIABLE: &str = "DBCREDS_FAULT_SEED";

#[derive(Clone, Debug)]
pub struct Prng {
    state: u64,
}

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng { state: seed }
    }

    /// SplitMix64 (Steele, Lea, Flood 2014): every seed is a good seed, including 0.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by the multiply-shift reduction (bias below 2^-32 for the
    /// small `n` of a schedule).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Prng::below(0)");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "Prng::range({low}, {high})");
        low + self.below(high - low + 1)
    }

    /// True with `percent` % probability.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Picks by weight: `(weight, item)`; the weights must not all be zero.
    pub fn weighted<'a, T>(&mut self, items: &'a [(u64, T)]) -> &'a T {
        let total: u64 = items.iter().map(|(weight, _)| weight).sum();
        let mut ticket = self.below(total);
        for (weight, item) in items {
            if ticket < *weight {
                return item;
            }
            ticket -= weight;
        }
        unreachable!("the ticket is below the total weight")
    }

    /// An independent stream, so that drawing more from one part of a schedule does not shift
    /// what another part draws.
    pub fn fork(&mut self) -> Prng {
        Prng::new(self.next_u64())
    }
}

/// Parses a seed as printed (`0x...` hex, or decimal).
pub fn parse_seed(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// `DBCREDS_FAULT_SEED` when set (panics on a value that is not a seed: a typo must not run
/// another schedule than the one asked for).
pub fn seed_from_env() -> Option<u64> {
    let value = std::env::var(SEED_VARIABLE).ok().filter(|v| !v.trim().is_empty())?;
    Some(parse_seed(&value).unwrap_or_else(|| panic!("{SEED_VARIABLE}={value:?} is not a seed: use the 0x... value a run printed")))
}

/// A seed from the operating system's random source, for runs that explore new schedules.
pub fn fresh_seed() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    u64::from_le_bytes(bytes)
}

/// How a seed is printed, so that it can be pasted into `DBCREDS_FAULT_SEED`.
pub fn format_seed(seed: u64) -> String {
    format!("{seed:#018x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_the_same_sequence_every_time() {
        let (mut a, mut b) = (Prng::new(42), Prng::new(42));
        let first: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let second: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(first, second);
        assert_ne!(Prng::new(43).next_u64(), first[0]);
        // SplitMix64's published first output for seed 0.
        assert_eq!(Prng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn draws_stay_in_range_and_cover_it() {
        let mut prng = Prng::new(7);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let n = prng.range(10, 14);
            assert!((10..=14).contains(&n));
            seen[(n - 10) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s), "{seen:?}");
        assert_eq!(*prng.weighted(&[(0, 'a'), (5, 'b'), (0, 'c')]), 'b');
    }

    #[test]
    fn seeds_round_trip_through_their_printed_form() {
        for seed in [0, 1, 0xdead_beef, u64::MAX] {
            assert_eq!(parse_seed(&format_seed(seed)), Some(seed));
        }
        assert_eq!(parse_seed("12345"), Some(12345));
        assert_eq!(parse_seed("0xZZ"), None);
    }
}
