//! `--device cpu|wgpu|cuda[:N]|cuda-fusion[:N]`: picks the Burn backend at run time.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use burn::tensor::backend::Backend;

/// A device named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// Burn's `flex` CPU backend.
    Cpu,
    /// The wgpu backend (Vulkan, Metal, DX12) on the default adapter.
    Wgpu,
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
                             cuda-fusion, cuda-fusion:N or ndarray"
                        )
                    })
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Wgpu => write!(f, "wgpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::CudaFusion(n) => write!(f, "cuda-fusion:{n}"),
            DeviceSpec::Ndarray => write!(f, "ndarray"),
        }
    }
}

/// CUDA without the fusion decorator: named explicitly, since Burn's `Cuda` alias turns into
/// the fused backend whenever any crate in the build enables fusion.
#[cfg(feature = "cuda")]
type CudaPlain = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;

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

/// Runs `task` on the backend `spec` names, or explains how to build it in.
pub fn dispatch<T: BackendTask>(spec: DeviceSpec, task: T) -> Result<T::Output> {
    match spec {
        DeviceSpec::Cpu => task.run::<burn::backend::Flex>(Default::default()),
        #[cfg(feature = "wgpu")]
        DeviceSpec::Wgpu => {
            task.run::<burn::backend::Wgpu>(burn::backend::wgpu::WgpuDevice::DefaultDevice)
        }
        #[cfg(feature = "cuda")]
        DeviceSpec::Cuda(index) => {
            crate::kernel_cache::configure();
            task.run::<CudaPlain>(burn::backend::cuda::CudaDevice { index })
        }
        #[cfg(feature = "cuda-fusion")]
        DeviceSpec::CudaFusion(index) => {
            crate::kernel_cache::configure();
            task.run::<CudaFused>(burn::backend::cuda::CudaDevice { index })
        }
        #[cfg(feature = "ndarray")]
        DeviceSpec::Ndarray => task.run::<burn::backend::NdArray>(Default::default()),
        #[allow(unreachable_patterns)]
        other => {
            let feature = match other {
                DeviceSpec::Wgpu => "wgpu",
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
    fn device_names_parse_and_print_back() {
        for (text, spec) in [
            ("cpu", DeviceSpec::Cpu),
            ("wgpu", DeviceSpec::Wgpu),
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
