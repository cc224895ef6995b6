//! Where the CUDA backend keeps its compiled kernels and autotune results between runs.
//!
//! CubeCL compiles every kernel at first use (NVRTC) and, with autotuning, times candidate
//! kernels for every new shape; both take most of a first step. By default it would keep the
//! autotune results under the nearest Cargo `target/` folder (so a different one per working
//! directory) and compiled kernels nowhere. `bert` points both at one folder, so the second run
//! on a machine starts fast:
//! `$BERT_KERNEL_CACHE`, else `$XDG_CACHE_HOME/bert/kernels`, else `~/.cache/bert/kernels`.
//! A `cubecl.toml` (or `burn.toml` with a `[cubecl]` table) in the working directory or above
//! it takes precedence, as CubeCL documents; `CUBECL_*` environment variables still apply.

use std::path::{Path, PathBuf};

/// The kernel cache folder `bert` uses when no CubeCL config file says otherwise.
fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BERT_KERNEL_CACHE").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("bert").join("kernels"))
}

/// Whether a CubeCL config file applies to the current directory.
fn cubecl_file_applies() -> bool {
    let Ok(mut dir) = std::env::current_dir() else {
        return false;
    };
    loop {
        if ["cubecl.toml", "CubeCL.toml", "burn.toml", "Burn.toml"]
            .iter()
            .any(|name| dir.join(name).is_file())
        {
            return true;
        }
        if !dir.pop() {
            return false;
        }
    }
}

/// Sets CubeCL's global config before the first CUDA device is created; called when a command
/// dispatches to CUDA, so CPU runs and data commands never create the folder. CubeCL accepts
/// its config once per process, hence the `Once`.
pub fn configure() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(set_config);
}

fn set_config() {
    use cubecl::config::cache::CacheConfig;
    use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

    if cubecl_file_applies() {
        return;
    }
    let Some(dir) = cache_dir() else { return };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::warn!(
            "kernel cache {} cannot be created ({e}); kernels are compiled and tuned afresh",
            dir.display()
        );
        return;
    }
    let mut config = CubeClRuntimeConfig::default().override_from_env();
    config.autotune.cache = CacheConfig::File(dir.clone());
    config.compilation.cache = Some(CacheConfig::File(dir.clone()));
    CubeClRuntimeConfig::set(config);
    tracing::debug!("CubeCL kernel and autotune cache: {}", dir.display());
}
