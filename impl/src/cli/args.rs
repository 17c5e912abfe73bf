//! What most commands share: the cluster's configuration and keys, a
//! cabin, seconds and bucket numbers checked against the cluster.

use anyhow::{Context, Result};
use berth::config::ClusterConfig;
use berth_model::InventoryUnit;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ConfigArg {
    /// The cluster configuration (DIR/cluster.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// The directory of the cluster's keys (default: DIR/keys, beside the configuration).
    #[arg(long)]
    pub keys: Option<PathBuf>,
}

impl ConfigArg {
    /// The configuration, with `--keys` applied.
    pub fn load(&self) -> Result<ClusterConfig> {
        let mut config = ClusterConfig::load(&self.config)?;
        config.keys = self.keys.clone();
        Ok(config)
    }
}

#[derive(Args, Debug)]
pub struct CabinArgs {
    /// The trip, e.g. BCN-JFK-2026-07-14.
    #[arg(long)]
    pub trip: String,
    /// The cabin, e.g. C14.
    #[arg(long)]
    pub cabin: String,
}

impl CabinArgs {
    /// The inventory unit named, refused if a name is empty.
    pub fn unit(&self) -> Result<InventoryUnit> {
        if self.trip.is_empty() || self.cabin.is_empty() {
            anyhow::bail!("--trip and --cabin must not be empty");
        }
        Ok(InventoryUnit::new(self.trip.as_str(), self.cabin.as_str()))
    }
}

/// A `--timeout`-style flag as a duration, refused unless positive.
pub fn seconds(value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{value} is not a positive number of seconds"))
}

/// Refuses a bucket number the cluster does not have.
pub fn check_bucket(config: &ClusterConfig, bucket: u32) -> Result<()> {
    if bucket >= config.buckets {
        anyhow::bail!(
            "the cluster has buckets 0 to {}; there is no bucket {bucket}",
            config.buckets - 1
        );
    }
    Ok(())
}
