//! `bert`: pre-train BERT encoders on Burn. Thin: parses arguments and wires the crates.

mod data_cmds;
mod device;
#[cfg(feature = "hub")]
mod download;
mod finetune_cmds;
#[cfg(feature = "cuda")]
mod kernel_cache;
mod model_cmds;
mod train_cmds;

use std::io::Write;
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
    /// Turn raw corpora into masked pre-training shards (train/ and validation/).
    Prepare(data_cmds::PrepareArgs),
    /// Show what a shard folder holds: counts, masking and NSP statistics, samples.
    Inspect(data_cmds::InspectArgs),
    /// Vocabulary tools (train a WordPiece vocabulary).
    #[command(subcommand)]
    Tokenizer(data_cmds::TokenizerCommand),
    /// Run a model on a JSON batch and write all four outputs as JSON.
    Forward(model_cmds::ForwardArgs),
    /// Print the most probable tokens for each [MASK] of a sentence.
    FillMask(model_cmds::FillMaskArgs),
    /// Write a HuggingFace folder (for `transformers`) from a checkpoint.
    Export(model_cmds::ExportArgs),
    /// Turn a HuggingFace folder into a checkpoint to continue pre-training from.
    Import(model_cmds::ImportArgs),
    /// Train (or resume) the run a TOML config describes.
    Train(train_cmds::TrainArgs),
    /// MLM/NSP loss and accuracy of a checkpoint on prepared shards.
    Eval(train_cmds::EvalArgs),
    /// Write a PNG of a run's loss and accuracy curves.
    Plot(train_cmds::PlotArgs),
    /// Time full training steps on synthetic batches (sequences/s, peak memory).
    Bench(train_cmds::BenchArgs),
    /// Fine-tune a model on a GLUE-style task over a grid of learning rates, batch sizes and
    /// seeds; export the best run for transformers.
    Finetune(finetune_cmds::FinetuneArgs),
    /// Fetch Parquet corpora and tokenizers from the HuggingFace Hub (feature `hub`).
    #[cfg(feature = "hub")]
    Download(download::DownloadArgs),
}

fn init_logging(level: &str) {
    let mut filter = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string());
    if !filter.contains('=') {
        // Burn's collective logs every tensor transfer at info; keep its warnings only unless
        // the user names it in a directive.
        filter.push_str(",burn_communication=warn,burn_collective=warn");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (libmimalloc-sys 0.1.49 names no
/// constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Never hand freed memory back to the OS during a run: training allocates the same sizes
    // every step, and re-faulting those pages cost about 6% of a step. `MIMALLOC_PURGE_DELAY`
    // in the environment still wins.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads it when it next purges.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    // A one-device CPU command runs whole on a thread of rayon's global pool
    // (`device::on_pool_thread`), so give the pool's threads the main thread's stack size
    // instead of std's 2 MiB. The thread count stays rayon's (`RAYON_NUM_THREADS`, else every
    // core). It fails only if the pool already exists, which nothing before this line makes.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(8 << 20)
        .build_global();
    let cli = Cli::parse();
    init_logging(&cli.log);
    let result = match &cli.command {
        Command::Prepare(args) => data_cmds::prepare(args),
        Command::Inspect(args) => data_cmds::inspect(args),
        Command::Tokenizer(command) => data_cmds::tokenizer(command),
        Command::Forward(args) => model_cmds::forward(args),
        Command::FillMask(args) => model_cmds::fill_mask(args),
        Command::Export(args) => model_cmds::export(args),
        Command::Import(args) => model_cmds::import(args),
        Command::Train(args) => train_cmds::train_command(args),
        Command::Eval(args) => train_cmds::eval_command(args),
        Command::Plot(args) => train_cmds::plot_command(args),
        Command::Bench(args) => train_cmds::bench(args),
        Command::Finetune(args) => finetune_cmds::finetune_command(args),
        #[cfg(feature = "hub")]
        Command::Download(args) => download::download(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One write call: a panicking thread (the collective's network tasks when a peer
            // dies) writes its report to stderr without taking the lock, so a line written
            // piece by piece, as `eprintln!` does, can be torn apart by it.
            let line = format!("error: {}\n", error_report(&err));
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, as `{:#}` writes them, but without a cause whose text
/// the message before it already ends with: several error types quote their source (an OS
/// error) in their own message and also return it as the source.
fn error_report(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_report;

    /// An error that quotes its source in its message, as `FsError` does.
    #[derive(Debug)]
    struct Quoting {
        source: std::io::Error,
    }

    impl std::fmt::Display for Quoting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "removing out/train: {}", self.source)
        }
    }

    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_quoted_cause_is_written_once() {
        let os = std::io::Error::from_raw_os_error(1);
        let err = anyhow::Error::new(Quoting { source: os });
        let line = error_report(&err);
        assert_eq!(line.matches("(os error 1)").count(), 1, "{line}");
        assert!(line.starts_with("removing out/train: "), "{line}");
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_report(&plain), "outer: inner");
    }
}
