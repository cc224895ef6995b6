//! Reading tensors back to host memory. One helper instead of
//! `.into_data().convert().to_vec().unwrap_or_default()` at every call site: a device that
//! cannot give the values back (lost, or an element type it cannot convert) is an error that
//! names the tensor, not an empty vector that turns into wrong weights or silent zeros.

use burn::tensor::{backend::Backend, Element, Tensor};

use crate::error::{ModelError, Result};

/// The values of `t`, converted to `T`, in row-major order; `what` names the tensor in the
/// error.
pub fn host_values<T: Element, B: Backend, const D: usize>(
    t: Tensor<B, D>,
    what: &str,
) -> Result<Vec<T>> {
    t.into_data()
        .convert::<T>()
        .to_vec::<T>()
        .map_err(|e| ModelError::Readback {
            what: what.to_string(),
            message: format!("{e:?}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn values_come_back_converted() {
        let t = Tensor::<Flex, 2>::from_floats([[1.5, -2.0], [0.25, 4.0]], &Default::default());
        let v: Vec<f64> = host_values(t, "a test tensor").unwrap();
        assert_eq!(v, vec![1.5, -2.0, 0.25, 4.0]);
    }
}
