//! `bert-finetune`'s integration tests, in one binary: the GLUE metrics against scikit-learn
//! and SciPy (`metrics`), fine-tuning runs on tasks a model must learn and their exact resume
//! (`train`), and the fine-tuned export as `transformers` reads it (`hf_export`).

mod hf_export;
mod metrics;
mod train;
