//! What the loopback tests share: a real server on 127.0.0.1 with the shipped models.

use std::path::PathBuf;

use diarist_engine::Engine;
use diarist_server::{Redaction, Server, ServerConfig};

/// The token every test server requires.
pub const TOKEN: &str = "test-token";

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `host:port` of a server's WebSocket URL.
#[allow(dead_code)] // not every test binary needs the address
pub fn host(url: &str) -> String {
    url.trim_start_matches("ws://")
        .trim_end_matches("/v1/stream")
        .to_string()
}

/// The pyannote sample (30 s, two speakers) as 16 kHz samples.
#[allow(dead_code)] // not every test binary streams samples itself
pub fn sample() -> Vec<f32> {
    diarist_audio::decode_all(&root().join("audio-fixtures/pyannote_sample.wav")).unwrap()
}

/// A test server's controls.
#[allow(dead_code)] // not every test binary drains
pub struct Controls {
    /// Its WebSocket URL.
    pub url: String,
    /// Starts draining (as SIGTERM does; dropping it does not).
    pub drain: tokio::sync::oneshot::Sender<()>,
    /// Ends every session at once (as a second SIGTERM does; dropping it does too).
    pub stop: tokio::sync::oneshot::Sender<()>,
    /// The server's task: it ends once every session has.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts a server on a free loopback port with `edit` applied to the shipped configuration;
/// returns its WebSocket URL, the sender that stops it (every session at once), and its task.
#[allow(dead_code)] // not every test binary uses it
pub async fn start_server(
    edit: impl FnOnce(&mut ServerConfig),
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let c = start_controlled(edit).await;
    (c.url, c.stop, c.task)
}

/// Starts a server as [`start_server`] does, with its drain and its stop apart.
pub async fn start_controlled(edit: impl FnOnce(&mut ServerConfig)) -> Controls {
    let mut config = diarist_config::server_from_layers(&[]).unwrap();
    config.listen = "127.0.0.1:0".into();
    config.token = TOKEN.into();
    edit(&mut config);
    let mut settings = diarist_config::Settings::from_toml_str("").unwrap();
    settings.resolve_paths(&root().join("models"), &root().join(".ort"));
    let engine_config = &mut settings.engine;
    engine_config.streaming.workers = 2;
    let engine = Engine::start(engine_config).unwrap();
    let runtime = diarist_models::Runtime::load(&engine_config.runtime.onnxruntime).unwrap();
    let pii = &settings.pii;
    let pool = diarist_pii::TaggerPool::from_config(
        &runtime,
        pii,
        Default::default(),
        config.redaction_workers,
        config.redaction_queue,
    )
    .unwrap();
    let redaction = Redaction::new(pool, pii.clone());
    let server = Server::bind(config, engine, Some(redaction)).await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (drain, drained) = tokio::sync::oneshot::channel::<()>();
    let drained = async {
        if drained.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let stopped = async {
        let _ = stopped.await;
    };
    let task = tokio::spawn(async move { server.run(drained, stopped).await.unwrap() });
    Controls {
        url: format!("ws://{addr}/v1/stream"),
        drain,
        stop,
        task,
    }
}
