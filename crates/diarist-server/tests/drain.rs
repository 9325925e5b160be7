//! Draining on a real loopback server: readiness fails at once, new connections get HTTP 503
//! with `Retry-After` and a late `start` a typed `busy`, a session that ends by itself during the
//! drain ends normally, one still running at the drain timeout is flushed and ended with
//! `shutting_down` with all its audio final, and the server returns once the sessions have ended.

use std::time::{Duration, Instant};

use diarist_server::client::{ClientOptions, stream_samples};
use diarist_server::protocol::{ErrorCode, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

mod common;

use common::{TOKEN, host, sample, start_controlled};

/// The whole answer to `GET path` over plain HTTP.
async fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

/// A WebSocket request for `url` with the token.
fn request(url: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    req
}

/// A client options for `url` at `speed` times real time.
fn options(url: &str, speed: Option<f64>) -> ClientOptions {
    ClientOptions {
        url: url.into(),
        token: TOKEN.into(),
        speed,
        options: Default::default(),
        resume: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_refuses_new_sessions_and_flushes_the_ones_it_has() {
    let c = start_controlled(|c| {
        c.max_sessions = 4;
        c.drain_timeout_secs = 4.0;
        c.busy_retry_after_secs = 7;
    })
    .await;
    let addr = host(&c.url);
    let audio = sample();
    assert!(get(&addr, "/readyz").await.starts_with("HTTP/1.1 200"));

    // A real-time session that outlives the drain, one that ends during it, and a client that
    // has its WebSocket but sends `start` only once the drain has begun.
    let long = tokio::spawn({
        let (audio, opts) = (audio.clone(), options(&c.url, Some(1.0)));
        async move { stream_samples(audio, &opts, |_| {}).await }
    });
    let short = tokio::spawn({
        let (audio, opts) = (audio[..16_000 * 6].to_vec(), options(&c.url, Some(2.0)));
        async move { stream_samples(audio, &opts, |_| {}).await }
    });
    let (mut late, _) = tokio_tungstenite::connect_async(request(&c.url))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let began = Instant::now();
    c.drain.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = get(&addr, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.ends_with("not ready: draining\n"), "{ready}");
    assert!(get(&addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    match tokio_tungstenite::connect_async(request(&c.url)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 503);
            assert_eq!(r.headers()["retry-after"], "7");
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }

    let start = r#"{"type":"start","encoding":"pcm_s16le","sample_rate":16000,"channels":1}"#;
    late.send(Message::text(start)).await.unwrap();
    let answer = late.next().await.unwrap().unwrap();
    let msg: ServerMessage = serde_json::from_str(answer.to_text().unwrap()).unwrap();
    match msg {
        ServerMessage::Error {
            code: ErrorCode::Busy,
            fatal: true,
            retry_after_secs: Some(7),
            ..
        } => {}
        other => panic!("expected busy, got {other:?}"),
    }
    assert!(
        matches!(late.next().await, Some(Ok(Message::Close(_))) | None),
        "the socket closes after busy"
    );

    // The short session ends by itself, normally; the long one at the drain timeout.
    let s = short.await.unwrap().unwrap();
    assert!(s.error.is_none(), "{:?}", s.error);
    assert_eq!(s.totals.samples_received, 16_000 * 6);
    let l = long.await.unwrap().unwrap();
    assert_eq!(l.error.as_ref().map(|e| e.0), Some(ErrorCode::ShuttingDown));
    assert!(l.totals.samples_received > 16_000 * 3);
    assert!(
        l.totals.samples_received < audio.len() as u64,
        "ended before its audio did"
    );
    assert_eq!(l.totals.samples_processed, l.totals.samples_received);
    tokio::time::timeout(Duration::from_secs(30), c.task)
        .await
        .expect("the server returns once its sessions have ended")
        .unwrap();
    let drained = began.elapsed().as_secs_f64();
    assert!((3.5..15.0).contains(&drained), "drained in {drained} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_server_is_not_ready_and_refuses_new_sessions() {
    let c = start_controlled(|c| {
        // Any work at all is over this share of the cores.
        c.ready_max_cpu = 0.001;
        c.busy_retry_after_secs = 2;
    })
    .await;
    let addr = host(&c.url);
    let f = stream_samples(sample(), &options(&c.url, None), |_| {})
        .await
        .unwrap();
    assert!(f.error.is_none());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ready = get(&addr, "/readyz").await;
    assert!(ready.ends_with("not ready: overloaded\n"), "{ready}");
    match tokio_tungstenite::connect_async(request(&c.url)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 503);
            assert_eq!(r.headers()["retry-after"], "2");
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    let metrics = get(&addr, "/metrics").await;
    let line = "diarist_connections_refused_total{reason=\"overloaded\"} 1";
    assert!(metrics.lines().any(|l| l == line), "{metrics}");
    c.stop.send(()).unwrap();
    c.task.await.unwrap();
}
