//! Cross-thread throughput of the ring beside its limit, in alternating rounds of one run.
//!
//! `cargo bench --bench cross_thread` (`CROSS_ROUNDS`, default 15; `CROSS_MESSAGES`, default
//! 2,000,000 per run)
//!
//! Each round runs, for 64 B, 1 KiB and 4 KiB messages, one after the other:
//! - `ours`: shmframes' `Producer`/`Consumer`, every message published and released alone;
//! - `bare`: the limit for the protocol's header: the same wire format with nothing but the
//!   atomics and copies (see `shared/cross.rs`);
//! - `bare padded`: the same with `tail` on its own cache line, which the protocol does not
//!   allow (it fixes head and tail at offsets 0 and 4), to show what sharing the line costs;
//! - the three again, batched: published every 256 messages, released after draining.
//!
//! On a VM the cost of moving a cache line between the two threads changes with where the
//! hypervisor runs the vCPUs, so a round's figures are compared with each other: the medians
//! over rounds are printed (with the range), and the median of per-round ratios (ours / bare).
//! The consumer touches the first payload byte of each message (a read in place).

#[path = "shared/cross.rs"]
mod cross;

use cross::Ring;

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo test --all-targets` runs this without --bench: a short smoke pass.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { env_or("CROSS_ROUNDS", 15) as usize };
    let n = if quick { 20_000 } else { env_or("CROSS_MESSAGES", 2_000_000) };
    let rings = [
        ("ours", Ring::Ours),
        ("bare", Ring::Bare { tail_at: 4 }),
        ("bare padded", Ring::Bare { tail_at: 128 }),
    ];
    println!("cross-thread, {n} messages per run, {rounds} alternating rounds");
    println!(
        "{:>6} {:>9} | {:>22} {:>22} {:>22} | ours/bare",
        "size", "mode", rings[0].0, rings[1].0, rings[2].0
    );
    for size in [64usize, 1024, 4096] {
        for batched in [false, true] {
            let mut rates = [vec![], vec![], vec![]];
            let mut ratios = vec![];
            for r in 0..rounds {
                let mut round = [0.0; 3];
                for k in 0..rings.len() {
                    let i = (k + r) % rings.len(); // each variant runs first in turn
                    let ring = &rings[i].1;
                    let t = cross::run(*ring, size, n, batched);
                    round[i] = n as f64 / t.as_secs_f64() / 1e6;
                    rates[i].push(round[i]);
                }
                ratios.push(round[0] / round[1]);
            }
            let cell = |v: &mut Vec<f64>| {
                let (lo, hi) = (
                    v.iter().cloned().fold(f64::MAX, f64::min),
                    v.iter().cloned().fold(0.0, f64::max),
                );
                format!("{:.1} M/s ({lo:.1}-{hi:.1})", median(v))
            };
            println!(
                "{:>6} {:>9} | {:>22} {:>22} {:>22} | {:.2}",
                size,
                if batched { "batched" } else { "each" },
                cell(&mut rates[0]),
                cell(&mut rates[1]),
                cell(&mut rates[2]),
                median(&mut ratios)
            );
        }
    }
    if quick {
        println!("(smoke run: `cargo bench --bench cross_thread` measures)");
    }
}
