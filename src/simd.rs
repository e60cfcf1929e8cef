//! Runtime-dispatched SIMD for our own element-wise loops: the optimizers' updates, the
//! gradient norms, the dense op's ReLU, mask and bias-gradient loops, the convolution's
//! col2im and the pooling's backward.
//!
//! The crate is built for baseline x86-64 (SSE2), so LLVM vectorises those loops 4 f32 (2 f64)
//! wide even where the CPU has AVX-512 (gemm picks its own kernels at run time already).
//! [`dispatch`] runs a closure inlined into a `#[target_feature]` function for the widest
//! extension the CPU has: the same scalar Rust, vectorised 16 f32 (AVX-512) or 8 f32 (AVX2)
//! wide. The CPU is asked once (`is_x86_feature_detected!` caches its answer).
//!
//! Same bits as the baseline code. LLVM keeps IEEE semantics when it vectorises: without
//! fast-math flags (which Rust never sets) it does not reassociate, so reductions keep their
//! written order (a loop over explicit lanes vectorises across the lanes, a serial sum stays
//! serial), and it fuses `a * b + c` into an FMA only where the IR allows contraction, which
//! rustc never emits. `fma` is not enabled for AVX2; for AVX-512 rustc enables it implicitly
//! (`avx512f` implies it), and the contraction rule is what keeps the bits there. The tests
//! of every dispatched loop compare each level the machine has with the baseline, bitwise.
//!
//! Hand-written rather than `multiversion` or `pulp`: one generic wrapper here serves every
//! loop given as a closure, where `multiversion` attaches a target list to each function and
//! its ready-made lists include FMA; `pulp`'s levels (x86-64-v3, v4) include FMA as well.
//!
//! A module of the lowest layer: `optim` and `model` (one layer, which may not use each
//! other) and the data loaders use it; it uses nothing else of the crate.

/// A set of instructions a loop can be compiled for, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// What the crate is built for (SSE2 on x86-64).
    Baseline,
    /// AVX2 (256-bit vectors), without FMA.
    Avx2,
    /// AVX-512F (512-bit vectors).
    Avx512,
}

/// The widest level this CPU supports.
pub(crate) fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// `f()` compiled for the widest level the CPU has. `f` should be an `#[inline(always)]`
/// closure (`dispatch(#[inline(always)] || ...)`): it is compiled for the level only where
/// it is inlined into the level's wrapper.
#[inline(always)]
pub(crate) fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(test)]
    if let Some(level) = testing::forced() {
        return dispatch_at(level, f);
    }
    dispatch_at(detected(), f)
}

/// `f()` compiled for `level`, or for the widest level the CPU has when that is narrower.
#[inline(always)]
fn dispatch_at<R>(level: Level, f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match level.min(detected()) {
        // SAFETY: the CPU supports the level (`detected`).
        Level::Avx512 => return unsafe { x86::avx512(f) },
        // SAFETY: as above.
        Level::Avx2 => return unsafe { x86::avx2(f) },
        Level::Baseline => {}
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = level;
    f()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    /// `f()` with AVX-512F enabled.
    #[target_feature(enable = "avx512f")]
    pub(super) fn avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    /// `f()` with AVX2 enabled (and not FMA).
    #[target_feature(enable = "avx2")]
    pub(super) fn avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Running code at a chosen level, for the tests that compare the levels.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    use std::sync::Mutex;

    use super::{detected, Level};

    /// The level [`at`] forces: `generation << 2 | (index + 1)`, or 0 for none. Global, not
    /// per thread: the loops may run on candle's and rayon's worker threads.
    static FORCED: AtomicU32 = AtomicU32::new(0);
    /// The levels dispatched to under the forcing of one generation: `generation << 3`, one
    /// bit per level. So that [`at`] knows its code went through the level it forced, and a
    /// thread that read an earlier forcing cannot spoil a later one's record.
    static RAN: AtomicU32 = AtomicU32::new(0);
    /// One forcing at a time; the generation counter. Other tests that run meanwhile see the
    /// forced level too, which changes none of their bits (what the forcing tests check).
    static LOCK: Mutex<u32> = Mutex::new(0);

    const LEVELS: [Level; 3] = [Level::Baseline, Level::Avx2, Level::Avx512];

    fn index(level: Level) -> u32 {
        LEVELS.iter().position(|&l| l == level).unwrap() as u32
    }

    /// The forced level, if any, recorded as dispatched to (as the CPU supports it).
    pub(super) fn forced() -> Option<Level> {
        let tag = FORCED.load(SeqCst);
        if tag == 0 {
            return None;
        }
        let level = LEVELS[(tag & 3) as usize - 1];
        let bit = 1 << index(level.min(detected()));
        let _ = RAN.fetch_update(SeqCst, SeqCst, |r| (r >> 3 == tag >> 2).then_some(r | bit));
        Some(level)
    }

    /// The levels this CPU supports, narrowest first.
    pub fn levels() -> Vec<Level> {
        LEVELS.into_iter().filter(|&l| l <= detected()).collect()
    }

    /// `f()` with every dispatched loop compiled for `level` (in whatever thread it runs);
    /// panics unless `f` dispatched, and to `level` alone.
    pub fn at<R>(level: Level, f: impl FnOnce() -> R) -> R {
        let mut generation = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        RAN.store(*generation << 3, SeqCst);
        FORCED.store(*generation << 2 | (index(level) + 1), SeqCst);
        // Reset even when `f` panics (before the lock is released).
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                FORCED.store(0, SeqCst);
            }
        }
        let reset = Reset;
        let r = f();
        drop(reset);
        let ran = RAN.load(SeqCst) & 7;
        let want = 1 << index(level.min(detected()));
        assert_eq!(ran, want, "forced {level:?}: dispatched to levels {ran:#b}");
        r
    }

    /// `f()` at every level this CPU supports, each result compared with the baseline's by
    /// `same` (which should compare bits); `what` names the case in a failure.
    pub fn assert_levels_agree<R: std::fmt::Debug>(
        what: &str,
        f: impl Fn() -> R,
        same: impl Fn(&R, &R) -> bool,
    ) {
        let base = at(Level::Baseline, &f);
        for level in levels().into_iter().skip(1) {
            let r = at(level, &f);
            assert!(
                same(&base, &r),
                "{what}: {level:?} differs from the baseline"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wrappers run the closure at the level asked for, and a level the CPU lacks falls
    /// back to one it has.
    #[test]
    fn levels_run_and_fall_back() {
        for level in [Level::Baseline, Level::Avx2, Level::Avx512] {
            assert_eq!(dispatch_at(level, || 41 + 1), 42);
        }
        assert!(testing::levels().contains(&Level::Baseline));
        assert_eq!(testing::levels().last(), Some(&detected()));
        for level in testing::levels() {
            testing::at(level, || dispatch(|| ()));
        }
    }
}
