#![allow(clippy::unwrap_used)]
#[test]
fn warp_time() {
    let img = image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 7]));
    let roi = signtop::landmarks::roi::Roi { x: 0.5, y: 0.5, w: 0.6, h: 0.8, rotation: 0.3 };
    let mut out = vec![0.0f32; 256 * 256 * 3];
    let t = std::time::Instant::now();
    for _ in 0..50 { signtop::landmarks::warp::warp_roi(&img, &roi, 256, signtop::landmarks::warp::Border::Replicate, 0.0, 1.0, &mut out); }
    eprintln!("WARP {:.2} ms per 256x256", t.elapsed().as_secs_f64() * 1000.0 / 50.0);
}
