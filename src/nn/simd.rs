//! Which SIMD paths signtop's own ops take on this CPU, chosen once per
//! process: AVX-512 where the CPU has it, AVX2 with FMA where it has that,
//! plain Rust otherwise. `SIGNTOP_NO_AVX512=1` switches signtop's AVX-512
//! paths off, to measure on an AVX-512 machine what a machine without it
//! gets from signtop's ops (tract still picks its own kernels as it does).
//! Also [`Aligned`]: the weights and buffers those paths load from, each
//! from a cache line boundary.

use std::sync::OnceLock;

/// f32 values from a 64-byte (cache line) boundary. A vector load of 16 of
/// them from a multiple of 16 then reads one line, not two: the depthwise
/// convolution on an input 16 bytes past a line (where a `Vec` puts it) ran
/// 1.3-1.8x as long; the 1x1 convolution's weights and the fused op's
/// expanded rows were `Vec`s.
pub type Aligned = aligned_vec::AVec<f32, aligned_vec::ConstAlign<64>>;

/// `values` copied to a cache line boundary.
pub fn aligned(values: &[f32]) -> Aligned {
    Aligned::from_slice(64, values)
}

/// Clears the upper halves of the vector registers (`vzeroupper`) where the
/// CPU has AVX. Some of tract's kernels (hand-written assembly) return with
/// them dirty, and until something clears them every SSE instruction of the
/// code compiled for plain x86-64 after them pays for it: the pose
/// heatmap's refinement, 3159 sigmoids in scalar SSE code, took 0.40 ms a
/// frame after the pose landmark model, and 0.018 ms with the registers
/// cleared first.
pub fn clear_upper_registers() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX.
        unsafe { zero_upper() }
    }
}

/// `vzeroupper`.
///
/// # Safety
/// The CPU must have AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn zero_upper() {
    std::arch::x86_64::_mm256_zeroupper();
}

/// The mask of the first `lanes` (at most 16) of an AVX-512 register's.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn lane_mask(lanes: usize) -> std::arch::x86_64::__mmask16 {
    ((1u32 << lanes.min(16)) - 1) as u16
}

/// The AVX2 mask (all ones in a lane) of the first `lanes` (at most 8)
/// of a 256-bit register's.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub fn half_mask(lanes: usize) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let lanes = lanes.min(8) as i32;
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(lanes),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// The lanes of `mask` ([`lane_mask`]) loaded from `at`, zeros elsewhere;
/// memory under the other lanes is not touched.
///
/// # Safety
/// AVX-512F; the masked lanes' floats must be readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub unsafe fn load16_masked(
    at: *const f32,
    mask: std::arch::x86_64::__mmask16,
) -> std::arch::x86_64::__m512 {
    // SAFETY: as this function's.
    unsafe { std::arch::x86_64::_mm512_maskz_loadu_ps(mask, at) }
}

/// The lanes of `mask` of `v` stored from `at`; the rest of memory untouched.
///
/// # Safety
/// AVX-512F; the masked lanes' floats must be writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub unsafe fn store16_masked(
    at: *mut f32,
    mask: std::arch::x86_64::__mmask16,
    v: std::arch::x86_64::__m512,
) {
    // SAFETY: as this function's.
    unsafe { std::arch::x86_64::_mm512_mask_storeu_ps(at, mask, v) }
}

/// [`load16_masked`] for 8 lanes, the mask a [`half_mask`].
///
/// # Safety
/// AVX2; the masked lanes' floats must be readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn load8_masked(
    at: *const f32,
    mask: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256 {
    // SAFETY: as this function's.
    unsafe { std::arch::x86_64::_mm256_maskload_ps(at, mask) }
}

/// [`store16_masked`] for 8 lanes, the mask a [`half_mask`].
///
/// # Safety
/// AVX2; the masked lanes' floats must be writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn store8_masked(
    at: *mut f32,
    mask: std::arch::x86_64::__m256i,
    v: std::arch::x86_64::__m256,
) {
    // SAFETY: as this function's.
    unsafe { std::arch::x86_64::_mm256_maskstore_ps(at, mask, v) }
}

/// The environment variable that switches signtop's AVX-512 paths off.
pub const NO_AVX512_VAR: &str = "SIGNTOP_NO_AVX512";

/// A SIMD level of signtop's ops, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// Plain Rust, one value at a time.
    Portable,
    /// AVX2 with FMA: 8 floats a register.
    Avx2,
    /// AVX-512F (and AVX2): 16 floats a register.
    Avx512,
}

impl Simd {
    /// The level signtop's ops use in this process: the CPU's best, unless
    /// [`NO_AVX512_VAR`] caps it at AVX2.
    pub fn chosen() -> Simd {
        static CHOSEN: OnceLock<Simd> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let no_avx512 =
                std::env::var_os(NO_AVX512_VAR).is_some_and(|v| !v.is_empty() && v != "0");
            let best = Simd::of_this_cpu();
            if no_avx512 {
                best.min(Simd::Avx2)
            } else {
                best
            }
        })
    }

    /// The best level this CPU has.
    pub fn of_this_cpu() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx2") && has!("fma") {
                return Simd::Avx512;
            }
            if has!("avx2") && has!("fma") {
                return Simd::Avx2;
            }
        }
        Simd::Portable
    }

    /// Every level this CPU can run, lowest first (for tests that compare them).
    pub fn available() -> Vec<Simd> {
        [Simd::Portable, Simd::Avx2, Simd::Avx512]
            .into_iter()
            .filter(|s| *s <= Simd::of_this_cpu())
            .collect()
    }

    /// Single-precision floating-point operations one core can do a cycle
    /// at this level, counting a multiply-add as two and assuming two FMA
    /// units a core (as Intel's server and recent desktop cores have; one
    /// unit would halve it).
    pub fn flops_per_cycle(self) -> f64 {
        match self {
            Simd::Portable => 4.0,
            Simd::Avx2 => 32.0,
            Simd::Avx512 => 64.0,
        }
    }

    /// Single-precision GFLOP/s one thread reaches at this level in a loop of
    /// independent fused multiply-adds on registers (a multiply-add counted
    /// as two), about `millis` long: the core's real peak, whatever its clock.
    pub fn measured_peak_gflops(self, millis: u64) -> f64 {
        let started = std::time::Instant::now();
        let mut flops = 0.0;
        let mut sink = 0.0;
        while started.elapsed().as_millis() < u128::from(millis) {
            let (done, value) = fma_loop(self, 100_000);
            flops += done;
            sink += value;
        }
        std::hint::black_box(sink);
        flops / started.elapsed().as_secs_f64() / 1e9
    }

    /// The name `bench` prints.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Portable => "portable",
            Simd::Avx2 => "AVX2+FMA",
            Simd::Avx512 => "AVX-512",
        }
    }
}

/// `rounds` rounds of 12 independent multiply-add chains at `simd`: the
/// flops done and a value to keep the work from being optimised away.
fn fma_loop(simd: Simd, rounds: usize) -> (f64, f32) {
    match simd {
        // SAFETY (each call): the level is one this CPU has.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 if Simd::of_this_cpu() >= Simd::Avx512 => unsafe {
            (rounds as f64 * 12.0 * 16.0 * 2.0, fma_loop_avx512(rounds))
        },
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 if Simd::of_this_cpu() >= Simd::Avx2 => unsafe {
            (rounds as f64 * 12.0 * 8.0 * 2.0, fma_loop_avx2(rounds))
        },
        _ => {
            let mut acc = [1.0f32; 12];
            for _ in 0..rounds {
                for a in &mut acc {
                    *a = a.mul_add(0.999_999, 1e-7);
                }
            }
            (rounds as f64 * 12.0 * 2.0, acc.iter().sum())
        }
    }
}

/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_avx512(rounds: usize) -> f32 {
    use std::arch::x86_64::*;
    let (m, a) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); 12];
    for _ in 0..rounds {
        for v in &mut acc {
            *v = _mm512_fmadd_ps(*v, m, a);
        }
    }
    acc.iter().map(|v| _mm512_reduce_add_ps(*v)).sum()
}

/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_avx2(rounds: usize) -> f32 {
    use std::arch::x86_64::*;
    let (m, a) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); 12];
    for _ in 0..rounds {
        for v in &mut acc {
            *v = _mm256_fmadd_ps(*v, m, a);
        }
    }
    let mut lanes = [0.0f32; 8];
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, v| _mm256_add_ps(s, *v));
    // SAFETY: `lanes` holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_level_is_one_this_cpu_has() {
        assert!(Simd::chosen() <= Simd::of_this_cpu());
        assert!(Simd::available().contains(&Simd::chosen()));
        assert_eq!(Simd::available()[0], Simd::Portable);
    }

    #[test]
    fn the_fma_loop_counts_two_flops_a_lane_a_chain_a_round() {
        for simd in Simd::available() {
            let lanes = match simd {
                Simd::Portable => 1.0,
                Simd::Avx2 => 8.0,
                Simd::Avx512 => 16.0,
            };
            let (flops, value) = fma_loop(simd, 10);
            assert_eq!(flops, 10.0 * 12.0 * lanes * 2.0, "{simd:?}");
            assert!(value.is_finite() && value > 0.0, "{simd:?}: {value}");
        }
    }
}
