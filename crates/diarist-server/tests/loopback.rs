//! The service on a real loopback server with the real models: protocol conformance, every bad
//! input answered with a typed error or a clean close while another session goes on, and a
//! graceful shutdown that loses no final result.

use std::time::Duration;

use diarist_server::client::{ClientError, ClientOptions, stream_samples};
use diarist_server::protocol::{ErrorCode, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

mod common;

use common::{TOKEN, sample, start_server};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(url: &str) -> Ws {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

async fn send_json(ws: &mut Ws, v: serde_json::Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next server message that is not a tentative or stats update.
async fn next(ws: &mut Ws) -> Option<ServerMessage> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("the server answers")?;
        match m {
            Ok(Message::Text(t)) => {
                let m: ServerMessage = serde_json::from_str(&t).unwrap();
                if !matches!(
                    m,
                    ServerMessage::Tentative { .. } | ServerMessage::Stats { .. }
                ) {
                    return Some(m);
                }
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn expect_error(ws: &mut Ws, code: ErrorCode) -> bool {
    match next(ws).await {
        Some(ServerMessage::Error { code: c, fatal, .. }) if c == code => fatal,
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

fn pcm16(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|s| ((s * 32767.0) as i16).to_le_bytes())
        .collect()
}

/// Streams `audio` after a start, then a transcript and stop; returns every message to `end`.
async fn session(ws: &mut Ws, audio: &[f32]) -> Vec<ServerMessage> {
    send_json(ws, serde_json::json!({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1})).await;
    assert!(matches!(next(ws).await, Some(ServerMessage::Ready { .. })));
    for chunk in audio.chunks(3200) {
        ws.send(Message::binary(pcm16(chunk))).await.unwrap();
    }
    send_json(ws, serde_json::json!({"type": "transcript", "start": 22.0, "end": 26.0, "text": "they all call me Sheila down here in Texas"})).await;
    send_json(ws, serde_json::json!({"type": "stop"})).await;
    let mut all = Vec::new();
    while let Some(m) = next(ws).await {
        let end = matches!(m, ServerMessage::End(_));
        all.push(m);
        if end {
            break;
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_bad_inputs_and_graceful_shutdown_on_a_loopback_server() {
    let (url, stop, task) = start_server(|c| {
        c.max_frame_bytes = 64 * 1024;
        c.handshake_timeout_secs = 1.0;
        c.stats_interval_secs = 0.5;
    })
    .await;
    let audio = sample();
    let http = url.replace("ws://", "").replace("/v1/stream", "");

    // A well-behaved session at 4x real time runs through all the bad ones below.
    let opts = ClientOptions {
        url: url.clone(),
        token: TOKEN.into(),
        speed: Some(4.0),
        options: Default::default(),
        resume: None,
    };
    let steady_audio = audio.clone();
    let steady = tokio::spawn(async move {
        let mut turns = 0;
        let r = stream_samples(steady_audio, &opts, |m| {
            if matches!(m, ServerMessage::Turn { .. }) {
                turns += 1;
            }
        })
        .await;
        (r, turns)
    });

    check_conformance(&url, &audio).await;
    check_bad_messages(&url).await;
    check_oversized_frame(&url).await;
    check_vanishing_clients(&url, &http, &audio).await;
    // The steady session was never disturbed.
    let (r, turns) = steady.await.unwrap();
    let f = r.unwrap();
    assert!(f.error.is_none());
    assert_eq!(f.totals.samples_processed, audio.len() as u64);
    assert!(turns > 0);

    check_health_and_metrics(&http).await;

    // Graceful shutdown mid-session: an error saying so, then every final result and `end`.
    let opts = ClientOptions {
        url: url.clone(),
        token: TOKEN.into(),
        speed: Some(2.0),
        options: Default::default(),
        resume: None,
    };
    let live = tokio::spawn(async move { stream_samples(audio, &opts, |_| {}).await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.send(()).unwrap();
    let f = live.await.unwrap().unwrap();
    assert_eq!(f.error.as_ref().map(|e| e.0), Some(ErrorCode::ShuttingDown));
    assert!(f.totals.samples_received > 0);
    assert_eq!(f.totals.samples_processed, f.totals.samples_received);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the server exits once sessions have flushed")
        .unwrap();
}

/// Conformance: every sample accounted for, final turns, the transcript attributed.
async fn check_conformance(url: &str, audio: &[f32]) {
    let mut ws = connect(url).await;
    let all = session(&mut ws, audio).await;
    let Some(ServerMessage::End(totals)) = all.last() else {
        panic!("no end: {all:?}")
    };
    assert_eq!(totals.samples_received, audio.len() as u64);
    assert_eq!(totals.samples_processed, totals.samples_received);
    assert_eq!(totals.samples_lost, 0);
    assert_eq!(totals.transcripts, 1);
    assert!(totals.speakers.len() >= 2, "{totals:?}");
    let turn_speaker = all.iter().find_map(|m| match m {
        ServerMessage::Turn {
            speaker,
            start,
            end,
            is_final,
            ..
        } if *start <= 23 * 16_000 && *end >= 25 * 16_000 => {
            assert!(is_final);
            Some(speaker.clone())
        }
        _ => None,
    });
    let transcript = all
        .iter()
        .find_map(|m| match m {
            ServerMessage::Transcript {
                speaker,
                text,
                redacted,
                ..
            } => Some((speaker.clone(), text.clone(), *redacted)),
            _ => None,
        })
        .expect("the transcript comes back");
    // redacted by default: the name and the place are gone, the rest is as sent
    assert!(transcript.2);
    assert_eq!(
        transcript.1,
        "they all call me [PERSON_NAME] down here in [LOCATION]"
    );
    assert!(transcript.0.is_some());
    if turn_speaker.is_some() {
        assert_eq!(transcript.0, turn_speaker, "attributed to who spoke then");
    }
}

/// Bad JSON, audio before start, an unknown encoding: typed errors, the session stays open; then
/// a good start at 8 kHz stereo f32 with an odd frame and NaNs: resampled, errors typed.
async fn check_bad_messages(url: &str) {
    let mut ws = connect(url).await;
    ws.send(Message::text("{not json")).await.unwrap();
    assert!(!expect_error(&mut ws, ErrorCode::BadMessage).await);
    ws.send(Message::binary(vec![0u8; 320])).await.unwrap();
    assert!(!expect_error(&mut ws, ErrorCode::NotStarted).await);
    send_json(&mut ws, serde_json::json!({"type": "start", "encoding": "mp3", "sample_rate": 16000, "channels": 1})).await;
    assert!(!expect_error(&mut ws, ErrorCode::BadStart).await);
    // Then a good start at 8 kHz stereo f32 with an odd frame and NaNs: resampled, errors typed.
    send_json(&mut ws, serde_json::json!({"type": "start", "encoding": "pcm_f32le", "sample_rate": 8000, "channels": 2})).await;
    assert!(matches!(
        next(&mut ws).await,
        Some(ServerMessage::Ready { .. })
    ));
    ws.send(Message::binary(vec![0u8; 7])).await.unwrap();
    assert!(!expect_error(&mut ws, ErrorCode::BadAudio).await);
    let mut f32s: Vec<u8> = Vec::new();
    for i in 0..4_000 {
        let v = if i == 100 { f32::NAN } else { 0.0 };
        f32s.extend(v.to_le_bytes());
        f32s.extend(v.to_le_bytes());
    }
    ws.send(Message::binary(f32s)).await.unwrap();
    assert!(!expect_error(&mut ws, ErrorCode::NonFiniteSamples).await);
    send_json(&mut ws, serde_json::json!({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1})).await;
    assert!(!expect_error(&mut ws, ErrorCode::AlreadyStarted).await);
    send_json(&mut ws, serde_json::json!({"type": "stop"})).await;
    match next(&mut ws).await {
        Some(ServerMessage::End(t)) => {
            // 4000 frames at 8 kHz are 0.5 s at 16 kHz.
            assert_eq!(t.samples_received, 8_000);
            assert_eq!(t.samples_processed, 8_000);
        }
        other => panic!("expected end, got {other:?}"),
    }
}

/// An oversized frame: a typed fatal error, then the session flushes and ends.
async fn check_oversized_frame(url: &str) {
    let mut ws = connect(url).await;
    send_json(&mut ws, serde_json::json!({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1})).await;
    assert!(matches!(
        next(&mut ws).await,
        Some(ServerMessage::Ready { .. })
    ));
    ws.send(Message::binary(vec![0u8; 128 * 1024]))
        .await
        .unwrap();
    assert!(expect_error(&mut ws, ErrorCode::FrameTooLarge).await);
}

/// A client that vanishes mid-stream, one that never finishes its handshake, a wrong token.
async fn check_vanishing_clients(url: &str, http: &str, audio: &[f32]) {
    let mut ws = connect(url).await;
    send_json(&mut ws, serde_json::json!({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1})).await;
    ws.send(Message::binary(pcm16(&audio[..32_000])))
        .await
        .unwrap();
    drop(ws);
    let mut slow = TcpStream::connect(http).await.unwrap();
    slow.write_all(b"GET /v1/stream HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
        .await
        .expect("the server drops a slow handshake")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    let refused = stream_samples(
        audio[..16_000].to_vec(),
        &ClientOptions {
            url: url.into(),
            token: "wrong".into(),
            speed: None,
            options: Default::default(),
            resume: None,
        },
        |_| {},
    )
    .await;
    assert!(
        matches!(refused, Err(ClientError::Refused(401))),
        "{refused:?}"
    );
}

/// Health and metrics over plain HTTP.
async fn check_health_and_metrics(http: &str) {
    let get = |path: &'static str| {
        let http = http.to_owned();
        async move {
            let mut s = TcpStream::connect(&http).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).await.unwrap();
            body
        }
    };
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
    let metrics = get("/metrics").await;
    for line in [
        "# TYPE diarist_sessions_total counter",
        "diarist_errors_total{code=\"bad_message\"} 1",
        "diarist_errors_total{code=\"frame_too_large\"} 1",
        "# TYPE diarist_stage_seconds histogram",
        "diarist_connections_refused_total{reason=\"unauthorized\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing from\n{metrics}"
        );
    }
    // Segmentation ran: its histogram counted every run, up to `le="+Inf"`.
    let sample = |prefix: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{prefix} missing from\n{metrics}"))
            .parse::<u64>()
            .unwrap()
    };
    let runs = sample("diarist_stage_seconds_count{stage=\"segmentation\"} ");
    assert!(runs > 0);
    let inf = "diarist_stage_seconds_bucket{stage=\"segmentation\",le=\"+Inf\"} ";
    assert_eq!(sample(inf), runs);
    assert!(get("/").await.contains("/v1/stream"));
}

/// Transcripts waiting for their audio are bounded per session: one past the limit is refused
/// with a typed error and the session goes on; the ones taken come back attributed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_holds_a_bounded_number_of_pending_transcripts() {
    let (url, stop, task) = start_server(|c| c.max_pending_transcripts = 2).await;
    let audio = sample();
    let mut ws = connect(&url).await;
    send_json(&mut ws, serde_json::json!({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1, "options": {"redact": false}})).await;
    assert!(matches!(
        next(&mut ws).await,
        Some(ServerMessage::Ready { .. })
    ));
    for (start, end) in [(0.5, 1.5), (1.5, 2.5), (2.5, 3.5)] {
        send_json(
            &mut ws,
            serde_json::json!({"type": "transcript", "start": start, "end": end, "text": "hello"}),
        )
        .await;
    }
    assert!(!expect_error(&mut ws, ErrorCode::BadMessage).await);
    ws.send(Message::binary(pcm16(&audio[..4 * 16_000])))
        .await
        .unwrap();
    send_json(&mut ws, serde_json::json!({"type": "stop"})).await;
    let mut transcripts = 0;
    loop {
        match next(&mut ws).await {
            Some(ServerMessage::Transcript { text, redacted, .. }) => {
                assert_eq!((text.as_str(), redacted), ("hello", false));
                transcripts += 1;
            }
            Some(ServerMessage::End(t)) => {
                assert_eq!(t.transcripts, 2);
                break;
            }
            Some(_) => {}
            None => panic!("no end"),
        }
    }
    assert_eq!(transcripts, 2);
    stop.send(()).unwrap();
    task.await.unwrap();
}
