//! Kernel benchmarks at the shapes of dm_nfnet_f0 (192x192 input, batch 8); the rows are
//! `nfnet::bench::kernel_rows` (see its module docs), one line each, for scripts:
//!
//!   cargo bench --bench ops                          every row
//!   cargo bench --bench ops -- grouped_conv c768     rows whose text contains every filter word
//!
//!   bench adapter="..." op=grouped_conv pass=forward shape=n8_c768_g6_12x12_k3_s1_o768 ms=... gflops=...
//!
//! With `NFNET_YARDSTICK` (`tools/bench_vs_yardstick.sh` sets it) each row also gets its ratio
//! to the yardstick matmul (`ratio_matmul`, compute-bound rows) or copy (`ratio_copy`).
//! `nfnet bench` prints the same rows as a table, with whole-model rows and a JSON file.

use nfnet::bench::{kernel_rows, Yardstick};
use nfnet::{Gpu, TuneOptions, Tuner};

fn main() {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let fail = |e: nfnet::Error| -> ! {
        eprintln!("bench: {e}");
        std::process::exit(1)
    };
    let gpu = Gpu::new().unwrap_or_else(|e| fail(e));
    let tuner = Tuner::new(TuneOptions::from_env().unwrap_or_else(|e| fail(e)));
    eprintln!("bench: adapter {}", gpu.describe());
    let adapter = format!("{} ({:?})", gpu.info.name, gpu.info.backend);
    let result = kernel_rows(&gpu, &tuner, &filters, Yardstick::from_env(), &mut |r| {
        let metric = if r.unit == "GB/s" { "gbs" } else { "gflops" };
        let ratio = match r.ratio {
            Some(x) if r.unit == "GB/s" => format!(" ratio_copy={x:.2}"),
            Some(x) => format!(" ratio_matmul={x:.2}"),
            None => String::new(),
        };
        println!(
            "bench adapter=\"{adapter}\" {} ms={:.3} {metric}={:.3}{ratio}",
            r.key(),
            r.ms,
            r.rate
        );
    });
    if let Err(e) = result {
        fail(e);
    }
}
