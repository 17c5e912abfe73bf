//! `berth cluster up`: a whole cluster on 127.0.0.1 as child processes:
//! the controller, every replica, and the projector.

use crate::auth::Keys;
use crate::config::{controller_id, ClusterConfig};
use anyhow::{Context, Result};
use stateright::actor::Id;
use std::fs::{self, File};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The settings of a new cluster.
pub struct Layout {
    pub groups: u32,
    pub replicas: usize,
    pub buckets: u32,
    pub base_port: u16,
    pub hold_ttl_seconds: u64,
    /// The async followers' RPO budget (`lag_budget_ms`).
    pub lag_budget_ms: u64,
}

/// Writes `DIR/cluster.toml` (or reuses the one there), starts the
/// controller and every replica, and stops them all when `stop` is set.
pub fn up(dir: &Path, layout: &Layout, stop: &AtomicBool) -> Result<()> {
    fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("cluster.toml");
    let config = if path.exists() {
        let config = ClusterConfig::load(&path)?;
        println!(
            "using the existing {} ({} buckets, {} groups): its members recover their state",
            path.display(),
            config.buckets,
            config.groups.len()
        );
        config
    } else {
        let mut config = ClusterConfig::local(
            layout.buckets,
            layout.groups,
            layout.replicas,
            layout.base_port,
        )?;
        config.hold_ttl_seconds = layout.hold_ttl_seconds;
        config.lag_budget_ms = layout.lag_budget_ms;
        fs::write(&path, config.to_toml())
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
        ClusterConfig::load(&path)?
    };
    // Every member, client and operator proves itself with a key: make
    // the ones this directory lacks (owner-only).
    let keys = config.keys_dir();
    let made = Keys::create_missing(&keys)?;
    if !made.is_empty() {
        let names: Vec<String> = made.iter().map(ToString::to_string).collect();
        println!(
            "wrote the {} keys in {} (owner-only; clients need client.key, operators operator.key)",
            names.join(", "),
            keys.display()
        );
    }
    // A member that cannot bind would only say so in its log: check first.
    for addr in std::iter::once(config.controller.addr)
        .chain(config.replicas.iter().map(|r| r.addr))
        .chain(config.projector.iter().map(|p| p.addr))
    {
        std::net::UdpSocket::bind(addr).with_context(|| {
            format!("cannot start the cluster: {addr} is in use (is this cluster already up? or pick another --base-port)")
        })?;
    }
    let exe = std::env::current_exe().context("cannot find the berth binary")?;
    // (log name, arguments, display name, address) of every process.
    let mut members: Vec<(String, Vec<String>, String, std::net::SocketAddrV4)> = vec![(
        "controller".to_owned(),
        vec![
            "controller".into(),
            "--config".into(),
            path.display().to_string(),
        ],
        config.name_of(controller_id()),
        config.controller.addr,
    )];
    for replica in &config.replicas {
        members.push((
            format!("replica-{}", replica.id),
            vec![
                "node".into(),
                "--config".into(),
                path.display().to_string(),
                "--id".into(),
                replica.id.to_string(),
            ],
            config.name_of(Id::from(replica.id)),
            replica.addr,
        ));
    }
    if let Some(projector) = &config.projector {
        members.push((
            "projector".to_owned(),
            vec![
                "projector".into(),
                "--config".into(),
                path.display().to_string(),
            ],
            "projector (search, trips)".to_owned(),
            projector.addr,
        ));
    }
    let mut children: Vec<(String, Child)> = Vec::new();
    for (name, args, display, addr) in &members {
        let log = dir.join("logs").join(format!("{name}.log"));
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let child = Command::new(&exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        println!(
            "{display:<28} listening on {addr} pid {} (log {})",
            child.id(),
            log.display()
        );
        children.push((name.clone(), child));
    }
    println!("cluster up; Ctrl-C stops every member");
    while !stop.load(Ordering::Relaxed) {
        for (name, child) in &mut children {
            if let Ok(Some(status)) = child.try_wait() {
                if !name.ends_with("(exited)") {
                    println!("{name} exited: {status}");
                    name.push_str(" (exited)");
                }
            }
        }
        // Polling: the stop flag is set from a signal handler and std
        // cannot wait on several children at once.
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("stopping the cluster");
    for (_, child) in &children {
        // SAFETY: sending a signal to our own child process by its pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (name, child) in &mut children {
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                _ if Instant::now() >= deadline => {
                    println!("{name} did not stop in time; killing it");
                    child.kill().ok();
                    child.wait().ok();
                    break;
                }
                // Polling: std has no wait-with-timeout for a child.
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    println!("cluster stopped");
    Ok(())
}
