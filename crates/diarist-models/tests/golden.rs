//! Golden model outputs: the shipped INT8 models give the numbers in
//! `audio-fixtures/golden/` (written by `tools/golden_outputs.py`) on this CPU and on an
//! emulated AVX2-only CPU, so diarization results do not depend on the CPU kind.
//!
//! ONNX Runtime's INT8 kernels on AVX2 saturate 16-bit sums that AVX-512 VNNI computes exactly;
//! the models are quantized with 7-bit weights so that no kernel saturates
//! (`tools/quantize_models.py`), and its fp32 kernels agree bit for bit between the two. The
//! tolerance, 1e-4, is far above float reassociation (~1e-6 of these values) and far below what
//! one INT8 step of an activation moves (~1e-2): the models shipped before the re-quantization
//! differed by up to 1.3 between the two CPUs.

use std::path::{Path, PathBuf};
use std::process::Command;

use diarist_models::{EmbeddingModel, ModelSpec, Runtime, SegmentationModel, SessionOptions};
use ort::value::TensorRef;
use serde_json::Value;

const TOLERANCE: f32 = 1e-4;
/// Set in the emulated child process: which CPU the check runs as.
const EMULATED: &str = "DIARIST_GOLDEN_EMULATED_CPU";
/// An AVX2 CPU without AVX-512 (AMD Zen 2), as qemu-user emulates it.
const AVX2_CPU: &str = "EPYC-Rome";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The golden file: its description and its values.
struct Golden {
    meta: Value,
    values: Vec<f32>,
}

impl Golden {
    fn load() -> Self {
        let dir = root().join("audio-fixtures/golden");
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("outputs.json")).unwrap())
                .unwrap();
        let values = std::fs::read(dir.join("outputs.bin"))
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Self { meta, values }
    }

    /// Compares `got` with the golden output `name`; a line saying how it differs, if it does.
    fn compare(&self, name: &str, got: &[f32]) -> Option<String> {
        let entry = &self.meta["outputs"][name];
        let len: usize = entry["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .product();
        let at = entry["offset"].as_u64().unwrap() as usize;
        let want = &self.values[at..at + len];
        if got.len() != len {
            return Some(format!("{name}: {} values, golden has {len}", got.len()));
        }
        let (worst, index) = got
            .iter()
            .zip(want)
            .map(|(g, w)| (g - w).abs())
            .enumerate()
            .fold(
                (0f32, 0),
                |(m, i), (j, d)| {
                    if d > m || d.is_nan() { (d, j) } else { (m, i) }
                },
            );
        eprintln!("{name}: max |difference| {worst:e}");
        (worst.is_nan() || worst > TOLERANCE).then(|| {
            format!(
                "{name}: max |difference| {worst} at value {index} ({} against golden {}), tolerance {TOLERANCE}",
                got[index], want[index]
            )
        })
    }

    fn windows(&self, key: &str) -> Vec<(usize, usize)> {
        let pair = |v: &Value| {
            let p = v.as_array().unwrap();
            (
                p[0].as_u64().unwrap() as usize,
                p[1].as_u64().unwrap() as usize,
            )
        };
        match &self.meta[key] {
            Value::Array(a) if a.first().is_some_and(Value::is_array) => {
                a.iter().map(pair).collect()
            }
            v => vec![pair(v)],
        }
    }
}

/// The windows laid end to end, as the models take a batch.
fn batch(audio: &[f32], windows: &[(usize, usize)]) -> Vec<f32> {
    windows
        .iter()
        .flat_map(|&(start, len)| audio[start..start + len].iter().copied())
        .collect()
}

/// Runs every golden input through the shipped models; the mismatches found.
fn mismatches(golden: &Golden) -> Vec<String> {
    let runtime = Runtime::load(&root().join(".ort/libonnxruntime.so.1.32.0"))
        .expect("run `make setup` first");
    let opts = SessionOptions::default();
    let audio_path = root().join(golden.meta["audio"].as_str().unwrap());
    let audio = diarist_audio::decode_all(&audio_path).unwrap();
    let mut found = Vec::new();

    let spec = ModelSpec::load(&root().join("models/segmentation-3.0"), Some("int8")).unwrap();
    let mut seg = SegmentationModel::load(&runtime, &spec, opts).unwrap();
    for (key, output) in [
        ("segmentation_windows", "segmentation"),
        ("segmentation_context_window", "segmentation_context"),
    ] {
        let windows = golden.windows(key);
        let scores = seg.run(&batch(&audio, &windows), windows[0].1).unwrap();
        found.extend(golden.compare(output, &scores.data));
    }

    let spec = ModelSpec::load(&root().join("models/campplus"), Some("int8")).unwrap();
    let mut emb = EmbeddingModel::load(&runtime, &spec, opts).unwrap();
    let windows = golden.windows("embedding_windows");
    let features = emb
        .features_batch(&batch(&audio, &windows), windows[0].1)
        .unwrap();
    let all: Vec<f32> = features.iter().flat_map(|f| f.data.clone()).collect();
    found.extend(golden.compare("embedding_features", &all));
    let weights: Vec<f32> = golden.meta["pool_weights"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|w| w.as_f64().unwrap() as f32)
        .collect();
    let pooled = emb
        .pool(&features[0].data, features[0].dimension, &weights, 2)
        .unwrap();
    found.extend(golden.compare("embedding_pooled", &pooled.data));

    found.extend(golden.compare("pii_logits", &pii_logits(&runtime, golden)));
    found
}

/// The PII tagger's raw logits for the golden token ids.
fn pii_logits(runtime: &Runtime, golden: &Golden) -> Vec<f32> {
    let rows = golden.meta["pii_ids"].as_array().unwrap();
    let tokens = rows[0].as_array().unwrap().len();
    let ids: Vec<i64> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()))
        .collect();
    let mask = vec![1i64; ids.len()];
    let bytes = std::fs::read(root().join("models/pii-minilm-l3/model.int8.onnx")).unwrap();
    let mut session = runtime.session(&bytes, SessionOptions::default()).unwrap();
    let shape = vec![rows.len() as i64, tokens as i64];
    let outputs = session
        .run(ort::inputs![
            "input_ids" => TensorRef::from_array_view((shape.clone(), ids.as_slice())).unwrap(),
            "attention_mask" => TensorRef::from_array_view((shape, mask.as_slice())).unwrap(),
        ])
        .unwrap();
    outputs["logits"]
        .try_extract_tensor::<f32>()
        .unwrap()
        .1
        .to_vec()
}

fn cpu_name() -> String {
    let kind = if std::is_x86_feature_detected!("avx512vnni") {
        "AVX-512 VNNI"
    } else if std::is_x86_feature_detected!("avx512bw") {
        "AVX-512 without VNNI"
    } else if std::is_x86_feature_detected!("avx2") {
        "AVX2"
    } else {
        "no AVX2"
    };
    match std::env::var(EMULATED) {
        Ok(model) => format!("emulated {model} ({kind})"),
        Err(_) => format!("this CPU ({kind})"),
    }
}

#[test]
fn model_outputs_match_the_golden_file_on_this_cpu() {
    if std::env::var_os(EMULATED).is_some() {
        // The emulation must really take the AVX2 kernels.
        assert!(std::is_x86_feature_detected!("avx2"));
        assert!(!std::is_x86_feature_detected!("avx512f"));
    }
    let golden = Golden::load();
    let found = mismatches(&golden);
    assert!(
        found.is_empty(),
        "model outputs on {} differ from audio-fixtures/golden:\n{}",
        cpu_name(),
        found.join("\n")
    );
}

/// Runs the check above in this test binary under `qemu-x86_64 -cpu EPYC-Rome` (Debian's
/// qemu-user, installed by `make setup`): about 60x slower than native, a few windows only.
#[test]
fn model_outputs_match_the_golden_file_on_an_emulated_avx2_cpu() {
    if std::env::var_os(EMULATED).is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let qemu = Path::new("/usr/bin/qemu-x86_64");
    assert!(
        qemu.is_file(),
        "qemu-user is missing: run `make setup` (it installs Debian's qemu-user)"
    );
    let out = Command::new(qemu)
        .args(["-cpu", AVX2_CPU])
        .arg(&exe)
        .args([
            "--exact",
            "model_outputs_match_the_golden_file_on_this_cpu",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(EMULATED, AVX2_CPU)
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("qemu-x86_64: warning"))
        .collect();
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "under qemu-x86_64 -cpu {AVX2_CPU}: {}\n{stdout}\n{}",
        out.status,
        report.join("\n")
    );
    eprintln!("{}", report.join("\n"));
}
