//! `diarist serve` and `diarist client`: the WebSocket service (its log records on standard
//! error) and a client for it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use diarist_engine::{Engine, Voiceprint};
use diarist_server::client::{ClientError, ClientOptions, Finished, stream_samples_blocking};
use diarist_server::logs::LogFormat;
use diarist_server::protocol::StartOptions;

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
    #[arg(long, default_value = "text", value_name = "text|json")]
    pub log_format: LogFormat,
}

/// Runs `diarist serve`.
pub fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    diarist_server::logs::init(args.log_format);
    let service = diarist_config::load_service(args.config.as_deref())?;
    for w in service.effective.warnings() {
        eprintln!("diarist: warning: {w}");
    }
    tracing::info!(
        files = %service.files(),
        models = %service.effective.install.models.path.display(),
        onnxruntime = %service.effective.settings.engine.runtime.onnxruntime.display(),
        "configuration"
    );
    let mut config = service.server;
    if let Some(l) = &args.listen {
        config.listen = l.clone();
    }
    if let Some(t) = &args.token {
        config.token = t.clone();
    }
    let settings = service.effective.settings;
    let engine = Engine::start(&settings.engine)?;
    let pool = settings.load_tagger_pool(config.redaction_workers, config.redaction_queue)?;
    let redaction = diarist_server::Redaction::new(pool, settings.pii);
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
    /// Bearer token.
    #[arg(long, env = "DIARIST_TOKEN", hide_env_values = true)]
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
        token: args.token.clone().unwrap_or_default(),
        speed: args.realtime.then_some(args.speed),
        options: StartOptions {
            max_speakers: args.max_speakers,
            known_speakers: Voiceprint::read_all(&args.known)?,
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
    let failure = match result {
        Ok(Finished { error: None, .. }) => return Ok(ExitCode::SUCCESS),
        Ok(Finished {
            error: Some((code, message)),
            ..
        }) => format!("the session ended early: {}: {message}", code.as_str()),
        Err(e @ (ClientError::Refused(_) | ClientError::Connect(_))) => e.to_string(),
        Err(e) => return Err(e.into()),
    };
    eprintln!("diarist: {failure}");
    Ok(ExitCode::from(1))
}
