//! Configuration files as layers over compiled-in defaults: TOML tables merged key by key, the
//! relative paths in each file anchored to its directory, every file checked on its own so that
//! an error names it.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_replaces_values_and_arrays_and_merges_tables() {
        let mut a: toml::Table = toml::from_str("x = 1\nl = [1, 2]\n[t]\na = 1\nb = 2\n").unwrap();
        let b: toml::Table = toml::from_str("l = [3]\n[t]\nb = 5\n[n]\nc = 1\n").unwrap();
        merge_toml(&mut a, b);
        let want: toml::Table =
            toml::from_str("x = 1\nl = [3]\n[t]\na = 1\nb = 5\n[n]\nc = 1\n").unwrap();
        assert_eq!(a, want);
    }

    #[test]
    fn a_name_is_one_relative_component() {
        assert!(is_name(Path::new("campplus")));
        for p in ["m/campplus", "/m", "../m", "./m", ""] {
            assert!(!is_name(Path::new(p)), "{p}");
        }
    }
}
