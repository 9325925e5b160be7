//! `diarist eval` agrees with pyannote.metrics: the figures in audio-fixtures/der/expected.json
//! were computed by pyannote.metrics 4.2 on the same references, UEMs and hypotheses
//! (tools/check_der_pyannote.py).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn eval_matches_pinned_pyannote_metrics_figures() {
    let der = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../audio-fixtures/der");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(der.join("expected.json")).unwrap()).unwrap();
    let mut checked = 0;
    for (key, rows) in expected.as_object().unwrap() {
        let (set, collar) = key.split_once('@').unwrap();
        let dir = der.join(set);
        let out = Command::new(env!("CARGO_BIN_EXE_diarist"))
            .args(["eval", "--json", "--collar", collar])
            .arg("--ref")
            .arg(dir.join("ref"))
            .arg("--hyp")
            .arg(dir.join("hyp"))
            .arg("--uem")
            .arg(dir.join("ref"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ours = |id: &str| {
            if id == "POOLED" {
                report["pooled"]["der"].as_f64().unwrap()
            } else {
                let files = report["files"].as_array().unwrap();
                files.iter().find(|r| r["file_id"] == id).unwrap()["der"]
                    .as_f64()
                    .unwrap()
            }
        };
        for (id, theirs) in rows.as_object().unwrap() {
            let theirs = theirs.as_f64().unwrap();
            let diff = (ours(id) - theirs).abs();
            assert!(
                diff <= 0.1,
                "{key} {id}: diarist {} vs pyannote.metrics {theirs}",
                ours(id)
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 38, "figures checked");
}
