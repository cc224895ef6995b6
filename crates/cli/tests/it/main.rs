//! The `bert` binary's integration tests, in one binary: the commands as users run them, with
//! their outputs and errors (`cli`, `data_cli`), the whole pipeline from tokenizer to forward
//! and the exact resume after SIGKILL (`train_cli`), every shipped config (`configs`), and the
//! guards against lost work and nonsense inputs (`guards`).

mod support;

mod cli;
mod configs;
mod data_cli;
mod guards;
mod train_cli;
