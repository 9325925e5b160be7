//! What a stream's events add up to: its final speaker turns, for writing RTTM or attributing
//! transcripts while the stream runs.

use std::collections::BTreeMap;

use diarist_core::rttm::{self, Turn};
use diarist_core::transcript::speaker_of;

use crate::stream::{Event, TurnStatus};

/// The final turns of one stream, built from its events: turns that ended, turns still going
/// on (final up to their `end`), and the first sample that is not final yet.
#[derive(Debug, Clone, Default)]
pub struct FinalTurns {
    /// Turns that ended, in the order they ended.
    closed: Vec<Turn>,
    /// Turns still going on, by speaker.
    open: BTreeMap<String, Turn>,
    /// First sample not final yet (`u64::MAX` once the stream has ended).
    frontier: u64,
}

impl FinalTurns {
    /// Takes note of one event.
    pub fn observe(&mut self, e: &Event) {
        match e {
            Event::Turn {
                status,
                speaker,
                start,
                end,
                ..
            } => {
                let turn = Turn {
                    start: *start,
                    end: *end,
                    speaker: speaker.clone(),
                };
                if *status == TurnStatus::Ended {
                    self.open.remove(speaker);
                    self.closed.push(turn);
                } else {
                    self.open.insert(speaker.clone(), turn);
                }
                self.frontier = self.frontier.max(*end);
            }
            Event::Tentative { from, .. } => self.frontier = self.frontier.max(*from),
            Event::Summary(_) => self.frontier = u64::MAX,
            Event::Speaker { .. } | Event::Overload { .. } | Event::Checkpoint { .. } => {}
        }
    }

    /// The turns that ended, in the order they ended.
    pub fn closed(&self) -> &[Turn] {
        &self.closed
    }

    /// The first sample that is not final yet (`u64::MAX` once the stream has ended).
    pub fn frontier(&self) -> u64 {
        self.frontier
    }

    /// The speaker who talks most in samples `[start, end)` among the final turns, ended or
    /// going on (ties go to the name first in order).
    pub fn speaker_of(&self, start: u64, end: u64) -> Option<&str> {
        speaker_of(self.closed.iter().chain(self.open.values()), start, end, 0)
    }

    /// RTTM text of the turns that ended, as file `id`, in order of their start.
    pub fn rttm(&self, id: &str) -> String {
        let mut turns = self.closed.clone();
        turns.sort_by_key(|t| (t.start, t.end));
        rttm::write(id, &turns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(status: TurnStatus, speaker: &str, start: u64, end: u64) -> Event {
        Event::Turn {
            status,
            speaker: speaker.into(),
            start,
            end,
            is_final: true,
        }
    }

    #[test]
    fn events_add_up_to_final_turns_and_a_frontier() {
        let mut t = FinalTurns::default();
        t.observe(&turn(TurnStatus::Started, "S1", 0, 100));
        t.observe(&turn(TurnStatus::Updated, "S1", 0, 300));
        assert_eq!(t.speaker_of(50, 250), Some("S1"));
        t.observe(&turn(TurnStatus::Started, "S2", 200, 400));
        t.observe(&turn(TurnStatus::Ended, "S1", 0, 320));
        t.observe(&Event::Tentative {
            is_final: false,
            from: 450,
            to: 900,
            turns: Vec::new(),
        });
        assert_eq!(t.frontier(), 450);
        assert_eq!(t.closed().len(), 1);
        assert_eq!(t.speaker_of(300, 400), Some("S2"));
        t.observe(&turn(TurnStatus::Ended, "S2", 200, 500));
        assert_eq!(
            t.rttm("x").lines().count(),
            2,
            "both turns, ordered by start"
        );
        assert!(t.rttm("x").lines().next().unwrap().contains(" S1 "));
    }
}
