//! `diarist serve` and `diarist client`: the WebSocket service and a client for it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use diarist_engine::Engine;
use diarist_server::ServerConfig;
use diarist_server::client::{ClientError, ClientOptions, stream_samples_blocking};
use diarist_server::protocol::StartOptions;

use crate::settings::{self, CommonArgs, OfflineArgs};
use crate::stream::load_voiceprints;

/// Arguments of `diarist serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Server configuration [default: configs/server.toml of the install].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on, overriding the configuration.
    #[arg(long)]
    pub listen: Option<String>,
    /// Bearer token clients must present [default: the configuration's, else $DIARIST_TOKEN].
    #[arg(long)]
    pub token: Option<String>,
}

/// Runs `diarist serve`.
pub fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/server.toml"));
    let mut config = ServerConfig::load(&path).map_err(anyhow::Error::msg)?;
    if let Some(l) = &args.listen {
        config.listen = l.clone();
    }
    if let Some(t) = &args.token {
        config.token = t.clone();
    } else if config.token.is_empty() {
        config.token = std::env::var("DIARIST_TOKEN").unwrap_or_default();
    }
    let engine_config = settings::load(
        &CommonArgs {
            config: Some(config.engine.clone()),
            variant: None,
            segmentation_model: None,
        },
        &OfflineArgs::default(),
    )?;
    let engine = Engine::start(&engine_config)?;
    let tagger = crate::redact::load_tagger(&engine_config)?;
    let redaction = diarist_server::Redaction::new(tagger, engine_config.pii.clone());
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
