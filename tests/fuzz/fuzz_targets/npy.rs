//! A keypoint .npy as `signtop inspect` reads it: any bytes are an array and
//! its part rates, or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ndarray::ArrayD;
use ndarray_npy::ReadNpyExt;
use signtop::keypoint_files::inspect::part_rates;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(values) = ArrayD::<f32>::read_npy(bytes) {
        let _ = part_rates(&values);
    }
});
