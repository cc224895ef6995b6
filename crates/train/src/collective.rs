//! Membership of Burn's collective (`burn-collective`): one rank's [`Replica`], the
//! [`ProcessGroup`] that links several processes, and the [`AbortFlag`] ranks of one process
//! share. The step and the evaluation sum over the ranks through a `Replica`; running several
//! ranks of one run is [`crate::distributed`]'s job, on top of this.
//!
//! The collective's calls block until every peer has joined them and have no timeout of their
//! own, so each call here runs on a helper thread that the rank waits for with a deadline: a
//! rank that died, hangs or never joined stops every other rank within
//! `distributed.timeout_s`, with an error naming the rank and the call, instead of a silent hang.
//! Ranks in one process also share an abort flag, so the first failure stops its siblings at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burn_collective::{CollectiveConfig, CollectiveError, PeerId, ReduceOperation};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Records the first rank of a process that failed, so its siblings stop waiting for it.
#[derive(Debug, Default)]
pub struct AbortFlag {
    /// `rank + 1` of the first failed rank; 0 while none has failed.
    failed: AtomicUsize,
}

impl AbortFlag {
    /// Marks `rank` as failed (the first one wins).
    pub fn fail(&self, rank: usize) {
        let _ = self
            .failed
            .compare_exchange(0, rank + 1, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The first rank that failed, if any.
    pub fn failed_rank(&self) -> Option<usize> {
        self.failed.load(Ordering::SeqCst).checked_sub(1)
    }
}

/// This process's place among several processes (nodes) of one run, torchrun-style: every
/// process runs `bert train` with the same config, its own `rank` and the same coordinator
/// (`host:port`). The process of rank 0 hosts the collective's orchestrator on that port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessGroup {
    /// Number of processes.
    pub processes: usize,
    /// This process, `0..processes`.
    pub process_rank: usize,
    /// `host:port` of the orchestrator (rank 0 binds the port on all interfaces).
    pub coordinator: String,
    /// `host:port` where this process serves its gradients to the others; default: the address
    /// this machine uses to reach the coordinator, port = coordinator port + 1 + rank.
    pub node_address: Option<String>,
}

impl ProcessGroup {
    /// Checks the numbers and the coordinator's form; returns the coordinator's port.
    pub(crate) fn validate(&self) -> std::result::Result<u16, String> {
        if self.processes == 0 || self.process_rank >= self.processes {
            return Err(format!(
                "rank {} must be below the world size {}",
                self.process_rank, self.processes
            ));
        }
        let (_, port) = split_host_port(&self.coordinator)?;
        Ok(port)
    }

    /// Refuses, before any rank joins, ports of this process's servers that another program
    /// listens on: the orchestrator's (rank 0) and the one this process serves its gradients
    /// on. Returns the coordinator's port.
    pub(crate) fn check_ports(&self) -> std::result::Result<u16, String> {
        let port = self.validate()?;
        if self.processes < 2 {
            return Ok(port);
        }
        if self.process_rank == 0 {
            check_port_free(
                port,
                &format!(
                    "the coordinator `{}` that rank 0 hosts (choose another with \
                     `--coordinator host:port` or $MASTER_PORT)",
                    self.coordinator
                ),
            )?;
        }
        let (_, node_port) = self.own_address(port)?;
        check_port_free(
            node_port,
            &format!(
                "where process {} serves its gradients (coordinator port + 1 + rank unless \
                 `--node-address host:port` says otherwise)",
                self.process_rank
            ),
        )?;
        Ok(port)
    }

    /// The websocket address the other processes reach this one at.
    fn own_address(&self, coordinator_port: u16) -> std::result::Result<(String, u16), String> {
        if let Some(addr) = &self.node_address {
            let (host, port) = split_host_port(addr)?;
            return Ok((host.to_string(), port));
        }
        let (host, _) = split_host_port(&self.coordinator)?;
        let port = coordinator_port
            .checked_add(1 + self.process_rank as u16)
            .ok_or_else(|| {
                format!(
                    "coordinator port {coordinator_port} leaves no port for rank {}",
                    self.process_rank
                )
            })?;
        let local = if ["127.0.0.1", "localhost", "::1"].contains(&host) {
            "127.0.0.1".to_string()
        } else {
            // The interface the OS would route to the coordinator through (no packet is sent).
            let socket = std::net::UdpSocket::bind("0.0.0.0:0")
                .and_then(|s| s.connect((host, coordinator_port)).map(|_| s))
                .and_then(|s| s.local_addr())
                .map_err(|e| {
                    format!(
                        "cannot find this machine's address towards the coordinator `{}`: {e}; \
                         pass `--node-address host:port`",
                        self.coordinator
                    )
                })?;
            socket.ip().to_string()
        };
        Ok((local, port))
    }
}

/// Refuses a port that another program listens on, before a server of the collective tries
/// to bind it: that server binds on a thread of its own, and its failure would only show as
/// the other ranks' silence until the timeout. `what` says whose port it is and how to change
/// it. (Another program may still take the port between this check and the bind.)
fn check_port_free(port: u16, what: &str) -> std::result::Result<(), String> {
    match std::net::TcpListener::bind(("0.0.0.0", port)) {
        Ok(probe) => {
            drop(probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "port {port} (0.0.0.0:{port}), {what}, cannot be opened: {}",
            if e.kind() == std::io::ErrorKind::AddrInUse {
                "another program is listening on it".to_string()
            } else {
                e.to_string()
            }
        )),
    }
}

fn split_host_port(addr: &str) -> std::result::Result<(&str, u16), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("`{addr}` is not host:port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("`{addr}`: `{port}` is not a port number"))?;
    if host.is_empty() {
        return Err(format!("`{addr}` has no host"));
    }
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

fn ws_address(host: &str, port: u16) -> std::result::Result<burn_communication::Address, String> {
    let text = if host.contains(':') {
        format!("ws://[{host}]:{port}")
    } else {
        format!("ws://{host}:{port}")
    };
    text.parse()
        .map_err(|e| format!("`{text}` is not a usable address: {e:?}"))
}

/// One rank's membership of the collective. `B` is the backend the gradients live on (the
/// inner backend under autodiff, as the collective requires).
pub struct Replica<B: Backend> {
    rank: usize,
    world_size: usize,
    timeout: Duration,
    abort: Arc<AbortFlag>,
    _backend: std::marker::PhantomData<B>,
}

impl<B: Backend> Replica<B> {
    /// Joins the collective as `rank` of `world_size` ranks that all live in this process,
    /// waiting (at most `timeout`) until every rank has joined.
    pub fn join_local(
        rank: usize,
        world_size: usize,
        device: B::Device,
        timeout: Duration,
        abort: Arc<AbortFlag>,
    ) -> Result<Self> {
        Self::join(rank, world_size, world_size, device, None, timeout, abort)
    }

    /// Joins the collective as global `rank` of `world_size`, one of `local_devices` ranks of
    /// this process; `group` links the processes (`None`: this process is the whole group).
    /// Waits (at most `timeout`) until every rank of the group has joined.
    pub fn join(
        rank: usize,
        world_size: usize,
        local_devices: usize,
        device: B::Device,
        group: Option<&ProcessGroup>,
        timeout: Duration,
        abort: Arc<AbortFlag>,
    ) -> Result<Self> {
        let replica = Self {
            rank,
            world_size,
            timeout,
            abort,
            _backend: std::marker::PhantomData,
        };
        let mut config = CollectiveConfig::default()
            .with_num_devices(local_devices)
            .with_local_all_reduce_strategy(burn_collective::AllReduceStrategy::Centralized);
        if let Some(group) = group.filter(|g| g.processes > 1) {
            let link = || -> std::result::Result<CollectiveConfig, String> {
                let port = group.validate()?;
                let (coordinator_host, _) = split_host_port(&group.coordinator)?;
                let (host, node_port) = group.own_address(port)?;
                Ok(config
                    .clone()
                    .with_num_nodes(group.processes as u32)
                    .with_global_address(ws_address(coordinator_host, port)?)
                    .with_node_address(ws_address(&host, node_port)?)
                    .with_data_service_port(node_port)
                    .with_global_all_reduce_strategy(burn_collective::AllReduceStrategy::Ring))
            };
            config = link().map_err(|e| replica.error(format!("process group: {e}")))?;
        }
        let peer = PeerId(rank as u32);
        replica.bounded("joining the collective", move || {
            burn_collective::register::<B>(peer, device, config)
        })?;
        Ok(replica)
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Whether this rank writes metrics, checkpoints and exports (rank 0 alone does).
    pub fn is_writer(&self) -> bool {
        self.rank == 0
    }

    /// Element-wise sum of `tensor` over all ranks; every rank gets the same result.
    pub fn all_reduce_sum(&self, tensor: Tensor<B, 1>, what: &str) -> Result<Tensor<B, 1>> {
        let peer = PeerId(self.rank as u32);
        let primitive = tensor.into_primitive().tensor();
        let out = self.bounded(what, move || {
            burn_collective::all_reduce::<B>(peer, primitive, ReduceOperation::Sum)
        })?;
        Ok(Tensor::from_primitive(TensorPrimitive::Float(out)))
    }

    /// Sums a few host values over all ranks (counts, metric sums), in f32 like the gradients.
    pub fn all_reduce_values(
        &self,
        values: &[f64],
        device: &B::Device,
        what: &str,
    ) -> Result<Vec<f64>> {
        // The ring all-reduce between processes splits the tensor into one slice per process,
        // so it needs at least that many elements: pad with zeros.
        let mut padded: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        padded.resize(values.len().max(self.world_size), 0.0);
        let n = padded.len();
        let summed = self.all_reduce_sum(
            Tensor::from_data(TensorData::new(padded, [n]), device),
            what,
        )?;
        let mut out =
            crate::reduce::to_f64_vec(summed).map_err(|e| self.error(format!("{what}: {e}")))?;
        out.truncate(values.len());
        Ok(out)
    }

    /// Sums per-parameter flat gradients (`sizes[i]` values each) and a few host values
    /// (`extra`: losses, counts) over all ranks with one all-reduce: everything is laid end to
    /// end in one tensor, because each collective call costs a round trip between the ranks.
    /// A parameter without a gradient on this rank takes part as zeros, so every rank sends the
    /// same layout; afterwards every parameter has its summed gradient. Returns the summed
    /// `extra` values (carried in f32, like the gradients).
    pub fn all_reduce_gradients(
        &self,
        grads: &mut [Option<Tensor<B, 1>>],
        sizes: &[usize],
        extra: &[f64],
        device: &B::Device,
    ) -> Result<Vec<f64>> {
        let mut parts: Vec<Tensor<B, 1>> = grads
            .iter_mut()
            .zip(sizes)
            .map(|(g, &n)| g.take().unwrap_or_else(|| Tensor::zeros([n], device)))
            .collect();
        parts.push(Tensor::from_data(
            TensorData::new(
                extra.iter().map(|&v| v as f32).collect::<Vec<f32>>(),
                [extra.len()],
            ),
            device,
        ));
        let flat = self.all_reduce_sum(Tensor::cat(parts, 0), "gradient all-reduce")?;
        let mut offset = 0;
        for (slot, &n) in grads.iter_mut().zip(sizes) {
            *slot = Some(flat.clone().narrow(0, offset, n));
            offset += n;
        }
        crate::reduce::to_f64_vec(flat.narrow(0, offset, extra.len()))
            .map_err(|e| self.error(format!("gradient all-reduce: {e}")))
    }

    /// Waits until every rank has reached this point.
    pub fn barrier(&self, device: &B::Device, what: &str) -> Result<()> {
        self.all_reduce_values(&[1.0], device, what).map(|_| ())
    }

    /// Leaves the collective (every rank calls it once at the end of the run).
    pub fn leave(mut self) -> Result<()> {
        let peer = PeerId(self.rank as u32);
        // Signing off follows a barrier every rank passed; a peer that is gone by now costs
        // nothing, so do not wait the full timeout for it.
        self.timeout = self.timeout.min(Duration::from_secs(10));
        self.bounded("leaving the collective", move || {
            burn_collective::finish_collective::<B>(peer)
        })
    }

    /// A [`TrainError::Distributed`] from this rank.
    pub fn error(&self, message: String) -> TrainError {
        TrainError::Distributed {
            rank: self.rank,
            world_size: self.world_size,
            message,
        }
    }

    /// Runs a blocking collective call on a helper thread and waits for it with the deadline,
    /// watching the abort flag. A call that never returns leaves its helper thread blocked; the
    /// rank returns the error and the process is expected to end.
    fn bounded<T: Send + 'static>(
        &self,
        what: &str,
        call: impl FnOnce() -> std::result::Result<T, CollectiveError> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = sync_channel(1);
        std::thread::Builder::new()
            .name(format!("bert-collective-{}", self.rank))
            .spawn(move || {
                let _ = tx.send(call());
            })
            .map_err(|e| self.error(format!("{what}: cannot start a thread: {e}")))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => return Err(self.error(format!("{what}: {e:?}"))),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.error(format!("{what}: the collective call panicked")))
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(failed) = self.abort.failed_rank().filter(|&r| r != self.rank) {
                        return Err(self.error(format!(
                            "{what}: stopped because rank {failed} failed (its error is reported \
                             above)"
                        )));
                    }
                    if Instant::now() >= deadline {
                        return Err(self.error(format!(
                            "{what}: no answer from the other ranks within {} s \
                             (`distributed.timeout_s`): a rank died, hangs or cannot be reached",
                            self.timeout.as_secs_f64()
                        )));
                    }
                }
            }
        }
    }
}

/// The `[distributed]` table: data parallelism (see `docs/distributed.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistributedSection {
    /// Devices of this process, one replica each (`["cuda:0", "cuda:1"]`); empty: the one
    /// `device`. The CLI's `--devices` overrides it.
    pub devices: Vec<String>,
    /// Seconds a rank waits for the others at a collective call (join, gradient all-reduce,
    /// evaluation) before it stops with an error naming itself and the call.
    pub timeout_s: f64,
}

impl Default for DistributedSection {
    fn default() -> Self {
        Self {
            devices: Vec::new(),
            timeout_s: 300.0,
        }
    }
}

impl DistributedSection {
    /// Checks the values no run can use, naming the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.timeout_s.is_finite() && self.timeout_s > 0.0) {
            return Err(format!(
                "`distributed.timeout_s` must be a positive number of seconds, not {}",
                self.timeout_s
            ));
        }
        Ok(())
    }

    /// The collective's deadline per call.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_s)
    }
}
