//! Checkpoints: an opaque, signed token holding a session's position and its speakers' names and
//! voiceprints, with which another instance of the fleet resumes the session (its voiceprints
//! enrolled, its timestamps continued). The token is `base64url(payload).base64url(tag)`, the
//! tag an HMAC-SHA256 of the payload under the key the fleet shares; a token signed with another
//! key, or altered, is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use diarist_engine::Voiceprint;
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
    /// Every speaker so far, by the name its turns carry.
    pub speakers: Vec<Voiceprint>,
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
    speakers: Vec<Speaker>,
}

/// A speaker in the payload: the voiceprint as little-endian `f32`s in base64url.
#[derive(Serialize, Deserialize)]
struct Speaker {
    name: String,
    voiceprint: String,
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length")
}

impl Checkpoint {
    /// The token of this checkpoint signed with `key`.
    pub fn sign(&self, key: &[u8]) -> String {
        let speakers = (self.speakers.iter())
            .map(|v| Speaker {
                name: v.name.clone(),
                voiceprint: B64.encode(
                    v.embedding
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect::<Vec<u8>>(),
                ),
            })
            .collect();
        let payload = Payload {
            v: VERSION,
            position: self.position,
            resend_from: self.resend_from,
            speakers,
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
        let speakers = (p.speakers.into_iter())
            .map(|s| {
                let bytes = B64.decode(s.voiceprint).ok()?;
                let embedding = (bytes.chunks_exact(4).len() * 4 == bytes.len()).then(|| {
                    (bytes.chunks_exact(4))
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect()
                })?;
                Some(Voiceprint {
                    name: s.name,
                    embedding,
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or(CheckpointError::Malformed)?;
        if p.resend_from > p.position {
            return Err(CheckpointError::Malformed);
        }
        Ok(Self {
            position: p.position,
            resend_from: p.resend_from,
            speakers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            position: 123_456,
            resend_from: 27_456,
            speakers: vec![
                Voiceprint {
                    name: "S1".into(),
                    embedding: vec![0.5, -0.25, 1e-7, f32::MIN_POSITIVE],
                },
                Voiceprint {
                    name: "Ana".into(),
                    embedding: vec![0.0, 1.0, 0.0, 0.0],
                },
            ],
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
