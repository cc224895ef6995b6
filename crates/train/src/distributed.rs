//! Data parallelism: several ranks of one run. Every rank holds a replica of the model, reads
//! its own part of each global batch, and the ranks sum their gradients (and the step's counts
//! and metrics) with one all-reduce per optimiser step ([`crate::step`] through a
//! [`Replica`]). This module starts the ranks of this process, one thread per device, hosts the
//! orchestrator when this process is rank 0 of several, and reports the failed rank's own
//! error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::collective::{AbortFlag, ProcessGroup, Replica};
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::provider::DataProvider;
use crate::run::{train_rank, RunOptions, RunSummary};

/// One data-parallel group per process at a time: the collective is process-wide per backend.
static GROUP: Mutex<()> = Mutex::new(());

/// Marks its rank as failed when dropped without [`disarm`](Self::disarm) (error or panic).
struct FailGuard<'a> {
    flag: &'a AbortFlag,
    rank: usize,
    armed: bool,
}

impl FailGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for FailGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.flag.fail(self.rank);
        }
    }
}

/// Serves the collective's orchestrator on a thread of its own until dropped. The thread is
/// told to stop but not joined: a graceful shutdown waits for connections of processes that may
/// have died, and the process is about to end anyway.
struct Orchestrator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Orchestrator {
    fn start(port: u16) -> std::io::Result<Self> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("bert-orchestrator".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("cannot start the orchestrator's runtime: {e}");
                        return;
                    }
                };
                runtime.block_on(burn_collective::start_global_orchestrator_until(
                    port,
                    async move {
                        let _ = stopped.await;
                    },
                ));
            })?;
        Ok(Self { stop: Some(stop) })
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// How long the orchestrator's host waits at the end for the other processes to sign off.
const SIGN_OFF_GRACE: Duration = Duration::from_secs(3);

/// Trains one replica per device in this process (`distributed.devices`, `--devices`), each on
/// its own thread, gradients summed over the collective at every step; with `group`, this
/// process is one of several (torchrun-style), and global rank = process rank × devices +
/// device index. `data_for(rank, world_size)` opens each rank's view of the data. Returns
/// rank 0's summary (or this process's first rank's); when a rank fails, its error (the cause,
/// not its siblings' "stopped because…").
pub fn train_replicas<B, D, F>(
    config: &RunConfig,
    devices: &[B::Device],
    options: &RunOptions,
    group: Option<&ProcessGroup>,
    data_for: F,
) -> Result<RunSummary>
where
    B: AutodiffBackend,
    D: DataProvider,
    F: Fn(usize, usize) -> Result<D> + Sync,
{
    let _host = GroupHost::start(group, devices.len())?;
    train_replicas_inner::<B, D, F>(config, devices, options, group, data_for)
}

/// The process-level side of a data-parallel group, held for as long as the group works: the
/// ports checked before any rank joins and, in process 0 of several, the collective's
/// orchestrator. Dropping it gives the other processes a moment to sign off, then stops the
/// orchestrator.
pub struct GroupHost {
    orchestrator: Option<Orchestrator>,
}

impl GroupHost {
    /// Checks `group`'s ports and starts the orchestrator when this is process 0 of several
    /// (`local_devices` ranks in this process); nothing to do without a group.
    pub fn start(group: Option<&ProcessGroup>, local_devices: usize) -> Result<Self> {
        let Some(g) = group else {
            return Ok(Self { orchestrator: None });
        };
        let world_size = local_devices * g.processes;
        let port = g.check_ports().map_err(|message| TrainError::Distributed {
            rank: g.process_rank * local_devices,
            world_size,
            message: format!("process group: {message}"),
        })?;
        let orchestrator = if g.processes > 1 && g.process_rank == 0 {
            Some(
                Orchestrator::start(port).map_err(|e| TrainError::Distributed {
                    rank: 0,
                    world_size,
                    message: format!("cannot start the orchestrator on port {port}: {e}"),
                })?,
            )
        } else {
            None
        };
        Ok(Self { orchestrator })
    }
}

impl Drop for GroupHost {
    fn drop(&mut self) {
        if let Some(orchestrator) = self.orchestrator.take() {
            // The others sign off right after the final barrier; give their requests time to
            // arrive before the orchestrator goes away.
            std::thread::sleep(SIGN_OFF_GRACE);
            drop(orchestrator);
        }
    }
}

fn train_replicas_inner<B, D, F>(
    config: &RunConfig,
    devices: &[B::Device],
    options: &RunOptions,
    group: Option<&ProcessGroup>,
    data_for: F,
) -> Result<RunSummary>
where
    B: AutodiffBackend,
    D: DataProvider,
    F: Fn(usize, usize) -> Result<D> + Sync,
{
    if devices.is_empty() {
        return Err(TrainError::Config {
            path: config.out_dir.clone(),
            message: "`distributed.devices` is empty: name at least one device".into(),
        });
    }
    let timeout = config.distributed.timeout();
    on_ranks::<B::InnerBackend, _, TrainError, _>(devices, group, timeout, |rank, replica| {
        let data = data_for(rank, replica.world_size())?;
        let options = RunOptions {
            progress: options.progress && rank == 0,
            ..options.clone()
        };
        train_rank::<B>(
            config,
            &data,
            &devices[rank % devices.len()],
            &options,
            Some(replica),
        )
    })
}

/// Runs `work` as every rank of this process, one thread per device of `devices`, each rank a
/// member of one data-parallel group over Burn's collective (`group` links several processes;
/// `None`: this process is the whole group). `work(rank, replica)` gets the global rank (process
/// rank × devices + device index; its device is `devices[rank % devices.len()]`) and the
/// joined [`Replica`]; after it returns, the ranks meet at a final barrier and leave the
/// collective. Returns this process's first rank's result, or, when a rank fails, that rank's
/// own error (the cause, not its siblings' "stopped because…"). One group runs per process at a
/// time.
pub fn on_ranks<B, T, E, F>(
    devices: &[B::Device],
    group: Option<&ProcessGroup>,
    timeout: Duration,
    work: F,
) -> std::result::Result<T, E>
where
    B: Backend,
    T: Send,
    E: From<TrainError> + Send,
    F: Fn(usize, &Replica<B>) -> std::result::Result<T, E> + Sync,
{
    let local = devices.len();
    let (processes, process_rank) = group.map_or((1, 0), |g| (g.processes, g.process_rank));
    let world_size = local * processes;
    let _one_group = GROUP.lock().unwrap_or_else(|p| p.into_inner());
    // Forget peers and operations a previous group of this process left behind (a failed one
    // leaves its survivors' calls pending). Not done at the end: after a lost peer the
    // collective's server may be gone, and resetting it would panic instead of reporting.
    burn_collective::reset_collective::<B>();
    let abort = Arc::new(AbortFlag::default());
    let results: Vec<std::result::Result<T, E>> = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(index, device)| {
                let rank = process_rank * local + index;
                let abort = abort.clone();
                let work = &work;
                std::thread::Builder::new()
                    .name(format!("bert-rank-{rank}"))
                    .spawn_scoped(scope, move || {
                        let guard = FailGuard {
                            flag: &abort,
                            rank,
                            armed: true,
                        };
                        let result = (|| -> std::result::Result<T, E> {
                            let replica = Replica::<B>::join(
                                rank,
                                world_size,
                                local,
                                device.clone(),
                                group,
                                timeout,
                                abort.clone(),
                            )?;
                            let out = work(rank, &replica)?;
                            // Nobody leaves while another rank may still need the collective
                            // (rank 0 writes checkpoints and exports last).
                            replica.barrier(device, "final barrier")?;
                            if let Err(e) = replica.leave() {
                                tracing::warn!("{e} (the work itself is complete)");
                            }
                            Ok(out)
                        })();
                        if result.is_ok() {
                            guard.disarm();
                        }
                        result
                    })
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(index, h)| (process_rank * local + index, h))
            .map(|(rank, h)| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    Err(TrainError::Distributed {
                        rank,
                        world_size,
                        message: "the rank's thread panicked".into(),
                    }
                    .into())
                }),
                Err(e) => Err(TrainError::Distributed {
                    rank,
                    world_size,
                    message: format!("cannot start the rank's thread: {e}"),
                }
                .into()),
            })
            .collect()
    });
    let mut results = results;
    // The failed rank's own error is the cause; its siblings only say they stopped for it.
    let first_err = abort
        .failed_rank()
        .map(|r| r - process_rank * local)
        .filter(|&i| results.get(i).is_some_and(|x| x.is_err()))
        .or_else(|| results.iter().position(|r| r.is_err()));
    let pick = first_err.unwrap_or(0);
    if pick < results.len() {
        results.swap_remove(pick)
    } else {
        Err(TrainError::Distributed {
            rank: 0,
            world_size,
            message: "no rank returned a result".into(),
        }
        .into())
    }
}
