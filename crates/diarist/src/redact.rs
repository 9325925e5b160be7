//! `diarist redact`: personal data in transcript text, found and hidden.

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;

use diarist_config::Settings;
use diarist_pii::text::{LineFormat, parse, read_text, redact_items};

use crate::settings::{self, CommonArgs, OfflineArgs};

/// Arguments of `diarist redact`.
#[derive(clap::Args)]
pub struct RedactArgs {
    /// Text to redact, or `-` for standard input.
    #[arg(default_value = "-")]
    pub input: PathBuf,
    /// Input format: `text` (one utterance per line; prints each redacted, its entities
    /// indented below it), `jsonl` (one JSON object with a "text" field per line; prints it with
    /// "redacted" and "entities") or `stm` (NIST STM; prints it with the words redacted).
    #[arg(long, default_value = "text", value_name = "text|jsonl|stm")]
    pub format: LineFormat,
    #[command(flatten)]
    pub pii: PiiArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Overrides of the `[pii]` configuration.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PiiArgs {
    /// PII tagger model directory (holding manifest.toml).
    #[arg(long)]
    pub pii_model: Option<PathBuf>,
    /// PII tagger variant ("int8", "fp32", ...).
    #[arg(long)]
    pub pii_variant: Option<String>,
}

impl PiiArgs {
    /// The configuration with these overrides applied.
    pub fn apply(&self, config: &mut Settings) {
        if let Some(m) = &self.pii_model {
            config.pii.model = m.clone();
            // another model's variants are its own: start from its default
            config.pii.variant = String::new();
        }
        if let Some(v) = &self.pii_variant {
            config.pii.variant = v.clone();
        }
    }
}

/// Runs `diarist redact`.
pub fn run(args: &RedactArgs) -> anyhow::Result<ExitCode> {
    let mut config = settings::load(&args.common, &OfflineArgs::default())?;
    args.pii.apply(&mut config);
    let input = read_text(&args.input)?;
    let items = parse(&input, args.format)?;
    let mut tagger = config.load_tagger()?;
    redact_items(
        &mut tagger,
        &items,
        &config.pii,
        &mut BufWriter::new(std::io::stdout().lock()),
    )?;
    Ok(ExitCode::SUCCESS)
}
