//! The facts a shard header records about its set (`__metadata__`): written by
//! [`base_metadata`], checked against the set's [`DatasetHeader`] and objective by
//! [`check_recorded_facts`], and against a prepare recipe by [`DatasetHeader::check_recipe`]
//! (masking) and [`check_objective`] (objective).

use std::collections::BTreeMap;
use std::path::Path;

use super::format::{
    format_version_for, DatasetHeader, FORMAT_NAME, FORMAT_VERSION, FORMAT_VERSION_OBJECTIVES,
};
use crate::error::{DataError, Result};
use crate::objective::ObjectiveSpec;
use crate::prepare::PrepareConfig;

impl DatasetHeader {
    /// Checks that this set is what `recipe` would make, as far as the header records it:
    /// masking mode and parameters, sequence length and dupe factor. `path` names the set in
    /// the error, `expected_from` where the recipe comes from (e.g. a run config's
    /// `[prepare]`). The objective is recorded beside the header: `ShardSet::check_recipe`
    /// checks both.
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
        let spec = ObjectiveSpec::MLM_NSP;
        check_recorded_facts(
            path,
            &base_metadata(self, &spec, 0),
            &expected,
            &spec,
            expected_from,
        )
    }
}

/// Checks that a set of objective `found` is what a recipe of objective `expected` would make
/// (`path` and `expected_from` as for [`DatasetHeader::check_recipe`]).
pub(crate) fn check_objective(
    path: &Path,
    found: &ObjectiveSpec,
    expected: &ObjectiveSpec,
    expected_from: &str,
) -> Result<()> {
    let md = objective_metadata(found);
    compare_objective(path, &md, expected, expected_from)
}

/// The header keys of an objective: none for `mlm_nsp` (so its shards stay byte for byte what
/// builds before objectives wrote), `objective` otherwise, and `mlm_format` for `mlm`.
fn objective_metadata(spec: &ObjectiveSpec) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if spec.objective != crate::objective::Objective::MlmNsp {
        m.insert("objective".into(), spec.objective.as_str().into());
    }
    if let Some(f) = spec.mlm_format {
        m.insert("mlm_format".into(), f.as_str().into());
    }
    m
}

/// `objective` and `mlm_format` of a header against `expected`; absent keys read as a set
/// made before objectives existed: `mlm_nsp`, no format.
fn compare_objective(
    path: &Path,
    md: &BTreeMap<String, String>,
    expected: &ObjectiveSpec,
    expected_from: &str,
) -> Result<()> {
    let checks = [
        (
            "objective",
            md.get("objective").map_or("mlm_nsp", String::as_str),
            expected.objective.as_str(),
        ),
        (
            "mlm_format",
            md.get("mlm_format").map_or("none", String::as_str),
            expected.mlm_format.map_or("none", |f| f.as_str()),
        ),
    ];
    for (key, got, want) in checks {
        if got != want {
            return Err(DataError::ShardMismatch {
                path: path.to_path_buf(),
                field: key.into(),
                found: got.to_string(),
                expected: want.to_string(),
                expected_from: expected_from.into(),
            });
        }
    }
    Ok(())
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
    let known = [FORMAT_VERSION, FORMAT_VERSION_OBJECTIVES].map(|v| v.to_string());
    if !version.is_some_and(|v| known.iter().any(|k| k == v)) {
        return Err(DataError::Shard {
            path: path.to_path_buf(),
            message: format!(
                "unknown format version {} (this build reads versions {FORMAT_VERSION} and \
                 {FORMAT_VERSION_OBJECTIVES}); re-run `bert prepare` or use a matching build",
                version.unwrap_or("<missing>")
            ),
        });
    }
    Ok(())
}

/// The facts a shard header records about its set, each against the index's header and
/// objective: a shard from another prepare run (other masking, sequence length, split,
/// objective…) is refused by name.
pub(super) fn check_recorded_facts(
    path: &Path,
    md: &BTreeMap<String, String>,
    header: &DatasetHeader,
    spec: &ObjectiveSpec,
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
    compare_objective(path, md, spec, expected_from)
}

/// Metadata every shard of a set of objective `spec` carries.
pub(super) fn base_metadata(
    h: &DatasetHeader,
    spec: &ObjectiveSpec,
    shard_index: usize,
) -> BTreeMap<String, String> {
    let mut m = objective_metadata(spec);
    m.insert("format".into(), FORMAT_NAME.to_string());
    m.insert(
        "format_version".into(),
        format_version_for(spec).to_string(),
    );
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
