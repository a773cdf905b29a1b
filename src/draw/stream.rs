//! The random stream (DRAW-SPEC section 6): ChaCha20 keyed by the seed, read as
//! little-endian `u64`, and `uniform(m)` by rejection so that no value is favoured.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::types::Digest;

/// The draw's only source of chance.
pub struct Stream {
    rng: ChaCha20Rng,
}

impl Stream {
    /// ChaCha20, 20 rounds, key = `seed`, 64-bit block counter from 0, nonce 0.
    pub fn new(seed: &Digest) -> Self {
        Self {
            rng: ChaCha20Rng::from_seed(*seed),
        }
    }

    /// The next 8 bytes of key stream as a little-endian integer.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A uniform integer in `0..m`: values at or above the largest multiple of `m`
    /// that fits in 2^64 are drawn again.
    ///
    /// # Panics
    /// When `m` is 0, which the ranking never asks for.
    pub fn uniform(&mut self, m: u64) -> u64 {
        assert!(m >= 1, "uniform(0) has no value to return");
        // zone = 2^64 - (2^64 mod m), computed in 128 bits since it may be 2^64.
        let zone = (1u128 << 64) - ((1u128 << 64) % u128::from(m));
        loop {
            let r = self.next_u64();
            if u128::from(r) < zone {
                return r % m;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_values_match_the_specification() {
        let seed: Digest = std::array::from_fn(|i| i as u8);
        let mut s = Stream::new(&seed);
        assert_eq!(s.next_u64(), 0x6a19c5d97d2bfd39);
        assert_eq!(s.next_u64(), 0x494adcb87703bd8d);
    }

    #[test]
    fn uniform_of_one_is_zero_and_consumes_one_value() {
        let seed = [7u8; 32];
        let mut a = Stream::new(&seed);
        let mut b = Stream::new(&seed);
        assert_eq!(a.uniform(1), 0);
        b.next_u64();
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn uniform_rejects_values_in_the_top_zone() {
        // m = 2^63 + 1: zone = 2^64 - (2^63 - 1) = 2^63 + 1, so about half the raw values
        // are drawn again. Replay the raw stream to check each outcome by hand.
        let m = (1u64 << 63) + 1;
        let seed = [9u8; 32];
        let mut s = Stream::new(&seed);
        let mut raw = Stream::new(&seed);
        for _ in 0..64 {
            let got = s.uniform(m);
            let expected = loop {
                let r = raw.next_u64();
                if r < m {
                    break r;
                }
            };
            assert_eq!(got, expected);
        }
    }
}
