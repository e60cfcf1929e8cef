//! Seeded random streams whose exact position is part of the train state.
//!
//! candle's CPU RNG cannot be seeded, so every random number deeptrain uses (weight
//! init, dropout masks, shuffling, augmentation) comes from one of these. Each stream is ChaCha8 on
//! its own stream id, so consuming more dropout numbers never shifts the shuffle order.
//! Saving `word_pos` and restoring it lands a resumed run on the very next number.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Which purpose a stream serves; the discriminant is the ChaCha stream id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamId {
    /// Weight initialisation (stream 1).
    Init = 1,
    /// Dropout masks (stream 2).
    Dropout = 2,
    /// Shuffling of the training sets (stream 3).
    TrainShuffle = 3,
    /// Shuffling of the validation sets (stream 4).
    ValShuffle = 4,
    /// Random transforms of train batches: crops, flips, noise (stream 5).
    Augment = 5,
}

/// A serializable snapshot of a stream: seed, stream id and position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The run's seed.
    pub seed: u64,
    /// ChaCha stream id (a [`StreamId`] discriminant for deeptrain's own streams).
    pub stream: u64,
    /// Position in 32-bit words since the start of the stream.
    pub word_pos: u128,
}

/// A ChaCha8 random stream that can report and restore its exact position.
#[derive(Debug, Clone)]
pub struct RngStream {
    rng: ChaCha8Rng,
    seed: u64,
    stream: u64,
}

impl RngStream {
    /// The stream for `id` under `seed`, at its start.
    pub fn new(seed: u64, id: StreamId) -> Self {
        Self::with_stream(seed, id as u64)
    }

    /// Stream `stream` under `seed`, at its start; for streams beyond the [`StreamId`] ones.
    pub fn with_stream(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self { rng, seed, stream }
    }

    /// The stream exactly where `state` was taken: it yields the same numbers next.
    pub fn from_state(state: &RngState) -> Self {
        let mut s = Self::with_stream(state.seed, state.stream);
        s.rng.set_word_pos(state.word_pos);
        s
    }

    /// A snapshot of seed, stream and position, to save and restore with `from_state`.
    pub fn state(&self) -> RngState {
        RngState {
            seed: self.seed,
            stream: self.stream,
            word_pos: self.rng.get_word_pos(),
        }
    }

    /// Next 32 random bits (one word).
    pub fn next_u32(&mut self) -> u32 {
        self.rng.next_u32()
    }

    /// Next 64 random bits (two words).
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform in [0, 1) with 24 bits of precision, exactly representable in f32.
    pub fn uniform_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform integer in [0, n) without modulo bias (Lemire's method).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        loop {
            let x = self.next_u64();
            let m = (x as u128) * (n as u128);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// Fisher-Yates shuffle; the same state gives the same permutation on every platform.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// So that `rand`'s distributions (`rand_distr`) can draw from a stream; the position
/// moves exactly as by the methods above.
impl RngCore for RngStream {
    fn next_u32(&mut self) -> u32 {
        self.rng.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.rng.fill_bytes(dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restoring_a_state_continues_the_exact_sequence() {
        let mut a = RngStream::new(7, StreamId::Dropout);
        for _ in 0..13 {
            a.next_u32();
        }
        let saved = a.state();
        let expected: Vec<u32> = (0..50).map(|_| a.next_u32()).collect();
        let mut b = RngStream::from_state(&saved);
        let got: Vec<u32> = (0..50).map(|_| b.next_u32()).collect();
        assert_eq!(expected, got);
    }

    #[test]
    fn streams_are_independent() {
        let mut a = RngStream::new(7, StreamId::Dropout);
        let mut b = RngStream::new(7, StreamId::TrainShuffle);
        assert_ne!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn shuffle_is_a_permutation_and_seed_dependent() {
        let mut v: Vec<u32> = (0..100).collect();
        RngStream::new(1, StreamId::TrainShuffle).shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        let mut w: Vec<u32> = (0..100).collect();
        RngStream::new(2, StreamId::TrainShuffle).shuffle(&mut w);
        assert_ne!(v, w);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
    }
}
