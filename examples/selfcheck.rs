//! Every kernel of the library against its CPU reference on this machine's adapter
//! (`nfnet::ops::selfcheck`, which the browser test page also runs):
//!
//! ```sh
//! cargo run --release --example selfcheck
//! ```
//!
//! Prints one row per kernel (the worst max-abs and relative L2 error of the cases that ran
//! it) and exits with status 1 if any kernel is off its reference.

fn main() -> nfnet::Result<()> {
    let gpu = nfnet::Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    let checks = pollster::block_on(nfnet::ops::selfcheck::run(&gpu));
    for k in &checks {
        let verdict = if k.ok { "ok" } else { "FAILED" };
        println!(
            "{:<40} max abs {:9.2e}  rel L2 {:9.2e}  {verdict:<6}  {}",
            k.name, k.max_abs, k.rel_l2, k.note
        );
    }
    let failed = checks.iter().filter(|k| !k.ok).count();
    println!("{} kernels, {failed} failed", checks.len());
    std::process::exit(i32::from(failed > 0));
}
