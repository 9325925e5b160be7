//! The engine's configuration. `configs/diarist.toml` holds every tunable with its default and is
//! compiled in ([`DEFAULTS`]); configuration files hold only the keys they change and are merged
//! over it in order ([`Config::from_layers`]).
//!
//! Paths in a file: a name without a `/` in `[models]` (`segmentation`, `embedding`), `[pii]
//! model` and `[runtime] onnxruntime` names a model in the models directory or a library in the
//! ONNX Runtime directory, which the caller finds ([`Config::resolve_paths`]); any other relative
//! path is relative to the directory of the file that sets it; an absolute path is used as it is.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// The shipped defaults, `configs/diarist.toml`, compiled into every binary.
pub const DEFAULTS: &str = include_str!("../../../configs/diarist.toml");

/// The keys of [`Config`] that hold paths, as `table.key`.
const PATH_KEYS: [&str; 4] = [
    "runtime.onnxruntime",
    "models.segmentation",
    "models.embedding",
    "pii.model",
];

/// One configuration file's contribution: its text and the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The file, named in errors; the relative paths in it are relative to its directory. `None`
    /// for text from nowhere: its relative paths stay relative to the working directory.
    pub file: Option<PathBuf>,
    /// TOML text holding only the keys it changes.
    pub text: String,
}

impl Layer {
    /// Reads a configuration file.
    pub fn read(file: &Path) -> std::io::Result<Self> {
        Ok(Self {
            file: Some(file.to_path_buf()),
            text: std::fs::read_to_string(file)?,
        })
    }

    /// What errors call this layer.
    fn name(&self) -> String {
        self.file
            .as_ref()
            .map_or_else(|| "configuration text".into(), |f| f.display().to_string())
    }
}

/// Merges `over` into `base`: tables merge key by key, at any depth; any other value (arrays
/// included) replaces the one in `base`.
fn merge_toml(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_toml(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Whether `path` is a bare name (one relative component, no `/`).
pub fn is_name(path: &Path) -> bool {
    let mut parts = path.components();
    matches!(
        (parts.next(), parts.next()),
        (Some(std::path::Component::Normal(_)), None)
    )
}

/// Makes the relative paths at `keys` (`key` or `table.key`) in one layer's table relative to
/// `dir` instead, where `anchored` says so of the path; empty values are left alone.
fn anchor_paths(table: &mut toml::Table, keys: &[&str], dir: &Path, anchored: fn(&Path) -> bool) {
    for key in keys {
        let (section, name) = match key.split_once('.') {
            Some((section, name)) => (table.get_mut(section).and_then(|v| v.as_table_mut()), name),
            None => (Some(&mut *table), *key),
        };
        if let Some(toml::Value::String(s)) = section.and_then(|t| t.get_mut(name)) {
            let p = Path::new(s.as_str());
            if !s.is_empty() && p.is_relative() && anchored(p) {
                *s = dir.join(p).to_string_lossy().into_owned();
            }
        }
    }
}

/// Deserialises `defaults` with every layer merged over it in order (later layers win). The
/// relative paths at `path_keys` for which `anchored` holds are made relative to their layer's
/// file. Each layer is also checked alone over the defaults, so that an unknown key or a wrong
/// type is reported with the file it is in.
pub fn merge_layers<T: DeserializeOwned>(
    defaults: &str,
    layers: &[Layer],
    path_keys: &[&str],
    anchored: fn(&Path) -> bool,
) -> Result<T, String> {
    let base: toml::Table =
        toml::from_str(defaults).map_err(|e| format!("compiled-in defaults: {e}"))?;
    let mut merged = base.clone();
    for layer in layers {
        let mut table: toml::Table =
            toml::from_str(&layer.text).map_err(|e| format!("{}: {e}", layer.name()))?;
        if let Some(dir) = layer.file.as_deref().and_then(Path::parent) {
            anchor_paths(&mut table, path_keys, dir, anchored);
        }
        let mut alone = base.clone();
        merge_toml(&mut alone, table.clone());
        toml::Value::Table(alone)
            .try_into::<T>()
            .map_err(|e| format!("{}: {e}", layer.name()))?;
        merge_toml(&mut merged, table);
    }
    toml::Value::Table(merged)
        .try_into()
        .map_err(|e| format!("merged configuration: {e}"))
}

/// Where the ONNX Runtime library is and how sessions are threaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// ONNX Runtime shared library.
    pub onnxruntime: PathBuf,
    /// Threads inside one model run.
    pub intra_threads: usize,
    /// Execution provider: "cpu", or "cuda" (builds with the `cuda` feature; falls back to the
    /// CPU with a log line when no GPU can be used).
    pub provider: diarist_models::Provider,
    /// Parallel workers for batch jobs; 0 = one per core.
    pub workers: usize,
}

impl RuntimeConfig {
    /// The options every model session of this configuration is opened with.
    pub fn session_options(&self) -> diarist_models::SessionOptions {
        diarist_models::SessionOptions {
            intra_threads: self.intra_threads,
            provider: self.provider,
        }
    }
}

/// Which models to load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    /// Directory of the segmentation model's manifest.
    pub segmentation: PathBuf,
    /// Directory of the embedding model's manifest.
    pub embedding: PathBuf,
    /// Variant of the segmentation model ("fp32" or a manifest variant).
    pub segmentation_variant: String,
    /// Variant of the embedding model ("fp32" or a manifest variant).
    pub embedding_variant: String,
}

/// Offline (whole-recording) diarization settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineConfig {
    /// Analysis window length, seconds.
    pub window_secs: f64,
    /// Step between windows, seconds.
    pub step_secs: f64,
    /// Threshold for multilabel segmentation models.
    pub multilabel_threshold: f32,
    /// Least speech in a window for a local speaker to get an embedding, seconds.
    pub min_embedding_speech_secs: f64,
    /// Least speech for an embedding to shape the clusters, seconds.
    pub min_cluster_speech_secs: f64,
    /// Average-linkage stopping distance (cosine).
    pub cluster_threshold: f32,
    /// Clusters with fewer members are folded into the nearest larger one.
    pub min_cluster_size: usize,
    /// Exact number of speakers (0 = unknown).
    pub num_speakers: usize,
    /// Least number of speakers (0 = no bound).
    pub min_speakers: usize,
    /// Most speakers (0 = no bound).
    pub max_speakers: usize,
    /// Drop turns shorter than this, seconds.
    pub min_duration_on_secs: f64,
    /// Fill same-speaker gaps shorter than this, seconds.
    pub min_duration_off_secs: f64,
    /// Start every turn this much earlier, seconds.
    pub pad_onset_secs: f64,
    /// End every turn this much later, seconds.
    pub pad_offset_secs: f64,
    /// Most embeddings clustered directly; long recordings are subsampled, the rest assigned.
    pub max_cluster_embeddings: usize,
    /// Split embedding models: seconds of audio per backbone run.
    pub embedding_block_secs: f64,
    /// Context around each window's centre for the resegmentation embeddings, seconds.
    pub resegment_context_secs: f64,
    /// Move a window's centre to another speaker when its embedding is this much closer (cosine);
    /// 0 turns resegmentation off.
    pub resegment_margin: f32,
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// ONNX Runtime settings.
    pub runtime: RuntimeConfig,
    /// Model choice.
    pub models: ModelsConfig,
    /// Offline diarization.
    pub offline: OfflineConfig,
    /// Streaming diarization.
    pub streaming: StreamingConfig,
    /// Personal-data tagging and redaction of transcripts.
    pub pii: diarist_pii::PiiConfig,
}

/// Streaming (live) diarization settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamingConfig {
    /// Analysis window, seconds.
    pub window_secs: f64,
    /// Step between windows, seconds (rounded to the model's frame step).
    pub hop_secs: f64,
    /// Audio before each window that the segmentation model hears with it, seconds (rounded to
    /// the model's frame step): only the window's own frames are used, so latency is unchanged.
    pub context_secs: f64,
    /// Delay after which a stretch of audio is final, seconds (between the hop and the window).
    pub latency_secs: f64,
    /// The embedding backbone runs over the newest this many seconds of a window and keeps the
    /// frames past the previous run; the window's older frames come from earlier windows' runs.
    /// `window_secs` runs it over every whole window.
    pub backbone_secs: f64,
    /// The backbone runs for every this many windows (1: every window); the windows between
    /// runs are embedded from the frames the last run reached.
    pub backbone_every: usize,
    /// A local speaker joins the closest speaker below this cosine distance.
    pub match_threshold: f32,
    /// Clean speech an unmatched local speaker needs to open a new speaker, seconds.
    pub new_speaker_secs: f64,
    /// Clean speech a matched local speaker needs to refine its speaker's voiceprint, seconds.
    pub update_speech_secs: f64,
    /// Speech a local speaker needs in a window to be considered at all, seconds.
    pub min_speech_secs: f64,
    /// Most speakers per stream (0 = no bound).
    pub max_speakers: usize,
    /// Audio buffered per stream before a live source overflows (a file source waits), seconds.
    pub buffer_secs: f64,
    /// Windows per stream handed to the models before their results come back.
    pub max_in_flight: usize,
    /// Shared inference: most windows in one model run.
    pub max_batch: usize,
    /// Shared inference: longest wait for a batch to fill, milliseconds.
    pub max_wait_ms: u64,
    /// Inference workers shared by all streams; 0 = one per core.
    pub workers: usize,
}

impl Config {
    /// The compiled-in defaults with the `layers` merged over them in order (later layers win),
    /// checked. Model and library names are left for [`Config::resolve_paths`].
    pub fn from_layers(layers: &[Layer]) -> Result<Self, EngineError> {
        let config: Self = merge_layers(DEFAULTS, layers, &PATH_KEYS, |p| !is_name(p))
            .map_err(EngineError::Config)?;
        config.validate()?;
        Ok(config)
    }

    /// The compiled-in defaults with `text` (only the keys it changes) merged over them; its
    /// relative paths stay relative to the working directory.
    pub fn from_toml_str(text: &str) -> Result<Self, EngineError> {
        Self::from_layers(&[Layer {
            file: None,
            text: text.into(),
        }])
    }

    /// Turns names into paths: a model name (a `[models]` or `[pii] model` value without a `/`)
    /// into that directory of `models`, a library name (`[runtime] onnxruntime`) into that file of
    /// `onnxruntime_dir`. Paths are left as they are.
    pub fn resolve_paths(&mut self, models: &Path, onnxruntime_dir: &Path) {
        for p in [
            &mut self.models.segmentation,
            &mut self.models.embedding,
            &mut self.pii.model,
        ] {
            if is_name(p) {
                *p = models.join(&*p);
            }
        }
        if is_name(&self.runtime.onnxruntime) {
            self.runtime.onnxruntime = onnxruntime_dir.join(&self.runtime.onnxruntime);
        }
    }

    /// Checks value ranges.
    pub fn validate(&self) -> Result<(), EngineError> {
        self.pii
            .validate()
            .map_err(|e| EngineError::Config(e.to_string()))?;
        let o = &self.offline;
        let bad = |what: &str| Err(EngineError::Config(format!("offline.{what}")));
        if !(o.window_secs.is_finite() && o.window_secs >= 0.5 && o.window_secs <= 60.0) {
            return bad("window_secs must be between 0.5 and 60");
        }
        if !(o.step_secs.is_finite() && o.step_secs > 0.0 && o.step_secs <= o.window_secs) {
            return bad("step_secs must be positive and at most window_secs");
        }
        if !(o.cluster_threshold.is_finite() && (0.0..=2.0).contains(&o.cluster_threshold)) {
            return bad("cluster_threshold must be a cosine distance in [0, 2]");
        }
        for (v, what) in [
            (o.min_duration_on_secs, "min_duration_on_secs"),
            (o.min_duration_off_secs, "min_duration_off_secs"),
            (o.pad_onset_secs, "pad_onset_secs"),
            (o.pad_offset_secs, "pad_offset_secs"),
        ] {
            if !(v.is_finite() && (0.0..=10.0).contains(&v)) {
                return Err(EngineError::Config(format!(
                    "offline.{what} must be between 0 and 10 seconds"
                )));
            }
        }
        if o.max_speakers > 0 && o.min_speakers > o.max_speakers {
            return bad("min_speakers must not exceed max_speakers");
        }
        if !(o.embedding_block_secs.is_finite()
            && o.embedding_block_secs >= 1.0
            && o.embedding_block_secs <= 600.0)
        {
            return bad("embedding_block_secs must be between 1 and 600");
        }
        if !(o.resegment_context_secs.is_finite()
            && (0.0..=10.0).contains(&o.resegment_context_secs))
        {
            return bad("resegment_context_secs must be between 0 and 10");
        }
        if !(o.resegment_margin.is_finite() && (0.0..=2.0).contains(&o.resegment_margin)) {
            return bad("resegment_margin must be between 0 and 2");
        }
        if o.max_cluster_embeddings < 2 {
            return bad("max_cluster_embeddings must be at least 2");
        }
        let s = &self.streaming;
        let bad = |what: &str| Err(EngineError::Config(format!("streaming.{what}")));
        if !(s.window_secs.is_finite() && s.window_secs >= 0.5 && s.window_secs <= 30.0) {
            return bad("window_secs must be between 0.5 and 30");
        }
        if !(s.hop_secs.is_finite() && s.hop_secs > 0.0 && s.hop_secs <= s.window_secs) {
            return bad("hop_secs must be positive and at most window_secs");
        }
        if !(s.context_secs.is_finite() && (0.0..=30.0).contains(&s.context_secs)) {
            return bad("context_secs must be between 0 and 30");
        }
        if !(s.latency_secs.is_finite()
            && s.latency_secs >= s.hop_secs
            && s.latency_secs <= s.window_secs)
        {
            return bad("latency_secs must be between hop_secs and window_secs");
        }
        if !(s.backbone_secs.is_finite()
            && s.backbone_secs >= s.hop_secs
            && s.backbone_secs <= s.window_secs)
        {
            return bad("backbone_secs must be between hop_secs and window_secs");
        }
        if s.backbone_every == 0 || s.backbone_every as f64 * s.hop_secs > s.window_secs {
            return bad(
                "backbone_every must be at least 1, and backbone_every hops at most a window",
            );
        }
        if !(s.match_threshold.is_finite() && (0.0..=2.0).contains(&s.match_threshold)) {
            return bad("match_threshold must be a cosine distance in [0, 2]");
        }
        for (v, what) in [
            (s.new_speaker_secs, "new_speaker_secs"),
            (s.update_speech_secs, "update_speech_secs"),
            (s.min_speech_secs, "min_speech_secs"),
        ] {
            if !(v.is_finite() && v >= 0.0 && v <= s.window_secs) {
                return Err(EngineError::Config(format!(
                    "streaming.{what} must be between 0 and window_secs"
                )));
            }
        }
        if !(s.buffer_secs.is_finite() && s.buffer_secs >= s.window_secs && s.buffer_secs <= 3600.0)
        {
            return bad("buffer_secs must be between window_secs and 3600");
        }
        if s.max_in_flight == 0 || s.max_batch == 0 {
            return bad("max_in_flight and max_batch must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(file: &str, text: &str) -> Layer {
        Layer {
            file: Some(file.into()),
            text: text.into(),
        }
    }

    #[test]
    fn the_compiled_in_defaults_load_with_names_only() {
        let c = Config::from_layers(&[]).unwrap();
        assert_eq!(c.models.segmentation, Path::new("segmentation-3.0"));
        assert!(is_name(&c.runtime.onnxruntime) && is_name(&c.pii.model));
        assert_eq!(Config::from_toml_str("").unwrap(), c);
    }

    #[test]
    fn layers_change_only_their_keys_and_later_layers_win() {
        let c = Config::from_layers(&[
            layer(
                "/etc/d/a.toml",
                "[offline]\nnum_speakers = 2\nstep_secs = 0.5\n",
            ),
            layer(
                "/home/u/b.toml",
                "[offline]\nnum_speakers = 3\n[pii]\nredact = [\"PHONE\"]\n",
            ),
        ])
        .unwrap();
        let d = Config::from_layers(&[]).unwrap();
        assert_eq!(c.offline.num_speakers, 3);
        assert_eq!(c.offline.step_secs, 0.5);
        assert_eq!(c.offline.window_secs, d.offline.window_secs);
        assert_eq!(c.pii.redact.len(), 1);
        assert_eq!(c.streaming, d.streaming);
    }

    #[test]
    fn names_stay_names_and_relative_paths_follow_their_file() {
        let mut c = Config::from_layers(&[
            layer("/etc/d/a.toml", "[models]\nembedding = \"../m/emb\"\n"),
            layer(
                "/srv/b.toml",
                "[models]\nsegmentation = \"seg\"\n[runtime]\nonnxruntime = \"/opt/ort.so\"\n",
            ),
        ])
        .unwrap();
        assert_eq!(c.models.embedding, Path::new("/etc/d/../m/emb"));
        assert_eq!(c.models.segmentation, Path::new("seg"));
        c.resolve_paths(Path::new("/p/models"), Path::new("/p/lib"));
        assert_eq!(c.models.segmentation, Path::new("/p/models/seg"));
        assert_eq!(c.models.embedding, Path::new("/etc/d/../m/emb"));
        assert_eq!(c.pii.model, Path::new("/p/models/pii-minilm-l3"));
        assert_eq!(c.runtime.onnxruntime, Path::new("/opt/ort.so"));
        let t = Config::from_toml_str("[models]\nembedding = \"m/emb\"\n").unwrap();
        assert_eq!(t.models.embedding, Path::new("m/emb"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_their_file() {
        let e = Config::from_layers(&[layer("/x/typo.toml", "[offline]\nwindw_secs = 3.0\n")]);
        let e = e.unwrap_err().to_string();
        assert!(
            e.contains("/x/typo.toml") && e.contains("windw_secs"),
            "{e}"
        );
        let e = Config::from_layers(&[layer("/x/t.toml", "[offline]\nstep_secs = \"1\"\n")]);
        assert!(e.unwrap_err().to_string().contains("/x/t.toml"));
        let e = Config::from_layers(&[layer("/x/s.toml", "[offline\n")]);
        assert!(e.unwrap_err().to_string().contains("/x/s.toml"));
        assert!(Config::from_toml_str("[offline]\nstep_secs = 0.0\n").is_err());
    }

    #[test]
    fn merging_replaces_values_and_arrays_and_merges_tables() {
        let mut a: toml::Table = toml::from_str("x = 1\nl = [1, 2]\n[t]\na = 1\nb = 2\n").unwrap();
        let b: toml::Table = toml::from_str("l = [3]\n[t]\nb = 5\n[n]\nc = 1\n").unwrap();
        merge_toml(&mut a, b);
        let want: toml::Table =
            toml::from_str("x = 1\nl = [3]\n[t]\na = 1\nb = 5\n[n]\nc = 1\n").unwrap();
        assert_eq!(a, want);
    }
}
