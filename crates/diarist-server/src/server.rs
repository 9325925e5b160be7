//! The listener: HTTP routing (`/healthz`, `/readyz`, `/metrics`, the browser page) and the
//! upgrade of `/v1/stream` to a WebSocket session after the token check; graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diarist_engine::Engine;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::config::ServerConfig;
use crate::http::{self, Metrics, Refusal};
use crate::ready::Readiness;
use crate::session::Redaction;

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) redaction: Option<Redaction>,
    pub(crate) config: ServerConfig,
    pub(crate) metrics: Metrics,
    pub(crate) ready: Readiness,
    pub(crate) shutdown: watch::Receiver<bool>,
    next_id: AtomicU64,
}

impl Shared {
    /// Why a new session would be refused now (`None`: it is taken).
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        let free = self.metrics.sessions_active() < self.config.max_sessions;
        self.ready.refusal(&self.metrics, free)
    }
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

/// The browser page: microphone in, live speaker timeline out.
const PAGE: &str = include_str!("page.html");

impl Server {
    /// Binds `config.listen` with the engine (and the PII tagger, for redacting transcripts)
    /// every session will share. `config.token` must be set (the caller resolves `DIARIST_TOKEN`).
    pub async fn bind(
        config: ServerConfig,
        engine: Engine,
        redaction: Option<Redaction>,
    ) -> std::io::Result<Self> {
        if config.token.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a token is required (server.toml `token`, DIARIST_TOKEN or --token)",
            ));
        }
        let listener = TcpListener::bind(&config.listen).await?;
        let (stop, shutdown) = watch::channel(false);
        let metrics = Metrics::new(config.max_sessions, engine.stats().clone());
        Ok(Self {
            listener,
            shared: Arc::new(Shared {
                engine,
                redaction,
                ready: Readiness::new(&config),
                config,
                metrics,
                shutdown,
                next_id: AtomicU64::new(1),
            }),
            stop,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `drain` completes, then drains: readiness fails and new sessions are
    /// refused while the sessions there go on, until they have all ended, `drain_timeout_secs`
    /// has passed or `stop_now` completes; then every session is flushed and ended with
    /// `shutting_down`, and it returns once they have.
    pub async fn run(
        self,
        drain: impl std::future::Future<Output = ()>,
        stop_now: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let mut tasks = JoinSet::new();
        tokio::pin!(drain, stop_now);
        let mut drain_until: Option<tokio::time::Instant> = None;
        let drain_for = Duration::from_secs_f64(self.shared.config.drain_timeout_secs);
        loop {
            let draining = drain_until.is_some();
            if draining && self.shared.metrics.sessions_active() == 0 {
                break;
            }
            let deadline = drain_until.unwrap_or_else(tokio::time::Instant::now);
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tasks.spawn(connection(stream, self.shared.clone()));
                    }
                    // Out of descriptors and the like: wait a little, keep serving.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = &mut drain, if !draining => {
                    let sessions = self.shared.metrics.sessions_active();
                    tracing::info!(sessions, timeout_secs = drain_for.as_secs_f64(), "draining");
                    self.shared.ready.drain(&self.shared.metrics);
                    drain_until = Some(tokio::time::Instant::now() + drain_for);
                }
                _ = tokio::time::sleep_until(deadline), if draining => break,
                _ = &mut stop_now => break,
            }
        }
        let sessions = self.shared.metrics.sessions_active();
        tracing::info!(sessions, "shutting down: flushing every session");
        drop(self.listener);
        let _ = self.stop.send(true);
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// One TCP connection: a request head within the time and size limits, then its route.
async fn connection(mut stream: TcpStream, shared: Arc<Shared>) {
    // The id names the connection in the log and, once upgraded, its session.
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let limit = Duration::from_secs_f64(shared.config.handshake_timeout_secs);
    let head = tokio::time::timeout(
        limit,
        http::read_head(&mut stream, shared.config.max_header_bytes),
    )
    .await;
    let (head, rest) = match head {
        Ok(Ok(h)) => h,
        Ok(Err(http::HeadError::TooLarge)) => {
            let _ = stream
                .write_all(&http::response(
                    431,
                    "Request Header Fields Too Large",
                    "text/plain",
                    "request head too large\n",
                ))
                .await;
            return;
        }
        Ok(Err(http::HeadError::Malformed(m))) => {
            let _ = stream
                .write_all(&http::response(
                    400,
                    "Bad Request",
                    "text/plain",
                    &format!("{m}\n"),
                ))
                .await;
            return;
        }
        // Closed, failed, or too slow (a slowloris): dropped without an answer.
        _ => return,
    };
    let shutting_down = *shared.shutdown.borrow();
    let reply = |status, reason, ty, body: &str| http::response(status, reason, ty, body);
    let answer = match (head.method.as_str(), head.path.as_str()) {
        ("GET", "/healthz") => reply(200, "OK", "text/plain", "ok\n"),
        ("GET", "/readyz") => match shared.refusal() {
            Some(why) => reply(
                503,
                "Service Unavailable",
                "text/plain",
                &format!("not ready: {}\n", why.as_str()),
            ),
            None if shutting_down => reply(503, "Service Unavailable", "text/plain", "not ready\n"),
            None => reply(200, "OK", "text/plain", "ready\n"),
        },
        ("GET", "/metrics") => reply(
            200,
            "OK",
            http::METRICS_CONTENT_TYPE,
            &shared.metrics.render(),
        ),
        ("GET", "/") => reply(200, "OK", "text/html; charset=utf-8", PAGE),
        ("GET", "/v1/stream") => {
            upgrade(stream, head, rest, shared, id).await;
            return;
        }
        _ => reply(404, "Not Found", "text/plain", "not found\n"),
    };
    let _ = stream.write_all(&answer).await;
}

/// Compares two secrets in time that depends on their lengths only, not on where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(!e) ^ e);
    }
    std::hint::black_box(diff) == 0
}

/// A taken session slot: counted in `sessions_active` until dropped, also when the session's
/// task panics (the drop runs while it unwinds).
struct SessionSlot<'a> {
    metrics: &'a Metrics,
    id: u64,
}

impl<'a> SessionSlot<'a> {
    /// Takes one of `max` slots, or `None` when all are taken.
    fn take(metrics: &'a Metrics, max: usize, id: u64) -> Option<Self> {
        metrics.take_slot(max).then_some(Self { metrics, id })
    }
}

impl Drop for SessionSlot<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(
                session = self.id,
                "the session failed (panic): its slot is released"
            );
        }
        self.metrics.release_slot();
    }
}

/// Answers a refused connection with `status` and logs why.
async fn refuse(stream: &mut TcpStream, id: u64, status: u16, reason: &str, body: &str) {
    tracing::warn!(
        session = id,
        status,
        "connection refused: {}",
        body.trim_end()
    );
    let _ = stream
        .write_all(&http::response(status, reason, "text/plain", body))
        .await;
}

/// Checks the token and the session limit, answers the upgrade and runs the session.
async fn upgrade(
    mut stream: TcpStream,
    head: http::Head,
    rest: Vec<u8>,
    shared: Arc<Shared>,
    id: u64,
) {
    let token = head
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| head.query_param("token"));
    let m = &shared.metrics;
    if !token.is_some_and(|t| same_secret(t.as_bytes(), shared.config.token.as_bytes())) {
        m.refused(Refusal::Unauthorized);
        let body = "a valid bearer token is required\n";
        return refuse(&mut stream, id, 401, "Unauthorized", body).await;
    }
    let is_upgrade = head
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = head.header("sec-websocket-key").filter(|_| is_upgrade) else {
        let body = "a WebSocket upgrade is required\n";
        return refuse(&mut stream, id, 426, "Upgrade Required", body).await;
    };
    let refusal = shared
        .refusal()
        .or(shared.shutdown.borrow().then_some(Refusal::Draining));
    let slot = refusal.map_or_else(
        || SessionSlot::take(m, shared.config.max_sessions, id),
        |_| None,
    );
    let Some(_slot) = slot else {
        let why = refusal.unwrap_or(Refusal::Full);
        m.refused(why);
        tracing::warn!(
            session = id,
            reason = why.as_str(),
            "connection refused: busy"
        );
        let body = format!("busy: {}\n", why.as_str());
        let answer = http::unavailable(shared.config.busy_retry_after_secs, &body);
        let _ = stream.write_all(&answer).await;
        return;
    };
    m.session_opened();
    if stream.write_all(&http::upgrade_response(key)).await.is_ok() {
        let _ = stream.set_nodelay(true);
        let config = WebSocketConfig::default()
            .max_frame_size(Some(shared.config.max_frame_bytes))
            .max_message_size(Some(shared.config.max_frame_bytes));
        let ws =
            WebSocketStream::from_partially_read(stream, rest, Role::Server, Some(config)).await;
        crate::session::run(ws, shared.clone(), id).await;
    }
}

/// Serves on a runtime of its own until SIGTERM or SIGINT, then shuts down gracefully.
pub fn serve_until_signalled(
    config: ServerConfig,
    engine: Engine,
    redaction: Option<Redaction>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = Server::bind(config, engine, redaction).await?;
        tracing::info!(address = %server.local_addr()?, "serving");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
        // The first SIGTERM or SIGINT drains, a second one ends every session at once.
        let signals = tokio::spawn(async move {
            any_signal(&mut term, &mut int).await;
            let _ = drain_tx.send(());
            any_signal(&mut term, &mut int).await;
        });
        let drain = async {
            let _ = drain_rx.await;
        };
        let stop_now = async {
            let _ = signals.await;
        };
        server.run(drain, stop_now).await
    })
}

/// Completes at the next SIGTERM or SIGINT.
async fn any_signal(term: &mut tokio::signal::unix::Signal, int: &mut tokio::signal::unix::Signal) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret(b"test-token", b"test-token"));
        for other in [
            &b""[..],
            b"test-toke",
            b"test-tokem",
            b"test-token!",
            b"Test-token",
        ] {
            assert!(!same_secret(other, b"test-token"), "{other:?}");
        }
        assert!(!same_secret(b"x", b""));
    }

    /// A session task that panics still gives its slot back.
    #[tokio::test]
    async fn a_panicking_session_releases_its_slot() {
        let stats = Arc::new(diarist_engine::stats::Stats::default());
        let metrics = Arc::new(Metrics::new(1, stats));
        let held = metrics.clone();
        let task = tokio::spawn(async move {
            let _slot = SessionSlot::take(&held, 1, 7).expect("a free slot");
            assert!(
                SessionSlot::take(&held, 1, 8).is_none(),
                "the only slot is taken"
            );
            panic!("forced panic in a session");
        });
        let err = task.await.expect_err("the task panicked");
        assert!(err.is_panic());
        assert_eq!(metrics.sessions_active(), 0);
        assert!(SessionSlot::take(&metrics, 1, 9).is_some());
    }
}
