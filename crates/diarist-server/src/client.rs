//! A protocol v1 client: streams 16 kHz mono audio to a server (at real time or as fast as the
//! server takes it) and hands every server message to a callback.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::protocol::{ClientMessage, Encoding, EndTotals, ErrorCode, ServerMessage, StartOptions};

/// How to reach the server and what to send.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `ws://host:port/v1/stream`.
    pub url: String,
    /// Bearer token.
    pub token: String,
    /// Pace: `Some(1.0)` is real time; `None` sends as fast as the server reads.
    pub speed: Option<f64>,
    /// Session options of `start`.
    pub options: StartOptions,
}

/// Why a client run failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or the connection failed.
    #[error("connection: {0}")]
    Connect(String),
    /// The server refused the connection with this HTTP status (401: bad token, 503: busy).
    #[error("the server refused the connection: HTTP {0}")]
    Refused(u16),
    /// The server ended the session with an error and no `end`.
    #[error("server error {}: {message}", code.as_str())]
    Server {
        /// Stable code.
        code: ErrorCode,
        /// Detail.
        message: String,
    },
    /// The server broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// The end of a session: its totals, and the fatal error that ended it early, if any.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Totals of the `end` message.
    pub totals: EndTotals,
    /// A fatal error the server reported before `end`.
    pub error: Option<(ErrorCode, String)>,
}

/// Streams `samples` (16 kHz mono) to the server; every message goes to `on_message`.
pub async fn stream_samples(
    samples: Vec<f32>,
    opts: &ClientOptions,
    mut on_message: impl FnMut(&ServerMessage),
) -> Result<Finished, ClientError> {
    let mut request = opts
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    let bearer = format!("Bearer {}", opts.token)
        .parse()
        .map_err(|_| ClientError::Connect("the token is not a valid header value".into()))?;
    request.headers_mut().insert("authorization", bearer);
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => {
                ClientError::Refused(r.status().as_u16())
            }
            e => ClientError::Connect(e.to_string()),
        })?;
    let (mut sink, mut source) = ws.split();
    let start = ClientMessage::Start {
        encoding: Encoding::PcmS16le,
        sample_rate: diarist_core::SAMPLE_RATE,
        channels: 1,
        options: opts.options.clone(),
    };
    let text = serde_json::to_string(&start).expect("messages serialise");
    sink.send(Message::text(text))
        .await
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    // The sender runs on its own task so that a server slowing the audio down never stops this
    // task from reading events.
    let speed = opts.speed;
    let sender = tokio::spawn(async move {
        let begun = Instant::now();
        for (i, chunk) in samples.chunks(1600).enumerate() {
            if let Some(speed) = speed {
                let at = Duration::from_secs_f64(i as f64 * 0.1 / speed.max(1e-3));
                sleep_until(begun + at).await;
            }
            let bytes: Vec<u8> = chunk
                .iter()
                .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
                .collect();
            if sink.send(Message::binary(bytes)).await.is_err() {
                return;
            }
        }
        let stop = serde_json::to_string(&ClientMessage::Stop).expect("messages serialise");
        let _ = sink.send(Message::text(stop)).await;
        // Keep the sink open until the server closes.
        std::future::pending::<()>().await;
    });
    let mut fatal = None;
    let result = loop {
        match source.next().await {
            Some(Ok(Message::Text(t))) => {
                let msg: ServerMessage = match serde_json::from_str(&t) {
                    Ok(m) => m,
                    Err(e) => break Err(ClientError::Protocol(format!("{e}: {t}"))),
                };
                on_message(&msg);
                match msg {
                    ServerMessage::End(totals) => {
                        break Ok(Finished {
                            totals,
                            error: fatal.take(),
                        });
                    }
                    ServerMessage::Error {
                        code,
                        message,
                        fatal: true,
                        ..
                    } => fatal = Some((code, message)),
                    _ => {}
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break Err(ClientError::Connect(e.to_string())),
            None => {
                break Err(match fatal.take() {
                    Some((code, message)) => ClientError::Server { code, message },
                    None => ClientError::Protocol("the server closed before `end`".into()),
                });
            }
        }
    };
    sender.abort();
    result
}

/// [`stream_samples`] on a runtime of its own, for callers without one.
pub fn stream_samples_blocking(
    samples: Vec<f32>,
    opts: &ClientOptions,
    on_message: impl FnMut(&ServerMessage),
) -> Result<Finished, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Connect(e.to_string()))?
        .block_on(stream_samples(samples, opts, on_message))
}
