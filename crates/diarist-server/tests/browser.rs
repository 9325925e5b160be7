//! The browser page in Debian's headless Chromium, driven by ChromeDriver over WebDriver: the
//! page takes a fake microphone that plays a fixture recording, streams it to a real loopback
//! server, and final speaker turns arrive on its timeline.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TOKEN, root, start_server};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A ChromeDriver process; on drop (a failed assertion included) its browser session is closed
/// and the driver killed, so no browser outlives the test.
struct Driver {
    child: Child,
    port: u16,
    session: std::cell::RefCell<Option<String>>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(id) = self.session.borrow_mut().take() {
            // best effort, and never a panic inside a drop: ChromeDriver quits the browser
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    s,
                    "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
                    self.port
                );
                let _ = s.read(&mut [0u8; 1024]);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Self {
        assert!(
            std::path::Path::new(CHROMIUM).is_file()
                && std::path::Path::new(CHROMEDRIVER).is_file(),
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
        let driver = Self {
            child,
            port,
            session: std::cell::RefCell::new(None),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }

    /// One WebDriver command; returns its `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        eprintln!("webdriver: {method} {path}");
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        // ChromeDriver keeps the connection open: read the head, then exactly the body.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "WebDriver closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let lower = head.to_ascii_lowercase();
        let length = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse::<usize>().unwrap());
        let chunked = lower.contains("transfer-encoding: chunked");
        loop {
            let body = &buf[head_end..];
            let complete = match length {
                Some(n) => body.len() >= n,
                None if chunked => body.ends_with(b"0\r\n\r\n"),
                None => false,
            };
            if complete {
                break;
            }
            let n = s.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
        let payload = if chunked { dechunk(&body) } else { body };
        let v: Value = serde_json::from_str(&payload)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {payload}"));
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "WebDriver {method} {path}: {head}\n{v}"
        );
        v["value"].clone()
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
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
    let turns = tokio::task::spawn_blocking(move || {
        let driver = Driver::start();
        let caps = json!({"capabilities": {"alwaysMatch": {
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
        }}});
        let session = driver.call("POST", "/session", Some(caps));
        let id = session["sessionId"].as_str().expect("a session id").to_string();
        *driver.session.borrow_mut() = Some(id.clone());
        let script = |s: &str| {
            driver.call(
                "POST",
                &format!("/session/{id}/execute/sync"),
                Some(json!({"script": s, "args": []})),
            )
        };
        driver.call("POST", &format!("/session/{id}/url"), Some(json!({"url": page})));
        assert_eq!(script("return document.title"), json!("diarist live"));
        script("document.getElementById('go').click(); return true");
        // The fake microphone plays the 30 s recording in a loop at real time; final turns come
        // 3 s after their audio.
        let deadline = Instant::now() + Duration::from_secs(90);
        let turns = loop {
            let state = script("return document.getElementById('state').textContent");
            assert_ne!(state, json!("error"), "the page reports an error");
            let turns = script("return window.diaristTurns.map(t => [t.speaker, t.start, t.end, t.final])");
            let speakers: std::collections::BTreeSet<String> = turns
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t[0].as_str().unwrap().to_string())
                .collect();
            if speakers.len() >= 2 || Instant::now() > deadline {
                break turns;
            }
            std::thread::sleep(Duration::from_secs(1));
        };
        script("document.getElementById('stop').click(); return true");
        drop(driver);
        let _ = std::fs::remove_dir_all(&profile);
        turns
    })
    .await
    .unwrap();
    let turns = turns.as_array().unwrap().clone();
    let speakers: std::collections::BTreeSet<&str> =
        turns.iter().map(|t| t[0].as_str().unwrap()).collect();
    assert!(speakers.len() >= 2, "turns seen by the page: {turns:?}");
    for t in &turns {
        assert_eq!(t[3], json!(true), "ended turns are final: {t}");
        assert!(t[1].as_u64().unwrap() < t[2].as_u64().unwrap());
    }
    stop.send(()).unwrap();
    task.await.unwrap();
}
