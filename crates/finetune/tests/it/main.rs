//! `bert-finetune`'s integration tests, in one binary: the GLUE metrics against scikit-learn
//! and SciPy (`metrics`), fine-tuning runs on tasks a model must learn (`train`).

mod metrics;
mod train;
