//! The fleet end to end, with real components on loopback: three `diarist serve` instances
//! (127.0.0.2-4, `max_sessions = 2`, `drain_timeout_secs = 20`, one checkpoint key) behind the
//! real HAProxy running `deploy/haproxy/haproxy.cfg` on 127.0.0.1, and real-time
//! `diarist client --resume` processes streaming the 30 s fixtures through it. In sequence:
//!
//! 1. spread: six clients fill the fleet's six slots, two on each instance; a seventh is refused
//!    as busy at once; all six end with every sample final and none lost.
//! 2. drain: SIGTERM to an instance holding a session: its /readyz fails at once, HAProxy takes
//!    it out, a new session lands elsewhere, its session ends with all its audio final (within
//!    the drain, or resumed elsewhere after `shutting_down`), and it exits 0 in time.
//! 3. crash: SIGKILL to an instance holding two sessions mid-stream: both resume on the others
//!    with nothing lost, keep their speakers' names, and score (DER) about as well as the
//!    uninterrupted runs of the same recordings in scenario 1.
//!
//! A summary goes to standard output and to `target/fleet-report.txt`; the servers' JSON logs,
//! HAProxy's log and every client's output stay in `target/tmp/fleet-<pid>/` when a check fails.
//! Every wait has a deadline, and the whole test ends within `WHOLE_TEST`. HAProxy is required
//! (`make setup` installs it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use diarist_core::{der, rttm};
use serde_json::Value;

const TOKEN: &str = "fleet-test-token";
const CHECKPOINT_KEY: &str = "fleet-test-checkpoint-key";
const MAX_SESSIONS: usize = 2;
const DRAIN_SECS: f64 = 20.0;
/// Every wait of the test ends at most this long after the test began.
const WHOLE_TEST: Duration = Duration::from_secs(170);
/// The instances' addresses (the port is chosen at run time).
const HOSTS: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
/// Recordings with two speakers each in their references; clients cycle through them.
const FIXTURES: [&str; 3] = ["pyannote_sample", "ami_dev00", "ami_trn09"];
/// A resumed run's DER may exceed the uninterrupted run's by this much (a generous bound).
const DER_MARGIN: f64 = 0.10;

/// The repository's root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A child process, killed and reaped when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    /// Its process id, as text.
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Its exit status, once it has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("waiting for a child process")
    }
}

impl Drop for Proc {
    /// Kills the process and reaps it.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 50 ms until it gives a value or `within` (capped by the test's end) passes.
fn poll<T>(end: Instant, within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = end.min(Instant::now() + within);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One plain HTTP/1.0 GET: the status and the body, or `None` when nothing answers.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let addr: SocketAddr = addr.parse().expect("an address");
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    tcp.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: fleet\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = (head.lines()).any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    Some((
        status,
        if chunked {
            dechunk(body)?
        } else {
            body.to_string()
        },
    ))
}

/// The body of a chunked HTTP answer (HAProxy's stats page is chunked even for HTTP/1.0).
fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// A sample's value from a Prometheus text body: the line `name value` or `name{...} value`.
fn metric_value(body: &str, name: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        (key == name).then(|| value.parse().ok())?
    })
}

/// A port free on all three instance addresses.
fn free_port() -> u16 {
    for _ in 0..50 {
        let first = TcpListener::bind((HOSTS[0], 0)).expect("binding 127.0.0.2");
        let port = first.local_addr().unwrap().port();
        if HOSTS[1..]
            .iter()
            .all(|h| TcpListener::bind((*h, port)).is_ok())
        {
            return port;
        }
    }
    panic!("no port free on 127.0.0.2, 127.0.0.3 and 127.0.0.4");
}

/// A port free on 127.0.0.1.
fn free_local_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1");
    l.local_addr().unwrap().port()
}

/// A recording with its reference.
struct Fixture {
    reference: Vec<rttm::Turn>,
    uem: Vec<(u64, u64)>,
}

/// Reads the reference RTTM and UEM of fixture `id`.
fn load_fixture(id: &str) -> Fixture {
    let dir = root().join("audio-fixtures");
    let reference = rttm::parse(&fs::read_to_string(dir.join(format!("{id}.rttm"))).unwrap())
        .unwrap()
        .remove(id)
        .unwrap_or_else(|| panic!("{id}.rttm has no turns of {id}"));
    let uem = rttm::parse_uem(&fs::read_to_string(dir.join(format!("{id}.uem"))).unwrap())
        .unwrap()
        .remove(id)
        .unwrap_or_else(|| panic!("{id}.uem has no region of {id}"));
    Fixture { reference, uem }
}

/// How a client run ended.
struct Outcome {
    code: Option<i32>,
    secs: f64,
    stdout: String,
    stderr: String,
    /// The `diarist: finished: {...}` line's object.
    finished: Option<Value>,
    turns: Vec<rttm::Turn>,
}

impl Outcome {
    /// A number of the finished line (0 when it is missing).
    fn field(&self, name: &str) -> u64 {
        (self.finished.as_ref()).map_or(0, |f| f[name].as_u64().unwrap_or(0))
    }
    /// The samples the client sent.
    fn sent(&self) -> u64 {
        self.field("samples_sent")
    }
    /// The samples the server made final.
    fn fin(&self) -> u64 {
        self.field("samples_final")
    }
    /// The samples the server lost, over every session of the run.
    fn lost(&self) -> u64 {
        (self.finished.as_ref()).map_or(0, |f| f["totals"]["samples_lost"].as_u64().unwrap_or(0))
    }
    /// How long each resume took, in seconds.
    fn resumes(&self) -> Vec<f64> {
        (self.finished.as_ref())
            .and_then(|f| f["resumes"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_f64)
            .collect()
    }
    /// The speakers of the client's RTTM.
    fn speakers(&self) -> BTreeSet<String> {
        self.turns.iter().map(|t| t.speaker.clone()).collect()
    }
    /// Every message the client printed.
    fn messages(&self) -> impl Iterator<Item = Value> + '_ {
        (self.stdout.lines()).filter_map(|l| serde_json::from_str::<Value>(l).ok())
    }
    /// Whether the server sent an error with `code`.
    fn got_error(&self, code: &str) -> bool {
        self.messages()
            .any(|m| m["type"] == "error" && m["code"] == code)
    }
    /// The watermark each resumed session started from: the last checkpoint before a later `ready`.
    fn resume_points(&self) -> Vec<u64> {
        let (mut readies, mut watermark, mut points) = (0, 0, Vec::new());
        for m in self.messages() {
            match m["type"].as_str() {
                Some("checkpoint") => watermark = m["samples_final"].as_u64().unwrap_or(0),
                Some("ready") => {
                    readies += 1;
                    if readies > 1 {
                        points.push(watermark);
                    }
                }
                _ => {}
            }
        }
        points
    }
    /// The status and the finished line (or the last stderr lines) in a few words.
    fn describe(&self) -> String {
        let tail: Vec<&str> = self.stderr.lines().rev().take(3).collect();
        format!(
            "exit {:?} after {:.1} s; stderr: {}",
            self.code,
            self.secs,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )
    }
}

/// A `diarist client` process streaming one fixture through the balancer.
struct Client {
    label: String,
    fixture: &'static str,
    proc: Option<Proc>,
    started: Instant,
    stdout: PathBuf,
    stderr: PathBuf,
    rttm: PathBuf,
    outcome: Option<Outcome>,
}

/// What one client's checks found, and its DER.
struct ClientRow {
    label: String,
    fixture: &'static str,
    code: Option<i32>,
    sent: u64,
    fin: u64,
    lost: u64,
    resent: u64,
    resumes: Vec<f64>,
    speakers: BTreeSet<String>,
    der: Option<f64>,
}

impl Client {
    /// How the client ended; panics before it has.
    fn outcome(&self) -> &Outcome {
        self.outcome.as_ref().expect("the client has finished")
    }
}

/// The fleet: instances, the balancer, and where everything is written.
struct Fleet {
    dir: PathBuf,
    port: u16,
    lb: String,
    stats: String,
    end: Instant,
    servers: Vec<Option<Proc>>,
    /// `diarist_sessions_total` (and resumed) of each instance's earlier processes.
    carried: [(u64, u64); 3],
    /// The last values read from each instance.
    last: [(u64, u64); 3],
    haproxy: Option<Proc>,
    clients: usize,
}

impl Fleet {
    /// Instance `i`'s address.
    fn addr(&self, i: usize) -> String {
        format!("{}:{}", HOSTS[i], self.port)
    }

    /// Starts instance `i`, appending to its log.
    fn start_server(&mut self, i: usize) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("serve-{}.log", HOSTS[i])))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_diarist"))
            .args(["serve", "--config"])
            .arg(self.dir.join("server.toml"))
            .args(["--listen", &self.addr(i), "--token", TOKEN])
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .env("XDG_CONFIG_HOME", &self.dir)
            .env_remove("DIARIST_TOKEN")
            .env_remove("DIARIST_CHECKPOINT_KEY")
            .env_remove("DIARIST_SERVER_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting diarist serve");
        self.servers[i] = Some(Proc { child });
        self.last[i] = (0, 0);
    }

    /// Waits until instance `i` answers /readyz 200; panics with its log otherwise.
    fn wait_ready(&mut self, i: usize) -> f64 {
        let t = Instant::now();
        let addr = self.addr(i);
        let ok = poll(self.end, Duration::from_secs(60), || {
            if let Some(s) = self.servers[i].as_mut().and_then(Proc::exited) {
                panic!(
                    "diarist serve on {addr} exited with {s}: {}",
                    self.log_tail(i, 20)
                );
            }
            (http_get(&addr, "/readyz")?.0 == 200).then_some(())
        });
        assert!(
            ok.is_some(),
            "diarist serve on {addr} never answered /readyz 200: {}",
            self.log_tail(i, 20)
        );
        t.elapsed().as_secs_f64()
    }

    /// The last `n` lines of instance `i`'s log.
    fn log_tail(&self, i: usize, n: usize) -> String {
        let log = fs::read_to_string(self.dir.join(format!("serve-{}.log", HOSTS[i])))
            .unwrap_or_default();
        tail(&log, n)
    }

    /// The last `n` lines of HAProxy's log.
    fn haproxy_log_tail(&self, n: usize) -> String {
        let log = fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default();
        tail(&log, n)
    }

    /// Instance `i`'s log records whose message has one of `words`, as `time message {fields}`.
    fn log_records(&self, i: usize, words: &[&str]) -> Vec<String> {
        let log = fs::read_to_string(self.dir.join(format!("serve-{}.log", HOSTS[i])))
            .unwrap_or_default();
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| {
                let m = r["fields"]["message"].as_str().unwrap_or("");
                words.iter().any(|w| m.contains(w))
            })
            .map(|r| {
                let mut fields = r["fields"].clone();
                let message = fields["message"].take();
                format!("{} {} {}", r["timestamp"], message, fields)
            })
            .collect()
    }

    /// Instance `i`'s /metrics body, when it answers 200.
    fn metrics(&mut self, i: usize) -> Option<String> {
        let (status, body) = http_get(&self.addr(i), "/metrics")?;
        (status == 200).then_some(body)
    }

    /// `diarist_sessions_active` of each instance (0 for one that does not answer).
    fn active(&mut self) -> [u64; 3] {
        let mut a = [0; 3];
        for (i, v) in a.iter_mut().enumerate() {
            let m = self.metrics(i);
            *v = m
                .and_then(|m| metric_value(&m, "diarist_sessions_active"))
                .unwrap_or(0.0) as u64;
        }
        a
    }

    /// Sessions (and resumed ones) each instance has started since the fleet began, over restarts.
    fn totals(&mut self) -> [(u64, u64); 3] {
        for i in 0..3 {
            if let Some(m) = self.metrics(i) {
                let get = |n| metric_value(&m, n).unwrap_or(0.0) as u64;
                self.last[i] = (
                    get("diarist_sessions_total"),
                    get("diarist_sessions_resumed_total"),
                );
            }
        }
        std::array::from_fn(|i| {
            (
                self.carried[i].0 + self.last[i].0,
                self.carried[i].1 + self.last[i].1,
            )
        })
    }

    /// Forgets instance `i`'s process (its counts are carried over to the next one).
    fn gone(&mut self, i: usize) {
        self.carried[i].0 += self.last[i].0;
        self.carried[i].1 += self.last[i].1;
        self.last[i] = (0, 0);
    }

    /// HAProxy's state of each instance (UP, DOWN, ...), from its stats CSV.
    fn lb_states(&self) -> Option<[String; 3]> {
        let (status, body) = http_get(&self.stats, "/stats;csv")?;
        if status != 200 {
            return None;
        }
        let mut lines = body.lines();
        let head: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let col = |name| head.iter().position(|h| *h == name);
        let (px, sv, st) = (col("pxname")?, col("svname")?, col("status")?);
        let mut out: [String; 3] = Default::default();
        for l in lines {
            let f: Vec<&str> = l.split(',').collect();
            let server = f.get(sv).and_then(|s| s.strip_prefix("diarist"));
            if f.get(px) == Some(&"diarist")
                && let Some(k) = server.and_then(|s| s.parse::<usize>().ok())
                && (1..=3).contains(&k)
            {
                out[k - 1] = f.get(st)?.split(' ').next()?.to_string();
            }
        }
        Some(out)
    }

    /// Waits until HAProxy sees instance `i` (or every one, with `None`) in `state`: seconds.
    fn wait_lb(&self, i: Option<usize>, state: &str, within: Duration) -> Option<f64> {
        let t = Instant::now();
        poll(self.end, within, || {
            let s = self.lb_states()?;
            let ok = match i {
                Some(i) => s[i] == state,
                None => s.iter().all(|x| x == state),
            };
            ok.then_some(())
        })?;
        Some(t.elapsed().as_secs_f64())
    }

    /// Starts a real-time client streaming `fixture` through the balancer.
    fn client(&mut self, label: &str, fixture: &'static str, resume: bool) -> Client {
        self.clients += 1;
        let base = self.dir.join(format!("{:02}-{label}", self.clients));
        let (stdout, stderr, rttm) = (
            base.with_extension("out"),
            base.with_extension("err"),
            base.with_extension("rttm"),
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_diarist"));
        cmd.arg("client")
            .arg(root().join(format!("audio-fixtures/{fixture}.wav")))
            .args(["--url", &format!("ws://{}/v1/stream", self.lb)])
            .args(["--token", TOKEN, "--realtime"]);
        if resume {
            cmd.arg("--resume");
        }
        let child = cmd
            .arg("--rttm")
            .arg(&rttm)
            .env_remove("DIARIST_TOKEN")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("starting diarist client");
        Client {
            label: label.to_string(),
            fixture,
            proc: Some(Proc { child }),
            started: Instant::now(),
            stdout,
            stderr,
            rttm,
            outcome: None,
        }
    }

    /// Waits for the client to exit (killing it after `within`) and reads what it wrote.
    fn finish(&self, c: &mut Client, within: Duration) {
        if c.outcome.is_none() {
            let mut p = c.proc.take().expect("a running client");
            let status = poll(self.end, within, || p.exited());
            drop(p); // killed if still running
            let stdout = fs::read_to_string(&c.stdout).unwrap_or_default();
            let stderr = fs::read_to_string(&c.stderr).unwrap_or_default();
            let finished = (stderr.lines())
                .find_map(|l| l.strip_prefix("diarist: finished: "))
                .and_then(|j| serde_json::from_str(j).ok());
            let turns = fs::read_to_string(&c.rttm)
                .ok()
                .and_then(|t| rttm::parse(&t).ok())
                .and_then(|mut m| m.remove(c.fixture))
                .unwrap_or_default();
            c.outcome = Some(Outcome {
                code: match status {
                    Some(s) => s.code(),
                    None => Some(-1), // killed at its deadline
                },
                secs: c.started.elapsed().as_secs_f64(),
                stdout,
                stderr: match status {
                    Some(_) => stderr,
                    None => format!("{stderr}\n(killed: still running after {within:?})"),
                },
                finished,
                turns,
            });
        }
    }
}

/// Checks that do not stop the test: every failure is kept and reported at the end.
#[derive(Default)]
struct Checks {
    failed: Vec<String>,
}

impl Checks {
    /// Prints and keeps the check `what`: whether it passed.
    fn check(&mut self, ok: bool, what: impl Into<String>) -> bool {
        let what = what.into();
        if ok {
            println!("  ok: {what}");
        } else {
            println!("  FAILED: {what}");
            self.failed.push(what);
        }
        ok
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The DER of `hyp` against `reference` within `uem`, with no collar.
fn der_of(reference: &[rttm::Turn], hyp: &[rttm::Turn], uem: &[(u64, u64)]) -> f64 {
    der::score(reference, hyp, Some(uem), 0).der()
}

/// A fraction as a percentage, or `-`.
fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.2} %", 100.0 * v))
}

/// Durations as `1.00, 2.00 s`, or `-`.
fn secs_list(v: &[f64]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        let s: Vec<String> = v.iter().map(|x| format!("{x:.2}")).collect();
        format!("{} s", s.join(", "))
    }
}

/// The common checks of a client that streamed a whole recording with `--resume`.
fn check_complete(checks: &mut Checks, c: &Client, o: &Outcome, fx: &Fixture) -> ClientRow {
    checks.check(
        o.code == Some(0),
        format!("{} ({}): exits 0 ({})", c.label, c.fixture, o.describe()),
    );
    checks.check(
        o.finished.is_some() && o.sent() > 0 && o.fin() == o.sent(),
        format!(
            "{}: samples_final {} == samples_sent {}",
            c.label,
            o.fin(),
            o.sent()
        ),
    );
    checks.check(
        o.finished.is_some() && o.lost() == 0,
        format!("{}: totals.samples_lost {} == 0", c.label, o.lost()),
    );
    ClientRow {
        label: c.label.clone(),
        fixture: c.fixture,
        code: o.code,
        sent: o.sent(),
        fin: o.fin(),
        lost: o.lost(),
        resent: o.field("samples_resent"),
        resumes: o.resumes(),
        speakers: o.speakers(),
        der: (!o.turns.is_empty()).then(|| der_of(&fx.reference, &o.turns, &fx.uem)),
    }
}

/// One line of the summary.
struct Row {
    scenario: &'static str,
    sessions: String,
    sent: u64,
    fin: u64,
    lost: u64,
    drain: String,
    resumes: String,
    der: String,
}

/// The samples sent, final and lost of `rows`, summed.
fn summarise(rows: &[ClientRow]) -> (u64, u64, u64) {
    rows.iter().fold((0, 0, 0), |(s, f, l), r| {
        (s + r.sent, f + r.fin, l + r.lost)
    })
}

/// The sessions (and resumed ones) each instance started between `before` and `after`.
fn per_instance(before: [(u64, u64); 3], after: [(u64, u64); 3]) -> String {
    let v: Vec<String> = (0..3)
        .map(|i| {
            let (n, r) = (after[i].0 - before[i].0, after[i].1 - before[i].1);
            if r > 0 {
                format!("{n} ({r} resumed)")
            } else {
                n.to_string()
            }
        })
        .collect();
    v.join(" / ")
}

/// The first line of `haproxy -v`; panics when HAProxy is not installed.
fn haproxy_version() -> String {
    match Command::new("haproxy").arg("-v").output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "haproxy is not installed: the fleet test runs the real HAProxy with \
             deploy/haproxy/haproxy.cfg; `make setup` (tools/setup.sh) installs it"
        ),
        Err(e) => panic!("running haproxy -v: {e}"),
    }
}

/// Writes the instances' server and engine configuration into `dir`.
fn write_configs(dir: &Path) {
    fs::write(
        dir.join("server.toml"),
        format!(
            "engine = \"diarist.toml\"\ntoken = \"{TOKEN}\"\nmax_sessions = {MAX_SESSIONS}\n\
             drain_timeout_secs = {DRAIN_SECS:.1}\nbusy_retry_after_secs = 1\n\
             checkpoint_key = \"{CHECKPOINT_KEY}\"\ncheckpoint_interval_secs = 1.0\n\
             stats_interval_secs = 0\nredaction_workers = 1\n"
        ),
    )
    .unwrap();
    // One inference worker per instance: three instances share the machine's cores.
    fs::write(dir.join("diarist.toml"), "[streaming]\nworkers = 1\n").unwrap();
}

/// What scenario 2 saw of the draining instance, each time counted from the SIGTERM.
struct Drain {
    victim: usize,
    /// The sessions it held at the SIGTERM.
    sessions: u64,
    /// When its /readyz answered 503, and the answer.
    not_ready: Option<(f64, String)>,
    /// When HAProxy had it DOWN.
    out_of_rotation: Option<f64>,
    exit: Option<ExitStatus>,
    /// When it exited.
    secs: Option<f64>,
    /// Its log records about the drain.
    log: Vec<String>,
}

/// The state the steps of the test share: the fleet, the checks, and what the report is made of.
struct Run {
    began: Instant,
    /// Every wait ends by then.
    end: Instant,
    /// Cargo's temporary folder for integration tests (`target/tmp`).
    tmp: PathBuf,
    /// The fleet's configuration, logs and client output.
    dir: PathBuf,
    haproxy_version: String,
    fixtures: BTreeMap<&'static str, Fixture>,
    fleet: Fleet,
    checks: Checks,
    /// The summary's lines, one per scenario.
    rows: Vec<Row>,
    /// Every client's row, in the order the clients ran.
    client_rows: Vec<ClientRow>,
    /// The report's notes.
    details: String,
    /// The first uninterrupted run of each recording in scenario 1: its turns and its DER.
    /// Every uninterrupted run of scenario 1, by recording: its final turns and DER.
    baseline: BTreeMap<&'static str, Vec<(Vec<rttm::Turn>, f64)>>,
}

impl Run {
    /// Creates the test's folder and configuration, then starts the instances and HAProxy.
    fn set_up() -> Run {
        let began = Instant::now();
        let end = began + WHOLE_TEST;
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = tmp.join(format!("fleet-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let haproxy_version = haproxy_version();
        write_configs(&dir);
        let fixtures = FIXTURES.iter().map(|f| (*f, load_fixture(f))).collect();
        let port = free_port();
        let (lb_port, stats_port) = (free_local_port(), free_local_port());
        let fleet = Fleet {
            dir: dir.clone(),
            port,
            lb: format!("127.0.0.1:{lb_port}"),
            stats: format!("127.0.0.1:{stats_port}"),
            end,
            servers: vec![None, None, None],
            carried: [(0, 0); 3],
            last: [(0, 0); 3],
            haproxy: None,
            clients: 0,
        };
        let mut run = Run {
            began,
            end,
            tmp,
            dir,
            haproxy_version,
            fixtures,
            fleet,
            checks: Checks::default(),
            rows: Vec::new(),
            client_rows: Vec::new(),
            details: String::new(),
            baseline: BTreeMap::new(),
        };
        run.start_instances();
        run.start_haproxy();
        run
    }

    /// Starts the three instances and waits until each answers /readyz 200.
    fn start_instances(&mut self) {
        for i in 0..3 {
            self.fleet.start_server(i);
        }
        let mut startup = Vec::new();
        for i in 0..3 {
            startup.push(self.fleet.wait_ready(i));
        }
        println!(
            "fleet: diarist serve on {} (ready in {})",
            (0..3)
                .map(|i| self.fleet.addr(i))
                .collect::<Vec<_>>()
                .join(", "),
            secs_list(&startup)
        );
    }

    /// Starts HAProxy with `deploy/haproxy/haproxy.cfg` and waits until it has every instance UP.
    fn start_haproxy(&mut self) {
        let fleet = &mut self.fleet;
        let lb_log = File::create(self.dir.join("haproxy.log")).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(root().join("deploy/haproxy/haproxy.cfg"))
            .env("DIARIST_LB_BIND", &fleet.lb)
            .env("DIARIST_LB_STATS_BIND", &fleet.stats)
            .env("DIARIST_BACKEND_1", fleet.addr(0))
            .env("DIARIST_BACKEND_2", fleet.addr(1))
            .env("DIARIST_BACKEND_3", fleet.addr(2))
            .stdin(Stdio::null())
            .stdout(lb_log.try_clone().unwrap())
            .stderr(lb_log)
            .spawn()
            .expect("starting haproxy");
        fleet.haproxy = Some(Proc { child });
        let up = poll(self.end, Duration::from_secs(20), || {
            if let Some(s) = fleet.haproxy.as_mut().and_then(Proc::exited) {
                panic!("haproxy exited with {s}: {}", fleet.haproxy_log_tail(30));
            }
            let all_up = fleet.lb_states()?.iter().all(|s| s == "UP");
            (all_up && http_get(&fleet.lb, "/readyz")?.0 == 200).then_some(())
        });
        assert!(
            up.is_some(),
            "HAProxy on {} never had the three instances UP: {:?}\n{}",
            fleet.lb,
            fleet.lb_states(),
            fleet.haproxy_log_tail(30)
        );
        println!(
            "fleet: {} on {} (stats {}), all three instances UP after {:.1} s",
            self.haproxy_version,
            fleet.lb,
            fleet.stats,
            self.began.elapsed().as_secs_f64()
        );
    }

    /// Scenario 1: six clients fill the six slots, two on each instance; a seventh is busy.
    fn spread(&mut self) {
        println!("\n[1] spread: 6 real-time clients for 3 × {MAX_SESSIONS} slots, then a 7th");
        let t1 = Instant::now();
        let before = self.fleet.totals();
        let mut spread: Vec<Client> = (0..6)
            .map(|k| (self.fleet).client(&format!("spread{k}"), FIXTURES[k % 3], true))
            .collect();
        let mut peak = [0; 3];
        let all_in = poll(self.end, Duration::from_secs(20), || {
            peak = self.fleet.active();
            (peak.iter().sum::<u64>() == 6).then_some(())
        });
        self.checks.check(
            all_in.is_some() && peak == [2, 2, 2],
            format!("six sessions active, 2 on each instance (diarist_sessions_active {peak:?})"),
        );
        let (busy_secs, refused_full) = self.refuse_a_seventh();
        let spread_rows = self.check_spread_clients(&mut spread);
        let after = self.fleet.totals();
        let (s, f, l) = summarise(&spread_rows);
        self.rows.push(Row {
            scenario: "1 spread",
            sessions: format!(
                "{} (peak active {}/{}/{}); 7th busy in {busy_secs:.2} s, {refused_full} refused as full",
                per_instance(before, after),
                peak[0],
                peak[1],
                peak[2]
            ),
            sent: s,
            fin: f,
            lost: l,
            drain: "-".into(),
            resumes: "-".into(),
            der: (FIXTURES.iter())
                .map(|f| format!("{f} {}", pct(self.worst_baseline(f))))
                .collect::<Vec<_>>()
                .join(", "),
        });
        self.client_rows.extend(spread_rows);
        println!("[1] took {:.1} s", t1.elapsed().as_secs_f64());
    }

    /// A 7th client (no --resume) in the full fleet: how soon it ended, and the refusals as full.
    fn refuse_a_seventh(&mut self) -> (f64, f64) {
        let mut busy = self.fleet.client("spread-7th", FIXTURES[0], false);
        self.fleet.finish(&mut busy, Duration::from_secs(20));
        let o = busy.outcome();
        self.checks.check(
            o.code.is_some_and(|c| c != 0) && o.stderr.contains("busy") && o.secs < 10.0,
            format!(
                "a 7th client (no --resume) is refused as busy promptly ({})",
                o.describe()
            ),
        );
        let refused_full: f64 = (0..3)
            .filter_map(|i| self.fleet.metrics(i))
            .filter_map(|m| metric_value(&m, "diarist_connections_refused_total{reason=\"full\"}"))
            .sum();
        (o.secs, refused_full)
    }

    /// Waits for and checks the spread clients; their runs are the recordings' baselines.
    fn check_spread_clients(&mut self, spread: &mut [Client]) -> Vec<ClientRow> {
        let mut spread_rows = Vec::new();
        for c in spread {
            self.fleet.finish(c, Duration::from_secs(75));
            let o = c.outcome();
            let row = check_complete(&mut self.checks, c, o, &self.fixtures[c.fixture]);
            self.checks.check(
                row.resumes.is_empty(),
                format!("{}: uninterrupted (resumes {:?})", c.label, row.resumes),
            );
            if let (Some(d), true) = (row.der, row.resumes.is_empty() && row.code == Some(0)) {
                (self.baseline.entry(c.fixture).or_default()).push((o.turns.clone(), d));
            }
            spread_rows.push(row);
        }
        spread_rows
    }

    /// Scenario 2: SIGTERM to an instance holding a session; it drains, and is restarted.
    fn drain(&mut self) {
        println!("\n[2] drain: SIGTERM to an instance holding a session");
        let t2 = Instant::now();
        self.checks.check(
            (self.fleet)
                .wait_lb(None, "UP", Duration::from_secs(15))
                .is_some(),
            format!(
                "HAProxy has every instance UP again ({:?})",
                self.fleet.lb_states()
            ),
        );
        let before = self.fleet.totals();
        let mut drain_clients = vec![
            self.fleet.client("drain0", FIXTURES[0], true),
            self.fleet.client("drain1", FIXTURES[1], true),
        ];
        let mut act = [0; 3];
        let in2 = poll(self.end, Duration::from_secs(15), || {
            act = self.fleet.active();
            (act.iter().sum::<u64>() == 2).then_some(())
        });
        self.checks
            .check(in2.is_some(), format!("two sessions active ({act:?})"));
        std::thread::sleep(Duration::from_secs(3).saturating_sub(t2.elapsed()));
        let drain = self.sigterm_and_observe(before, &mut drain_clients);
        self.restart_drained(drain.victim);
        let (drain_rows, shut_down) = self.check_drain_clients(&mut drain_clients, &drain);
        let after = self.fleet.totals();
        let (s, f, l) = summarise(&drain_rows);
        self.rows.push(Row {
            scenario: "2 drain",
            sessions: format!(
                "{} ({} drained: {} session(s) at SIGTERM, {shut_down} got shutting_down)",
                per_instance(before, after),
                HOSTS[drain.victim],
                drain.sessions
            ),
            sent: s,
            fin: f,
            lost: l,
            drain: format!(
                "/readyz 503 in {}, DOWN in HAProxy {}, exit {} after {}",
                (drain.not_ready.as_ref()).map_or("-".into(), |(t, _)| format!("{t:.3} s")),
                (drain.out_of_rotation).map_or("-".into(), |t| format!("{t:.1} s")),
                (drain.exit).map_or("-".into(), |s| s
                    .code()
                    .map_or("signal".into(), |c| c.to_string())),
                drain.secs.map_or("-".into(), |t| format!("{t:.2} s"))
            ),
            resumes: secs_list(&resume_times(&drain_rows)),
            der: self.resumed_ders(&drain_rows),
        });
        self.client_rows.extend(drain_rows);
        println!("[2] took {:.1} s", t2.elapsed().as_secs_f64());
    }

    /// SIGTERM to the busiest instance, a new client (into `clients`), and checks of the drain.
    fn sigterm_and_observe(&mut self, before: [(u64, u64); 3], clients: &mut Vec<Client>) -> Drain {
        let act = self.fleet.active();
        let victim = (0..3).max_by_key(|&i| (act[i], 3 - i)).unwrap();
        let victim_total = self.fleet.totals()[victim].0;
        let pid = self.fleet.servers[victim].as_ref().unwrap().pid();
        println!(
            "  sessions active {act:?}: SIGTERM to {} (pid {pid})",
            self.fleet.addr(victim)
        );
        let sigterm = Instant::now();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let victim_addr = self.fleet.addr(victim);
        let not_ready = poll(self.end, Duration::from_secs(3), || {
            let (s, body) = http_get(&victim_addr, "/readyz")?;
            (s == 503).then(|| (sigterm.elapsed().as_secs_f64(), body))
        });
        self.checks.check(
            not_ready.as_ref().is_some_and(|(t, _)| *t < 1.0),
            format!(
                "its /readyz answers 503 at once ({:?})",
                not_ready
                    .as_ref()
                    .map(|(t, b)| format!("{t:.3} s, {}", b.trim()))
            ),
        );
        // A new session right away (HAProxy may still send it to the draining instance, which
        // refuses with 503, and HAProxy retries elsewhere).
        clients.push(self.fleet.client("drain-new", FIXTURES[2], true));
        let out_of_rotation =
            self.check_new_session_elsewhere(victim, victim_total, act, before, sigterm);
        let mut exit = None;
        let secs = poll(self.end, Duration::from_secs_f64(DRAIN_SECS + 15.0), || {
            let s = self.fleet.servers[victim].as_mut().unwrap().exited()?;
            exit = Some(s);
            Some(sigterm.elapsed().as_secs_f64())
        });
        self.checks.check(
            exit.is_some_and(|s| s.success()) && secs.is_some_and(|t| t <= DRAIN_SECS + 5.0),
            format!(
                "the draining instance exits 0 within drain_timeout_secs + 5 s ({exit:?} after {:?} s)",
                secs.map(|t| format!("{t:.2}"))
            ),
        );
        Drain {
            victim,
            sessions: act[victim],
            not_ready,
            out_of_rotation,
            exit,
            secs,
            log: (self.fleet).log_records(victim, &["drain", "shutting", "session ended"]),
        }
    }

    /// Checks that the new session lands elsewhere and HAProxy has the victim DOWN (when: given).
    fn check_new_session_elsewhere(
        &mut self,
        victim: usize,
        victim_total: u64,
        act: [u64; 3],
        before: [(u64, u64); 3],
        sigterm: Instant,
    ) -> Option<f64> {
        // Until the new session has started elsewhere and HAProxy has taken the draining instance
        // out of rotation, each timed from the SIGTERM.
        let (mut landed, mut out_of_rotation) = (None, None);
        poll(self.end, Duration::from_secs(15), || {
            if landed.is_none() {
                let t = self.fleet.totals();
                let others: u64 = (0..3)
                    .filter(|&i| i != victim)
                    .map(|i| t[i].0 - before[i].0)
                    .sum();
                let earlier: u64 = (0..3).filter(|&i| i != victim).map(|i| act[i]).sum();
                landed = (others > earlier).then(|| sigterm.elapsed().as_secs_f64());
            }
            if out_of_rotation.is_none()
                && (self.fleet.lb_states()).is_some_and(|s| s[victim] == "DOWN")
            {
                out_of_rotation = Some(sigterm.elapsed().as_secs_f64());
            }
            (landed.is_some() && out_of_rotation.is_some()).then_some(())
        });
        let victim_total_after = self.fleet.totals()[victim].0;
        self.checks.check(
            landed.is_some() && victim_total_after == victim_total,
            format!(
                "a session started after the SIGTERM lands on another instance ({:?} s after the \
                 SIGTERM; sessions_total of the draining instance {victim_total} -> \
                 {victim_total_after})",
                landed.map(|t| format!("{t:.2}"))
            ),
        );
        self.checks.check(
            out_of_rotation.is_some(),
            format!(
                "HAProxy takes the draining instance out of rotation ({:?} s after the SIGTERM)",
                out_of_rotation.map(|t| format!("{t:.2}"))
            ),
        );
        out_of_rotation
    }

    /// Restarts the drained instance and checks that HAProxy has it UP again.
    fn restart_drained(&mut self, victim: usize) {
        self.fleet.servers[victim] = None; // reaped (or killed, if it did not exit)
        self.fleet.gone(victim);
        self.fleet.start_server(victim);
        let restart = self.fleet.wait_ready(victim);
        let back = (self.fleet).wait_lb(Some(victim), "UP", Duration::from_secs(10));
        self.checks.check(
            back.is_some(),
            format!(
                "restarted, it is ready in {restart:.2} s and UP in HAProxy {:?} s later",
                back.map(|t| format!("{t:.1}"))
            ),
        );
    }

    /// Waits for and checks the drain clients: their rows, and how many got `shutting_down`.
    fn check_drain_clients(
        &mut self,
        clients: &mut [Client],
        drain: &Drain,
    ) -> (Vec<ClientRow>, usize) {
        let mut drain_rows = Vec::new();
        let mut shut_down = 0;
        for c in clients {
            self.fleet.finish(c, Duration::from_secs(80));
            let o = c.outcome();
            if o.got_error("shutting_down") {
                shut_down += 1;
                let _ = writeln!(
                    self.details,
                    "  {}: got shutting_down; resumes {:?}; {}",
                    c.label,
                    o.resumes(),
                    o.describe()
                );
            }
            drain_rows.push(check_complete(
                &mut self.checks,
                c,
                o,
                &self.fixtures[c.fixture],
            ));
        }
        let victim_sessions = drain.sessions;
        self.checks.check(
            shut_down as u64 <= victim_sessions,
            format!(
                "shutting_down only for the {victim_sessions} session(s) of the draining instance \
                 ({shut_down} got it)"
            ),
        );
        if self.checks.failed.iter().any(|f| f.starts_with("drain")) {
            let _ = writeln!(
                self.details,
                "  the draining instance's log ({}):\n    {}",
                (self.dir.join(format!("serve-{}.log", HOSTS[drain.victim]))).display(),
                drain.log.join("\n    ")
            );
        }
        (drain_rows, shut_down)
    }

    /// The DER column of the resumed clients among `rows`: stitched vs uninterrupted.
    fn resumed_ders(&self, rows: &[ClientRow]) -> String {
        rows.iter()
            .filter(|r| !r.resumes.is_empty())
            .map(|r| {
                format!(
                    "{} {} vs {}",
                    r.label,
                    pct(r.der),
                    pct(self.worst_baseline(r.fixture))
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Scenario 3: SIGKILL to an instance holding two sessions mid-stream; both resume elsewhere.
    fn crash(&mut self) {
        println!("\n[3] crash: SIGKILL to an instance holding two sessions mid-stream");
        let t3 = Instant::now();
        self.checks.check(
            (self.fleet)
                .wait_lb(None, "UP", Duration::from_secs(15))
                .is_some(),
            format!(
                "HAProxy has every instance UP ({:?})",
                self.fleet.lb_states()
            ),
        );
        let before = self.fleet.totals();
        let crash_fixtures = [FIXTURES[0], FIXTURES[1], FIXTURES[2], FIXTURES[0]];
        let mut crash: Vec<Client> = crash_fixtures
            .iter()
            .enumerate()
            .map(|(k, f)| self.fleet.client(&format!("crash{k}"), f, true))
            .collect();
        let mut act = [0; 3];
        let in3 = poll(self.end, Duration::from_secs(15), || {
            act = self.fleet.active();
            (act.iter().sum::<u64>() == 4).then_some(())
        });
        self.checks
            .check(in3.is_some(), format!("four sessions active ({act:?})"));
        let (victim, victim_sessions, lb_down) = self.kill_mid_stream(t3);
        let crash_rows = self.check_crash_clients(&mut crash);
        let affected = crash_rows.iter().filter(|r| !r.resumes.is_empty()).count();
        self.checks.check(
            affected as u64 == victim_sessions,
            format!(
                "the {victim_sessions} session(s) of the killed instance resumed elsewhere ({affected} \
                 clients resumed)"
            ),
        );
        let after = self.fleet.totals();
        let resumed: u64 = (0..3)
            .filter(|&i| i != victim)
            .map(|i| after[i].1 - before[i].1)
            .sum();
        self.checks.check(
            resumed == victim_sessions,
            format!(
                "the other instances count {resumed} resumed session(s) \
                 (diarist_sessions_resumed_total), {victim_sessions} expected"
            ),
        );
        let (s, f, l) = summarise(&crash_rows);
        self.rows.push(Row {
            scenario: "3 crash",
            sessions: format!(
                "{} ({} killed holding {victim_sessions}; DOWN in HAProxy {})",
                per_instance(before, after),
                HOSTS[victim],
                lb_down.map_or("-".into(), |t| format!("{t:.1} s later"))
            ),
            sent: s,
            fin: f,
            lost: l,
            drain: "-".into(),
            resumes: secs_list(&resume_times(&crash_rows)),
            der: self.resumed_ders(&crash_rows),
        });
        self.client_rows.extend(crash_rows);
        println!("[3] took {:.1} s", t3.elapsed().as_secs_f64());
    }

    /// SIGKILL mid-stream to the busiest instance: which, its sessions, when HAProxy had it DOWN.
    fn kill_mid_stream(&mut self, t3: Instant) -> (usize, u64, Option<f64>) {
        // Halfway through the recordings: both speakers of each have spoken before the watermark.
        std::thread::sleep(Duration::from_secs(15).saturating_sub(t3.elapsed()));
        let act = self.fleet.active();
        let victim = (0..3).max_by_key(|&i| (act[i], 3 - i)).unwrap();
        let victim_sessions = act[victim];
        self.checks.check(
            victim_sessions == 2,
            format!("the instance killed holds two sessions (active {act:?})"),
        );
        let _ = self.fleet.totals(); // the victim's last counts
        println!(
            "  sessions active {act:?}: SIGKILL to {} at {:.1} s into the streams",
            self.fleet.addr(victim),
            t3.elapsed().as_secs_f64()
        );
        let sigkill = Instant::now();
        let mut p = self.fleet.servers[victim].take().unwrap();
        p.child.kill().expect("SIGKILL");
        let _ = p.child.wait();
        drop(p);
        self.fleet.gone(victim);
        let lb_down = (self.fleet)
            .wait_lb(Some(victim), "DOWN", Duration::from_secs(5))
            .map(|_| sigkill.elapsed().as_secs_f64());
        (victim, victim_sessions, lb_down)
    }

    /// Waits for the crash scenario's clients and checks them, the resumed ones further.
    fn check_crash_clients(&mut self, clients: &mut [Client]) -> Vec<ClientRow> {
        let mut crash_rows = Vec::new();
        for c in clients {
            self.fleet.finish(c, Duration::from_secs(80));
            let fx = &self.fixtures[c.fixture];
            let row = check_complete(&mut self.checks, c, c.outcome(), fx);
            if !row.resumes.is_empty() {
                self.check_resumed(c, &row);
            }
            crash_rows.push(row);
        }
        crash_rows
    }

    /// Checks that a resumed client keeps its speakers and scores about as well as its baseline.
    fn check_resumed(&mut self, c: &Client, row: &ClientRow) {
        let o = c.outcome();
        let fx = &self.fixtures[c.fixture];
        let points = o.resume_points();
        let w = points.first().copied().unwrap_or(0);
        let before_set: BTreeSet<&str> = (o.turns.iter())
            .filter(|t| t.start < w)
            .map(|t| t.speaker.as_str())
            .collect();
        let after_set: BTreeSet<&str> = (o.turns.iter())
            .filter(|t| t.end > w)
            .map(|t| t.speaker.as_str())
            .collect();
        // Runs differ with the backbone phase a stream gets: the bound is the worst run's.
        let runs = self.baseline.get(c.fixture).cloned().unwrap_or_default();
        let base_der = self.worst_baseline(c.fixture).unwrap_or(f64::NAN);
        let base_turns = (runs.iter())
            .find(|r| r.1 == base_der)
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let most = (runs.iter())
            .map(|r| {
                r.0.iter()
                    .map(|t| &t.speaker)
                    .collect::<BTreeSet<_>>()
                    .len()
            })
            .max()
            .unwrap_or(0);
        let base_speakers: BTreeSet<&str> = base_turns.iter().map(|t| t.speaker.as_str()).collect();
        self.checks.check(
            before_set.iter().all(|s| row.speakers.contains(*s)) && row.speakers.len() <= most,
            format!(
                "{} ({}): the stitched RTTM keeps the speakers' names: {:?} (before the \
                 resume at sample {w}: {before_set:?}, after: {after_set:?}), no more than \
                 the uninterrupted runs' {most}",
                c.label, c.fixture, row.speakers
            ),
        );
        let vs_base = (!base_turns.is_empty()).then(|| der_of(&base_turns, &o.turns, &fx.uem));
        self.checks.check(
            row.der.is_some_and(|d| d <= base_der + DER_MARGIN),
            format!(
                "{}: stitched DER {} <= uninterrupted DER {} + {:.0} points (DER against \
                 the uninterrupted run's RTTM: {})",
                c.label,
                pct(row.der),
                pct(Some(base_der)),
                100.0 * DER_MARGIN,
                pct(vs_base)
            ),
        );
        let _ = writeln!(
            self.details,
            "  {} ({}): resumed at sample {w} after {}; resent {} samples; speakers {:?} \
             (uninterrupted {:?}); DER {} (uninterrupted {}), against the uninterrupted \
             RTTM {}",
            c.label,
            c.fixture,
            secs_list(&row.resumes),
            row.resent,
            row.speakers,
            base_speakers,
            pct(row.der),
            pct(Some(base_der)),
            pct(vs_base)
        );
    }

    /// The highest DER of the recording's uninterrupted runs.
    fn worst_baseline(&self, fixture: &str) -> Option<f64> {
        let runs = self.baseline.get(fixture)?;
        runs.iter().map(|r| r.1).reduce(f64::max)
    }

    /// The summary: the scenarios' table, every client's line, the notes and the verdict.
    fn report(&mut self) -> String {
        let mut report = String::new();
        let _ = writeln!(
            report,
            "fleet test ({:.0} s): 3 × diarist serve (max_sessions {MAX_SESSIONS}, \
             drain_timeout_secs {DRAIN_SECS}, [streaming] workers 1) on {}:{}, behind {} on {}; \
             real-time `diarist client --resume` of 30 s fixtures",
            self.began.elapsed().as_secs_f64(),
            HOSTS.join("/"),
            self.fleet.port,
            self.haproxy_version.split(" - ").next().unwrap_or(""),
            self.fleet.lb
        );
        let _ = writeln!(
            report,
            "\n| scenario | sessions per instance ({}) | samples sent / final / lost | drain | resume times | DER stitched vs uninterrupted |",
            HOSTS.map(|h| h.trim_start_matches("127.0.0.")).join(" / ")
        );
        let _ = writeln!(report, "|---|---|---|---|---|---|");
        for r in &self.rows {
            let _ = writeln!(
                report,
                "| {} | {} | {} / {} / {} | {} | {} | {} |",
                r.scenario, r.sessions, r.sent, r.fin, r.lost, r.drain, r.resumes, r.der
            );
        }
        let _ = writeln!(report, "\nclients:");
        for r in &self.client_rows {
            let _ = writeln!(
                report,
                "  {:<10} {:<16} exit {:<4} sent {:>6} final {:>6} lost {} resent {:>6} resumes {:<12} speakers {:?} DER {}",
                r.label,
                r.fixture,
                r.code.map_or("-".into(), |c| c.to_string()),
                r.sent,
                r.fin,
                r.lost,
                r.resent,
                secs_list(&r.resumes),
                r.speakers,
                pct(r.der)
            );
        }
        let mut runs: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for r in &self.client_rows {
            if r.resumes.is_empty() && r.code == Some(0) {
                runs.entry(r.fixture).or_default().push(pct(r.der));
            }
        }
        for (f, d) in &runs {
            let _ = writeln!(
                self.details,
                "  uninterrupted runs of {f} (same fleet, same test): DER {}",
                d.join(", ")
            );
        }
        if !self.details.is_empty() {
            let _ = writeln!(report, "\nnotes:\n{}", self.details);
        }
        if self.checks.failed.is_empty() {
            let _ = writeln!(report, "\nall checks passed");
        } else {
            let _ = writeln!(
                report,
                "\n{} check(s) FAILED (logs and client output: {}):\n  - {}",
                self.checks.failed.len(),
                self.dir.display(),
                self.checks.failed.join("\n  - ")
            );
        }
        report
    }

    /// Prints and writes the report, stops the fleet, and fails the test if a check failed.
    fn conclude(mut self) {
        let report = self.report();
        println!("\n{report}");
        let target = self.tmp.parent().unwrap_or(&self.tmp).to_path_buf();
        let _ = fs::write(target.join("fleet-report.txt"), &report);
        drop(self.fleet); // stops HAProxy and the instances
        assert!(
            self.checks.failed.is_empty(),
            "{} fleet check(s) failed:\n  - {}\n(report: {}; logs: {})",
            self.checks.failed.len(),
            self.checks.failed.join("\n  - "),
            target.join("fleet-report.txt").display(),
            self.dir.display()
        );
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Every resume time of `rows`, in order.
fn resume_times(rows: &[ClientRow]) -> Vec<f64> {
    rows.iter()
        .flat_map(|r| r.resumes.iter().copied())
        .collect()
}

/// The three scenarios in turn on one fleet, then the report.
#[test]
fn a_fleet_behind_haproxy_spreads_drains_and_survives_a_crash() {
    let mut run = Run::set_up();
    run.spread();
    run.drain();
    run.crash();
    run.conclude();
}
