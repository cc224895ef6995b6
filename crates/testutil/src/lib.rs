//! Helpers shared by the tests of every crate in the workspace, so that no test
//! suite carries its own copy. Only ever a dev-dependency.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use bert_model::BertConfig;

/// A scratch path `name` inside a fresh temporary folder; the folder (and whatever was written
/// under the path) is removed when this drops, also when the test panics. Derefs to the path.
pub struct Scratch {
    path: PathBuf,
    _root: tempfile::TempDir,
}

impl Scratch {
    /// The scratch path itself.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// A scratch path that does not exist yet (for a run or export directory to be created).
pub fn scratch(name: &str) -> Scratch {
    let root = tempfile::Builder::new()
        .prefix("bert-test-")
        .tempdir()
        .expect("creates a scratch folder");
    Scratch {
        path: root.path().join(name),
        _root: root,
    }
}

/// The `tiny` preset shrunk for tests that train or run a model in milliseconds: hidden 32
/// (2 heads of 16), intermediate 64, dropout off, with the vocabulary and positions the test's
/// data needs.
pub fn small_bert_config(vocab_size: usize, max_position_embeddings: usize) -> BertConfig {
    let mut c = BertConfig::preset("tiny").expect("the tiny preset exists");
    c.vocab_size = vocab_size;
    c.hidden_size = 32;
    c.num_attention_heads = 2;
    c.intermediate_size = 64;
    c.max_position_embeddings = max_position_embeddings;
    c.hidden_dropout_prob = 0.0;
    c.attention_probs_dropout_prob = 0.0;
    c
}

/// A scratch folder that exists and is empty.
pub fn scratch_dir(name: &str) -> Scratch {
    let s = scratch(name);
    std::fs::create_dir_all(&*s).expect("creates a scratch folder");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_folder_is_removed_when_dropped_also_on_panic() {
        let kept = {
            let s = scratch_dir("run");
            std::fs::write(s.join("f"), b"x").unwrap();
            assert!(s.is_dir() && s.path().ends_with("run"));
            s.path().to_path_buf()
        };
        assert!(!kept.exists());
        let path = std::sync::Mutex::new(None);
        let result = std::panic::catch_unwind(|| {
            let s = scratch("not-yet");
            assert!(!s.exists());
            *path.lock().unwrap() = Some(s.path().parent().unwrap().to_path_buf());
            panic!("a failing test");
        });
        assert!(result.is_err());
        let root = path.lock().unwrap().clone().unwrap();
        assert!(!root.exists(), "{} left behind", root.display());
    }
}
