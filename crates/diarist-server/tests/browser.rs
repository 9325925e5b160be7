//! The browser page in Debian's headless Chromium, driven by ChromeDriver over WebDriver
//! (`fantoccini`): the page takes a fake microphone that plays a fixture recording, streams it to
//! a real loopback server, and final speaker turns arrive on its timeline.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TOKEN, root, start_server};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A ChromeDriver process on a free loopback port, killed on drop (a failed assertion included).
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts ChromeDriver and waits (at most 20 s) until it listens.
    async fn start() -> Self {
        assert!(
            Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file(),
            "Debian's chromium and chromium-driver are needed (make setup installs them)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!("diarist-chromedriver-{port}.log"));
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let driver = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    /// A WebDriver session in a fresh headless Chromium whose microphone plays `fixture`.
    async fn session(&self, profile: &Path, fixture: &Path) -> Client {
        let caps = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic",
                    format!("--user-data-dir={}", profile.display()),
                    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    format!("--use-file-for-fake-audio-capture={}", fixture.display()),
                    "--autoplay-policy=no-user-gesture-required",
                ],
            },
        }));
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.expect("capabilities are a JSON object"))
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session")
    }
}

/// Runs `script` in the page and returns its value.
async fn script(client: &Client, script: &str) -> Value {
    eprintln!("webdriver: {script}");
    client
        .execute(script, Vec::new())
        .await
        .unwrap_or_else(|e| panic!("WebDriver: {script}: {e}"))
}

/// Opens `page`, starts streaming, and returns the turns on its timeline once two speakers have
/// had one (or after 90 s).
async fn watch_page(client: Client, page: String) -> Vec<Value> {
    client.goto(&page).await.expect("the page loads");
    assert_eq!(
        script(&client, "return document.title").await,
        json!("diarist live")
    );
    script(
        &client,
        "document.getElementById('go').click(); return true",
    )
    .await;
    // The fake microphone plays the 30 s recording in a loop at real time; final turns come
    // 3 s after their audio.
    let deadline = Instant::now() + Duration::from_secs(90);
    let turns = loop {
        let state = "return document.getElementById('state').textContent";
        assert_ne!(
            script(&client, state).await,
            json!("error"),
            "the page reports an error"
        );
        let turns = "return window.diaristTurns.map(t => [t.speaker, t.start, t.end, t.final])";
        let turns = script(&client, turns).await.as_array().unwrap().clone();
        let speakers: BTreeSet<&str> = turns.iter().map(|t| t[0].as_str().unwrap()).collect();
        if speakers.len() >= 2 || Instant::now() > deadline {
            break turns;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    script(
        &client,
        "document.getElementById('stop').click(); return true",
    )
    .await;
    turns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_streams_a_fake_microphone_and_draws_speaker_turns() {
    let (url, stop, task) = start_server(|_| {}).await;
    let page = url
        .replace("ws://", "http://")
        .replace("/v1/stream", &format!("/?token={TOKEN}"));
    let fixture = root()
        .join("audio-fixtures/pyannote_sample.wav")
        .canonicalize()
        .unwrap();
    let profile = std::env::temp_dir().join(format!("diarist-chromium-{}", std::process::id()));
    let driver = Driver::start().await;
    let client = driver.session(&profile, &fixture).await;
    // The page is watched on a task of its own so that a failed assertion there still lets the
    // session end here: ChromeDriver quits the browser before the driver is killed.
    let watched = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::spawn(watch_page(client.clone(), page)),
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(30), client.close()).await;
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    let turns = match watched.expect("the page answers within 3 minutes") {
        Ok(turns) => turns,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let speakers: BTreeSet<&str> = turns.iter().map(|t| t[0].as_str().unwrap()).collect();
    assert!(speakers.len() >= 2, "turns seen by the page: {turns:?}");
    for t in &turns {
        assert_eq!(t[3], json!(true), "ended turns are final: {t}");
        assert!(t[1].as_u64().unwrap() < t[2].as_u64().unwrap());
    }
    stop.send(()).unwrap();
    task.await.unwrap();
}
