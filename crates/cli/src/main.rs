//! `bert`: pre-train BERT encoders on Burn. Thin: parses arguments and wires the crates.

mod commands;
mod device;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "bert",
    version,
    about = "Pre-train BERT encoders on Burn: data, training, HuggingFace interop"
)]
struct Cli {
    /// Log filter (error, warn, info, debug, trace, or a tracing directive); RUST_LOG also works.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a model on a JSON batch and write all four outputs as JSON.
    Forward(commands::ForwardArgs),
    /// Write a HuggingFace folder (for `transformers`) from a checkpoint.
    Export(commands::ExportArgs),
    /// Turn a HuggingFace folder into a checkpoint to continue pre-training from.
    Import(commands::ImportArgs),
}

fn init_logging(level: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let result = match &cli.command {
        Command::Forward(args) => commands::forward(args),
        Command::Export(args) => commands::export(args),
        Command::Import(args) => commands::import(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
