//! The configuration diarist's programs run with, composed from the sections each crate owns:
//! `configs/diarist.toml` is the engine's `[runtime]`, `[models]`, `[offline]` and `[streaming]`
//! ([`diarist_engine::EngineConfig`]) with the PII tagger's `[pii]` ([`diarist_pii::PiiConfig`]);
//! `configs/server.toml` is the server's ([`diarist_server::ServerConfig`]).
//!
//! Both files are compiled in as the defaults. Configuration files that hold only the keys they
//! change are merged over them, lowest first: `/etc/diarist/NAME`, `<prefix>/etc/diarist/NAME`
//! (the executable being `<prefix>/bin/diarist`), `$XDG_CONFIG_HOME/diarist/NAME` (else
//! `~/.config/diarist/NAME`), the file an environment variable names (`DIARIST_CONFIG`,
//! `DIARIST_SERVER_CONFIG`), then the one a caller names (`--config`).
//!
//! Paths in a file: a name without a `/` under `[models]`, `[pii] model` and `[runtime]
//! onnxruntime` is a model in the models directory or a library in the ONNX Runtime directory
//! ([`Install`]); any other relative path is relative to the directory of the file that sets it;
//! an absolute path is used as it is. Not for: command-line flags (the binary applies them).

mod install;
mod layers;

use std::path::{Path, PathBuf};

use diarist_engine::EngineConfig;
use diarist_engine::config::{ModelsConfig, OfflineConfig, RuntimeConfig, StreamingConfig};
use diarist_models::Runtime;
use diarist_pii::{PiiConfig, PiiError, Tagger, TaggerPool};
use diarist_server::ServerConfig;
use serde::{Deserialize, Serialize};

pub use install::{Found, Install, Source};
pub use layers::{Layer, is_name, merge_layers};

/// The shipped `configs/diarist.toml`, the defaults every file is merged over.
pub const DEFAULTS: &str = include_str!("../../../configs/diarist.toml");
/// The shipped `configs/server.toml`, the defaults of `diarist serve`.
pub const SERVER_DEFAULTS: &str = include_str!("../../../configs/server.toml");

/// The keys of `diarist.toml` that hold paths, as `table.key`.
const PATH_KEYS: [&str; 4] = [
    "runtime.onnxruntime",
    "models.segmentation",
    "models.embedding",
    "pii.model",
];

/// Why a configuration could not be composed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file could not be read.
    #[error("cannot read {file} ({why}): {error}")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why it was read.
        why: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// A file (named in the message) or the merged result is not a valid configuration.
    #[error("{0}")]
    Invalid(String),
    /// The running executable could not be found.
    #[error("finding the running executable: {0}")]
    Executable(std::io::Error),
    /// The PII tagger the settings name did not load.
    #[error("loading the PII tagger {}: {source}", .model.display())]
    Tagger {
        /// Its model directory.
        model: PathBuf,
        /// Why.
        source: PiiError,
    },
}

/// What `diarist.toml` configures: the engine, and the PII tagger of transcripts.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The engine's sections.
    pub engine: EngineConfig,
    /// The `[pii]` section.
    pub pii: PiiConfig,
}

/// `diarist.toml` as one table of sections, as the file is written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    runtime: RuntimeConfig,
    models: ModelsConfig,
    offline: OfflineConfig,
    streaming: StreamingConfig,
    pii: PiiConfig,
}

impl Settings {
    /// The compiled-in defaults with the `layers` merged over them in order (later layers win),
    /// checked. Model and library names are left for [`Settings::resolve_paths`].
    pub fn from_layers(layers: &[Layer]) -> Result<Self, ConfigError> {
        let f: File = merge_layers(DEFAULTS, layers, &PATH_KEYS, |p| !is_name(p))
            .map_err(ConfigError::Invalid)?;
        let settings = Self {
            engine: EngineConfig {
                runtime: f.runtime,
                models: f.models,
                offline: f.offline,
                streaming: f.streaming,
            },
            pii: f.pii,
        };
        settings.validate()?;
        Ok(settings)
    }

    /// The compiled-in defaults with `text` (only the keys it changes) merged over them; its
    /// relative paths stay relative to the working directory.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::from_layers(&[Layer {
            file: None,
            text: text.into(),
        }])
    }

    /// Loads the PII tagger the `[pii]` section names, with the `[runtime]` section's library,
    /// threads and provider.
    pub fn load_tagger(&self) -> Result<Tagger, ConfigError> {
        Runtime::load(&self.engine.runtime.onnxruntime)
            .map_err(PiiError::from)
            .and_then(|r| Tagger::from_config(&r, &self.pii, self.engine.runtime.session_options()))
            .map_err(|source| self.tagger_error(source))
    }

    /// Loads `workers` taggers as [`Settings::load_tagger`] does, behind a queue of `queue`
    /// texts.
    pub fn load_tagger_pool(
        &self,
        workers: usize,
        queue: usize,
    ) -> Result<TaggerPool, ConfigError> {
        let session = self.engine.runtime.session_options();
        Runtime::load(&self.engine.runtime.onnxruntime)
            .map_err(PiiError::from)
            .and_then(|r| TaggerPool::from_config(&r, &self.pii, session, workers, queue))
            .map_err(|source| self.tagger_error(source))
    }

    /// `source` as the error of loading the `[pii]` section's tagger.
    fn tagger_error(&self, source: PiiError) -> ConfigError {
        ConfigError::Tagger {
            model: self.pii.model.clone(),
            source,
        }
    }

    /// Checks every section's values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |e: &dyn std::fmt::Display| ConfigError::Invalid(e.to_string());
        self.engine.validate().map_err(|e| invalid(&e))?;
        self.pii.validate().map_err(|e| invalid(&e))
    }

    /// Turns names into paths: a model name (a `[models]` or `[pii] model` value without a `/`)
    /// into that directory of `models`, a library name (`[runtime] onnxruntime`) into that file
    /// of `onnxruntime_dir`. Paths are left as they are.
    pub fn resolve_paths(&mut self, models: &Path, onnxruntime_dir: &Path) {
        let e = &mut self.engine;
        for p in [
            &mut e.models.segmentation,
            &mut e.models.embedding,
            &mut self.pii.model,
        ] {
            if is_name(p) {
                *p = models.join(&*p);
            }
        }
        if is_name(&e.runtime.onnxruntime) {
            e.runtime.onnxruntime = onnxruntime_dir.join(&e.runtime.onnxruntime);
        }
    }

    /// The settings as `diarist.toml` text.
    pub fn to_toml(&self) -> String {
        let e = self.engine.clone();
        let f = File {
            runtime: e.runtime,
            models: e.models,
            offline: e.offline,
            streaming: e.streaming,
            pii: self.pii.clone(),
        };
        toml::to_string_pretty(&f).expect("settings serialise")
    }
}

/// Reads the configuration files.
fn read_layers(sources: &[Source]) -> Result<Vec<Layer>, ConfigError> {
    sources
        .iter()
        .map(|s| {
            Layer::read(&s.file).map_err(|error| ConfigError::Read {
                file: s.file.clone(),
                why: s.why.clone(),
                error,
            })
        })
        .collect()
}

/// The settings the running program is configured with, and where their parts came from.
pub struct Effective {
    /// The settings, paths resolved.
    pub settings: Settings,
    /// Where the models and the ONNX Runtime library were looked for.
    pub install: Install,
    /// The files merged over the compiled-in defaults, lowest first.
    pub sources: Vec<Source>,
    /// Why the ONNX Runtime library is the one it is.
    pub onnxruntime_why: String,
}

/// Composes the settings of the running program: the `diarist.toml` files found merged over the
/// compiled-in defaults (`file`, e.g. `--config`, last), names resolved against the install,
/// `DIARIST_ORT_LIB` applied.
pub fn load(file: Option<&Path>) -> Result<Effective, ConfigError> {
    let install = Install::current()?;
    let sources = install::config_files(
        "diarist.toml",
        "DIARIST_CONFIG",
        file,
        &install,
        &install::env_var,
    );
    let mut settings = Settings::from_layers(&read_layers(&sources)?)?;
    let ort_is_name = is_name(&settings.engine.runtime.onnxruntime);
    settings.resolve_paths(&install.models.path, &install.onnxruntime_dir.path);
    let onnxruntime_why = if let Some(lib) = install::env_var("DIARIST_ORT_LIB") {
        settings.engine.runtime.onnxruntime = install::absolute(lib);
        "$DIARIST_ORT_LIB".to_string()
    } else if ort_is_name {
        "the configuration's name for it in the ONNX Runtime directory".into()
    } else {
        "the configuration's path".into()
    };
    Ok(Effective {
        settings,
        install,
        sources,
        onnxruntime_why,
    })
}

impl Effective {
    /// Warnings for files that will be missing: a models or ONNX Runtime directory that was not
    /// found, while the settings point into it.
    pub fn warnings(&self) -> Vec<String> {
        let (e, i) = (&self.settings.engine, &self.install);
        let models = [
            &e.models.segmentation,
            &e.models.embedding,
            &self.settings.pii.model,
        ];
        let checks = [
            ("models", &i.models, &models[..], "DIARIST_MODELS"),
            (
                "ONNX Runtime",
                &i.onnxruntime_dir,
                &[&e.runtime.onnxruntime][..],
                "DIARIST_ORT_LIB",
            ),
        ];
        checks
            .into_iter()
            .filter(|(_, dir, used, _)| !dir.found && used.iter().any(|p| p.starts_with(&dir.path)))
            .map(|(what, dir, _, var)| {
                format!(
                    "no {what} directory ({}); set {var} or give paths in the configuration \
                     (`diarist config` shows it)",
                    dir.why.to_lowercase()
                )
            })
            .collect()
    }

    /// The settings as TOML, where their parts came from as comments at the top; `flags` names
    /// the command-line flags that changed them.
    pub fn describe(&self, flags: &[String]) -> String {
        let mut out = describe_sources(&self.install.exe, "diarist.toml", &self.sources);
        if !flags.is_empty() {
            out += &format!("#   command-line flags: {}\n", flags.join(" "));
        }
        for (what, found) in [
            ("Models directory", &self.install.models),
            ("ONNX Runtime directory", &self.install.onnxruntime_dir),
        ] {
            out += &format!("# {what}: {} ({})\n", found.path.display(), found.why);
        }
        out += &format!(
            "# ONNX Runtime library: {} ({})\n\n",
            self.settings.engine.runtime.onnxruntime.display(),
            self.onnxruntime_why
        );
        out + &self.settings.to_toml()
    }
}

/// The server configuration: the compiled-in defaults with the `server.toml` files found merged
/// over them (`file` last); returns it with those files.
pub fn load_server(file: Option<&Path>) -> Result<(ServerConfig, Vec<Source>), ConfigError> {
    let install = Install::current()?;
    let sources = install::config_files(
        "server.toml",
        "DIARIST_SERVER_CONFIG",
        file,
        &install,
        &install::env_var,
    );
    let config = server_from_layers(&read_layers(&sources)?)?;
    Ok((config, sources))
}

/// What `diarist serve` runs with: its server configuration and the settings of the engine and
/// tagger that the server configuration's `engine` file names.
pub struct Service {
    /// The server configuration; its token falls back to `$DIARIST_TOKEN`.
    pub server: ServerConfig,
    /// The files merged into `server`, lowest first.
    pub server_sources: Vec<Source>,
    /// The engine and tagger settings, checked.
    pub effective: Effective,
}

/// Composes what `diarist serve` runs with: [`load_server`] (`file` last), then [`load`] of the
/// engine file it names.
pub fn load_service(file: Option<&Path>) -> Result<Service, ConfigError> {
    let (mut server, server_sources) = load_server(file)?;
    let env = |name| {
        install::env_var(name)
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if server.token.is_empty() {
        server.token = env("DIARIST_TOKEN");
    }
    if server.checkpoint_key.is_empty() {
        server.checkpoint_key = env("DIARIST_CHECKPOINT_KEY");
    }
    let effective = load(server.engine_file())?;
    effective.settings.validate()?;
    Ok(Service {
        server,
        server_sources,
        effective,
    })
}

impl Service {
    /// The configuration files read, server's first, or a phrase saying there were none.
    pub fn files(&self) -> String {
        let files: Vec<String> = (self.server_sources.iter())
            .chain(&self.effective.sources)
            .map(|s| s.file.display().to_string())
            .collect();
        if files.is_empty() {
            "none (the compiled-in defaults)".into()
        } else {
            files.join(", ")
        }
    }
}

/// The compiled-in server defaults with the `layers` merged over them in order, checked.
pub fn server_from_layers(layers: &[Layer]) -> Result<ServerConfig, ConfigError> {
    let c: ServerConfig = merge_layers(SERVER_DEFAULTS, layers, &["engine"], |_| true)
        .map_err(ConfigError::Invalid)?;
    c.validate().map_err(ConfigError::Invalid)?;
    Ok(c)
}

/// The server configuration as TOML (the token not shown), where it came from as comments at the
/// top.
pub fn describe_server(exe: &Path, config: &ServerConfig, sources: &[Source]) -> String {
    let mut out = describe_sources(exe, "server.toml", sources);
    let mut shown = config.clone();
    if !shown.token.is_empty() {
        shown.token = "(set, not shown)".into();
    } else if install::env_var("DIARIST_TOKEN").is_some() {
        out += "# token: $DIARIST_TOKEN (not shown)\n";
    }
    if !shown.checkpoint_key.is_empty() {
        shown.checkpoint_key = "(set, not shown)".into();
    } else if install::env_var("DIARIST_CHECKPOINT_KEY").is_some() {
        out += "# checkpoint_key: $DIARIST_CHECKPOINT_KEY (not shown)\n";
    }
    out + "\n" + &toml::to_string_pretty(&shown).expect("the server configuration serialises")
}

/// Comment lines naming the program `exe` and the files merged over the compiled-in defaults of
/// `name`, in order.
fn describe_sources(exe: &Path, name: &str, sources: &[Source]) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = format!(
        "# The effective configuration of {} {version}\n# Merged, lowest first:\n#   compiled-in defaults (configs/{name} of diarist {version})\n",
        exe.display()
    );
    for s in sources {
        out += &format!("#   {} ({})\n", s.file.display(), s.why);
    }
    out
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
        let c = Settings::from_layers(&[]).unwrap();
        assert_eq!(c.engine.models.segmentation, Path::new("segmentation-3.0"));
        assert!(is_name(&c.engine.runtime.onnxruntime) && is_name(&c.pii.model));
        assert_eq!(Settings::from_toml_str("").unwrap(), c);
        assert_eq!(Settings::from_toml_str(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn layers_change_only_their_keys_and_later_layers_win() {
        let c = Settings::from_layers(&[
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
        let d = Settings::from_layers(&[]).unwrap();
        assert_eq!(c.engine.offline.num_speakers, 3);
        assert_eq!(c.engine.offline.step_secs, 0.5);
        assert_eq!(c.engine.offline.window_secs, d.engine.offline.window_secs);
        assert_eq!(c.pii.redact.len(), 1);
        assert_eq!(c.engine.streaming, d.engine.streaming);
    }

    #[test]
    fn names_stay_names_and_relative_paths_follow_their_file() {
        let mut c = Settings::from_layers(&[
            layer("/etc/d/a.toml", "[models]\nembedding = \"../m/emb\"\n"),
            layer(
                "/srv/b.toml",
                "[models]\nsegmentation = \"seg\"\n[runtime]\nonnxruntime = \"/opt/ort.so\"\n",
            ),
        ])
        .unwrap();
        let m = &c.engine.models;
        assert_eq!(m.embedding, Path::new("/etc/d/../m/emb"));
        assert_eq!(m.segmentation, Path::new("seg"));
        c.resolve_paths(Path::new("/p/models"), Path::new("/p/lib"));
        let e = &c.engine;
        assert_eq!(e.models.segmentation, Path::new("/p/models/seg"));
        assert_eq!(e.models.embedding, Path::new("/etc/d/../m/emb"));
        assert_eq!(c.pii.model, Path::new("/p/models/pii-minilm-l3"));
        assert_eq!(e.runtime.onnxruntime, Path::new("/opt/ort.so"));
        let t = Settings::from_toml_str("[models]\nembedding = \"m/emb\"\n").unwrap();
        assert_eq!(t.engine.models.embedding, Path::new("m/emb"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_their_file() {
        let e = Settings::from_layers(&[layer("/x/typo.toml", "[offline]\nwindw_secs = 3.0\n")]);
        let e = e.unwrap_err().to_string();
        assert!(
            e.contains("/x/typo.toml") && e.contains("windw_secs"),
            "{e}"
        );
        let e = Settings::from_layers(&[layer("/x/t.toml", "[offline]\nstep_secs = \"1\"\n")]);
        assert!(e.unwrap_err().to_string().contains("/x/t.toml"));
        let e = Settings::from_layers(&[layer("/x/s.toml", "[offline\n")]);
        assert!(e.unwrap_err().to_string().contains("/x/s.toml"));
        assert!(Settings::from_toml_str("[offline]\nstep_secs = 0.0\n").is_err());
        assert!(Settings::from_toml_str("[pii]\nmin_score = 2.0\n").is_err());
        assert!(Settings::from_toml_str("[nonsense]\nx = 1\n").is_err());
    }

    #[test]
    fn the_server_defaults_load_and_a_layer_changes_only_its_keys() {
        let d = server_from_layers(&[]).unwrap();
        let c =
            server_from_layers(&[layer("/etc/diarist/server.toml", "max_sessions = 3\n")]).unwrap();
        assert_eq!(c.max_sessions, 3);
        assert_eq!(c.listen, d.listen);
        assert!(server_from_layers(&[layer("/x.toml", "max_sessions = 0\n")]).is_err());
    }
}
