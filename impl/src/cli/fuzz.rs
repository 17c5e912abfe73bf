//! `berth fuzz`: the receive-path fuzzer ([`berth::fuzz`]) for as many
//! inputs as asked.

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct FuzzArgs {
    /// How many inputs.
    #[arg(long, default_value_t = 10_000_000)]
    inputs: u64,
    /// The random seed (a run is repeatable from its seed).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// `berth fuzz`: progress every million inputs, then the report.
pub fn fuzz(args: &FuzzArgs) -> Result<u8> {
    let report = berth::fuzz::run(args.inputs, args.seed, Some(1_000_000))?;
    println!("{report}");
    Ok(0)
}
