//! `berth cluster up`: a whole cluster on 127.0.0.1 as child processes:
//! the controller, every replica, and the projector, supervised. A member
//! that exits on its own is reported with its cause (exit code or signal)
//! and the last lines of its log; on SIGINT or SIGTERM every member still
//! running gets SIGTERM (never a reaped one: its pid may be another
//! process's by then), and whatever has not stopped after `STOP_GRACE` is
//! killed.

use crate::auth::Keys;
use crate::config::{controller_id, ClusterConfig};
use anyhow::{Context, Result};
use stateright::actor::Id;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
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
        say(format_args!(
            "using the existing {} ({} buckets, {} groups): its members recover their state",
            path.display(),
            config.buckets,
            config.groups.len()
        ));
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
        say(format_args!("wrote {}", path.display()));
        ClusterConfig::load(&path)?
    };
    // Every member, client and operator proves itself with a key: make
    // the ones this directory lacks (owner-only).
    let keys = config.keys_dir();
    let made = Keys::create_missing(&keys)?;
    if !made.is_empty() {
        let names: Vec<String> = made.iter().map(ToString::to_string).collect();
        say(format_args!(
            "wrote the {} keys in {} (owner-only; clients need client.key, operators operator.key)",
            names.join(", "),
            keys.display()
        ));
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
    let mut children: Vec<Supervised> = Vec::new();
    for (name, args, display, addr) in &members {
        let log = dir.join("logs").join(format!("{name}.log"));
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let spawned = Command::new(&exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {name}"));
        let child = match spawned {
            Ok(child) => child,
            Err(error) => {
                stop_all(&mut children);
                return Err(error);
            }
        };
        say(format_args!(
            "{display:<28} listening on {addr} pid {} (log {})",
            child.id(),
            log.display()
        ));
        children.push(Supervised {
            display: display.clone(),
            child,
            log,
            exited: None,
        });
    }
    say(format_args!("cluster up; Ctrl-C stops every member"));
    while !stop.load(Ordering::Relaxed) {
        for member in &mut children {
            member.reap();
        }
        // Polling: the stop flag is set from a signal handler and std
        // cannot wait on several children at once.
        std::thread::sleep(Duration::from_millis(100));
    }
    stop_all(&mut children);
    Ok(())
}

/// A member `cluster up` started.
struct Supervised {
    display: String,
    child: Child,
    log: PathBuf,
    /// How it ended, once reaped: it is never signalled after that (its
    /// pid may belong to another process by then).
    exited: Option<ExitStatus>,
}

impl Supervised {
    /// Reaps the member if it has exited, and says how, with the last
    /// lines of its log. Returns whether it is still running.
    fn reap(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exited = Some(status);
                say(format_args!(
                    "{} (pid {}) exited unexpectedly: {}; the last lines of {}:",
                    self.display,
                    self.child.id(),
                    cause(status),
                    self.log.display()
                ));
                for line in last_lines(&self.log, 10) {
                    say(format_args!("    {line}"));
                }
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }
}

/// Stops every member still running: SIGTERM to each (only to live,
/// unreaped children), then waits up to `STOP_GRACE` in all, then kills
/// what is left.
fn stop_all(children: &mut [Supervised]) {
    say(format_args!("stopping the cluster"));
    let started = Instant::now();
    for member in children.iter_mut() {
        if member.reap() {
            // SAFETY: a signal to our own child, which has not been reaped
            // (try_wait just said it runs), so its pid is still its own.
            unsafe {
                libc::kill(member.child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    let deadline = started + STOP_GRACE;
    for member in children.iter_mut() {
        if member.exited.is_some() {
            continue;
        }
        loop {
            match member.child.try_wait() {
                Ok(Some(status)) => {
                    member.exited = Some(status);
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    // Polling: std has no wait-with-timeout for a child.
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    say(format_args!(
                        "{} did not stop within {} s; killing it",
                        member.display,
                        STOP_GRACE.as_secs()
                    ));
                    // Not yet reaped: `kill` signals the right process.
                    member.child.kill().ok();
                    member.exited = member.child.wait().ok();
                    break;
                }
            }
        }
    }
    say(format_args!(
        "cluster stopped ({:.1} s)",
        started.elapsed().as_secs_f64()
    ));
}

/// How long members get to stop after SIGTERM before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Prints a line; a closed stdout (the terminal gone) does not stop the
/// supervisor.
fn say(line: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// "exit code 3", "signal SIGABRT (core dumped)".
pub fn cause(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    match status.signal() {
        Some(signal) => format!(
            "signal {}{}",
            signal_name(signal),
            if status.core_dumped() {
                " (core dumped)"
            } else {
                ""
            }
        ),
        None => status.to_string(),
    }
}

/// The usual name of `signal` ("SIGKILL"), or its number.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

/// The last `count` lines of the file at `path` (read from its last 64 KiB,
/// however large it is); none if it cannot be read.
pub fn last_lines(path: &Path, count: usize) -> Vec<String> {
    const TAIL: u64 = 64 * 1024;
    let Ok(mut file) = File::open(path) else {
        return Vec::new();
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    if file
        .seek(SeekFrom::Start(length.saturating_sub(TAIL)))
        .is_err()
    {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let mut tail: Vec<String> = lines[lines.len().saturating_sub(count)..]
        .iter()
        .map(|line| line.to_string())
        .collect();
    if length > TAIL && tail.len() == lines.len() && !tail.is_empty() {
        tail.remove(0); // possibly cut mid-line
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    /// Goal: an exit is described by its code, or by its signal's name.
    #[test]
    fn exits_are_described_by_code_or_signal() {
        assert_eq!(cause(ExitStatus::from_raw(3 << 8)), "exit code 3");
        assert_eq!(cause(ExitStatus::from_raw(libc::SIGABRT)), "signal SIGABRT");
        assert_eq!(cause(ExitStatus::from_raw(libc::SIGKILL)), "signal SIGKILL");
        assert_eq!(signal_name(64), "signal 64");
    }

    /// Goal: the last lines of a log, even of a large one.
    #[test]
    fn the_last_lines_of_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("member.log");
        let text: String = (0..20_000).map(|n| format!("line {n}\n")).collect();
        fs::write(&path, text).unwrap();
        let tail = last_lines(&path, 10);
        assert_eq!(tail.len(), 10);
        assert_eq!(tail[0], "line 19990");
        assert_eq!(tail[9], "line 19999");
        assert!(last_lines(&dir.path().join("absent"), 10).is_empty());
    }
}
