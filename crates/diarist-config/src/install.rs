//! Where the running program's install keeps its models and ONNX Runtime library, and which
//! configuration files apply, found at run time relative to the executable (nothing is taken
//! from where it was built).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::ConfigError;

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
pub(crate) type Vars<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// The process environment, empty variables left out.
pub(crate) fn env_var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// `path` made absolute against the working directory (links are not resolved).
pub(crate) fn absolute(path: impl Into<PathBuf>) -> PathBuf {
    let path = path.into();
    std::path::absolute(&path).unwrap_or(path)
}

impl Install {
    /// The install of the running executable.
    pub fn current() -> Result<Self, ConfigError> {
        let exe = std::env::current_exe().map_err(ConfigError::Executable)?;
        Ok(Self::find(&exe, &env_var))
    }

    /// The install of the executable `exe`, given the environment `vars`.
    pub(crate) fn find(exe: &Path, vars: Vars) -> Self {
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
pub(crate) fn config_files(
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
        let e = crate::read_layers(&sources).unwrap_err();
        assert!(e.to_string().contains("env.toml ($DIARIST_CONFIG)"), "{e}");
        std::fs::remove_dir_all(p).unwrap();
    }
}
