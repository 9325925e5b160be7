//! Finding the configuration, the models and the ONNX Runtime library, and applying command-line
//! overrides.
//!
//! Nothing here points into the build tree: the defaults are compiled in (`configs/*.toml`), and
//! the rest is found at run time, relative to the running executable where it is part of the
//! install:
//!
//! - configuration files merged over the defaults, lowest first: `/etc/diarist/NAME`,
//!   `<prefix>/etc/diarist/NAME` (the executable being `<prefix>/bin/diarist`),
//!   `$XDG_CONFIG_HOME/diarist/NAME` (else `~/.config/diarist/NAME`), the file an environment
//!   variable names (`DIARIST_CONFIG`, `DIARIST_SERVER_CONFIG`), then `--config FILE`;
//! - models: `$DIARIST_MODELS`, else `<prefix>/share/diarist/models`, else, for a cargo build
//!   (`<checkout>/target/<profile>/diarist`), the checkout's `models/`;
//! - the ONNX Runtime library: `$DIARIST_ORT_LIB`, else the configuration's name for it in
//!   `<prefix>/lib/diarist`, else in the checkout's `.ort/`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use diarist_engine::Config;
use diarist_engine::config::Layer;
use diarist_server::ServerConfig;

/// Options every model-running command shares.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Configuration file merged last over the others found (`diarist config` lists them).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Segmentation model variant ("fp32", "int8", ...), overriding the configuration.
    #[arg(long, global = true)]
    pub variant: Option<String>,
    /// Segmentation model directory (holding manifest.toml), overriding the configuration.
    #[arg(long, global = true)]
    pub segmentation_model: Option<PathBuf>,
}

/// Speaker-count and windowing overrides for offline diarization.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OfflineArgs {
    /// Exact number of speakers, when known.
    #[arg(long)]
    pub num_speakers: Option<usize>,
    /// Least number of speakers.
    #[arg(long)]
    pub min_speakers: Option<usize>,
    /// Most speakers.
    #[arg(long)]
    pub max_speakers: Option<usize>,
    /// Analysis window, seconds.
    #[arg(long)]
    pub window: Option<f64>,
    /// Step between windows, seconds.
    #[arg(long)]
    pub step: Option<f64>,
    /// Clustering threshold (cosine distance).
    #[arg(long)]
    pub threshold: Option<f32>,
}

/// A directory the install needs, and why it was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The directory.
    pub path: PathBuf,
    /// Why this one (or where it was looked for, when it was not found).
    pub why: String,
    /// Whether it was found.
    pub found: bool,
}

/// Where the running executable's models and ONNX Runtime library are.
#[derive(Debug, Clone, PartialEq)]
pub struct Install {
    /// The running executable.
    pub exe: PathBuf,
    /// `<prefix>`: the directory above the executable's (`<prefix>/bin/diarist`).
    pub prefix: PathBuf,
    /// The models directory.
    pub models: Found,
    /// The directory holding the ONNX Runtime library.
    pub onnxruntime_dir: Found,
}

/// Reads an environment variable; an empty one counts as unset.
type Vars<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// The process environment, empty variables left out.
fn env_var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// `path` made absolute against the working directory (links are not resolved).
fn absolute(path: impl Into<PathBuf>) -> PathBuf {
    let path = path.into();
    std::path::absolute(&path).unwrap_or(path)
}

impl Install {
    /// The install of the running executable.
    pub fn current() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the running executable")?;
        Ok(Self::find(&exe, &env_var))
    }

    /// The install of the executable `exe`, given the environment `vars`.
    fn find(exe: &Path, vars: Vars) -> Self {
        let root = Path::new("/");
        let prefix = exe.parent().and_then(Path::parent).unwrap_or(root);
        let mut models = vec![(
            prefix.join("share/diarist/models"),
            "beside the executable: <prefix>/share/diarist/models for <prefix>/bin/diarist",
        )];
        let mut ort = vec![(
            prefix.join("lib/diarist"),
            "beside the executable: <prefix>/lib/diarist for <prefix>/bin/diarist",
        )];
        // A cargo build tree: the executable is <checkout>/target/<profile>/diarist.
        let checkout = prefix.parent().unwrap_or(root);
        if checkout.join("Cargo.toml").is_file() {
            let why = "a cargo build: in the checkout two levels above the executable's directory";
            models.push((checkout.join("models"), why));
            ort.push((checkout.join(".ort"), why));
        }
        let models = match vars("DIARIST_MODELS") {
            Some(dir) => Found {
                path: absolute(dir),
                why: "$DIARIST_MODELS".into(),
                found: true,
            },
            None => first_dir(&models),
        };
        Self {
            exe: exe.to_path_buf(),
            prefix: prefix.to_path_buf(),
            models,
            onnxruntime_dir: first_dir(&ort),
        }
    }
}

/// The first candidate that is a directory; else the first, saying where it looked.
fn first_dir(candidates: &[(PathBuf, &str)]) -> Found {
    match candidates.iter().find(|(p, _)| p.is_dir()) {
        Some((path, why)) => Found {
            path: path.clone(),
            why: (*why).into(),
            found: true,
        },
        None => Found {
            path: candidates[0].0.clone(),
            why: format!(
                "NOT FOUND: looked for {}",
                candidates
                    .iter()
                    .map(|(p, _)| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            found: false,
        },
    }
}

/// A configuration file merged into the effective configuration, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The file.
    pub file: PathBuf,
    /// Why it is read.
    pub why: String,
}

/// The configuration files called `name`, lowest precedence first: those that exist in the
/// system, install and user directories, then the file named by the environment variable `env`
/// and `flag` (these two must exist).
fn config_files(
    name: &str,
    env: &str,
    flag: Option<&Path>,
    install: &Install,
    vars: Vars,
) -> Vec<Source> {
    let mut found: Vec<Source> = Vec::new();
    let mut add = |file: PathBuf, why: String, required: bool| {
        if required || (file.is_file() && !found.iter().any(|s| s.file == file)) {
            found.push(Source { file, why });
        }
    };
    add(Path::new("/etc/diarist").join(name), "system".into(), false);
    add(
        install.prefix.join("etc/diarist").join(name),
        "the install's, <prefix>/etc/diarist".into(),
        false,
    );
    let xdg = vars("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let user = match xdg {
        Some(dir) => Some((dir, "the user's, $XDG_CONFIG_HOME/diarist")),
        None => vars("HOME").map(|h| {
            (
                Path::new(&h).join(".config"),
                "the user's, ~/.config/diarist",
            )
        }),
    };
    if let Some((dir, why)) = user {
        add(dir.join("diarist").join(name), why.into(), false);
    }
    if let Some(file) = vars(env) {
        add(absolute(file), format!("${env}"), true);
    }
    if let Some(file) = flag {
        add(absolute(file), "--config".into(), true);
    }
    found
}

/// Reads the configuration files.
fn read_layers(sources: &[Source]) -> anyhow::Result<Vec<Layer>> {
    sources
        .iter()
        .map(|s| {
            Layer::read(&s.file)
                .with_context(|| format!("cannot read {} ({})", s.file.display(), s.why))
        })
        .collect()
}

/// The effective engine configuration and where its parts came from.
pub struct Effective {
    /// The configuration, paths resolved and overrides applied.
    pub config: Config,
    /// Where the models and the ONNX Runtime library were looked for.
    pub install: Install,
    /// The files merged over the compiled-in defaults, lowest first.
    pub sources: Vec<Source>,
    /// Why the ONNX Runtime library is the one it is.
    pub onnxruntime_why: String,
}

/// Loads the configuration the arguments point at and applies the overrides.
pub fn load(common: &CommonArgs, offline: &OfflineArgs) -> anyhow::Result<Config> {
    let e = load_effective(common, offline)?;
    let c = &e.config;
    let models = [&c.models.segmentation, &c.models.embedding, &c.pii.model];
    warn_if_missing("models", &e.install.models, &models, "DIARIST_MODELS");
    let ort = [&c.runtime.onnxruntime];
    warn_if_missing(
        "ONNX Runtime",
        &e.install.onnxruntime_dir,
        &ort,
        "DIARIST_ORT_LIB",
    );
    Ok(e.config)
}

/// Says why the `what` files will be missing when `dir` was not found and `used` lies in it,
/// before loading them fails on a path.
fn warn_if_missing(what: &str, dir: &Found, used: &[&PathBuf], var: &str) {
    if !dir.found && used.iter().any(|p| p.starts_with(&dir.path)) {
        eprintln!(
            "diarist: warning: no {what} directory ({}); set {var} or give paths in the \
             configuration (`diarist config` shows it)",
            dir.why.to_lowercase()
        );
    }
}

/// Loads the configuration the arguments point at, applies the overrides, and says where its
/// parts came from.
pub fn load_effective(common: &CommonArgs, offline: &OfflineArgs) -> anyhow::Result<Effective> {
    let install = Install::current()?;
    let sources = config_files(
        "diarist.toml",
        "DIARIST_CONFIG",
        common.config.as_deref(),
        &install,
        &env_var,
    );
    let mut config = Config::from_layers(&read_layers(&sources)?)?;
    let ort_is_name = diarist_engine::config::is_name(&config.runtime.onnxruntime);
    config.resolve_paths(&install.models.path, &install.onnxruntime_dir.path);
    let onnxruntime_why = if let Some(lib) = env_var("DIARIST_ORT_LIB") {
        config.runtime.onnxruntime = absolute(lib);
        "$DIARIST_ORT_LIB".to_string()
    } else if ort_is_name {
        "the configuration's name for it in the ONNX Runtime directory".into()
    } else {
        "the configuration's path".into()
    };
    apply_overrides(&mut config, common, offline);
    config.validate()?;
    Ok(Effective {
        config,
        install,
        sources,
        onnxruntime_why,
    })
}

/// Applies the command-line overrides of the offline settings and the models.
fn apply_overrides(config: &mut Config, common: &CommonArgs, offline: &OfflineArgs) {
    if let Some(m) = &common.segmentation_model {
        // Another model's variants are its own: start from its main file.
        config.models.segmentation = m.clone();
        config.models.segmentation_variant = "fp32".into();
    }
    if let Some(v) = &common.variant {
        config.models.segmentation_variant = v.clone();
    }
    let o = &mut config.offline;
    if let Some(v) = offline.num_speakers {
        o.num_speakers = v;
    }
    if let Some(v) = offline.min_speakers {
        o.min_speakers = v;
    }
    if let Some(v) = offline.max_speakers {
        o.max_speakers = v;
    }
    if let Some(v) = offline.window {
        o.window_secs = v;
    }
    if let Some(v) = offline.step {
        o.step_secs = v;
    }
    if let Some(v) = offline.threshold {
        o.cluster_threshold = v;
    }
}

/// Loads the server configuration: the compiled-in defaults with the `server.toml` files found
/// merged over them (`flag` last); returns it with those files.
pub fn load_server(flag: Option<&Path>) -> anyhow::Result<(ServerConfig, Vec<Source>)> {
    let install = Install::current()?;
    let sources = config_files(
        "server.toml",
        "DIARIST_SERVER_CONFIG",
        flag,
        &install,
        &env_var,
    );
    let config = ServerConfig::from_layers(&read_layers(&sources)?).map_err(anyhow::Error::msg)?;
    Ok((config, sources))
}

/// Comment lines naming the files merged over the compiled-in defaults of `name`, in order.
fn describe_sources(name: &str, sources: &[Source]) -> String {
    let mut out = format!(
        "# Merged, lowest first:\n#   compiled-in defaults (configs/{name} of diarist {})\n",
        env!("CARGO_PKG_VERSION")
    );
    for s in sources {
        out += &format!("#   {} ({})\n", s.file.display(), s.why);
    }
    out
}

/// The overriding flags that were given.
fn flags_given(common: &CommonArgs, offline: &OfflineArgs) -> Vec<&'static str> {
    [
        (common.segmentation_model.is_some(), "--segmentation-model"),
        (common.variant.is_some(), "--variant"),
        (offline.num_speakers.is_some(), "--num-speakers"),
        (offline.min_speakers.is_some(), "--min-speakers"),
        (offline.max_speakers.is_some(), "--max-speakers"),
        (offline.window.is_some(), "--window"),
        (offline.step.is_some(), "--step"),
        (offline.threshold.is_some(), "--threshold"),
    ]
    .into_iter()
    .filter_map(|(given, flag)| given.then_some(flag))
    .collect()
}

/// The engine configuration as TOML, where its parts came from as comments at the top.
fn describe_engine(common: &CommonArgs, offline: &OfflineArgs) -> anyhow::Result<String> {
    let e = load_effective(common, offline)?;
    let mut out = describe_sources("diarist.toml", &e.sources);
    let flags = flags_given(common, offline);
    if !flags.is_empty() {
        out += &format!("#   command-line flags: {}\n", flags.join(" "));
    }
    for (what, found) in [
        ("Models directory", &e.install.models),
        ("ONNX Runtime directory", &e.install.onnxruntime_dir),
    ] {
        out += &format!("# {what}: {} ({})\n", found.path.display(), found.why);
    }
    out += &format!(
        "# ONNX Runtime library: {} ({})\n\n",
        e.config.runtime.onnxruntime.display(),
        e.onnxruntime_why
    );
    Ok(out + &toml::to_string_pretty(&e.config)?)
}

/// The server configuration as TOML (the token not shown), where it came from as comments at the
/// top; `flag` names a file merged last.
fn describe_server(flag: Option<&Path>) -> anyhow::Result<String> {
    let (mut config, sources) = load_server(flag)?;
    let mut out = describe_sources("server.toml", &sources);
    if !config.token.is_empty() {
        config.token = "(set, not shown)".into();
    } else if env_var("DIARIST_TOKEN").is_some() {
        out += "# token: $DIARIST_TOKEN (not shown)\n";
    }
    Ok(out + "\n" + &toml::to_string_pretty(&config)?)
}

/// `diarist config`: the effective configuration as TOML, with where its parts came from as
/// comments at the top (`server`: the `diarist serve` configuration, `--config` naming its file).
pub fn print_config(
    common: &CommonArgs,
    offline: &OfflineArgs,
    server: bool,
) -> anyhow::Result<ExitCode> {
    let exe = Install::current()?.exe;
    let body = if server {
        describe_server(common.config.as_deref())?
    } else {
        describe_engine(common, offline)?
    };
    print!(
        "# The effective configuration of {} {}\n{body}",
        exe.display(),
        env!("CARGO_PKG_VERSION")
    );
    Ok(ExitCode::SUCCESS)
}

/// Worker threads for a batch of `jobs` items.
pub fn workers(config: &Config, jobs: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted = if config.runtime.workers == 0 {
        cores
    } else {
        config.runtime.workers
    };
    wanted.clamp(1, jobs.max(1))
}

/// Overrides of the streaming settings.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StreamingArgs {
    /// Step between windows, seconds.
    #[arg(long)]
    pub hop: Option<f64>,
    /// Delay after which audio is final, seconds.
    #[arg(long)]
    pub latency: Option<f64>,
    /// Cosine distance under which a voice joins a known speaker.
    #[arg(long)]
    pub match_threshold: Option<f32>,
    /// Most speakers per stream.
    #[arg(long)]
    pub max_speakers: Option<usize>,
    /// Inference workers shared by all streams (0: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
}

/// Loads the configuration with streaming overrides applied.
pub fn load_streaming(common: &CommonArgs, args: &StreamingArgs) -> anyhow::Result<Config> {
    let mut config = load(common, &OfflineArgs::default())?;
    let s = &mut config.streaming;
    if let Some(v) = args.hop {
        s.hop_secs = v;
    }
    if let Some(v) = args.latency {
        s.latency_secs = v;
    }
    if let Some(v) = args.match_threshold {
        s.match_threshold = v;
    }
    if let Some(v) = args.max_speakers {
        s.max_speakers = v;
    }
    if let Some(v) = args.workers {
        s.workers = v;
    }
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A fresh directory under the system's temporary directory.
    fn temp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("diarist-settings-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "").unwrap();
    }

    #[test]
    fn an_install_prefix_and_a_cargo_build_tree_are_found_from_the_executable() {
        let none = |_: &str| None;
        let p = temp("prefix");
        std::fs::create_dir_all(p.join("share/diarist/models")).unwrap();
        std::fs::create_dir_all(p.join("lib/diarist")).unwrap();
        let i = Install::find(&p.join("bin/diarist"), &none);
        assert_eq!(i.models.path, p.join("share/diarist/models"));
        assert_eq!(i.onnxruntime_dir.path, p.join("lib/diarist"));
        let c = temp("checkout");
        touch(&c.join("Cargo.toml"));
        std::fs::create_dir_all(c.join("models")).unwrap();
        std::fs::create_dir_all(c.join(".ort")).unwrap();
        let i = Install::find(&c.join("target/release/diarist"), &none);
        assert_eq!(i.models.path, c.join("models"));
        assert_eq!(i.onnxruntime_dir.path, c.join(".ort"));
        let env = |v: &str| (v == "DIARIST_MODELS").then(|| OsString::from("/m"));
        assert_eq!(
            Install::find(&c.join("target/release/diarist"), &env)
                .models
                .path,
            Path::new("/m")
        );
        let e = temp("empty");
        let i = Install::find(&e.join("bin/diarist"), &none);
        assert_eq!(i.models.path, e.join("share/diarist/models"));
        assert!(!i.models.found && i.models.why.starts_with("NOT FOUND"));
        for d in [p, c, e] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn configuration_files_come_lowest_first_and_named_ones_must_exist() {
        let p = temp("search");
        let home = p.join("home");
        touch(&p.join("etc/diarist/diarist.toml"));
        touch(&home.join(".config/diarist/diarist.toml"));
        touch(&p.join("xdg/diarist/diarist.toml"));
        let install = Install::find(&p.join("bin/diarist"), &|_: &str| None);
        let mut vars: HashMap<&str, PathBuf> = HashMap::from([("HOME", home.clone())]);
        let files = |vars: &HashMap<&str, PathBuf>, flag: Option<&Path>| {
            let get = |k: &str| vars.get(k).map(|v| v.clone().into_os_string());
            config_files("diarist.toml", "DIARIST_CONFIG", flag, &install, &get)
                .into_iter()
                .map(|s| s.file)
                .filter(|f| !f.starts_with("/etc"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            files(&vars, None),
            [
                p.join("etc/diarist/diarist.toml"),
                home.join(".config/diarist/diarist.toml")
            ]
        );
        vars.insert("XDG_CONFIG_HOME", p.join("xdg"));
        vars.insert("DIARIST_CONFIG", p.join("env.toml"));
        assert_eq!(
            files(&vars, Some(Path::new("/flag.toml"))),
            [
                p.join("etc/diarist/diarist.toml"),
                p.join("xdg/diarist/diarist.toml"),
                p.join("env.toml"),
                PathBuf::from("/flag.toml"),
            ]
        );
        let sources = config_files("diarist.toml", "DIARIST_CONFIG", None, &install, &|k| {
            vars.get(k).map(|v| v.clone().into_os_string())
        });
        let e = read_layers(&sources).unwrap_err();
        assert!(
            format!("{e:#}").contains("env.toml ($DIARIST_CONFIG)"),
            "{e:#}"
        );
        std::fs::remove_dir_all(p).unwrap();
    }
}
