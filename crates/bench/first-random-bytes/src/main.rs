// Time to the first random bytes from AWS-LC in a fresh process (what the first TLS handshake of
// a cold start pays), then a second call.
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use std::time::Instant;
fn main() {
    let rng = SystemRandom::new();
    let mut buf = [0u8; 32];
    let t = Instant::now();
    rng.fill(&mut buf).unwrap();
    let first = t.elapsed();
    let t = Instant::now();
    rng.fill(&mut buf).unwrap();
    let second = t.elapsed();
    println!("{:.3} {:.3}", first.as_secs_f64() * 1e3, second.as_secs_f64() * 1e3);
}
