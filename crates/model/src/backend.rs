//! Which Burn backend a model runs on, where the choice of kernel depends on it: the fused
//! kernels of this crate are written for Burn's CPU backend (flex), bare or under autodiff.

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
