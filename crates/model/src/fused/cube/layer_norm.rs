//! LayerNorm over the last dimension and its backward pass, as
//! [`crate::fused::kernels::layer_norm_rows`] (statistics in f32: WGSL has no f64; the mean
//! first, then the variance around it, so a common offset costs no digits).
//!
//! The gradients of `gamma` and `beta` sum over every row: a first kernel sums runs of
//! [`ROWS_PER_CHUNK`] rows per column, a second sums the runs, in a fixed order (no atomics, the
//! same bits every time).

use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use super::launch::{
    as_u32, contiguous_f32, elementwise, empty_like, len, rows_of, rows_shape, zeros_like, RowGrid,
};
use super::reduce::cube_sum;

/// Rows each unit of the parameter gradients' first kernel sums for its column: enough for a
/// useful sum per unit, few enough that a BERT step's 4096 rows still make 64 runs per column.
const ROWS_PER_CHUNK: usize = 64;

/// One cube per `width` row: `y = (x − mean) · rstd · gamma + beta`, with the row's `mean` and
/// `rstd = 1/√(var + eps)` (biased variance).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn layer_norm_rows(
    x: &Array<f32>,
    gamma: &Array<f32>,
    beta: &Array<f32>,
    y: &mut Array<f32>,
    mean: &mut Array<f32>,
    rstd: &mut Array<f32>,
    rows: u32,
    width: u32,
    eps: f32,
    #[comptime] units: usize,
) {
    let row = CUBE_POS;
    if row >= rows as usize {
        terminate!();
    }
    let unit = UNIT_POS as usize;
    let n = width as usize;
    let at = row * n;
    let count = f32::cast_from(width);
    let mut partial = SharedMemory::<f32>::new(units);

    let mut local = f32::new(0.0);
    let mut j = unit;
    while j < n {
        local += x[at + j];
        j += units;
    }
    let m = cube_sum(&mut partial, local) / count;

    let mut local = f32::new(0.0);
    let mut j = unit;
    while j < n {
        let d = x[at + j] - m;
        local += d * d;
        j += units;
    }
    let var = cube_sum(&mut partial, local) / count;
    let r = f32::new(1.0) / (var + eps).sqrt();

    let mut j = unit;
    while j < n {
        y[at + j] = (x[at + j] - m) * r * gamma[j] + beta[j];
        j += units;
    }
    if unit == 0 {
        mean[row] = m;
        rstd[row] = r;
    }
}

/// One cube per row: `dx = rstd · (g − mean(g) − x̂ · mean(g · x̂))` with `g = dy · gamma` and
/// `x̂ = (x − mean) · rstd`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn layer_norm_backward_rows(
    x: &Array<f32>,
    gamma: &Array<f32>,
    mean: &Array<f32>,
    rstd: &Array<f32>,
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
    let count = f32::cast_from(width);
    let m = mean[row];
    let r = rstd[row];
    let mut partial = SharedMemory::<f32>::new(units);

    let mut local_g = f32::new(0.0);
    let mut local_gx = f32::new(0.0);
    let mut j = unit;
    while j < n {
        let g = dy[at + j] * gamma[j];
        local_g += g;
        local_gx += g * (x[at + j] - m) * r;
        j += units;
    }
    let mean_g = cube_sum(&mut partial, local_g) / count;
    let mean_gx = cube_sum(&mut partial, local_gx) / count;

    let mut j = unit;
    while j < n {
        let g = dy[at + j] * gamma[j];
        let xhat = (x[at + j] - m) * r;
        dx[at + j] = r * (g - mean_g - xhat * mean_gx);
        j += units;
    }
}

/// One unit per (run of rows, column): the run's sums of `dy · x̂` and of `dy` for its column,
/// into `[chunks, width]` partial sums.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn layer_norm_param_partials(
    x: &Array<f32>,
    mean: &Array<f32>,
    rstd: &Array<f32>,
    dy: &Array<f32>,
    partial_gamma: &mut Array<f32>,
    partial_beta: &mut Array<f32>,
    rows: u32,
    width: u32,
    total: u32,
    #[comptime] rows_per_chunk: usize,
) {
    let pos = ABSOLUTE_POS;
    if pos >= total as usize {
        terminate!();
    }
    let n = width as usize;
    let chunk = pos / n;
    let j = pos % n;
    let start = chunk * rows_per_chunk;
    let end = min(start + rows_per_chunk, rows as usize);
    let mut acc_gamma = f32::new(0.0);
    let mut acc_beta = f32::new(0.0);
    let mut row = start;
    while row < end {
        let d = dy[row * n + j];
        acc_gamma += d * (x[row * n + j] - mean[row]) * rstd[row];
        acc_beta += d;
        row += 1;
    }
    partial_gamma[pos] = acc_gamma;
    partial_beta[pos] = acc_beta;
}

/// One unit per column: the sum of the `chunks` partial sums of [`layer_norm_param_partials`].
#[cube(launch)]
fn sum_chunks(
    partial_gamma: &Array<f32>,
    partial_beta: &Array<f32>,
    dgamma: &mut Array<f32>,
    dbeta: &mut Array<f32>,
    chunks: u32,
    width: u32,
) {
    let j = ABSOLUTE_POS;
    let n = width as usize;
    if j >= n {
        terminate!();
    }
    let mut acc_gamma = f32::new(0.0);
    let mut acc_beta = f32::new(0.0);
    let mut c = 0;
    while c < chunks as usize {
        acc_gamma += partial_gamma[c * n + j];
        acc_beta += partial_beta[c * n + j];
        c += 1;
    }
    dgamma[j] = acc_gamma;
    dbeta[j] = acc_beta;
}

/// `(y, mean, rstd)` of LayerNorm over the last dimension of `x`.
pub(super) fn layer_norm<R: CubeRuntime>(
    x: CubeTensor<R>,
    gamma: CubeTensor<R>,
    beta: CubeTensor<R>,
    eps: f64,
) -> (CubeTensor<R>, CubeTensor<R>, CubeTensor<R>) {
    let x = contiguous_f32(x, "layer norm input");
    let gamma = contiguous_f32(gamma, "layer norm gamma");
    let beta = contiguous_f32(beta, "layer norm beta");
    let shape = x.shape();
    let (rows, width) = rows_of(&shape);
    assert_eq!(
        (len(&gamma), len(&beta)),
        (width, width),
        "fused layer norm: gamma and beta must have the row's width"
    );
    let y = empty_like(&x, shape.clone());
    let mean = empty_like(&x, rows_shape(&shape));
    let rstd = empty_like(&x, rows_shape(&shape));
    if rows * width == 0 {
        return (y, mean, rstd);
    }
    let grid = RowGrid::new(&x, rows, width, "layer norm");
    layer_norm_rows::launch::<R>(
        &x.client.clone(),
        grid.count,
        grid.dim,
        x.into_array_arg(),
        gamma.into_array_arg(),
        beta.into_array_arg(),
        y.clone().into_array_arg(),
        mean.clone().into_array_arg(),
        rstd.clone().into_array_arg(),
        grid.rows,
        grid.width,
        eps as f32,
        grid.units,
    );
    (y, mean, rstd)
}

/// `(dx, dgamma, dbeta)` of LayerNorm from its input, scale, saved row statistics and the
/// output's gradient.
pub(super) fn layer_norm_backward<R: CubeRuntime>(
    x: CubeTensor<R>,
    gamma: CubeTensor<R>,
    mean: CubeTensor<R>,
    rstd: CubeTensor<R>,
    dy: CubeTensor<R>,
) -> (CubeTensor<R>, CubeTensor<R>, CubeTensor<R>) {
    let x = contiguous_f32(x, "layer norm input");
    let gamma = contiguous_f32(gamma, "layer norm gamma");
    let mean = contiguous_f32(mean, "layer norm mean");
    let rstd = contiguous_f32(rstd, "layer norm rstd");
    let dy = contiguous_f32(dy, "layer norm output gradient");
    let shape = x.shape();
    let gamma_shape = gamma.shape();
    let (rows, width) = rows_of(&shape);
    assert_eq!(
        shape,
        dy.shape(),
        "fused layer norm backward: shapes differ"
    );
    assert_eq!(
        (len(&gamma), len(&mean), len(&rstd)),
        (width, rows, rows),
        "fused layer norm backward: gamma or the row statistics have the wrong size"
    );
    let dx = empty_like(&x, shape);
    let dgamma = empty_like(&x, gamma_shape.clone());
    let dbeta = empty_like(&x, gamma_shape);
    if width == 0 {
        return (dx, dgamma, dbeta);
    }
    if rows == 0 {
        let zeros = |t: CubeTensor<R>| zeros_like(&t, t.shape());
        return (dx, zeros(dgamma), zeros(dbeta));
    }
    let client = x.client.clone();
    let grid = RowGrid::new(&x, rows, width, "layer norm backward");
    layer_norm_backward_rows::launch::<R>(
        &client,
        grid.count,
        grid.dim,
        x.clone().into_array_arg(),
        gamma.into_array_arg(),
        mean.clone().into_array_arg(),
        rstd.clone().into_array_arg(),
        dy.clone().into_array_arg(),
        dx.clone().into_array_arg(),
        grid.rows,
        grid.width,
        grid.units,
    );

    let chunks = rows.div_ceil(ROWS_PER_CHUNK);
    let total = chunks * width;
    let partial_gamma = empty_like(&x, Shape::new([chunks, width]));
    let partial_beta = empty_like(&x, Shape::new([chunks, width]));
    let (count, dim) = elementwise(&x, total);
    layer_norm_param_partials::launch::<R>(
        &client,
        count,
        dim,
        x.into_array_arg(),
        mean.into_array_arg(),
        rstd.into_array_arg(),
        dy.into_array_arg(),
        partial_gamma.clone().into_array_arg(),
        partial_beta.clone().into_array_arg(),
        grid.rows,
        grid.width,
        as_u32(total, "layer norm backward"),
        ROWS_PER_CHUNK,
    );
    // Launched on the same stream, so it reads the partial sums the kernel above wrote.
    let (count, dim) = elementwise(&dgamma, width);
    sum_chunks::launch::<R>(
        &client,
        count,
        dim,
        partial_gamma.into_array_arg(),
        partial_beta.into_array_arg(),
        dgamma.clone().into_array_arg(),
        dbeta.clone().into_array_arg(),
        as_u32(chunks, "layer norm backward"),
        grid.width,
    );
    (dx, dgamma, dbeta)
}
