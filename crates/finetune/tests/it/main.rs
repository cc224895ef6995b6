//! `bert-finetune`'s integration tests, in one binary: the GLUE metrics against scikit-learn
//! and SciPy (`metrics`).

mod metrics;
