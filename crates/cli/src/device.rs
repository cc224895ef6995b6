//! `--device cpu|wgpu|wgpu-fusion|cuda[:N]|cuda-fusion[:N]`: picks the Burn backend at run time.
//!
//! `wgpu` and `cuda` are Burn's CubeCL backends without fusion, the types the model's CubeCL
//! kernels are routed to (`bert_model::fused::cube`); the `-fusion` devices put Burn's kernel
//! fusion around them, which the model's kernels do not join (its ops are then composed).

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use burn::tensor::backend::Backend;

/// A device named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// Burn's `flex` CPU backend.
    Cpu,
    /// The wgpu backend (Vulkan, Metal, DX12) on the default adapter, with the model's CubeCL
    /// kernels.
    Wgpu,
    /// The wgpu backend under Burn's kernel fusion (feature `wgpu-fusion`).
    WgpuFusion,
    /// CUDA device N, one kernel per tensor operation (autotuned when built with `autotune`).
    Cuda(usize),
    /// CUDA device N under Burn's kernel fusion (feature `cuda-fusion`).
    CudaFusion(usize),
    /// Burn's `ndarray` CPU backend (feature `ndarray`), kept for benchmarks against flex.
    Ndarray,
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "wgpu" => Ok(DeviceSpec::Wgpu),
            "wgpu-fusion" => Ok(DeviceSpec::WgpuFusion),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            "cuda-fusion" => Ok(DeviceSpec::CudaFusion(0)),
            "ndarray" => Ok(DeviceSpec::Ndarray),
            other => {
                let index = |prefix: &str| {
                    other
                        .strip_prefix(prefix)
                        .and_then(|n| n.parse::<usize>().ok())
                };
                index("cuda:")
                    .map(DeviceSpec::Cuda)
                    .or_else(|| index("cuda-fusion:").map(DeviceSpec::CudaFusion))
                    .ok_or_else(|| {
                        format!(
                            "unknown device `{other}`: expected cpu, wgpu, cuda, cuda:N, \
                             cuda-fusion, cuda-fusion:N, wgpu-fusion or ndarray"
                        )
                    })
            }
        }
    }
}

impl DeviceSpec {
    /// The backend family, without the index: devices of one data-parallel group share it.
    pub fn family(self) -> &'static str {
        match self {
            DeviceSpec::Cpu => "cpu",
            DeviceSpec::Wgpu => "wgpu",
            DeviceSpec::WgpuFusion => "wgpu-fusion",
            DeviceSpec::Cuda(_) => "cuda",
            DeviceSpec::CudaFusion(_) => "cuda-fusion",
            DeviceSpec::Ndarray => "ndarray",
        }
    }

    /// Whether two replicas may share this device: CPU backends only (each replica then gets a
    /// share of the cores), which is how data parallelism is tested without GPUs.
    fn shareable(self) -> bool {
        matches!(self, DeviceSpec::Cpu | DeviceSpec::Ndarray)
    }
}

/// Parses a comma-separated device list (`cuda:0,cuda:1`) and checks it can hold one
/// data-parallel group: at least one device, one backend family, no GPU named twice.
pub fn parse_device_list(names: &[String]) -> std::result::Result<Vec<DeviceSpec>, String> {
    let specs = names
        .iter()
        .map(|n| n.trim().parse::<DeviceSpec>())
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let Some(first) = specs.first().copied() else {
        return Err("the device list is empty".into());
    };
    for (i, s) in specs.iter().enumerate() {
        if s.family() != first.family() {
            return Err(format!(
                "`{s}` and `{first}` are different backends; one data-parallel group runs on one \
                 backend"
            ));
        }
        if !s.shareable() && specs[..i].contains(s) {
            return Err(format!("`{s}` is named twice; each GPU holds one replica"));
        }
    }
    Ok(specs)
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Wgpu => write!(f, "wgpu"),
            DeviceSpec::WgpuFusion => write!(f, "wgpu-fusion"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::CudaFusion(n) => write!(f, "cuda-fusion:{n}"),
            DeviceSpec::Ndarray => write!(f, "ndarray"),
        }
    }
}

/// CUDA without the fusion decorator: named explicitly, since Burn's `Cuda` alias turns into
/// the fused backend whenever any crate in the build enables fusion. The model's type, so its
/// CubeCL kernels are routed to it.
#[cfg(feature = "cuda")]
type CudaPlain = bert_model::fused::cube::Cuda;

/// wgpu without the fusion decorator (the same reason as [`CudaPlain`]).
#[cfg(feature = "wgpu")]
type WgpuPlain = bert_model::fused::cube::Wgpu;

/// wgpu under Burn's kernel fusion.
#[cfg(feature = "wgpu-fusion")]
type WgpuFused = burn_fusion::Fusion<WgpuPlain>;

/// CUDA under Burn's kernel fusion.
#[cfg(feature = "cuda-fusion")]
type CudaFused = burn_fusion::Fusion<CudaPlain>;

/// Work that runs on whichever backend the user picked.
pub trait BackendTask {
    /// What the work returns.
    type Output;
    /// Runs the work on backend `B`.
    fn run<B: Backend>(self, device: B::Device) -> Result<Self::Output>;
}

/// Work that runs on several devices of one backend (data-parallel replicas).
pub trait DevicesTask {
    /// What the work returns.
    type Output;
    /// Runs the work on backend `B`'s `devices` (at least one).
    fn run<B: Backend>(self, devices: Vec<B::Device>) -> Result<Self::Output>;
}

/// A one-device task seen as a several-device one.
struct OneDevice<T>(T);

impl<T: BackendTask> DevicesTask for OneDevice<T> {
    type Output = T::Output;
    fn run<B: Backend>(self, devices: Vec<B::Device>) -> Result<T::Output> {
        match devices.into_iter().next() {
            Some(device) => self.0.run::<B>(device),
            None => bail!("no device to run on"),
        }
    }
}

/// Runs `work` on a thread of rayon's global pool, where the CPU backend's operations run
/// their parallel parts. Called from any other thread, every operation hands its work to the
/// pool and sleeps until it is done: with a small model's thousands of small operations per
/// step, those hand-offs and wake-ups cost a fifth of the step (1.23–1.34× more
/// sequences/s for the quickstart's model, `docs/benchmarks.md`). The results are the same
/// bits: the work is split the same way, only the thread that waits differs. Not for several
/// replicas in one process: each would hold a pool thread while it waits for the others at the
/// all-reduce, and a pool smaller than the replicas would never start the last one.
fn on_pool_thread<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

/// Runs `task` on the backend `spec` names, or explains how to build it in.
pub fn dispatch<T>(spec: DeviceSpec, task: T) -> Result<T::Output>
where
    T: BackendTask + Send,
    T::Output: Send,
{
    dispatch_devices(&[spec], OneDevice(task))
}

/// Runs `task` on the devices `specs` name (one backend family, checked by
/// [`parse_device_list`]), or explains how to build the backend in.
pub fn dispatch_devices<T>(specs: &[DeviceSpec], task: T) -> Result<T::Output>
where
    T: DevicesTask + Send,
    T::Output: Send,
{
    let Some(&first) = specs.first() else {
        bail!("no device named");
    };
    #[cfg(feature = "cuda")]
    let cuda = || -> Vec<burn::backend::cuda::CudaDevice> {
        specs
            .iter()
            .map(|s| match s {
                DeviceSpec::Cuda(index) | DeviceSpec::CudaFusion(index) => {
                    burn::backend::cuda::CudaDevice { index: *index }
                }
                _ => burn::backend::cuda::CudaDevice { index: 0 },
            })
            .collect()
    };
    let n = specs.len();
    match first {
        DeviceSpec::Cpu if n == 1 => {
            on_pool_thread(|| task.run::<burn::backend::Flex>(vec![Default::default()]))
        }
        DeviceSpec::Cpu => task.run::<burn::backend::Flex>(vec![Default::default(); n]),
        #[cfg(feature = "wgpu")]
        DeviceSpec::Wgpu => task.run::<WgpuPlain>(vec![Default::default(); n]),
        #[cfg(feature = "wgpu-fusion")]
        DeviceSpec::WgpuFusion => task.run::<WgpuFused>(vec![Default::default(); n]),
        #[cfg(feature = "cuda")]
        DeviceSpec::Cuda(_) => {
            crate::kernel_cache::configure();
            task.run::<CudaPlain>(cuda())
        }
        #[cfg(feature = "cuda-fusion")]
        DeviceSpec::CudaFusion(_) => {
            crate::kernel_cache::configure();
            task.run::<CudaFused>(cuda())
        }
        #[cfg(feature = "ndarray")]
        DeviceSpec::Ndarray => task.run::<burn::backend::NdArray>(vec![Default::default(); n]),
        #[allow(unreachable_patterns)]
        other => {
            let feature = match other {
                DeviceSpec::Wgpu => "wgpu",
                DeviceSpec::WgpuFusion => "wgpu-fusion",
                DeviceSpec::Ndarray => "ndarray",
                DeviceSpec::CudaFusion(_) => "cuda-fusion",
                _ => "cuda",
            };
            bail!(
                "device `{other}` is not built into this binary; rebuild with \
                 `cargo build --release -p bert-cli --features {feature}`"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists_hold_one_backend_and_each_gpu_once() {
        let list = |names: &[&str]| {
            parse_device_list(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(
            list(&["cuda:0", " cuda:1"]).unwrap(),
            [DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]
        );
        // Two replicas may share the CPU (how the tests run data parallelism).
        assert_eq!(
            list(&["cpu", "cpu"]).unwrap(),
            [DeviceSpec::Cpu, DeviceSpec::Cpu]
        );
        let err = list(&["cuda:0", "cuda:0"]).unwrap_err();
        assert!(err.contains("named twice"), "{err}");
        let err = list(&["cpu", "cuda:1"]).unwrap_err();
        assert!(err.contains("different backends"), "{err}");
        assert!(list(&[]).unwrap_err().contains("empty"));
        assert!(list(&["tpu"]).unwrap_err().contains("unknown device"));
    }

    #[test]
    fn device_names_parse_and_print_back() {
        for (text, spec) in [
            ("cpu", DeviceSpec::Cpu),
            ("wgpu", DeviceSpec::Wgpu),
            ("wgpu-fusion", DeviceSpec::WgpuFusion),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
            ("cuda-fusion", DeviceSpec::CudaFusion(0)),
            ("cuda-fusion:1", DeviceSpec::CudaFusion(1)),
            ("ndarray", DeviceSpec::Ndarray),
        ] {
            assert_eq!(text.parse::<DeviceSpec>(), Ok(spec), "{text}");
            assert_eq!(spec.to_string().parse::<DeviceSpec>(), Ok(spec));
        }
        for bad in ["gpu", "cuda:", "cuda:x", "cuda-fusion:-1", "cuda-fused"] {
            let err = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(err.contains("cuda-fusion"), "{bad}: {err}");
        }
    }
}
