//! `/metrics` of a real loopback server after a real session, parsed whole: the Prometheus text
//! format (version 0.0.4), Prometheus naming conventions, well-formed histograms, and the values
//! the session must have left.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{TOKEN, host, sample, start_server};
use diarist_server::client::{ClientError, ClientOptions, stream_samples};
use diarist_server::protocol::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One sample line: name, labels in their order, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The labels other than `le`, which name one series of a histogram.
    fn series(&self) -> Vec<(String, String)> {
        self.labels
            .iter()
            .filter(|(k, _)| k != "le")
            .cloned()
            .collect()
    }
}

/// A metric family: its `# HELP`, `# TYPE` and the samples after them.
#[derive(Debug)]
struct Family {
    name: String,
    kind: String,
    samples: Vec<Sample>,
}

fn is_name(s: &str, colons: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

/// Parses `{k="v",...}` (the text after the name up to the value); returns the labels and the rest.
fn parse_labels(s: &str) -> (Vec<(String, String)>, &str) {
    let Some(mut rest) = s.strip_prefix('{') else {
        return (Vec::new(), s);
    };
    let mut labels = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
        assert!(
            is_name(key, false) && !key.starts_with("__"),
            "label name {key:?}"
        );
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("a closed label value") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("an escape").1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("bad escape \\{c}"),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses the whole text strictly: only `# HELP`, then `# TYPE` of the same family, then its
/// samples; no blank lines, other comments, timestamps or repeated families.
fn parse(text: &str) -> Vec<Family> {
    assert!(text.ends_with('\n'), "the text ends with a newline");
    let mut families: Vec<Family> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let (name, doc) = help.split_once(' ').expect("# HELP name text");
            assert!(!doc.trim().is_empty(), "line {n}: {name} has no help text");
            let (_, ty) = lines.next().expect("# TYPE after # HELP");
            let (ty_name, kind) = ty
                .strip_prefix("# TYPE ")
                .and_then(|t| t.split_once(' '))
                .unwrap_or_else(|| panic!("line {}: # TYPE expected: {ty}", n + 1));
            assert_eq!(ty_name, name, "line {n}: HELP and TYPE name one family");
            assert!(is_name(name, true), "family name {name:?}");
            assert!(
                families.iter().all(|f| f.name != name),
                "{name} appears twice"
            );
            families.push(Family {
                name: name.to_string(),
                kind: kind.to_string(),
                samples: Vec::new(),
            });
            continue;
        }
        assert!(!line.starts_with('#'), "line {n}: unexpected {line:?}");
        let family = families
            .last_mut()
            .unwrap_or_else(|| panic!("line {n}: a sample before any # TYPE: {line:?}"));
        let split = line.find(['{', ' ']).expect("a name and a value");
        let (name, rest) = line.split_at(split);
        let (labels, rest) = parse_labels(rest);
        let value = rest.strip_prefix(' ').expect("one space before the value");
        assert!(!value.contains(' '), "line {n}: no timestamps: {line:?}");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|e| panic!("line {n}: {v:?}: {e}")),
        };
        family.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    families
}

/// Checks one family against its type and the naming conventions.
fn check_family(f: &Family) {
    assert!(f.name.starts_with("diarist_"), "{}", f.name);
    assert!(!f.samples.is_empty(), "{} has no samples", f.name);
    if f.name.contains("seconds") {
        assert!(
            f.name.ends_with("_seconds") || f.name.ends_with("_seconds_total"),
            "{}: the unit is the last part of the name, before _total",
            f.name
        );
    }
    let mut seen = BTreeSet::new();
    for s in &f.samples {
        assert!(
            seen.insert((s.name.clone(), s.labels.clone())),
            "{} repeats {s:?}",
            f.name
        );
        assert!(s.value >= 0.0, "{s:?}");
        assert!(
            s.value.is_finite() || s.label("le") == Some("+Inf"),
            "{s:?}"
        );
    }
    match f.kind.as_str() {
        "counter" => {
            assert!(f.name.ends_with("_total"), "counter {}", f.name);
            for s in &f.samples {
                assert_eq!(s.name, f.name, "{s:?}");
                assert!(s.label("le").is_none() && s.label("quantile").is_none());
            }
        }
        "gauge" => {
            for suffix in ["_total", "_bucket", "_sum", "_count"] {
                assert!(!f.name.ends_with(suffix), "gauge {}", f.name);
            }
            for s in &f.samples {
                assert_eq!(s.name, f.name, "{s:?}");
            }
        }
        "histogram" => check_histogram(f),
        other => panic!(
            "{}: type {other} (only counters, gauges and histograms)",
            f.name
        ),
    }
}

/// Each series of a histogram: `_bucket{le}` in increasing order with non-decreasing cumulative
/// counts, ending at `le="+Inf"` equal to `_count`; one `_sum` and one `_count`; the same
/// bounds in every series.
fn check_histogram(f: &Family) {
    assert!(!f.name.ends_with("_total"), "histogram {}", f.name);
    let mut series: BTreeMap<Vec<(String, String)>, Vec<&Sample>> = BTreeMap::new();
    for s in &f.samples {
        series.entry(s.series()).or_default().push(s);
    }
    let mut layouts = BTreeSet::new();
    for (labels, samples) in &series {
        let buckets: Vec<&&Sample> = samples
            .iter()
            .filter(|s| s.name == format!("{}_bucket", f.name))
            .collect();
        let one = |suffix: &str| {
            let name = format!("{}{suffix}", f.name);
            let found: Vec<f64> = samples
                .iter()
                .filter(|s| s.name == name)
                .map(|s| s.value)
                .collect();
            assert_eq!(found.len(), 1, "{name}{labels:?}: exactly one");
            found[0]
        };
        let (sum, count) = (one("_sum"), one("_count"));
        assert_eq!(
            buckets.len() + 2,
            samples.len(),
            "{}{labels:?}: only _bucket, _sum and _count",
            f.name
        );
        let bounds: Vec<f64> = buckets
            .iter()
            .map(|b| match b.label("le").expect("every bucket has le") {
                "+Inf" => f64::INFINITY,
                le => le.parse().unwrap_or_else(|e| panic!("le={le:?}: {e}")),
            })
            .collect();
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]),
            "{}{labels:?}: le increases: {bounds:?}",
            f.name
        );
        assert_eq!(
            bounds.last(),
            Some(&f64::INFINITY),
            "{}: ends at +Inf",
            f.name
        );
        let counts: Vec<f64> = buckets.iter().map(|b| b.value).collect();
        assert!(
            counts.windows(2).all(|w| w[0] <= w[1]),
            "{}{labels:?}: cumulative counts never fall: {counts:?}",
            f.name
        );
        assert!(counts.iter().chain([&count]).all(|c| c.fract() == 0.0));
        assert_eq!(
            counts.last(),
            Some(&count),
            "{}{labels:?}: +Inf = _count",
            f.name
        );
        assert!(
            count > 0.0 || sum == 0.0,
            "{}{labels:?}: a sum of nothing",
            f.name
        );
        layouts.insert(format!("{bounds:?}"));
    }
    assert_eq!(layouts.len(), 1, "{}: one bucket layout", f.name);
}

async fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).await.unwrap();
    response
}

/// The value of the one sample of `name` with `labels`.
fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = families
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| s.name == name && s.labels.len() == labels.len())
        .filter(|s| labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
    found[0]
}

/// The metrics, fetched until no session is active (the slot is given back once the session's
/// task has ended, just after `end`; at most 10 s): the response head and the families.
async fn metrics_once_idle(addr: &str) -> (String, Vec<Family>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = get(addr, "/metrics").await;
        let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
        let families = parse(body);
        if value(&families, "diarist_sessions_active", &[]) == 0.0 || Instant::now() > deadline {
            break (head.to_string(), families);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The values a server shows after one session and one refused connection of `seconds` audio.
fn check_values(families: &[Family], seconds: f64) {
    let v = |name: &str, labels: &[(&str, &str)]| value(families, name, labels);
    assert_eq!(v("diarist_sessions_active", &[]), 0.0);
    assert_eq!(v("diarist_sessions_capacity", &[]), 5.0);
    assert_eq!(v("diarist_sessions_total", &[]), 1.0);
    for name in [
        "diarist_sessions_resumed_total",
        "diarist_draining",
        "diarist_engine_queued_jobs",
        "diarist_audio_lost_seconds_total",
    ] {
        assert_eq!(v(name, &[]), 0.0, "{name}");
    }
    for name in [
        "diarist_audio_received_seconds_total",
        "diarist_audio_final_seconds_total",
    ] {
        assert!((v(name, &[]) - seconds).abs() < 1e-6, "{name}");
    }
    let refused = "diarist_connections_refused_total";
    assert_eq!(v(refused, &[("reason", "unauthorized")]), 1.0);
    for reason in ["full", "draining", "overloaded"] {
        assert_eq!(v(refused, &[("reason", reason)]), 0.0);
    }
    let errors = families
        .iter()
        .find(|f| f.name == "diarist_errors_total")
        .unwrap();
    let codes: BTreeSet<&str> = errors
        .samples
        .iter()
        .filter_map(|s| s.label("code"))
        .collect();
    let all: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes, all, "every error code, sent or not");
    assert!(errors.samples.iter().all(|s| s.value == 0.0));

    // Every engine histogram saw the session.
    let stage = "diarist_stage_seconds_count";
    for s in [
        "queue_wait",
        "segmentation",
        "embedding",
        "pooling",
        "clustering",
    ] {
        assert!(v(stage, &[("stage", s)]) > 0.0, "{s}");
    }
    for name in [
        "diarist_final_label_latency_seconds_count",
        "diarist_batch_size_count",
        "diarist_queue_depth_count",
    ] {
        assert!(v(name, &[]) > 0.0, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_well_formed_prometheus_text_with_the_sessions_figures() {
    let (url, stop, task) = start_server(|c| c.max_sessions = 5).await;
    let addr = host(&url);
    let audio = sample();
    let seconds = audio.len() as f64 / 16_000.0;
    let opts = ClientOptions {
        url: url.clone(),
        token: TOKEN.into(),
        speed: None,
        options: Default::default(),
        resume: None,
    };
    let f = stream_samples(audio.clone(), &opts, |_| {}).await.unwrap();
    assert_eq!(f.totals.samples_processed, audio.len() as u64);
    let wrong = ClientOptions {
        token: "wrong".into(),
        ..opts
    };
    let refused = stream_samples(audio[..16_000].to_vec(), &wrong, |_| {}).await;
    assert!(
        matches!(refused, Err(ClientError::Refused(401))),
        "{refused:?}"
    );

    let (response, families) = metrics_once_idle(&addr).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{response}"
    );
    for f in &families {
        check_family(f);
    }
    let kinds: BTreeMap<&str, &str> = families
        .iter()
        .map(|f| (f.name.as_str(), f.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("diarist_sessions_active", "gauge"),
            ("diarist_sessions_capacity", "gauge"),
            ("diarist_sessions_total", "counter"),
            ("diarist_audio_received_seconds_total", "counter"),
            ("diarist_audio_final_seconds_total", "counter"),
            ("diarist_audio_lost_seconds_total", "counter"),
            ("diarist_connections_refused_total", "counter"),
            ("diarist_errors_total", "counter"),
            ("diarist_sessions_resumed_total", "counter"),
            ("diarist_draining", "gauge"),
            ("diarist_engine_queued_jobs", "gauge"),
            ("diarist_stage_seconds", "histogram"),
            ("diarist_final_label_latency_seconds", "histogram"),
            ("diarist_batch_size", "histogram"),
            ("diarist_queue_depth", "histogram"),
        ])
    );

    check_values(&families, seconds);
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// Parses and checks a whole text, as the test above does.
fn check_text(text: &str) {
    for f in parse(text) {
        check_family(&f);
    }
}

/// The checker itself: a well-formed text passes, and each kind of fault is caught.
#[test]
fn the_checker_accepts_good_text_and_catches_each_fault() {
    let good = "# HELP diarist_x_seconds X.\n# TYPE diarist_x_seconds histogram\n\
        diarist_x_seconds_bucket{s=\"a\",le=\"0.1\"} 1\ndiarist_x_seconds_bucket{s=\"a\",le=\"+Inf\"} 2\n\
        diarist_x_seconds_sum{s=\"a\"} 0.5\ndiarist_x_seconds_count{s=\"a\"} 2\n\
        # HELP diarist_y_total Y.\n# TYPE diarist_y_total counter\ndiarist_y_total{code=\"q\\\"\"} 3\n";
    check_text(good);
    let faults = [
        ("a summary", good.replace(" histogram\n", " summary\n")),
        (
            "falling counts",
            good.replace("le=\"0.1\"} 1", "le=\"0.1\"} 3"),
        ),
        (
            "+Inf not the count",
            good.replace("_count{s=\"a\"} 2", "_count{s=\"a\"} 1"),
        ),
        ("no +Inf", good.replace("le=\"+Inf\"", "le=\"1\"")),
        (
            "a counter without _total",
            good.replace("diarist_y_total", "diarist_y"),
        ),
        (
            "a unit before _bucket",
            good.replace("diarist_x_seconds", "diarist_x_seconds_max"),
        ),
        (
            "a TYPE without HELP",
            good.replace("# HELP diarist_y_total Y.\n", ""),
        ),
        ("a blank line", good.replace("\n#", "\n\n#")),
        ("a timestamp", good.replace("} 3\n", "} 3 1700000000\n")),
    ];
    for (fault, text) in faults {
        let caught = std::panic::catch_unwind(|| check_text(&text));
        assert!(caught.is_err(), "{fault} passed:\n{text}");
    }
}
