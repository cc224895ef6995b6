//! Downstream evaluation of a pre-trained encoder: how good is it once fine-tuned?
//!
//! People judge a pre-training run by fine-tuning it on GLUE-style tasks. This crate is where
//! `bert finetune` (issue 28) is being built; so far it holds the scores, computed as the GLUE
//! benchmark defines them ([`metrics`]): accuracy, F1 of the positive class, Matthews
//! correlation, Pearson and Spearman correlation, and the spread of a score over seeds and grid
//! points. They are held to scikit-learn and SciPy by committed fixtures
//! (`scripts/make_glue_metric_fixtures.py`).

#![warn(missing_docs)]

pub mod metrics;

pub use metrics::{MetricError, Spread};
