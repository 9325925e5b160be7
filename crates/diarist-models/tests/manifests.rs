//! The shipped manifests parse and verify; malformed or tampered ones are clear errors; the
//! ONNX Runtime library is loaded from a path, and a missing one is an error, not a panic.

use std::path::{Path, PathBuf};

use diarist_models::{
    EmbeddingModel, ModelError, ModelSpec, OutputKind, Runtime, SegmentationModel, SessionOptions,
    Task,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn runtime() -> Runtime {
    Runtime::load(&root().join(".ort/libonnxruntime.so.1.32.0")).expect("run `make setup` first")
}

fn temp_copy(model: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("diarist-models-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(root().join("models").join(model)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    dir
}

#[test]
fn shipped_manifests_load_and_verify() {
    let seg = ModelSpec::load(&root().join("models/segmentation-3.0"), None).unwrap();
    assert_eq!(seg.manifest.model.task, Task::Segmentation);
    assert_eq!(seg.manifest.output.kind, OutputKind::Powerset);
    assert_eq!(seg.frames().frames(160_000), 589);
    assert_eq!(seg.frames().frames(48_000), 175);
    assert_eq!(seg.frames().offset, 320);
    assert!(seg.dir.join(&seg.manifest.model.licence_file).is_file());
    seg.read_verified().unwrap();
    let int8 = ModelSpec::load(&root().join("models/segmentation-3.0"), Some("int8")).unwrap();
    int8.read_verified().unwrap();
    assert!(matches!(
        ModelSpec::load(&root().join("models/segmentation-3.0"), Some("fp16")),
        Err(ModelError::Manifest { .. })
    ));
    let emb = ModelSpec::load(&root().join("models/campplus"), None).unwrap();
    assert_eq!(emb.manifest.output.dimension, Some(192));
    assert!(emb.manifest.split.is_some());
    let w2v = ModelSpec::load(&root().join("models/wav2vec2-test"), None).unwrap();
    assert_eq!(w2v.manifest.output.kind, OutputKind::Multilabel);
    assert_eq!(w2v.frames().offset, 0);
}

#[test]
fn malformed_and_tampered_models_are_refused() {
    let dir = temp_copy("wav2vec2-test", "bad");
    let manifest = std::fs::read_to_string(dir.join("manifest.toml")).unwrap();
    std::fs::write(
        dir.join("manifest.toml"),
        manifest.replace("frame_step = 320", "frame_stp = 320"),
    )
    .unwrap();
    let err = ModelSpec::load(&dir, None).unwrap_err();
    assert!(err.to_string().contains("frame_stp"), "{err}");
    std::fs::write(
        dir.join("manifest.toml"),
        manifest.replace("kind = \"multilabel\"", "kind = \"embedding\""),
    )
    .unwrap();
    assert!(matches!(
        ModelSpec::load(&dir, None),
        Err(ModelError::Manifest { .. })
    ));
    // The instant a frame describes must lie inside what it hears.
    std::fs::write(
        dir.join("manifest.toml"),
        manifest.replace("frame_step = 320", "frame_step = 320\nframe_offset = 200"),
    )
    .unwrap();
    let err = ModelSpec::load(&dir, None).unwrap_err();
    assert!(err.to_string().contains("frame_offset"), "{err}");
    std::fs::write(dir.join("manifest.toml"), &manifest).unwrap();
    std::fs::write(dir.join("wav2vec2-test.onnx"), b"not a model").unwrap();
    let spec = ModelSpec::load(&dir, None).unwrap();
    assert!(matches!(
        spec.read_verified(),
        Err(ModelError::Checksum { .. })
    ));
    assert!(matches!(
        ModelSpec::load(Path::new("/nonexistent/model"), None),
        Err(ModelError::Io { .. })
    ));
}

#[test]
fn models_run_and_check_their_inputs() {
    let rt = runtime();
    let opts = SessionOptions::default();
    let seg_spec = ModelSpec::load(&root().join("models/segmentation-3.0"), Some("int8")).unwrap();
    let mut seg = SegmentationModel::load(&rt, &seg_spec, opts).unwrap();
    let audio: Vec<f32> = (0..2 * 48_000)
        .map(|i| ((i as f32) * 0.05).sin() * 0.1)
        .collect();
    let scores = seg.run(&audio, 48_000).unwrap();
    assert_eq!((scores.windows, scores.frames, scores.classes), (2, 175, 7));
    assert!(scores.data.iter().all(|v| v.is_finite() && *v <= 0.0));
    assert!(matches!(
        seg.run(&audio[..500], 500),
        Err(ModelError::Mismatch { .. })
    ));
    assert!(matches!(
        seg.run(&audio[..1000], 999),
        Err(ModelError::Mismatch { .. })
    ));

    let emb_spec = ModelSpec::load(&root().join("models/campplus"), None).unwrap();
    let mut emb = EmbeddingModel::load(&rt, &emb_spec, opts).unwrap();
    let frames = emb.weight_geometry().frames(48_000);
    let weights = vec![1.0f32; 2 * frames];
    let out = emb.run(&audio[..48_000], 48_000, &weights, 2).unwrap();
    assert_eq!((out.items, out.speakers, out.dimension), (1, 2, 192));
    // Identical weights give identical embeddings, whichever path computes them.
    let cos: f32 = out
        .get(0, 0)
        .iter()
        .zip(out.get(0, 1))
        .map(|(a, b)| a * b)
        .sum::<f32>()
        / out.get(0, 0).iter().map(|a| a * a).sum::<f32>();
    assert!((cos - 1.0).abs() < 1e-4);
    assert!(matches!(
        emb.run(&audio[..48_000], 48_000, &weights[1..], 2),
        Err(ModelError::Mismatch { .. })
    ));
    let features = emb.features(&audio[..48_000]).unwrap();
    // Feature frame k is centred on sample 320k + 200: 149 frames fit in 3 s.
    assert_eq!(features.frames, 149);
    assert_eq!(emb.feature_geometry().unwrap().frames(48_000), 149);
    let pooled = emb
        .pool(
            &features.data,
            features.dimension,
            &vec![1.0; features.frames],
            1,
        )
        .unwrap();
    assert_eq!(pooled.data.len(), 192);

    // The INT8 variant keeps the split: its own backbone, the shared pooling head.
    let int8_spec = ModelSpec::load(&root().join("models/campplus"), Some("int8")).unwrap();
    let mut int8 = EmbeddingModel::load(&rt, &int8_spec, opts).unwrap();
    let features8 = int8.features(&audio[..48_000]).unwrap();
    assert_eq!(features8.frames, 149);
    let pooled8 = int8
        .pool(
            &features8.data,
            features8.dimension,
            &vec![1.0; features8.frames],
            1,
        )
        .unwrap();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let cos = pooled
        .data
        .iter()
        .zip(&pooled8.data)
        .map(|(a, b)| a * b)
        .sum::<f32>()
        / (norm(&pooled.data) * norm(&pooled8.data));
    assert!(cos > 0.95, "INT8 vs fp32 cosine {cos}");
}

/// 16-bit PCM samples of a WAV fixture, as floats.
fn wav_samples(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(root().join("audio-fixtures").join(name)).unwrap();
    let mut at = 12;
    while &bytes[at..at + 4] != b"data" {
        at += 8 + u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
    }
    let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
    bytes[at + 8..at + 8 + len]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
        .collect()
}

/// A streaming window's backbone features must not depend on the windows it is batched with:
/// these lengths gave different INT8 features alone and in a batch of two (by up to 0.67) before
/// the fbank's mean over time was made batch-invariant (tools/onnx_edits.py).
#[test]
fn the_int8_backbone_gives_a_window_the_same_features_alone_or_in_a_batch() {
    let rt = runtime();
    let spec = ModelSpec::load(&root().join("models/campplus"), Some("int8")).unwrap();
    let mut emb = EmbeddingModel::load(&rt, &spec, SessionOptions::default()).unwrap();
    let audio = wav_samples("pyannote_sample.wav");
    for len in [16_960, 19_840, 32_320, 47_360] {
        let x = &audio[200_000..200_000 + len];
        let y = &audio[100_000..100_000 + len];
        let alone = emb.features(x).unwrap();
        let batch: Vec<f32> = [y, x, y].concat();
        let together = emb.features_batch(&batch, len).unwrap();
        assert_eq!(together[1].data, alone.data, "{len} samples");
    }
}

#[test]
fn a_missing_runtime_library_is_an_error() {
    let err = Runtime::load(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot load the ONNX Runtime library"),
        "{err}"
    );
}
