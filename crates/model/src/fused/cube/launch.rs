//! What every CubeCL kernel of ours needs on the host: its tensors contiguous and f32, new
//! outputs, and a launch grid (one cube per row for the row kernels, one unit per element for
//! the element-wise ones).

use burn::tensor::{DType, Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::{empty_device_contiguous_dtype, zeros_client};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::calculate_cube_count_elemwise;
use cubecl::prelude::{CubeCount, CubeDim};

/// Most units in one cube: enough to cover a 256-wide attention head in one stride; a power of
/// two, as the cube-wide tree reductions need.
pub(super) const MAX_UNITS: usize = 256;

/// `t` contiguous (the kernels index rows and columns directly), checked to be f32.
pub(super) fn contiguous_f32<R: CubeRuntime>(t: CubeTensor<R>, what: &str) -> CubeTensor<R> {
    assert_eq!(
        t.dtype,
        DType::F32,
        "fused {what}: the route only sends f32 tensors here"
    );
    into_contiguous(t)
}

/// A new contiguous f32 tensor on `like`'s device, its values to be written by a kernel.
pub(super) fn empty_like<R: CubeRuntime>(like: &CubeTensor<R>, shape: Shape) -> CubeTensor<R> {
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape, DType::F32)
}

/// A new f32 tensor of zeros on `like`'s device.
pub(super) fn zeros_like<R: CubeRuntime>(like: &CubeTensor<R>, shape: Shape) -> CubeTensor<R> {
    zeros_client(like.client.clone(), like.device.clone(), shape, DType::F32)
}

/// `(rows, row length)` of `shape` read as rows over its last dimension (a scalar is one row
/// of one).
pub(super) fn rows_of(shape: &Shape) -> (usize, usize) {
    let dims = shape.as_slice();
    let width = dims.last().copied().unwrap_or(1);
    let rows = dims[..dims.len().saturating_sub(1)].iter().product();
    (rows, width)
}

/// The shape of one value per row of `shape` (its last dimension dropped, flattened).
pub(super) fn rows_shape(shape: &Shape) -> Shape {
    Shape::new([rows_of(shape).0])
}

/// `n` as a kernel's u32 argument: WGSL has no 64-bit integers, and more elements than 2³² in
/// one tensor cannot be launched anyway.
pub(super) fn as_u32(n: usize, what: &str) -> u32 {
    u32::try_from(n).unwrap_or_else(|_| panic!("fused {what}: {n} exceeds the kernels' u32 range"))
}

/// The largest power of two of units a cube may have on `like`'s device, at most [`MAX_UNITS`].
pub(super) fn max_units<R: CubeRuntime>(like: &CubeTensor<R>) -> usize {
    let hardware = &like.client.properties().hardware;
    let limit = (hardware.max_units_per_cube.min(hardware.max_cube_dim.0) as usize).min(MAX_UNITS);
    1usize << (usize::BITS - 1 - limit.max(1).leading_zeros())
}

/// A grid of `rows` cubes (`CUBE_POS` is the row), spread over two grid dimensions where one
/// does not hold them.
pub(super) fn row_count<R: CubeRuntime>(
    like: &CubeTensor<R>,
    rows: usize,
    what: &str,
) -> CubeCount {
    let hardware = &like.client.properties().hardware;
    let max_x = hardware.max_cube_count.0.max(1) as usize;
    let x = rows.clamp(1, max_x);
    let y = rows.div_ceil(x);
    assert!(
        y <= hardware.max_cube_count.1 as usize,
        "fused {what}: {rows} rows exceed the device's cube grid"
    );
    CubeCount::Static(x as u32, y as u32, 1)
}

/// How a row kernel is launched: one cube per row, its units striding over the row.
pub(super) struct RowGrid {
    /// The cubes, one per row ([`row_count`]).
    pub count: CubeCount,
    /// The units of one cube.
    pub dim: CubeDim,
    /// Units per cube (a power of two, no more than the row has elements to share out).
    pub units: usize,
    /// Rows, as the kernels' bound on `CUBE_POS`.
    pub rows: u32,
    /// Elements per row.
    pub width: u32,
}

impl RowGrid {
    /// The grid for `rows` rows of `width` elements on `like`'s device; `what` names the op in
    /// the panic of a size the kernels cannot take.
    pub fn new<R: CubeRuntime>(
        like: &CubeTensor<R>,
        rows: usize,
        width: usize,
        what: &str,
    ) -> Self {
        let units = width.next_power_of_two().clamp(1, max_units(like));
        RowGrid {
            count: row_count(like, rows, what),
            dim: CubeDim::new_1d(units as u32),
            units,
            rows: as_u32(rows, what),
            width: as_u32(width, what),
        }
    }
}

/// How an element-wise kernel over `n` elements is launched (`ABSOLUTE_POS` is the element;
/// the grid may hold more units than elements).
pub(super) fn elementwise<R: CubeRuntime>(like: &CubeTensor<R>, n: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new(&like.client, n);
    (calculate_cube_count_elemwise(&like.client, n, dim), dim)
}

/// The element count of `t`.
pub(super) fn len<R: CubeRuntime>(t: &CubeTensor<R>) -> usize {
    t.shape().num_elements()
}
