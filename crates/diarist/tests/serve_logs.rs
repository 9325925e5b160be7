//! `diarist serve --log-format json` end to end: the real binary on a loopback port logs JSON
//! lines that name the session of every refused connection, session start and end, and its
//! shutdown; SIGTERM ends it with status 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const TOKEN: &str = "log-test-token";

/// Reads the server's JSON log lines on a thread; every line must be a JSON object.
fn log_lines(stderr: ChildStderr) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // The model runtime's one-line notes are not log records.
            if line.starts_with("diarist:") {
                continue;
            }
            let record: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            if tx.send(record).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for the first record whose message is `message`; every record seen is kept in `seen`.
fn wait_for(rx: &mpsc::Receiver<Value>, message: &str, seen: &mut Vec<Value>) -> Value {
    loop {
        let r = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no `{message}` record; seen {seen:#?}"));
        seen.push(r.clone());
        if r["fields"]["message"] == message {
            return r;
        }
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_logs_json_lines_with_session_ids_and_exits_cleanly_on_sigterm() {
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_diarist"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("DIARIST_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = log_lines(server.0.stderr.take().unwrap());
    let mut seen = Vec::new();
    let serving = wait_for(&rx, "serving", &mut seen);
    let address = serving["fields"]["address"].as_str().unwrap().to_string();
    assert_eq!(serving["level"], "INFO");

    // A wrong token: refused, logged with the connection's id.
    let mut tcp = TcpStream::connect(&address).unwrap();
    write!(
        tcp,
        "GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let refused = wait_for(
        &rx,
        "connection refused: a valid bearer token is required",
        &mut seen,
    );
    assert_eq!(refused["level"], "WARN");
    assert_eq!(refused["fields"]["status"], 401);
    assert!(refused["fields"]["session"].as_u64().is_some(), "{refused}");

    // A whole session: started and ended under one id.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../audio-fixtures/pyannote_sample.wav"
    );
    let client = Command::new(env!("CARGO_BIN_EXE_diarist"))
        .args(["client", fixture, "--url"])
        .arg(format!("ws://{address}/v1/stream"))
        .env("DIARIST_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        client.status.success(),
        "{}",
        String::from_utf8_lossy(&client.stderr)
    );
    let started = wait_for(&rx, "session started", &mut seen);
    let ended = wait_for(&rx, "session ended", &mut seen);
    let id = &started["fields"]["session"];
    assert!(id.as_u64().is_some());
    assert_eq!(&ended["fields"]["session"], id);
    assert_eq!(ended["fields"]["speakers"], 2);
    assert_ne!(id, &refused["fields"]["session"]);

    // SIGTERM: the shutdown is logged and the process exits 0.
    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for(&rx, "shutting down: flushing every session", &mut seen);
    let status = server.0.wait().unwrap();
    assert!(status.success(), "{status}");
}
