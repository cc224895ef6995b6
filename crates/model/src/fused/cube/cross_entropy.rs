//! Cross-entropy of each row of logits against its label, with whether the row's first arg-max
//! is the label, and its backward pass: as [`crate::fused::kernels::cross_entropy_rows`].

use burn::tensor::{DType, Shape, TensorMetadata};
use burn_cubecl::kernel::cast;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use super::launch::{as_u32, contiguous_f32, elementwise, empty_like, rows_of, RowGrid};
use super::reduce::{cube_max, cube_min_index, cube_sum};

/// One cube per row of `classes` logits: the row's log-sum-exp, the negative log-likelihood of
/// its label and whether its first largest logit is the label. A label outside the row gives
/// `nan` (passed in: WGSL has no NaN literal) and no hit, as flex's kernel does.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn cross_entropy_rows(
    x: &Array<f32>,
    labels: &Array<i32>,
    nll: &mut Array<f32>,
    hit: &mut Array<f32>,
    lse: &mut Array<f32>,
    rows: u32,
    classes: u32,
    nan: f32,
    #[comptime] units: usize,
) {
    let row = CUBE_POS;
    if row >= rows as usize {
        terminate!();
    }
    let unit = UNIT_POS as usize;
    let n = classes as usize;
    let at = row * n;
    let mut partial = SharedMemory::<f32>::new(units);
    let mut positions = SharedMemory::<u32>::new(units);

    // Each unit's maximum and the first of its positions that holds it (strictly greater: its
    // positions come in increasing order); a finite floor, as WGSL has no infinite literals.
    let mut local = f32::new(-3.0e38);
    let mut first = 0xffff_ffffu32;
    let mut j = unit;
    while j < n {
        let v = x[at + j];
        if v > local {
            local = v;
            first = j as u32;
        }
        j += units;
    }
    let row_max = cube_max(&mut partial, local);
    let candidate = select(local == row_max, first, 0xffff_ffffu32);
    let arg = cube_min_index(&mut positions, candidate);

    let mut local = f32::new(0.0);
    let mut j = unit;
    while j < n {
        local += (x[at + j] - row_max).exp();
        j += units;
    }
    let row_lse = row_max + cube_sum(&mut partial, local).ln();

    if unit == 0 {
        lse[row] = row_lse;
        let label = labels[row];
        if label >= 0 && (label as u32) < classes {
            nll[row] = row_lse - x[at + label as usize];
            hit[row] = select(arg == label as u32, f32::new(1.0), f32::new(0.0));
        } else {
            nll[row] = nan;
            hit[row] = f32::new(0.0);
        }
    }
}

/// One unit per logit: `dnll · (exp(x − lse) − [j = label])`.
#[cube(launch)]
fn cross_entropy_backward_elements(
    x: &Array<f32>,
    labels: &Array<i32>,
    lse: &Array<f32>,
    dnll: &Array<f32>,
    dx: &mut Array<f32>,
    total: u32,
    classes: u32,
) {
    let pos = ABSOLUTE_POS;
    if pos >= total as usize {
        terminate!();
    }
    let row = pos / classes as usize;
    let j = pos % classes as usize;
    let g = dnll[row];
    let mut d = g * (x[pos] - lse[row]).exp();
    let label = labels[row];
    if label >= 0 && label as usize == j {
        d -= g;
    }
    dx[pos] = d;
}

/// Labels as the kernels read them: contiguous i32, whatever the backend's integer type.
fn labels_i32<R: CubeRuntime>(labels: CubeTensor<R>) -> CubeTensor<R> {
    let labels = if labels.dtype == DType::I32 {
        labels
    } else {
        cast(labels, DType::I32)
    };
    burn_cubecl::kernel::into_contiguous(labels)
}

/// The shape `[rows]` and the class count of `logits [rows, classes]`, checked against the
/// labels' count.
fn sizes<R: CubeRuntime>(logits: &CubeTensor<R>, labels: &CubeTensor<R>) -> (usize, usize) {
    let (rows, classes) = rows_of(&logits.shape());
    assert_eq!(
        labels.shape().num_elements(),
        rows,
        "fused cross-entropy: one label per row of logits"
    );
    (rows, classes)
}

/// `(nll, hit, log-sum-exp)`, each `[n]`, of the rows of `logits [n, classes]` against
/// `labels [n]`.
pub(super) fn cross_entropy<R: CubeRuntime>(
    logits: CubeTensor<R>,
    labels: CubeTensor<R>,
) -> (CubeTensor<R>, CubeTensor<R>, CubeTensor<R>) {
    let x = contiguous_f32(logits, "cross-entropy logits");
    let labels = labels_i32(labels);
    let (rows, classes) = sizes(&x, &labels);
    let out = || empty_like(&x, Shape::new([rows]));
    let (nll, hit, lse) = (out(), out(), out());
    if rows == 0 {
        return (nll, hit, lse);
    }
    let grid = RowGrid::new(&x, rows, classes.max(1), "cross-entropy");
    cross_entropy_rows::launch::<R>(
        &x.client.clone(),
        grid.count,
        grid.dim,
        x.into_array_arg(),
        labels.into_array_arg(),
        nll.clone().into_array_arg(),
        hit.clone().into_array_arg(),
        lse.clone().into_array_arg(),
        grid.rows,
        as_u32(classes, "cross-entropy"),
        f32::NAN,
        grid.units,
    );
    (nll, hit, lse)
}

/// Gradient of the logits from the gradient `dnll [n]` of each row's loss.
pub(super) fn cross_entropy_backward<R: CubeRuntime>(
    logits: CubeTensor<R>,
    labels: CubeTensor<R>,
    log_sum_exp: CubeTensor<R>,
    dnll: CubeTensor<R>,
) -> CubeTensor<R> {
    let x = contiguous_f32(logits, "cross-entropy logits");
    let labels = labels_i32(labels);
    let lse = contiguous_f32(log_sum_exp, "cross-entropy log-sum-exp");
    let dnll = contiguous_f32(dnll, "cross-entropy loss gradient");
    let (rows, classes) = sizes(&x, &labels);
    assert_eq!(
        (lse.shape().num_elements(), dnll.shape().num_elements()),
        (rows, rows),
        "fused cross-entropy backward: one log-sum-exp and one loss gradient per row"
    );
    let total = rows * classes;
    let dx = empty_like(&x, x.shape());
    if total == 0 {
        return dx;
    }
    let (count, dim) = elementwise(&x, total);
    cross_entropy_backward_elements::launch::<R>(
        &x.client.clone(),
        count,
        dim,
        x.into_array_arg(),
        labels.into_array_arg(),
        lse.into_array_arg(),
        dnll.into_array_arg(),
        dx.clone().into_array_arg(),
        as_u32(total, "cross-entropy backward"),
        as_u32(classes, "cross-entropy backward"),
    );
    dx
}
