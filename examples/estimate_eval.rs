//! Measures the wait estimate on simulated days the estimator was not tuned
//! on: `cargo run --release --example estimate_eval [SEEDS…]`. Prints the
//! accuracy over all tickets, then per category.

use chrono::NaiveDate;
use madoguchi_core::config::Config;
use madoguchi_core::simulate::{EstimateAccuracy, SimOptions, Simulator};

fn main() {
    let seeds: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let seeds = if seeds.is_empty() {
        vec![1001, 1002, 1003, 1004]
    } else {
        seeds
    };
    let config = Config::embedded_default();
    let mut tickets = Vec::new();
    for start in [
        NaiveDate::from_ymd_opt(2027, 3, 1),
        NaiveDate::from_ymd_opt(2027, 6, 7),
    ] {
        for &seed in &seeds {
            let mut sim = Simulator::new(
                &config,
                SimOptions {
                    start: start.unwrap_or_default(),
                    days: 5,
                    seed,
                    volume: 1.0,
                },
            );
            while sim.next().is_some() {
                tickets.extend(sim.state().tickets.values().cloned());
            }
        }
    }
    let show = |name: &str, acc: EstimateAccuracy| {
        println!(
            "{name:<8} {:>6} tickets  real {:>5.1} min  shown {:>5.1} min  bias {:>+5.1}  mean abs {:>5.1}  median abs {:>5.1}  p90 abs {:>5.1}",
            acc.tickets, acc.mean_actual_min, acc.mean_expected_min, acc.bias_min, acc.mean_abs_error_min, acc.median_abs_error_min, acc.p90_abs_error_min
        );
    };
    show("all", EstimateAccuracy::of(&tickets));
    for q in config.categories() {
        show(
            &q.id,
            EstimateAccuracy::of(tickets.iter().filter(|t| t.category == q.id)),
        );
    }
}
