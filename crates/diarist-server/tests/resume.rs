//! Failover on real loopback servers: a resuming client whose connection is cut mid-stream (a TCP
//! proxy in front drops it, as a dying instance would) resumes on another server that shares the
//! checkpoint key: no sample lost or final twice, the speakers keep their names, and the stitched
//! result scores as well as an uninterrupted run. A token signed with another key is refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diarist_core::{der, rttm};
use diarist_engine::FinalTurns;
use diarist_server::client::{ClientOptions, Finished, Resume, stream_samples};
use diarist_server::protocol::{ErrorCode, ServerMessage, StartOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

mod common;

use common::{TOKEN, host, root, sample, start_controlled};

/// A TCP proxy to a backend that can be switched, cutting every open connection.
struct Proxy {
    addr: String,
    backend: Arc<Mutex<String>>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(backend: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let backend = Arc::new(Mutex::new(backend.to_string()));
        let links = Arc::new(Mutex::new(Vec::new()));
        let (b, l) = (backend.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let to = b.lock().unwrap().clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                l.lock().unwrap().push(link);
            }
        });
        Self {
            addr,
            backend,
            links,
        }
    }

    /// Drops every open connection at once and sends new ones to `backend`.
    fn fail_over(&self, backend: &str) {
        *self.backend.lock().unwrap() = backend.to_string();
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

fn options(url: &str, resume: bool) -> ClientOptions {
    ClientOptions {
        url: url.into(),
        token: TOKEN.into(),
        speed: Some(2.0),
        options: StartOptions::default(),
        resume: resume.then_some(Resume {
            buffer_secs: 30.0,
            attempts: 10,
        }),
    }
}

/// Streams the sample through `opts`, calling `midway` 8 s in; the run's end, its stitched final
/// turns and every message.
async fn run(
    opts: ClientOptions,
    midway: impl FnOnce() + Send + 'static,
) -> (Finished, Vec<rttm::Turn>, Vec<ServerMessage>) {
    let cut = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(8)).await;
        midway();
    });
    let mut turns = FinalTurns::default();
    let mut messages = Vec::new();
    let f = stream_samples(sample(), &opts, |m| {
        if let Some(e) = m.turn_event() {
            turns.observe(&e);
        }
        messages.push(m.clone());
    })
    .await
    .unwrap();
    cut.await.unwrap();
    let text = turns.rttm("pyannote_sample");
    let parsed = rttm::parse(&text).unwrap();
    (f, parsed.into_values().next().unwrap_or_default(), messages)
}

/// DER of `hyp` against `reference` (collar 0), percent.
fn der_percent(reference: &[rttm::Turn], hyp: &[rttm::Turn]) -> f64 {
    100.0 * der::score(reference, hyp, None, 0).der()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_session_resumes_on_another_server_losing_nothing() {
    let keyed = |c: &mut diarist_server::ServerConfig| {
        c.checkpoint_key = "the fleet's key".into();
        c.checkpoint_interval_secs = 0.5;
        c.stats_interval_secs = 0.0;
    };
    let a = start_controlled(keyed).await;
    let b = start_controlled(keyed).await;
    let proxy = Arc::new(Proxy::start(&host(&a.url)).await);
    let via_proxy = format!("ws://{}/v1/stream", proxy.addr);

    let whole = run(options(&via_proxy, true), || {}).await;
    let to_b = host(&b.url);
    let p = proxy.clone();
    let (f, stitched, messages) = run(options(&via_proxy, true), move || p.fail_over(&to_b)).await;

    let audio = sample().len() as u64;
    assert_eq!(f.resumes.len(), 1, "{f:?}");
    assert_eq!(f.samples_sent, audio);
    assert_eq!(f.samples_final, audio, "every sample final");
    assert_eq!(f.totals.samples_lost, 0);
    assert!(f.samples_resent > 0, "{f:?}");
    // Each sample final once: one speaker's stitched turns never overlap, and nothing is final
    // past the audio (RTTM keeps milliseconds: 16 samples).
    for (i, t) in stitched.iter().enumerate() {
        assert!(t.end <= audio + 16, "{t:?} past {audio}");
        let later = stitched[i + 1..].iter().filter(|u| u.speaker == t.speaker);
        assert!(later.clone().all(|u| u.start >= t.end), "{t:?} overlaps");
    }
    let names = |turns: &[rttm::Turn]| {
        let mut n: Vec<String> = turns.iter().map(|t| t.speaker.clone()).collect();
        n.sort();
        n.dedup();
        n
    };
    assert_eq!(
        names(&stitched),
        names(&whole.1),
        "the speakers keep their names"
    );
    let positions_continue = messages.iter().any(|m| {
        matches!(m, ServerMessage::Checkpoint { samples_final, .. } if *samples_final > audio / 2)
    });
    assert!(
        positions_continue,
        "checkpoints continue the client's timeline"
    );

    let reference = rttm::parse(
        &std::fs::read_to_string(root().join("audio-fixtures/pyannote_sample.rttm")).unwrap(),
    )
    .unwrap()
    .into_values()
    .next()
    .unwrap();
    let (cut, uncut) = (
        der_percent(&reference, &stitched),
        der_percent(&reference, &whole.1),
    );
    println!(
        "DER: resumed {cut:.2} %, uninterrupted {uncut:.2} %, resume took {:?} s",
        f.resumes
    );
    assert!(
        cut <= uncut + 0.5,
        "resumed {cut:.2} % vs uninterrupted {uncut:.2} %"
    );

    // A server with another key refuses the token.
    let c = start_controlled(|c| c.checkpoint_key = "another fleet".into()).await;
    let token = messages.iter().rev().find_map(|m| match m {
        ServerMessage::Checkpoint { token, .. } => Some(token.clone()),
        _ => None,
    });
    let mut refused = options(&c.url, false);
    refused.options.resume = token;
    let got = stream_samples(sample()[..16_000].to_vec(), &refused, |_| {}).await;
    match got {
        Err(diarist_server::client::ClientError::Server { code, .. }) => {
            assert_eq!(code, ErrorCode::BadCheckpoint)
        }
        other => panic!("expected bad_checkpoint, got {other:?}"),
    }
    for s in [a, b, c] {
        let _ = s.stop.send(());
        s.task.await.unwrap();
    }
}
