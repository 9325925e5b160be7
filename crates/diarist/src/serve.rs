//! `diarist serve` and `diarist client`: the WebSocket service (its log records on standard
//! error) and a client for it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use diarist_core::rttm::file_id;
use diarist_engine::FinalTurns;
use diarist_engine::output::write_atomic;
use diarist_engine::{Engine, Voiceprint};
use diarist_server::client::{ClientOptions, Resume, stream_samples_blocking};
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
    config.listen = args.listen.clone().unwrap_or(config.listen);
    config.token = args.token.clone().unwrap_or(config.token);
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
    /// When the connection drops, reconnect through the same URL and resume from the last
    /// checkpoint (the servers need the fleet's checkpoint key); the output stays each sample
    /// final once.
    #[arg(long)]
    pub resume: bool,
    /// Write the final turns as RTTM here.
    #[arg(long)]
    pub rttm: Option<PathBuf>,
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
        resume: args.resume.then(Resume::default),
    };
    let (mut out, mut turns) = (std::io::stdout().lock(), FinalTurns::default());
    let result = stream_samples_blocking(samples, &opts, |m| {
        let _ = writeln!(out, "{}", serde_json::to_string(m).expect("serialises"));
        m.turn_event().inspect(|e| turns.observe(e));
    });
    if let Some(path) = &args.rttm {
        write_atomic(path, &turns.rttm(&file_id(&args.file)))?;
    }
    if let Ok(f) = &result {
        eprintln!("diarist: finished: {}", serde_json::to_string(f)?);
    }
    let failure = match result {
        Ok(f) => match f.ended_early() {
            None => return Ok(ExitCode::SUCCESS),
            Some(why) => why,
        },
        Err(e) if e.is_refusal() => e.to_string(),
        Err(e) => return Err(e.into()),
    };
    eprintln!("diarist: {failure}");
    Ok(ExitCode::from(1))
}
