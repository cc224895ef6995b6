//! The pre-training objective a shard set is built for, chosen in `[prepare]` and recorded in
//! the shards, so that `bert train` can check it and choose the heads.
//!
//! - `mlm_nsp` (BERT, the default): `[CLS] A [SEP] B [SEP]`, B the true continuation half of the
//!   time (label 0), else from another document (label 1).
//! - `mlm` (RoBERTa): one segment, whole sentences packed up to `max_seq_length`, across
//!   documents with a `[SEP]` between them (`full_sentences`) or never crossing one
//!   (`doc_sentences`); token types all 0, the label column all 0.
//! - `mlm_sop` (ALBERT): `[CLS] A [SEP] B [SEP]` with A and B consecutive in one document, in
//!   order (label 0) or swapped (label 1), half the time each.
//!
//! The label of every objective is stored in the shards' `nsp_labels` tensor (and reaches the
//! trainer as `HostBatch::nsp_labels`), so the format is the same for all three: for `mlm_sop`
//! it means "swapped", for `mlm` it is always 0 and no head reads it.

use serde::{Deserialize, Serialize};

/// Which pre-training task the instances are built for (`[prepare] objective`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Objective {
    /// BERT: masked LM + next-sentence prediction.
    #[default]
    MlmNsp,
    /// RoBERTa: masked LM only, on packed single-segment sequences.
    Mlm,
    /// ALBERT: masked LM + sentence-order prediction.
    MlmSop,
}

impl Objective {
    /// Every objective, in the order the messages list them.
    pub const ALL: [Objective; 3] = [Self::MlmNsp, Self::Mlm, Self::MlmSop];

    /// The config spelling: `mlm_nsp`, `mlm` or `mlm_sop`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MlmNsp => "mlm_nsp",
            Self::Mlm => "mlm",
            Self::MlmSop => "mlm_sop",
        }
    }

    /// Whether instances carry a sentence-pair label the model must predict (NSP or SOP): the
    /// trainer needs a pair-classification head exactly when this is true.
    pub fn has_pair_label(self) -> bool {
        !matches!(self, Self::Mlm)
    }

    /// `short_seq_prob` when the config does not set it: BERT's and ALBERT's 0.1 for the pair
    /// objectives; 0 for `mlm`, where RoBERTa packs every sequence to the full length.
    pub fn default_short_seq_prob(self) -> f64 {
        match self {
            Self::MlmNsp | Self::MlmSop => 0.1,
            Self::Mlm => 0.0,
        }
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Objective {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "objective: unknown objective {s:?} (expected \"mlm_nsp\" for BERT, \"mlm\" \
                     for RoBERTa or \"mlm_sop\" for ALBERT)"
                )
            })
    }
}

impl TryFrom<String> for Objective {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// How `mlm` packs sentences into sequences (`[prepare] mlm_format`), RoBERTa's two input
/// formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum MlmFormat {
    /// Sentences packed across document boundaries, one `[SEP]` between documents.
    #[default]
    FullSentences,
    /// Sentences packed within one document; a document's last sequence may be short.
    DocSentences,
}

impl MlmFormat {
    /// The config spelling: `full_sentences` or `doc_sentences`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullSentences => "full_sentences",
            Self::DocSentences => "doc_sentences",
        }
    }
}

impl std::fmt::Display for MlmFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MlmFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full_sentences" => Ok(Self::FullSentences),
            "doc_sentences" => Ok(Self::DocSentences),
            other => Err(format!(
                "mlm_format: unknown format {other:?} (expected \"full_sentences\" or \
                 \"doc_sentences\")"
            )),
        }
    }
}

impl TryFrom<String> for MlmFormat {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// What kind of instances a shard set holds: the objective and, for `mlm` only, its packing
/// format. Recorded in every shard header and `index.json` of the set (absent in sets made
/// before objectives existed, which read as `mlm_nsp`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectiveSpec {
    /// The objective.
    #[serde(default)]
    pub objective: Objective,
    /// The packing format: `Some` exactly when `objective` is `mlm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlm_format: Option<MlmFormat>,
}

impl ObjectiveSpec {
    /// BERT's objective, the default.
    pub const MLM_NSP: ObjectiveSpec = ObjectiveSpec {
        objective: Objective::MlmNsp,
        mlm_format: None,
    };

    /// The spec of `objective`, with `mlm_format` (its default when `None`) kept only for
    /// `mlm`, where it means something.
    pub fn new(objective: Objective, mlm_format: Option<MlmFormat>) -> Self {
        Self {
            objective,
            mlm_format: match objective {
                Objective::Mlm => Some(mlm_format.unwrap_or_default()),
                _ => None,
            },
        }
    }

    /// `mlm_nsp`, `mlm_sop`, or `mlm (full_sentences)` / `mlm (doc_sentences)`, for messages.
    pub fn describe(&self) -> String {
        match self.mlm_format {
            Some(f) => format!("{} ({f})", self.objective),
            None => self.objective.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_unknown_ones_name_the_key() {
        for o in Objective::ALL {
            assert_eq!(o.as_str().parse::<Objective>(), Ok(o));
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.as_str()));
            assert_eq!(serde_json::from_str::<Objective>(&json).unwrap(), o);
        }
        let err = serde_json::from_str::<Objective>("\"roberta\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("objective") && err.contains("roberta"),
            "{err}"
        );
        for f in [MlmFormat::FullSentences, MlmFormat::DocSentences] {
            assert_eq!(f.as_str().parse::<MlmFormat>(), Ok(f));
        }
        let err = "packed".parse::<MlmFormat>().unwrap_err();
        assert!(err.contains("mlm_format"), "{err}");
    }

    #[test]
    fn the_format_is_kept_only_for_mlm() {
        assert_eq!(
            ObjectiveSpec::new(Objective::Mlm, None).mlm_format,
            Some(MlmFormat::FullSentences)
        );
        assert_eq!(
            ObjectiveSpec::new(Objective::MlmSop, Some(MlmFormat::DocSentences)).mlm_format,
            None
        );
        assert_eq!(
            ObjectiveSpec::new(Objective::MlmNsp, None),
            ObjectiveSpec::MLM_NSP
        );
        // Absent fields (an index written before objectives) read as BERT's.
        let old: ObjectiveSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(old, ObjectiveSpec::MLM_NSP);
    }
}
