//! The facts a shard header records about its set (`__metadata__`): written by
//! [`base_metadata`], checked against the set's [`DatasetHeader`] by [`check_recorded_facts`],
//! and against a prepare recipe by [`DatasetHeader::check_recipe`].

use std::collections::BTreeMap;
use std::path::Path;

use super::format::{DatasetHeader, FORMAT_NAME, FORMAT_VERSION};
use crate::error::{DataError, Result};
use crate::prepare::PrepareConfig;

impl DatasetHeader {
    /// Checks that this set is what `recipe` would make, as far as training sees it: masking
    /// mode and parameters, sequence length and dupe factor. `path` names the set in the
    /// error, `expected_from` where the recipe comes from (e.g. a run config's `[prepare]`).
    pub fn check_recipe(
        &self,
        path: &Path,
        recipe: &PrepareConfig,
        expected_from: &str,
    ) -> Result<()> {
        let expected = DatasetHeader {
            max_seq_length: recipe.max_seq_length,
            masking: recipe.masking,
            masking_params: recipe.masking_params(),
            dupe_factor: recipe.effective_dupe_factor(),
            ..self.clone()
        };
        check_recorded_facts(path, &base_metadata(self, 0), &expected, expected_from)
    }
}

pub(super) fn check_format(path: &Path, format: Option<&str>, version: Option<&str>) -> Result<()> {
    if format != Some(FORMAT_NAME) {
        return Err(DataError::Shard {
            path: path.to_path_buf(),
            message: format!(
                "format is {:?}, expected {FORMAT_NAME:?}",
                format.unwrap_or("<missing>")
            ),
        });
    }
    if version != Some(FORMAT_VERSION.to_string().as_str()) {
        return Err(DataError::Shard {
            path: path.to_path_buf(),
            message: format!(
                "unknown format version {} (this build reads version {FORMAT_VERSION}); \
                 re-run `bert prepare` or use a matching build",
                version.unwrap_or("<missing>")
            ),
        });
    }
    Ok(())
}

/// The facts a shard header records about its set, each against the index's header: a shard
/// from another prepare run (other masking, sequence length, split…) is refused by name.
pub(super) fn check_recorded_facts(
    path: &Path,
    md: &BTreeMap<String, String>,
    header: &DatasetHeader,
    expected_from: &str,
) -> Result<()> {
    let p = &header.masking_params;
    let expected = [
        ("split", header.split.clone()),
        ("max_seq_length", header.max_seq_length.to_string()),
        ("vocab_size", header.vocab_size.to_string()),
        ("masking", header.masking.as_str().to_string()),
        ("masked_lm_prob", p.masked_lm_prob.to_string()),
        (
            "max_predictions_per_seq",
            p.max_predictions_per_seq.to_string(),
        ),
        ("whole_word_masking", p.whole_word_masking.to_string()),
        ("mask_count", p.count.as_str().to_string()),
        ("dupe_factor", header.dupe_factor.to_string()),
    ];
    for (key, want) in expected {
        // Shards record `mask_count` only when it is not Google's fixed count.
        let absent = if key == "mask_count" {
            "fixed"
        } else {
            "<missing>"
        };
        let got = md.get(key).map_or(absent, String::as_str);
        let same = match key {
            // A float that went through JSON may differ in its last digit; not a mismatch.
            "masked_lm_prob" => got
                .parse::<f64>()
                .is_ok_and(|g| (g - p.masked_lm_prob).abs() <= 1e-12),
            _ => got == want,
        };
        if !same {
            return Err(DataError::ShardMismatch {
                path: path.to_path_buf(),
                field: key.into(),
                found: got.to_string(),
                expected: want,
                expected_from: expected_from.into(),
            });
        }
    }
    Ok(())
}

/// Metadata every shard of a set carries.
pub(super) fn base_metadata(h: &DatasetHeader, shard_index: usize) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("format".into(), FORMAT_NAME.to_string());
    m.insert("format_version".into(), FORMAT_VERSION.to_string());
    m.insert("split".into(), h.split.clone());
    m.insert("shard_index".into(), shard_index.to_string());
    m.insert("vocab_hash".into(), h.vocab_hash.clone());
    m.insert("vocab_size".into(), h.vocab_size.to_string());
    m.insert("max_seq_length".into(), h.max_seq_length.to_string());
    m.insert("masking".into(), h.masking.as_str().into());
    m.insert(
        "masked_lm_prob".into(),
        h.masking_params.masked_lm_prob.to_string(),
    );
    m.insert(
        "max_predictions_per_seq".into(),
        h.masking_params.max_predictions_per_seq.to_string(),
    );
    m.insert(
        "whole_word_masking".into(),
        h.masking_params.whole_word_masking.to_string(),
    );
    // Only when it differs from the original rule, so shards made before it existed keep
    // their metadata (and checksums) byte for byte.
    if h.masking_params.count != crate::masking::MaskCount::Fixed {
        m.insert("mask_count".into(), h.masking_params.count.as_str().into());
    }
    m.insert("dupe_factor".into(), h.dupe_factor.to_string());
    m
}
