//! Reductions across a cube through shared memory, shared by every kernel that reduces a row
//! (attention, softmax, cross-entropy, LayerNorm).
//!
//! Never plane (subgroup) operations: wgpu turns those off on a CPU adapter such as lavapipe,
//! where the tests run. Each helper ends with a barrier after every unit has read the result, so
//! the next reduction may reuse the same slots.

use cubecl::prelude::*;

/// The maximum (`take_max`) or the sum of every unit's `value`, returned to all units. `partial`
/// has one slot per unit; the cube's unit count is a power of two.
#[cube]
fn cube_reduce(partial: &mut SharedMemory<f32>, value: f32, #[comptime] take_max: bool) -> f32 {
    let unit = UNIT_POS as usize;
    partial[unit] = value;
    sync_cube();
    let mut active = CUBE_DIM;
    while active > 1 {
        active /= 2;
        if UNIT_POS < active {
            let other = partial[(UNIT_POS + active) as usize];
            if take_max {
                partial[unit] = max(partial[unit], other);
            } else {
                partial[unit] += other;
            }
        }
        sync_cube();
    }
    let out = partial[0];
    // Every unit has read the result before anyone reuses the slots.
    sync_cube();
    out
}

/// The maximum of every unit's `value`, returned to all units ([`cube_reduce`]).
#[cube]
pub(super) fn cube_max(partial: &mut SharedMemory<f32>, value: f32) -> f32 {
    cube_reduce(partial, value, true)
}

/// The sum of every unit's `value`, returned to all units ([`cube_reduce`]).
#[cube]
pub(super) fn cube_sum(partial: &mut SharedMemory<f32>, value: f32) -> f32 {
    cube_reduce(partial, value, false)
}

/// The least of every unit's `value`, returned to all units (as [`cube_reduce`], on indices).
#[cube]
pub(super) fn cube_min_index(partial: &mut SharedMemory<u32>, value: u32) -> u32 {
    let unit = UNIT_POS as usize;
    partial[unit] = value;
    sync_cube();
    let mut active = CUBE_DIM;
    while active > 1 {
        active /= 2;
        if UNIT_POS < active {
            partial[unit] = min(partial[unit], partial[(UNIT_POS + active) as usize]);
        }
        sync_cube();
    }
    let out = partial[0];
    sync_cube();
    out
}
