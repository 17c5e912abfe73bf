//! Running one process of a cluster: the controller, a replica, or the
//! projector.

use crate::auth::Auth;
use crate::config::{controller_id, ClusterConfig, Member};
use crate::projector::Projections;
use crate::runtime::Runtime;
use crate::storage::Store;
use anyhow::{Context, Result};
use berth_model::controller::FailoverPolicy;
use berth_model::stream::SubscriberActor;
use berth_model::{BerthActor, Bucket, ControllerActor, ReplicaActor};
use stateright::actor::Id;
use std::net::UdpSocket;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// The actor `member` runs, and its id and display name.
pub fn actor_of(config: &ClusterConfig, member: Member) -> Result<(Id, BerthActor, String)> {
    let protocol = config.protocol();
    Ok(match member {
        Member::Controller => (
            controller_id(),
            BerthActor::Controller(ControllerActor {
                initial_map: config.initial_map(),
                config: protocol,
                failover: Some(FailoverPolicy { epoch_limit: None }),
                groups: config.layouts(),
            }),
            "controller".to_owned(),
        ),
        Member::Replica(id) => {
            let entry = config
                .replica(id)
                .with_context(|| format!("replica {id} is not in the cluster configuration"))?;
            (
                Id::from(id),
                BerthActor::Replica(ReplicaActor {
                    initial_map: config.initial_map(),
                    region: entry.region.clone(),
                    controller: controller_id(),
                    config: protocol,
                }),
                format!("replica {id}"),
            )
        }
    })
}

/// Runs `member` until `stop` is set (SIGINT or SIGTERM).
pub fn run(config: ClusterConfig, member: Member, stop: Arc<AtomicBool>) -> Result<()> {
    let (id, actor, name) = actor_of(&config, member)?;
    let addr = config
        .addr_of(id)
        .with_context(|| format!("{name} has no address in the configuration"))?;
    let dir = config.data_dir(member)?;
    let (store, saved) = Store::open(&dir, &name)?;
    let socket = UdpSocket::bind(addr)
        .with_context(|| format!("{name} cannot listen on {addr} (is it already running?)"))?;
    enlarge_receive_buffer(&socket);
    let span = tracing::info_span!("node", member = %name, %addr);
    let _entered = span.enter();
    tracing::info!(
        data = %dir.display(),
        recovered = saved.is_some(),
        "started"
    );
    let auth = Auth::member(&config.keys_dir(), usize::from(id) as u64)?;
    let mut runtime = Runtime::start(id, actor, socket, config, Some(store), saved, auth)?;
    runtime.run(&stop, None, |_| false)?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Runs the projector until `stop` is set: the model's `SubscriberActor`
/// following every bucket's change stream, serving `berth search` and
/// `berth trips`. It keeps nothing on disk: a restarted projector rebuilds
/// its views from the streams (committed entries stay in the bucket logs).
pub fn run_projector(config: ClusterConfig, stop: Arc<AtomicBool>) -> Result<()> {
    let Some(entry) = config.projector.clone() else {
        anyhow::bail!("the cluster configuration has no [projector] section");
    };
    let socket = UdpSocket::bind(entry.addr).with_context(|| {
        format!(
            "the projector cannot listen on {} (is it already running?)",
            entry.addr
        )
    })?;
    enlarge_receive_buffer(&socket);
    let span = tracing::info_span!("projector", addr = %entry.addr);
    let _entered = span.enter();
    let actor = BerthActor::Subscriber(SubscriberActor {
        controller: controller_id(),
        initial_map: config.initial_map(),
        buckets: (0..config.buckets).map(Bucket).collect(),
        config: config.protocol(),
    });
    let projections = Projections::new(
        config.buckets,
        Duration::from_millis(config.search_staleness_ms),
        config.cabins.clone(),
    );
    let id = Id::from(entry.addr);
    let auth = Auth::member(&config.keys_dir(), usize::from(id) as u64)?;
    let mut runtime = Runtime::start(id, actor, socket, config, None, None, auth)?;
    runtime.serve_projections(projections);
    tracing::info!("started");
    runtime.run(&stop, None, |_| false)?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Asks for a 4 MiB receive buffer (the kernel caps it at its maximum), so
/// that a burst — every replica answering a thousand fences at once — waits
/// in the buffer instead of being dropped.
fn enlarge_receive_buffer(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4 << 20;
    // SAFETY: setsockopt on a socket we own, with a correctly sized int.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        tracing::warn!("cannot enlarge the receive buffer; bursts may drop datagrams");
    }
}
