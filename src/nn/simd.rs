//! Which SIMD paths signtop's own ops take on this CPU, chosen once per
//! process: AVX-512 where the CPU has it, AVX2 with FMA where it has that,
//! plain Rust otherwise. `SIGNTOP_NO_AVX512=1` switches signtop's AVX-512
//! paths off, to measure on an AVX-512 machine what a machine without it
//! gets from signtop's ops (tract still picks its own kernels as it does).

use std::sync::OnceLock;

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

    /// The name `bench` prints.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Portable => "portable",
            Simd::Avx2 => "AVX2+FMA",
            Simd::Avx512 => "AVX-512",
        }
    }
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
}
