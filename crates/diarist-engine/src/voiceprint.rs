//! Voiceprint files: a [`Voiceprint`] as JSON, `{"name": ..., "embedding": [...]}`.

use std::path::{Path, PathBuf};

use crate::Voiceprint;

/// A voiceprint file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VoiceprintError {
    /// The file could not be read.
    #[error("reading {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds something else.
    #[error("{} is not a voiceprint", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl Voiceprint {
    /// Reads a voiceprint file.
    pub fn read(path: &Path) -> Result<Self, VoiceprintError> {
        let text = std::fs::read_to_string(path).map_err(|source| VoiceprintError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| VoiceprintError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads voiceprint files, stopping at the first that cannot be read.
    pub fn read_all(paths: &[PathBuf]) -> Result<Vec<Self>, VoiceprintError> {
        paths.iter().map(|p| Self::read(p)).collect()
    }

    /// The voiceprint as a line of JSON, as [`Voiceprint::read`] reads it.
    pub fn to_json_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voiceprint_file_reads_back_or_says_why_not() {
        let dir = std::env::temp_dir().join(format!("diarist-voiceprint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ana = Voiceprint {
            name: "Ana".into(),
            embedding: vec![0.5, -0.25],
        };
        let path = dir.join("ana.json");
        std::fs::write(&path, ana.to_json_line()).unwrap();
        assert_eq!(
            Voiceprint::read_all(std::slice::from_ref(&path)).unwrap(),
            [ana]
        );
        std::fs::write(&path, "{\"name\": 1}").unwrap();
        let e = Voiceprint::read(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{} is not a voiceprint", path.display())
        );
        let e = Voiceprint::read(&dir.join("missing.json")).unwrap_err();
        assert!(matches!(e, VoiceprintError::Read { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
