//! Softmax over the last dimension: one cube per row, as [`crate::fused::kernels::softmax_rows`]
//! and its backward pass.

use burn::tensor::TensorMetadata;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use super::launch::{contiguous_f32, empty_like, rows_of, RowGrid};
use super::reduce::{cube_max, cube_sum};

/// `y = exp(x − max) / Σ exp(x − max)` of each `width` row of `x`.
#[cube(launch)]
fn softmax_rows(
    x: &Array<f32>,
    y: &mut Array<f32>,
    rows: u32,
    width: u32,
    #[comptime] units: usize,
) {
    let row = CUBE_POS;
    if row >= rows as usize {
        terminate!();
    }
    let unit = UNIT_POS as usize;
    let n = width as usize;
    let at = row * n;
    let mut partial = SharedMemory::<f32>::new(units);

    // A finite floor, since WGSL has no infinite literals: below any logit or masked score.
    let mut local = f32::new(-3.0e38);
    let mut j = unit;
    while j < n {
        local = max(local, x[at + j]);
        j += units;
    }
    let row_max = cube_max(&mut partial, local);

    let mut local = f32::new(0.0);
    let mut j = unit;
    while j < n {
        local += (x[at + j] - row_max).exp();
        j += units;
    }
    let inv = f32::new(1.0) / cube_sum(&mut partial, local);

    let mut j = unit;
    while j < n {
        y[at + j] = (x[at + j] - row_max).exp() * inv;
        j += units;
    }
}

/// `dx = y · (dy − Σ y·dy)` of each row, from the softmax output `y` and its gradient `dy`.
#[cube(launch)]
fn softmax_backward_rows(
    y: &Array<f32>,
    dy: &Array<f32>,
    dx: &mut Array<f32>,
    rows: u32,
    width: u32,
    #[comptime] units: usize,
) {
    let row = CUBE_POS;
    if row >= rows as usize {
        terminate!();
    }
    let unit = UNIT_POS as usize;
    let n = width as usize;
    let at = row * n;
    let mut partial = SharedMemory::<f32>::new(units);

    let mut local = f32::new(0.0);
    let mut j = unit;
    while j < n {
        local += y[at + j] * dy[at + j];
        j += units;
    }
    let dot = cube_sum(&mut partial, local);

    let mut j = unit;
    while j < n {
        dx[at + j] = y[at + j] * (dy[at + j] - dot);
        j += units;
    }
}

/// Softmax of `x` over its last dimension.
pub(super) fn softmax<R: CubeRuntime>(x: CubeTensor<R>) -> CubeTensor<R> {
    let x = contiguous_f32(x, "softmax input");
    let shape = x.shape();
    let (rows, width) = rows_of(&shape);
    let y = empty_like(&x, shape);
    if rows * width == 0 {
        return y;
    }
    let grid = RowGrid::new(&x, rows, width, "softmax");
    softmax_rows::launch::<R>(
        &x.client.clone(),
        grid.count,
        grid.dim,
        x.into_array_arg(),
        y.clone().into_array_arg(),
        grid.rows,
        grid.width,
        grid.units,
    );
    y
}

/// Gradient of the softmax input from its output `y` and the output's gradient `dy`.
pub(super) fn softmax_backward<R: CubeRuntime>(
    y: CubeTensor<R>,
    dy: CubeTensor<R>,
) -> CubeTensor<R> {
    let (y, dy) = (
        contiguous_f32(y, "softmax output"),
        contiguous_f32(dy, "softmax output gradient"),
    );
    let shape = y.shape();
    assert_eq!(shape, dy.shape(), "fused softmax backward: shapes differ");
    let (rows, width) = rows_of(&shape);
    let dx = empty_like(&y, shape);
    if rows * width == 0 {
        return dx;
    }
    let grid = RowGrid::new(&y, rows, width, "softmax backward");
    softmax_backward_rows::launch::<R>(
        &y.client.clone(),
        grid.count,
        grid.dim,
        y.into_array_arg(),
        dy.into_array_arg(),
        dx.clone().into_array_arg(),
        grid.rows,
        grid.width,
        grid.units,
    );
    dx
}
