//! `diarist eval`: DER of hypothesis RTTM against reference RTTM, per file and pooled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use diarist_core::der::{self, DerBreakdown};
use diarist_core::rttm::{self, Turn};

/// Arguments of `diarist eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// Reference RTTM file, or a directory of *.rttm files.
    #[arg(long = "ref")]
    pub reference: PathBuf,
    /// Hypothesis RTTM file, or a directory of *.rttm files.
    #[arg(long = "hyp")]
    pub hypothesis: PathBuf,
    /// UEM file, or a directory of *.uem files: the scored regions (default: the extent of both).
    #[arg(long)]
    pub uem: Option<PathBuf>,
    /// Total collar in seconds removed around each reference boundary (half on each side).
    #[arg(long, default_value_t = 0.0)]
    pub collar: f64,
    /// Print a JSON report instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The texts of the files a path names (itself, or the files with extension `ext` in it, sorted),
/// each with its path for errors.
fn read_texts(path: &Path, ext: &str) -> anyhow::Result<Vec<(String, String)>> {
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
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
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            Ok((f.display().to_string(), text))
        })
        .collect()
}

/// Reads every RTTM file a path names, merged by file id.
pub fn read_rttm_tree(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<Turn>>> {
    Ok(rttm::parse_all(read_texts(path, "rttm")?)?)
}

/// Reads every UEM file a path names, merged by file id.
pub fn read_uem_tree(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<(u64, u64)>>> {
    Ok(rttm::parse_uem_all(read_texts(path, "uem")?)?)
}

/// Scores every reference file id; ids missing from the hypothesis are all missed.
pub fn score_all(
    refs: &BTreeMap<String, Vec<Turn>>,
    hyps: &BTreeMap<String, Vec<Turn>>,
    uems: Option<&BTreeMap<String, Vec<(u64, u64)>>>,
    collar_secs: f64,
) -> Vec<(String, DerBreakdown, bool)> {
    let collar = rttm::secs_to_samples(collar_secs);
    refs.iter()
        .map(|(id, reference)| {
            let hyp = hyps.get(id);
            let uem = uems.and_then(|u| u.get(id)).map(Vec::as_slice);
            let b = der::score(reference, hyp.map_or(&[][..], Vec::as_slice), uem, collar);
            (id.clone(), b, hyp.is_some())
        })
        .collect()
}

/// Runs `diarist eval`.
pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.collar.is_finite() && args.collar >= 0.0,
        "--collar must be a non-negative number of seconds"
    );
    let refs = read_rttm_tree(&args.reference)?;
    anyhow::ensure!(
        !refs.is_empty(),
        "no reference turns in {}",
        args.reference.display()
    );
    let hyps = read_rttm_tree(&args.hypothesis)?;
    let uems = args.uem.as_deref().map(read_uem_tree).transpose()?;
    let rows = score_all(&refs, &hyps, uems.as_ref(), args.collar);
    let mut pooled = DerBreakdown::default();
    for (_, b, _) in &rows {
        pooled += *b;
    }
    let pct = |v: f64| (v * 10000.0).round() / 100.0;
    if args.json {
        let row = |id: &str, b: &DerBreakdown, found: bool| {
            serde_json::json!({
                "file_id": id, "der": pct(b.der()), "miss": pct(b.rate(b.miss)),
                "false_alarm": pct(b.rate(b.false_alarm)), "confusion": pct(b.rate(b.confusion)),
                "reference_speech_secs": rttm::samples_to_secs(b.total), "in_hypothesis": found,
            })
        };
        let report = serde_json::json!({
            "collar_secs": args.collar,
            "files": rows.iter().map(|(id, b, f)| row(id, b, *f)).collect::<Vec<_>>(),
            "pooled": row("POOLED", &pooled, true),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "collar {:.3} s, overlap scored, optimal mapping",
            args.collar
        );
        println!(
            "{:<32} {:>8} {:>8} {:>8} {:>8} {:>10}",
            "file", "DER%", "miss%", "FA%", "conf%", "speech s"
        );
        let line = |id: &str, b: &DerBreakdown, note: &str| {
            println!(
                "{:<32} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.2}{note}",
                id,
                100.0 * b.der(),
                100.0 * b.rate(b.miss),
                100.0 * b.rate(b.false_alarm),
                100.0 * b.rate(b.confusion),
                rttm::samples_to_secs(b.total)
            )
        };
        for (id, b, found) in &rows {
            line(id, b, if *found { "" } else { "  (no hypothesis)" });
        }
        line("POOLED", &pooled, "");
    }
    Ok(ExitCode::SUCCESS)
}
