//! `bert download` (cargo feature `hub`): the arguments; the work is in `bert-hub`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use bert_hub::{human_bytes, DownloadRequest, FileEvent, HubSettings, Source};
use clap::{ArgGroup, Args};

/// `bert download`: Parquet corpora, tokenizers and weights from the HuggingFace Hub.
#[derive(Args, Debug)]
#[command(
    group(ArgGroup::new("source").required(true).multiple(false).args(["dataset", "model"])),
    after_help = "Examples:\n  \
bert download --dataset wikimedia/wikipedia --subset 20231101.en --out data/downloads/wikipedia\n  \
bert download --dataset wikimedia/wikipedia --subset 20231101.en --max-files 1 --out data/downloads/wiki-sample\n  \
bert download --dataset bookcorpus/bookcorpus --revision refs/convert/parquet --out data/downloads/bookcorpus\n  \
bert download --model google-bert/bert-base-uncased --out data/downloads/bert-base-uncased\n  \
bert download --model google-bert/bert-base-uncased --weights --out data/downloads/bert-base-uncased\n\n\
Then: bert prepare --input data/downloads/wikipedia data/downloads/bookcorpus \\\n      \
--vocab data/downloads/bert-base-uncased/vocab.txt --out data/shards\n\n\
Environment (as hf-hub reads it): HF_HOME (cache: $HF_HOME/hub, token file: $HF_HOME/token;\n\
default ~/.cache/huggingface), HF_ENDPOINT (default https://huggingface.co). HF_TOKEN, when set,\n\
takes precedence over the token file (gated or private repos). Files already in --out with the\n\
right size are skipped, so an interrupted download can be rerun. See docs/downloads.md."
)]
pub struct DownloadArgs {
    /// A dataset repo (e.g. wikimedia/wikipedia): fetches its Parquet files.
    #[arg(long, value_name = "REPO")]
    pub dataset: Option<String>,
    /// A model repo (e.g. google-bert/bert-base-uncased): fetches its tokenizer files.
    #[arg(long, value_name = "REPO")]
    pub model: Option<String>,
    /// Only the Parquet files under this folder of the dataset (e.g. 20231101.en).
    #[arg(long, conflicts_with = "model")]
    pub subset: Option<String>,
    /// Only the first N Parquet files (sorted by name): a laptop-sized sample.
    #[arg(long, value_name = "N", conflicts_with = "model", value_parser = parse_max_files)]
    pub max_files: Option<usize>,
    /// Also fetch config.json and model.safetensors (for `bert import`).
    #[arg(long, conflicts_with = "dataset")]
    pub weights: bool,
    /// Branch, tag or commit (refs/convert/parquet: the Hub's auto-converted Parquet files).
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Folder to write the files into (created).
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_max_files(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a whole number of files, 1 or more".into()),
    }
}

/// Runs `bert download`.
pub fn download(args: &DownloadArgs) -> Result<()> {
    let source = match (&args.dataset, &args.model) {
        (Some(d), None) => Source::Dataset(d.clone()),
        (None, Some(m)) => Source::Model(m.clone()),
        _ => anyhow::bail!("give exactly one of --dataset and --model"),
    };
    let request = DownloadRequest {
        source,
        subset: args.subset.clone(),
        max_files: args.max_files,
        weights: args.weights,
        revision: args.revision.clone(),
        out: args.out.clone(),
    };
    let settings = HubSettings::from_env()?;
    let progress = std::io::stderr().is_terminal();
    let summary = bert_hub::download(&request, &settings, progress, |event| match event {
        FileEvent::Present { local, bytes } => {
            println!(
                "  present     {:>9}  {}",
                human_bytes(bytes),
                local.display()
            )
        }
        FileEvent::Downloaded { local, bytes } => {
            println!(
                "  downloaded  {:>9}  {}",
                human_bytes(bytes),
                local.display()
            )
        }
    })?;
    println!(
        "{} file{}, {} in `{}` ({} downloaded, {} already present)",
        summary.files,
        if summary.files == 1 { "" } else { "s" },
        human_bytes(summary.bytes),
        args.out.display(),
        summary.fetched,
        summary.skipped
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    #[derive(Parser, Debug)]
    struct TestCli {
        #[command(subcommand)]
        command: TestCommand,
    }

    #[derive(Subcommand, Debug)]
    enum TestCommand {
        Download(DownloadArgs),
    }

    fn parse(args: &[&str]) -> std::result::Result<DownloadArgs, clap::Error> {
        let argv = ["bert", "download"].iter().chain(args).copied();
        TestCli::try_parse_from(argv).map(|cli| match cli.command {
            TestCommand::Download(a) => a,
        })
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        TestCli::command().debug_assert();
    }

    #[test]
    fn arguments_parse_and_validate() {
        let a = parse(&[
            "--dataset",
            "wikimedia/wikipedia",
            "--subset",
            "20231101.en",
            "--out",
            "o",
            "--max-files",
            "2",
        ])
        .unwrap();
        assert_eq!(a.dataset.as_deref(), Some("wikimedia/wikipedia"));
        assert_eq!(a.subset.as_deref(), Some("20231101.en"));
        assert_eq!(a.max_files, Some(2));
        assert_eq!(a.revision, "main");
        let a = parse(&[
            "--model",
            "google-bert/bert-base-uncased",
            "--weights",
            "--out",
            "o",
        ])
        .unwrap();
        assert!(a.weights && a.model.is_some() && a.dataset.is_none());
        let a = parse(&[
            "--dataset",
            "bookcorpus/bookcorpus",
            "--revision",
            "refs/convert/parquet",
            "--out",
            "o",
        ])
        .unwrap();
        assert_eq!(a.revision, "refs/convert/parquet");

        use clap::error::ErrorKind;
        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(kind(&["--out", "o"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&["--dataset", "a/b", "--model", "c/d", "--out", "o"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["--dataset", "a/b"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["--model", "a/b", "--subset", "x", "--out", "o"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["--model", "a/b", "--max-files", "1", "--out", "o"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["--dataset", "a/b", "--weights", "--out", "o"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["--subset", "x", "--out", "o"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["--dataset", "a/b", "--max-files", "0", "--out", "o"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&["--dataset", "a/b", "--max-files", "x", "--out", "o"]),
            ErrorKind::ValueValidation
        );
    }
}
