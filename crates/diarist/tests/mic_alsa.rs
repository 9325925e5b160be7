//! `diarist mic` against a real ALSA capture device: ALSA's `file` PCM plugin feeds the capture
//! side from a fixture (its `infile`), and a `hint` lists it so that cpal finds it by name.

use std::path::PathBuf;
use std::process::Command;

use diarist_core::der;
use diarist_core::rttm;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// cpal opens this device (a `null` slave accepts anything) at 44.1 kHz, two channels, `f32`:
/// the fixture is written in that format, and the test checks that cpal really chose it.
const RATE: u32 = 44_100;

#[test]
fn mic_diarizes_a_real_alsa_capture_device_fed_from_a_fixture() {
    let home = std::env::temp_dir().join(format!("diarist-alsa-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    let audio =
        diarist_audio::decode_all(&root().join("audio-fixtures/pyannote_sample.wav")).unwrap();
    let mut resampler = diarist_audio::Resampler::new(16_000, RATE).unwrap();
    let mut up = Vec::new();
    resampler.push(&audio, &mut up);
    resampler.finish(&mut up);
    let mut raw = Vec::with_capacity(up.len() * 8);
    for s in &up {
        raw.extend_from_slice(&s.to_le_bytes());
        raw.extend_from_slice(&s.to_le_bytes());
    }
    let infile = home.join("capture.raw");
    std::fs::write(&infile, raw).unwrap();
    std::fs::write(
        home.join(".asoundrc"),
        format!(
            "pcm.diarist_test {{\n  type file\n  slave.pcm \"null\"\n  file \"/dev/null\"\n  infile \"{}\"\n  format \"raw\"\n  hint {{\n    show on\n    description \"diarist test capture\"\n  }}\n}}\n",
            infile.display()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_diarist");
    let list = Command::new(bin)
        .args(["mic", "--list-devices"])
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(
        String::from_utf8_lossy(&list.stdout)
            .lines()
            .any(|l| l == "diarist_test"),
        "the hinted device is listed: {}",
        String::from_utf8_lossy(&list.stdout)
    );
    // The null slave is not paced: the whole file arrives at once. A buffer longer than the
    // fixture takes it all in; what comes after (endless silence) overflows and is reported.
    // A configuration file holds only the keys it changes; the binary of the build tree finds
    // the checkout's models and ONNX Runtime library itself.
    let config = home.join("buffer.toml");
    std::fs::write(&config, "[streaming]\nbuffer_secs = 40.0\n").unwrap();
    let out_rttm = home.join("mic.rttm");
    let out = Command::new(bin)
        .args([
            "mic",
            "--device",
            "diarist_test",
            "--duration",
            "3",
            "--json",
            "--rttm",
        ])
        .arg(&out_rttm)
        .arg("--config")
        .arg(&config)
        .env("HOME", &home)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{RATE} Hz, 2 channels, F32")),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "summary");
    assert_eq!(last["samples_final"], last["samples_in"]);
    assert!(last["samples_received"].as_u64().unwrap() >= audio.len() as u64);
    // The fixture's two speakers, at the right times.
    let hyp = rttm::parse(&std::fs::read_to_string(&out_rttm).unwrap()).unwrap();
    let reference = rttm::parse(
        &std::fs::read_to_string(root().join("audio-fixtures/pyannote_sample.rttm")).unwrap(),
    )
    .unwrap();
    let b = der::score(
        &reference["pyannote_sample"],
        &hyp["mic"],
        Some(&[(0, audio.len() as u64)]),
        0,
    );
    eprintln!("mic DER over the fixture: {:.2} %", 100.0 * b.der());
    assert!(b.der() < 0.15, "DER {:.2} %", 100.0 * b.der());
    let _ = std::fs::remove_dir_all(&home);
}
