//! `diarist redact` and `diarist diarize --transcript` end to end with the real models: every
//! input format, character offsets, bad input refused clearly, and the pyannote sample's
//! transcript attributed to its two speakers with names and places hidden.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn diarist(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_diarist"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running diarist");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn redact_reads_text_json_lines_and_stm() {
    let o = diarist(
        &["redact"],
        "my name is maria gonzalez\n\nnothing to hide here\n".as_bytes(),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "my name is [PERSON_NAME]");
    assert!(
        lines[1].trim_start().starts_with("PERSON_NAME 11..25"),
        "{out}"
    );
    assert_eq!(&lines[2..], ["", "nothing to hide here"]);

    let input = "{\"id\": 7, \"text\": \"email me at j fernandez at protonmail dot com\"}\n{\"text\": \"\"}\n";
    let o = diarist(&["redact", "--format", "jsonl", "-"], input.as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let rows: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], 7, "other fields are kept");
    assert_eq!(rows[0]["redacted"], "email me at [EMAIL]");
    let e = &rows[0]["entities"][0];
    assert_eq!(
        (e["start"].as_u64(), e["end"].as_u64(), e["label"].as_str()),
        (Some(12), Some(45), Some("EMAIL"))
    );
    assert_eq!(rows[1]["entities"], serde_json::json!([]));

    let stm = std::fs::read(root().join("audio-fixtures/pyannote_sample.stm")).unwrap();
    let o = diarist(&["redact", "--format", "stm"], &stm);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert_eq!(out.lines().count(), text(&stm).lines().count());
    assert!(
        out.contains("sample 1 Diane 12.542 14.184 This is [PERSON_NAME] in [LOCATION]."),
        "{out}"
    );
    assert!(!out.contains("Chicago") && !out.contains("Texas"), "{out}");
}

#[test]
fn redact_refuses_bad_input_clearly() {
    let o = diarist(&["redact"], b"fine text\n\xff\xfe broken");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("is not UTF-8 text (invalid byte at offset 10)"),
        "{}",
        text(&o.stderr)
    );
    let o = diarist(
        &["redact", "--format", "jsonl"],
        b"{\"text\": \"ok\"}\n[1, 2]\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("line 2: not a JSON object"),
        "{}",
        text(&o.stderr)
    );
    let o = diarist(&["redact", "--format", "stm"], b"sample 1 Diane 6.68\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("line 1"), "{}", text(&o.stderr));
    let o = diarist(&["redact"], b"");
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
}

#[test]
fn a_transcript_is_attributed_to_the_diarized_speakers_and_redacted() {
    let wav = root().join("audio-fixtures/pyannote_sample.wav");
    let stm = root().join("audio-fixtures/pyannote_sample.stm");
    let o = diarist(
        &[
            "diarize",
            wav.to_str().unwrap(),
            "--transcript",
            stm.to_str().unwrap(),
            "--format",
            "json",
        ],
        b"",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let segments = v["transcript"].as_array().unwrap();
    assert_eq!(segments.len(), 13);
    assert_eq!(v["redacted"], true);
    // The reference names the speaker of each line: every line of one reference speaker should go
    // to one diarized speaker, and the two reference speakers to different ones.
    let reference: Vec<String> = text(&std::fs::read(&stm).unwrap())
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
        .collect();
    let mut pairs = std::collections::BTreeMap::<(&str, &str), usize>::new();
    for (seg, who) in segments.iter().zip(&reference) {
        *pairs
            .entry((who.as_str(), seg["speaker"].as_str().unwrap_or("?")))
            .or_default() += 1;
    }
    let agree = ["Diane", "Sheila"]
        .iter()
        .map(|r| {
            pairs
                .iter()
                .filter(|((a, _), _)| a == r)
                .map(|(_, n)| *n)
                .max()
                .unwrap_or(0)
        })
        .sum::<usize>();
    assert!(agree >= 11, "attribution {pairs:?}");
    let all: String = segments
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    for secret in ["Diane", "Sheila", "New Jersey", "Texas", "Chicago"] {
        assert!(!all.contains(secret), "{secret} left in {all}");
    }

    // SRT with the personal data kept; garbage transcripts are refused with their line
    let o = diarist(
        &[
            "diarize",
            wav.to_str().unwrap(),
            "--transcript",
            stm.to_str().unwrap(),
            "--format",
            "srt",
            "--keep-pii",
        ],
        b"",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let srt = text(&o.stdout);
    assert!(
        srt.starts_with("1\n00:00:06,680 --> 00:00:07,160\n"),
        "{srt}"
    );
    assert!(
        srt.contains("SPEAKER_00: ") && srt.contains("SPEAKER_01: "),
        "{srt}"
    );
    assert!(srt.contains("This is Diane in New Jersey."), "{srt}");
    let dir = std::env::temp_dir().join(format!("diarist-transcript-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.srt");
    std::fs::write(&bad, "1\n00:00:05,000 --> 00:00:01,000\nbackwards\n").unwrap();
    let o = diarist(
        &[
            "diarize",
            wav.to_str().unwrap(),
            "--transcript",
            bad.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("line 2"), "{}", text(&o.stderr));
    let o = diarist(&["diarize", wav.to_str().unwrap(), "--format", "vtt"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--transcript"),
        "{}",
        text(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
