//! What every test of the `bert` binary needs: running it, reading its output, checking a
//! user error, scratch folders that are removed even when a test fails, and safetensors reads.

use std::path::Path;
use std::process::{Command, Output};

/// A model fixture folder of the model crate (`crates/model/tests/fixtures/NAME`).
pub fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(name)
}

/// Runs the `bert` binary with `args` and waits for it.
pub fn bert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bert"))
        .args(args)
        .output()
        .expect("runs the bert binary")
}

/// Standard output and standard error as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    text(out).1
}

/// A user-caused failure: non-zero exit, the expected words, and no panic.
pub fn assert_user_error(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "should fail: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "error lacks `{n}`: {err}");
    }
}

/// A success; returns standard output.
pub fn assert_ok(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    assert!(out.status.success(), "failed: {stderr}");
    stdout
}

/// A success; returns standard output followed by standard error.
pub fn ok(out: Output) -> String {
    let (stdout, stderr) = text(&out);
    let all = format!("{stdout}{stderr}");
    assert!(out.status.success(), "command failed:\n{all}");
    all
}

/// A fresh scratch folder named after the test, removed when the returned guard drops (also
/// when the test panics); shared with the other crates' tests.
pub use bert_testutil::scratch_dir as scratch;

/// Every tensor of a safetensors file as f32 values, sorted by name.
pub fn read_safetensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let v = f32s(st.tensor(&n).unwrap().data());
            (n, v)
        })
        .collect()
}

/// One tensor of a safetensors file as f32 values.
pub fn read_f32(path: &Path, key: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    f32s(st.tensor(key).unwrap().data())
}

fn f32s(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
