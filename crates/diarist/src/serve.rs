//! `diarist serve` and `diarist client`: the WebSocket service and a client for it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use diarist_engine::Engine;
use diarist_server::client::{ClientError, ClientOptions, stream_samples_blocking};
use diarist_server::protocol::StartOptions;

use crate::settings::{self, CommonArgs, OfflineArgs};
use crate::stream::load_voiceprints;

/// Arguments of `diarist serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Server configuration file, merged last over the others found (`diarist config --server`
    /// lists them).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on, overriding the configuration.
    #[arg(long)]
    pub listen: Option<String>,
    /// Bearer token clients must present [default: the configuration's, else $DIARIST_TOKEN].
    #[arg(long)]
    pub token: Option<String>,
    /// Log records on standard error as readable lines or JSON lines (`RUST_LOG` filters them;
    /// default `info`).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: crate::logs::LogFormat,
}

/// Runs `diarist serve`.
pub fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    crate::logs::init(args.log_format);
    let (mut config, sources) = settings::load_server(args.config.as_deref())?;
    if let Some(l) = &args.listen {
        config.listen = l.clone();
    }
    if let Some(t) = &args.token {
        config.token = t.clone();
    } else if config.token.is_empty() {
        config.token = std::env::var("DIARIST_TOKEN").unwrap_or_default();
    }
    let effective = settings::load_effective(
        &CommonArgs {
            config: config.engine_file().map(Path::to_path_buf),
            variant: None,
            segmentation_model: None,
        },
        &OfflineArgs::default(),
    )?;
    let files: Vec<String> = (sources.iter().chain(&effective.sources))
        .map(|s| s.file.display().to_string())
        .collect();
    tracing::info!(
        files = %if files.is_empty() {
            "none (the compiled-in defaults)".into()
        } else {
            files.join(", ")
        },
        models = %effective.install.models.path.display(),
        onnxruntime = %effective.config.runtime.onnxruntime.display(),
        "configuration"
    );
    let engine_config = effective.config;
    let engine = Engine::start(&engine_config)?;
    let runtime = diarist_models::Runtime::load(&engine_config.runtime.onnxruntime)?;
    let pool = diarist_pii::TaggerPool::from_config(
        &runtime,
        &engine_config.pii,
        engine_config.runtime.session_options(),
        config.redaction_workers,
        config.redaction_queue,
    )
    .with_context(|| {
        format!(
            "loading the PII tagger {}",
            engine_config.pii.model.display()
        )
    })?;
    let redaction = diarist_server::Redaction::new(pool, engine_config.pii.clone());
    diarist_server::serve_until_signalled(config, engine, Some(redaction))?;
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `diarist client`.
#[derive(clap::Args)]
pub struct ClientArgs {
    /// Recording to stream (any supported format).
    pub file: PathBuf,
    /// Server URL.
    #[arg(long, default_value = "ws://127.0.0.1:8717/v1/stream")]
    pub url: String,
    /// Bearer token [default: $DIARIST_TOKEN].
    #[arg(long)]
    pub token: Option<String>,
    /// Send at real time (else as fast as the server takes the audio).
    #[arg(long)]
    pub realtime: bool,
    /// Speed with --realtime (2.0 = twice real time).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Most speakers.
    #[arg(long)]
    pub max_speakers: Option<usize>,
    /// Enrolled speakers to recognise by name (voiceprint JSON files from `diarist enroll`).
    #[arg(long)]
    pub known: Vec<PathBuf>,
}

/// Runs `diarist client`: server messages as JSON lines on standard output.
pub fn client(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let samples = diarist_audio::decode_all(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let opts = ClientOptions {
        url: args.url.clone(),
        token: args
            .token
            .clone()
            .or_else(|| std::env::var("DIARIST_TOKEN").ok())
            .unwrap_or_default(),
        speed: args.realtime.then_some(args.speed),
        options: StartOptions {
            max_speakers: args.max_speakers,
            known_speakers: load_voiceprints(&args.known)?,
            ..Default::default()
        },
    };
    let mut out = std::io::stdout().lock();
    let result = stream_samples_blocking(samples, &opts, |m| {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(m).expect("messages serialise")
        );
    });
    match result {
        Ok(f) => match f.error {
            None => Ok(ExitCode::SUCCESS),
            Some((code, message)) => {
                eprintln!(
                    "diarist: the session ended early: {}: {message}",
                    code.as_str()
                );
                Ok(ExitCode::from(1))
            }
        },
        Err(e @ ClientError::Refused(_)) | Err(e @ ClientError::Connect(_)) => {
            eprintln!("diarist: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}
