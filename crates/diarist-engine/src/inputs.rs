//! The files a batch reads: the recordings it diarizes (named files as they are, directories
//! walked for audio files, every recording once, and no two that would write the same output),
//! and the RTTM and UEM files that score its results.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use diarist_core::rttm::{self, SourceError, Turn, file_id};
use walkdir::WalkDir;

/// File extensions (any case) picked up when walking a directory.
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "flac", "mp3", "ogg", "oga", "m4a", "mp4", "aac", "wave",
];

/// Why the inputs could not be listed or read.
#[derive(Debug, thiserror::Error)]
pub enum InputsError {
    /// A file, or a directory of RTTM or UEM files, could not be read.
    #[error("reading {}", .path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An RTTM or UEM file holds a line that is not one.
    #[error(transparent)]
    Parse(#[from] SourceError),
    /// A directory (named, or met in a walk) could not be listed.
    #[error("reading directory {}", .path.display())]
    Directory {
        /// The input being walked.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Inputs that share a file id, by file id: they would write the same output file under
    /// the same RTTM file id.
    #[error(
        "inputs share a file id, so they would write the same output file: {}; rename them or \
         diarize them in separate runs with separate output directories",
        clashes(.0)
    )]
    SharedIds(BTreeMap<String, Vec<PathBuf>>),
    /// A `--shard` that is not `K/N` with `0 <= K < N`.
    #[error("`{0}` is not a shard: give K/N, the K-th (from 0) of N shards, with K < N")]
    Shard(String),
}

/// "`id`: a, b; `id2`: c, d".
fn clashes(by_id: &BTreeMap<String, Vec<PathBuf>>) -> String {
    let named: Vec<String> = by_id
        .iter()
        .map(|(id, paths)| {
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            format!("`{id}`: {}", names.join(", "))
        })
        .collect();
    named.join("; ")
}

/// Lists the input files: named files as they are, directories walked for audio files (sorted
/// by name). Symbolic links are followed, but never into a directory already walked, so a link
/// loop ends (`revisit` is told of each such directory and what it resolves to); a file reached
/// twice (named twice, or through a link) is listed once; fifos, sockets and devices met in a
/// directory are skipped. Two inputs with the same file id (its name without the extension:
/// `a/x.wav` and `b/x.wav`, `x.wav` and `x.flac`) are refused, because they would write the same
/// output file and the same RTTM file id.
pub fn collect_inputs(
    inputs: &[PathBuf],
    revisit: impl FnMut(&Path, &Path),
) -> Result<Vec<PathBuf>, InputsError> {
    let mut walk = Walk {
        files: Vec::new(),
        seen_files: HashSet::new(),
        seen_dirs: HashSet::new(),
        revisit,
    };
    for input in inputs {
        if input.is_dir() {
            walk.dir(input).map_err(|source| InputsError::Directory {
                path: input.clone(),
                source,
            })?;
        } else {
            walk.file(input.clone());
        }
    }
    refuse_shared_ids(&walk.files)?;
    Ok(walk.files)
}

/// Reads a manifest: one input per line (a file or a directory, as on the command line), blank
/// lines and lines starting with `#` skipped, surrounding spaces trimmed; a relative path is
/// relative to the manifest's own directory, so the manifest can move with the archive.
pub fn read_manifest(path: &Path) -> Result<Vec<PathBuf>, InputsError> {
    let text = std::fs::read_to_string(path).map_err(|source| InputsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| base.join(l))
        .collect())
}

/// The `index`-th (from 0) of `count` shards of a batch: the inputs sorted by file id, every
/// `count`-th from the `index`-th. Each input is in exactly one shard, the shards differ in size
/// by at most one input, and the split depends only on the inputs (not their order), so every
/// shard of a job must be given the same inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 0.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = InputsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InputsError::Shard(s.to_string());
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index = k.trim().parse().map_err(|_| bad())?;
        let count = n.trim().parse().map_err(|_| bad())?;
        if index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// This shard's inputs among `files` (whose file ids are distinct, as
    /// [`collect_inputs`] leaves them), in their order.
    pub fn select(&self, files: Vec<PathBuf>) -> Vec<PathBuf> {
        let mut ids: Vec<String> = files.iter().map(|f| file_id(f)).collect();
        ids.sort();
        let mine: HashSet<&String> = ids.iter().skip(self.index).step_by(self.count).collect();
        files
            .into_iter()
            .filter(|f| mine.contains(&file_id(f)))
            .collect()
    }
}

/// A batch's inputs: those `named` and those listed in a `manifest`, collected as
/// [`collect_inputs`] does, and of them the `shard`'s; with how many there were in all.
pub fn collect_batch(
    named: &[PathBuf],
    manifest: Option<&Path>,
    shard: Option<Shard>,
    revisit: impl FnMut(&Path, &Path),
) -> Result<(Vec<PathBuf>, usize), InputsError> {
    let mut inputs = named.to_vec();
    if let Some(list) = manifest {
        inputs.extend(read_manifest(list)?);
    }
    let files = collect_inputs(&inputs, revisit)?;
    let all = files.len();
    Ok((shard.map_or(files.clone(), |s| s.select(files)), all))
}

/// Whether `path` is named as an audio file.
pub fn is_audio(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The state of a walk over the inputs: the files found, and what was already seen (by canonical
/// path) of files and directories.
struct Walk<R> {
    files: Vec<PathBuf>,
    seen_files: HashSet<PathBuf>,
    seen_dirs: HashSet<PathBuf>,
    revisit: R,
}

impl<R: FnMut(&Path, &Path)> Walk<R> {
    /// Lists `path` unless the same file was listed already; a path that does not resolve (a
    /// missing file, a dangling link) is listed as it is and reported when it is opened.
    fn file(&mut self, path: PathBuf) {
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if self.seen_files.insert(key) {
            self.files.push(path);
        }
    }

    /// Walks `dir` (following links) for audio files, sorted by name within each directory.
    fn dir(&mut self, dir: &Path) -> std::io::Result<()> {
        let mut entries = WalkDir::new(dir)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter();
        while let Some(entry) = entries.next() {
            match entry {
                Ok(e) if e.file_type().is_dir() => {
                    if !self.enter(e.path())? {
                        entries.skip_current_dir();
                    }
                }
                // fifos, sockets and devices
                Ok(e) if !e.file_type().is_file() => {}
                Ok(e) if is_audio(e.path()) => self.file(e.into_path()),
                Ok(_) => {}
                // A link back to a directory being walked: walkdir reports it, this says so.
                Err(e) if e.loop_ancestor().is_some() => {
                    if let Some(path) = e.path() {
                        self.enter(path)?;
                    }
                }
                Err(e) => self.unreadable(e)?,
            }
        }
        Ok(())
    }

    /// Whether to walk the directory `dir`: not when it was walked already (through another
    /// link or input), which `revisit` is told.
    fn enter(&mut self, dir: &Path) -> std::io::Result<bool> {
        let canonical = std::fs::canonicalize(dir)?;
        if self.seen_dirs.insert(canonical.clone()) {
            return Ok(true);
        }
        (self.revisit)(dir, &canonical);
        Ok(false)
    }

    /// An entry of a walked directory that could not be read: a directory that cannot be listed
    /// fails the walk; anything else (a dangling link) is listed if it is named as audio, and
    /// reported when it is opened.
    fn unreadable(&mut self, e: walkdir::Error) -> std::io::Result<()> {
        match e.path() {
            Some(path) if !path.is_dir() => {
                if is_audio(path) {
                    self.file(path.to_path_buf());
                }
                Ok(())
            }
            _ => Err(e.into_io_error().unwrap_or_else(|| {
                std::io::Error::other("a directory walk failed with no reason given")
            })),
        }
    }
}

/// The texts of the files `path` names (itself, or the files with extension `ext` in it,
/// sorted), each with its path for errors.
fn read_texts(path: &Path, ext: &str) -> Result<Vec<(String, String)>, InputsError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InputsError::Read { path, source }
    };
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_error(path))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).map_err(read_error(f))?;
            Ok((f.display().to_string(), text))
        })
        .collect()
}

/// Reads the RTTM file `path`, or every `*.rttm` file in the directory `path`: turns by file id.
pub fn read_rttm_tree(path: &Path) -> Result<BTreeMap<String, Vec<Turn>>, InputsError> {
    Ok(rttm::parse_all(read_texts(path, "rttm")?)?)
}

/// Reads the UEM file `path`, or every `*.uem` file in the directory `path`: scored regions by
/// file id.
pub fn read_uem_tree(path: &Path) -> Result<BTreeMap<String, Vec<(u64, u64)>>, InputsError> {
    Ok(rttm::parse_uem_all(read_texts(path, "uem")?)?)
}

/// Fails, naming every clash, if two files share a file id.
fn refuse_shared_ids(files: &[PathBuf]) -> Result<(), InputsError> {
    let mut by_id: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        by_id.entry(file_id(f)).or_default().push(f.clone());
    }
    by_id.retain(|_, paths| paths.len() > 1);
    if by_id.is_empty() {
        Ok(())
    } else {
        Err(InputsError::SharedIds(by_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("diarist-inputs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn directories_are_walked_for_audio_once_each() {
        let dir = temp_dir("walk");
        std::fs::create_dir_all(dir.join("b")).unwrap();
        for f in ["b/two.FLAC", "one.wav", "notes.txt"] {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        std::os::unix::fs::symlink(&dir, dir.join("b/loop")).unwrap();
        let mut revisits = Vec::new();
        let named = dir.join("one.wav");
        let files = collect_inputs(&[dir.clone(), named], |d, c| {
            revisits.push((d.to_path_buf(), c.to_path_buf()))
        })
        .unwrap();
        assert_eq!(files, [dir.join("b/two.FLAC"), dir.join("one.wav")]);
        let canonical = std::fs::canonicalize(&dir).unwrap();
        assert_eq!(revisits, [(dir.join("b/loop"), canonical)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_manifest_lists_inputs_relative_to_itself() {
        let dir = temp_dir("manifest");
        let list = dir.join("list.txt");
        std::fs::write(&list, "# the archive\n a/one.wav \n\n/abs/two.flac\nsub\n").unwrap();
        let inputs = read_manifest(&list).unwrap();
        assert_eq!(
            inputs,
            [
                dir.join("a/one.wav"),
                PathBuf::from("/abs/two.flac"),
                dir.join("sub")
            ]
        );
        assert!(matches!(
            read_manifest(&dir.join("missing.txt")),
            Err(InputsError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_input_is_in_exactly_one_shard_whatever_the_order() {
        let files: Vec<PathBuf> = (0..103)
            .map(|i| PathBuf::from(format!("d{}/rec{i:03}.wav", i % 7)))
            .collect();
        let mut reversed = files.clone();
        reversed.reverse();
        for count in [1, 2, 3, 8, 200] {
            let mut seen = Vec::new();
            for index in 0..count {
                let shard: Shard = format!("{index}/{count}").parse().unwrap();
                let part = shard.select(files.clone());
                assert!(part.len().abs_diff(files.len() / count) <= 1, "{count}");
                let mut again = shard.select(reversed.clone());
                again.reverse();
                assert_eq!(part, again, "the split does not depend on the order");
                seen.extend(part);
            }
            seen.sort();
            let mut all = files.clone();
            all.sort();
            assert_eq!(seen, all, "{count} shards");
        }
        for bad in ["3/3", "1", "a/2", "1/0", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn inputs_sharing_a_file_id_are_refused_by_name() {
        let files = [
            PathBuf::from("a/x.wav"),
            PathBuf::from("b/x.flac"),
            PathBuf::from("y.wav"),
        ];
        let e = collect_inputs(&files, |_, _| {}).unwrap_err();
        assert_eq!(
            e.to_string(),
            "inputs share a file id, so they would write the same output file: `x`: a/x.wav, \
             b/x.flac; rename them or diarize them in separate runs with separate output directories"
        );
        assert!(is_audio(Path::new("a.Wave")) && !is_audio(Path::new("a.txt")));
    }

    #[test]
    fn rttm_and_uem_files_are_read_from_a_file_or_a_directory() {
        let dir = temp_dir("trees");
        std::fs::write(
            dir.join("b.rttm"),
            "SPEAKER b 1 0.0 1.0 <NA> <NA> B <NA> <NA>\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("a.rttm"),
            "SPEAKER a 1 0.5 1.0 <NA> <NA> A <NA> <NA>\n",
        )
        .unwrap();
        std::fs::write(dir.join("a.uem"), "a 1 0.0 2.0\n").unwrap();
        let turns = read_rttm_tree(&dir).unwrap();
        assert_eq!(turns.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!((turns["a"][0].start, turns["a"][0].end), (8_000, 24_000));
        assert_eq!(read_rttm_tree(&dir.join("b.rttm")).unwrap().len(), 1);
        assert_eq!(read_uem_tree(&dir).unwrap()["a"], [(0, 32_000)]);
        std::fs::write(dir.join("c.rttm"), "SPEAKER c 1 x\n").unwrap();
        let e = read_rttm_tree(&dir).unwrap_err();
        assert!(matches!(e, InputsError::Parse(_)), "{e}");
        let e = read_rttm_tree(&dir.join("none")).unwrap_err();
        assert!(matches!(e, InputsError::Read { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
