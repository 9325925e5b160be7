//! A resuming client's output over the sessions it took: every sample final exactly once.
//!
//! Final turns are held until a `checkpoint` says their audio is final past them (the server
//! reports a window's turns before its checkpoint); when a connection is lost, the held turns
//! are cut at the last watermark (the next session reports the audio after it again) and turns
//! still open are ended there. A speaker announced again by a resumed session is not announced
//! twice.

use std::collections::{BTreeMap, BTreeSet};

use crate::protocol::{ServerMessage, TurnStatus};

/// Holds and releases one client's messages across its sessions.
#[derive(Debug, Default)]
pub struct Stitcher {
    /// Whether turns are held for checkpoints (off: every message passes at once).
    resumable: bool,
    held: Vec<ServerMessage>,
    watermark: u64,
    /// Turns released and not ended yet, by speaker: their start and end so far.
    open: BTreeMap<String, (u64, u64)>,
    announced: BTreeSet<String>,
}

impl Stitcher {
    /// A stitcher; `resumable` holds turns for checkpoints.
    pub fn new(resumable: bool) -> Self {
        Self {
            resumable,
            ..Self::default()
        }
    }

    /// The last watermark: samples final and released.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Takes one server message; passes what is due to `out`.
    pub fn push(&mut self, msg: ServerMessage, out: &mut impl FnMut(&ServerMessage)) {
        match &msg {
            ServerMessage::Turn { .. } if self.resumable => self.held.push(msg),
            ServerMessage::Checkpoint { samples_final, .. } => {
                self.watermark = self.watermark.max(*samples_final);
                let w = self.watermark;
                self.release(|end| end <= w, out);
                out(&msg);
            }
            ServerMessage::Speaker { speaker, .. } => {
                if self.announced.insert(speaker.clone()) {
                    out(&msg);
                }
            }
            ServerMessage::End(_) => {
                self.release(|_| true, out);
                out(&msg);
            }
            _ => {
                self.track(&msg);
                out(&msg);
            }
        }
    }

    /// The connection was lost: held turns are cut at the watermark (the rest will come again
    /// from the next session), and every open turn ends where it was final.
    pub fn cut(&mut self, out: &mut impl FnMut(&ServerMessage)) {
        let w = self.watermark;
        for msg in std::mem::take(&mut self.held) {
            if let ServerMessage::Turn {
                status,
                speaker,
                start,
                end,
                is_final,
            } = msg
                && start < w
            {
                let clipped = ServerMessage::Turn {
                    status,
                    speaker,
                    start,
                    end: end.min(w),
                    is_final,
                };
                self.track(&clipped);
                out(&clipped);
            }
        }
        for (speaker, (start, end)) in std::mem::take(&mut self.open) {
            out(&ServerMessage::Turn {
                status: TurnStatus::Ended,
                speaker,
                start,
                end,
                is_final: true,
            });
        }
    }

    /// Releases, in order, the held turns whose end `due` says is final.
    fn release(&mut self, due: impl Fn(u64) -> bool, out: &mut impl FnMut(&ServerMessage)) {
        let held = std::mem::take(&mut self.held);
        let (ready, keep): (Vec<_>, Vec<_>) = held
            .into_iter()
            .partition(|m| matches!(m, ServerMessage::Turn { end, .. } if due(*end)));
        self.held = keep;
        for m in ready {
            self.track(&m);
            out(&m);
        }
    }

    /// Keeps the open turns up to date with a released message.
    fn track(&mut self, msg: &ServerMessage) {
        if let ServerMessage::Turn {
            status,
            speaker,
            start,
            end,
            ..
        } = msg
        {
            match status {
                TurnStatus::Ended => self.open.remove(speaker),
                _ => self.open.insert(speaker.clone(), (*start, *end)),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(status: TurnStatus, speaker: &str, start: u64, end: u64) -> ServerMessage {
        ServerMessage::Turn {
            status,
            speaker: speaker.into(),
            start,
            end,
            is_final: true,
        }
    }

    fn checkpoint(at: u64) -> ServerMessage {
        ServerMessage::Checkpoint {
            samples_final: at,
            resend_from: at,
            token: "t".into(),
        }
    }

    /// The (status, speaker, start, end) of every turn `out` got.
    fn turns(got: &[ServerMessage]) -> Vec<(TurnStatus, String, u64, u64)> {
        got.iter()
            .filter_map(|m| match m {
                ServerMessage::Turn {
                    status,
                    speaker,
                    start,
                    end,
                    ..
                } => Some((*status, speaker.clone(), *start, *end)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn turns_wait_for_the_checkpoint_past_them() {
        let mut s = Stitcher::new(true);
        let mut got = Vec::new();
        let mut out = |m: &ServerMessage| got.push(m.clone());
        s.push(turn(TurnStatus::Started, "S1", 0, 100), &mut out);
        s.push(turn(TurnStatus::Ended, "S1", 0, 150), &mut out);
        s.push(checkpoint(120), &mut out);
        s.push(checkpoint(150), &mut out);
        let t = turns(&got);
        assert_eq!(t.len(), 2);
        assert_eq!(t[1], (TurnStatus::Ended, "S1".into(), 0, 150));
    }

    #[test]
    fn a_lost_connection_cuts_at_the_watermark_and_ends_open_turns() {
        let mut s = Stitcher::new(true);
        let mut got = Vec::new();
        let mut out = |m: &ServerMessage| got.push(m.clone());
        s.push(turn(TurnStatus::Started, "S1", 0, 100), &mut out);
        s.push(checkpoint(100), &mut out);
        s.push(turn(TurnStatus::Updated, "S1", 0, 180), &mut out);
        s.push(turn(TurnStatus::Started, "S2", 190, 200), &mut out);
        s.cut(&mut out);
        s.push(
            ServerMessage::Speaker {
                speaker: "S1".into(),
                enrolled: true,
            },
            &mut out,
        );
        assert_eq!(
            turns(&got),
            [
                (TurnStatus::Started, "S1".into(), 0, 100),
                (TurnStatus::Updated, "S1".into(), 0, 100),
                (TurnStatus::Ended, "S1".into(), 0, 100),
            ],
            "S1 is cut at the watermark 100; S2 started after it and comes again"
        );
        assert_eq!(s.watermark(), 100);
    }

    #[test]
    fn without_resumption_everything_passes_at_once() {
        let mut s = Stitcher::new(false);
        let mut got = Vec::new();
        let mut out = |m: &ServerMessage| got.push(m.clone());
        s.push(turn(TurnStatus::Started, "S1", 0, 100), &mut out);
        assert_eq!(turns(&got).len(), 1);
    }
}
