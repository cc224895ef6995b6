//! Which Burn backend a model runs on, where the choice of kernel depends on it: the fused
//! kernels of this crate are written for Burn's CPU backend (flex), bare or under autodiff, and
//! (all but dropout) also for the CubeCL backends (wgpu, CUDA) with the `wgpu` or `cuda`
//! feature.

use std::any::TypeId;

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;

/// The flex backend types, told apart by their `TypeId` (one check for every caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlexKind {
    /// `Flex` itself (inference, and the inner backend of a training step).
    Bare,
    /// `Autodiff<Flex>` (training).
    Autodiff,
}

/// Which flex type `B` is, if it is one.
pub(crate) fn flex_kind<B: Backend>() -> Option<FlexKind> {
    let id = TypeId::of::<B>();
    if id == TypeId::of::<Flex>() {
        Some(FlexKind::Bare)
    } else if id == TypeId::of::<Autodiff<Flex>>() {
        Some(FlexKind::Autodiff)
    } else {
        None
    }
}

/// Whether `B` is Burn's CPU backend (flex), bare or under autodiff.
pub(crate) fn is_flex<B: Backend>() -> bool {
    flex_kind::<B>().is_some()
}

/// The CubeCL backend types the fused kernels are written for, told apart by their `TypeId`.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CubeKind {
    /// [`crate::fused::cube::Wgpu`].
    #[cfg(feature = "wgpu")]
    Wgpu,
    /// `Autodiff<`[`crate::fused::cube::Wgpu`]`>`.
    #[cfg(feature = "wgpu")]
    AutodiffWgpu,
    /// [`crate::fused::cube::Cuda`].
    #[cfg(feature = "cuda")]
    Cuda,
    /// `Autodiff<`[`crate::fused::cube::Cuda`]`>`.
    #[cfg(feature = "cuda")]
    AutodiffCuda,
}

/// Which CubeCL backend type with the fused kernels `B` is, if it is one. Burn's
/// fusion decorator (`Fusion<…>`, what `burn::backend::Wgpu` is with Burn's `fusion` feature)
/// is not one of them: it records ops into its own graph, which a kernel of ours is not part of.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) fn cube_kind<B: Backend>() -> Option<CubeKind> {
    let id = TypeId::of::<B>();
    #[cfg(feature = "wgpu")]
    {
        use crate::fused::cube::Wgpu;
        if id == TypeId::of::<Wgpu>() {
            return Some(CubeKind::Wgpu);
        }
        if id == TypeId::of::<Autodiff<Wgpu>>() {
            return Some(CubeKind::AutodiffWgpu);
        }
    }
    #[cfg(feature = "cuda")]
    {
        use crate::fused::cube::Cuda;
        if id == TypeId::of::<Cuda>() {
            return Some(CubeKind::Cuda);
        }
        if id == TypeId::of::<Autodiff<Cuda>>() {
            return Some(CubeKind::AutodiffCuda);
        }
    }
    None
}
