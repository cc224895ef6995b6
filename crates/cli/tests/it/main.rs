//! The `bert` binary's integration tests, in one binary: the commands as users run them, with
//! their outputs and errors (`cli`, `data_cli`), the whole pipeline from tokenizer to forward
//! and the exact resume after SIGKILL (`train_cli`), every shipped config (`configs`), the
//! guards against lost work and nonsense inputs (`guards`), the `mlm` and `mlm_sop`
//! objectives end to end (`objectives`), and `bert finetune` with its exact resume after
//! SIGKILL (`finetune`), and that fine-tuning from a pre-trained encoder beats fine-tuning from
//! random weights (`pretraining_helps`).

mod support;

mod cli;
mod configs;
mod data_cli;
mod finetune;
mod guards;
mod objectives;
mod pretraining_helps;
mod train_cli;
