//! Any UTF-8 text through the shipped PII tagger and the redaction policy: entities inside the
//! text, or a typed error (text over `max_chars`), never a panic. The tagger is loaded once, from
//! `models/` and the ONNX Runtime library in `.ort/` (or `DIARIST_ORT_LIB`).

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use diarist_models::{Runtime, SessionOptions};
use diarist_pii::{PiiConfig, Tagger, TaggerOptions, redact};
use libfuzzer_sys::fuzz_target;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The tagger and policy of the shipped configuration.
fn load() -> (Tagger, PiiConfig) {
    let text = std::fs::read_to_string(root().join("configs/diarist.toml")).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let mut pii: PiiConfig = table["pii"].clone().try_into().unwrap();
    pii.model = root().join("models").join(&pii.model);
    let lib = std::env::var_os("DIARIST_ORT_LIB").map_or_else(
        || {
            root()
                .join(".ort")
                .join(table["runtime"]["onnxruntime"].as_str().unwrap())
        },
        PathBuf::from,
    );
    let runtime = Runtime::load(&lib).unwrap();
    let opts = TaggerOptions::from_config(&pii, SessionOptions::default());
    let tagger = Tagger::load(&runtime, &pii.model, &pii.variant, opts).unwrap();
    (tagger, pii)
}

static TAGGER: OnceLock<Mutex<(Tagger, PiiConfig)>> = OnceLock::new();

fuzz_target!(|text: &str| {
    let mut guard = TAGGER
        .get_or_init(|| Mutex::new(load()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let (tagger, policy) = &mut *guard;
    let Ok(entities) = tagger.tag(text) else {
        return;
    };
    let chars = text.chars().count();
    for e in &entities {
        assert!(
            e.start < e.end && e.end <= chars,
            "{e:?} in {chars} characters"
        );
    }
    let redacted = redact(text, &entities, policy);
    if entities.is_empty() {
        assert_eq!(redacted, text);
    }
});
