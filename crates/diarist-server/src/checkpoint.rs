//! Checkpoints: an opaque, signed token holding a session's position and its stream's state (its
//! speakers' names and voiceprints, and the tallies of the frames not final yet), with which
//! another instance of the fleet resumes the session where it was: the same decisions from there
//! on, the same names, its timestamps continued. The token is `base64url(payload).base64url(tag)`,
//! the tag an HMAC-SHA256 of the payload (JSON) under the key the fleet shares; a token signed
//! with another key, or altered, is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use diarist_engine::ResumeState;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The format version a token carries.
const VERSION: u32 = 1;

/// A session's state at a point where everything before is final.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Samples (16 kHz) from the start of the client's audio that are final.
    pub position: u64,
    /// Where a resumed session's audio starts: some audio before `position` is heard again as
    /// warm-up (context for the windows after it).
    pub resend_from: u64,
    /// The stream's backbone phase, which the resumed stream takes too (so that it runs the
    /// embedding backbone for the same windows).
    pub backbone_phase: usize,
    /// The stream's state, positions from the start of the client's audio.
    pub state: ResumeState,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// Not a token of this format.
    #[error("not a checkpoint token")]
    Malformed,
    /// The signature does not match this server's key (another fleet's key, or altered).
    #[error("the checkpoint's signature does not match this server's key")]
    Signature,
    /// A version this server does not read.
    #[error("checkpoint version {0} is not supported (this server reads {VERSION})")]
    Version(u32),
}

/// The payload as it is signed.
#[derive(Serialize, Deserialize)]
struct Payload {
    v: u32,
    position: u64,
    resend_from: u64,
    backbone_phase: usize,
    state: ResumeState,
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length")
}

impl Checkpoint {
    /// The token of this checkpoint signed with `key`.
    pub fn sign(&self, key: &[u8]) -> String {
        let payload = Payload {
            v: VERSION,
            position: self.position,
            resend_from: self.resend_from,
            backbone_phase: self.backbone_phase,
            state: self.state.clone(),
        };
        let body = serde_json::to_vec(&payload).expect("the payload serialises");
        let mut m = mac(key);
        m.update(&body);
        let tag = m.finalize().into_bytes();
        format!("{}.{}", B64.encode(&body), B64.encode(tag))
    }

    /// The checkpoint in `token`, when its signature under `key` holds.
    pub fn verify(token: &str, key: &[u8]) -> Result<Self, CheckpointError> {
        let (body, tag) = token.split_once('.').ok_or(CheckpointError::Malformed)?;
        let body = B64.decode(body).map_err(|_| CheckpointError::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| CheckpointError::Malformed)?;
        let mut m = mac(key);
        m.update(&body);
        // Compared in constant time.
        m.verify_slice(&tag)
            .map_err(|_| CheckpointError::Signature)?;
        let p: Payload = serde_json::from_slice(&body).map_err(|_| CheckpointError::Malformed)?;
        if p.v != VERSION {
            return Err(CheckpointError::Version(p.v));
        }
        if p.resend_from > p.position || p.resend_from > p.state.next_window {
            return Err(CheckpointError::Malformed);
        }
        Ok(Self {
            position: p.position,
            resend_from: p.resend_from,
            backbone_phase: p.backbone_phase,
            state: p.state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diarist_core::online::{DiarizerState, FrameState, SpeakerState};

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            position: 123_456,
            resend_from: 27_456,
            backbone_phase: 1,
            state: ResumeState {
                next_window: 112_000,
                diarizer: DiarizerState {
                    speakers: vec![
                        SpeakerState {
                            name: "S1".into(),
                            sum: vec![0.5, -0.25, 1e-7, f32::MIN_POSITIVE],
                            count: Some(3.0),
                            enrolled: false,
                            confirmed: false,
                            joined: Some(1),
                        },
                        SpeakerState {
                            name: "Ana".into(),
                            sum: vec![0.0, 7.0, 0.0, 0.0],
                            count: None,
                            enrolled: true,
                            confirmed: true,
                            joined: None,
                        },
                    ],
                    frontier: 437,
                    frames: vec![FrameState {
                        weight: 1.5,
                        count: 0.75,
                        speakers: vec![(1, 0.7)],
                    }],
                },
            },
        }
    }

    #[test]
    fn a_token_reads_back_exactly_under_its_key_only() {
        let c = checkpoint();
        let token = c.sign(b"fleet key");
        assert_eq!(Checkpoint::verify(&token, b"fleet key"), Ok(c));
        assert_eq!(
            Checkpoint::verify(&token, b"another key"),
            Err(CheckpointError::Signature)
        );
    }

    #[test]
    fn altered_or_foreign_tokens_are_refused() {
        let token = checkpoint().sign(b"k");
        let (body, tag) = token.split_once('.').unwrap();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&B64.decode(body).unwrap()).unwrap();
        payload["position"] = 1.into();
        let forged = format!("{}.{tag}", B64.encode(payload.to_string()));
        assert_eq!(
            Checkpoint::verify(&forged, b"k"),
            Err(CheckpointError::Signature)
        );
        for bad in ["", "abc", "a.b.c", "!!.!!"] {
            assert!(Checkpoint::verify(bad, b"k").is_err(), "{bad}");
        }
    }
}
