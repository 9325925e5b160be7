//! A stream's events as a person reads them: a line for each new speaker, ended turn, overload
//! and the summary, and a status line for the tentative tail that the next event replaces.

use std::io::{IsTerminal, Write};
use std::path::Path;

use diarist_core::SAMPLE_RATE;

use crate::FinalTurns;
use crate::output::write_atomic;
use crate::stream::{Event, Summary, TurnStatus};

/// What a reader is shown of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// A line that stays.
    Line(String),
    /// A status line (no newline), replaced by whatever is shown next.
    Status(String),
}

/// Samples as `mm:ss.ss`.
pub fn clock(samples: u64) -> String {
    let s = samples as f64 / f64::from(SAMPLE_RATE);
    format!("{:02}:{:05.2}", (s / 60.0).floor() as u64, s % 60.0)
}

/// What `e` shows: nothing for turns that start or go on (they show when they end).
pub fn show(e: &Event) -> Option<Shown> {
    Some(match e {
        Event::Speaker { speaker, enrolled } => Shown::Line(format!(
            "  new speaker {speaker}{}",
            if *enrolled { " (enrolled)" } else { "" }
        )),
        Event::Turn {
            status: TurnStatus::Ended,
            speaker,
            start,
            end,
            ..
        } => Shown::Line(format!("{} – {}  {speaker}", clock(*start), clock(*end))),
        Event::Turn { .. } | Event::Checkpoint { .. } => return None,
        Event::Tentative {
            from, to, turns, ..
        } => {
            let now: Vec<String> = turns
                .iter()
                .filter(|t| t.end >= *to)
                .map(|t| t.speaker.clone().unwrap_or_else(|| "?".into()))
                .collect();
            Shown::Status(format!(
                "  [{} final, {} heard] speaking now: {}",
                clock(*from),
                clock(*to),
                if now.is_empty() {
                    "nobody".into()
                } else {
                    now.join(", ")
                }
            ))
        }
        Event::Overload { at, samples } => Shown::Line(format!(
            "  overload: {} of audio lost at {}",
            clock(*samples),
            clock(*at)
        )),
        Event::Summary(s) => Shown::Line(format!(
            "{} of audio, {} final, {} lost; speakers: {}",
            clock(s.samples_in),
            clock(s.samples_final),
            clock(s.samples_lost),
            s.speakers.join(", ")
        )),
    })
}

/// One line on a finished stream among several: how much became final, how much was lost, how
/// many speakers.
pub fn stream_line(s: &Summary) -> String {
    format!(
        "{} final, {} lost, {} speakers",
        clock(s.samples_final),
        clock(s.samples_lost),
        s.speakers.len()
    )
}

/// One line on how a stream among several ended: [`stream_line`], or its error with its causes.
pub fn stream_result_line<E: std::error::Error>(result: &Result<Summary, E>) -> String {
    let e = match result {
        Ok(s) => return stream_line(s),
        Err(e) => e,
    };
    let mut line = format!("error: {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        line += &format!(": {c}");
        cause = c.source();
    }
    line
}

/// Shows one stream's events (a live view on a terminal, JSON lines otherwise) and keeps its
/// final turns.
pub struct EventSink {
    /// On a terminal: whether a status line is showing (the next event replaces it).
    view: Option<bool>,
    /// The final turns seen so far.
    pub turns: FinalTurns,
}

impl EventSink {
    /// A sink printing JSON lines when `json` or when standard output is not a terminal.
    pub fn new(json: bool) -> Self {
        let live = std::io::stdout().is_terminal() && !json;
        Self {
            view: live.then_some(false),
            turns: FinalTurns::default(),
        }
    }

    /// Shows and records one event.
    pub fn handle(&mut self, e: &Event) {
        self.turns.observe(e);
        let Some(status) = &mut self.view else {
            if let Ok(line) = serde_json::to_string(e) {
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
            return;
        };
        let mut err = std::io::stderr().lock();
        if std::mem::take(status) {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = match show(e) {
            Some(Shown::Line(line)) => writeln!(err, "{line}"),
            Some(Shown::Status(line)) => {
                *status = true;
                write!(err, "{line}")
            }
            None => Ok(()),
        };
        let _ = err.flush();
    }

    /// Writes the final turns as RTTM for `id` to `path`.
    pub fn write_rttm(&self, path: &Path, id: &str) -> std::io::Result<()> {
        write_atomic(path, &self.turns.rttm(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::TentativeTurn;

    #[test]
    fn events_show_as_lines_and_the_tentative_tail_as_status() {
        assert_eq!(clock(16_000 * 75 + 8_000), "01:15.50");
        let turn = |status| Event::Turn {
            status,
            speaker: "S1".into(),
            start: 16_000,
            end: 48_000,
            is_final: true,
        };
        assert_eq!(show(&turn(TurnStatus::Started)), None);
        assert_eq!(
            show(&turn(TurnStatus::Ended)),
            Some(Shown::Line("00:01.00 – 00:03.00  S1".into()))
        );
        let tentative = Event::Tentative {
            is_final: false,
            from: 0,
            to: 32_000,
            turns: vec![
                TentativeTurn {
                    speaker: None,
                    start: 0,
                    end: 32_000,
                },
                TentativeTurn {
                    speaker: Some("S2".into()),
                    start: 0,
                    end: 16_000,
                },
            ],
        };
        assert_eq!(
            show(&tentative),
            Some(Shown::Status(
                "  [00:00.00 final, 00:02.00 heard] speaking now: ?".into()
            ))
        );
        let summary = Summary {
            sample_rate: 16_000,
            samples_in: 32_000,
            samples_received: 32_000,
            samples_lost: 0,
            samples_final: 32_000,
            windows: 1,
            embeddings: 1,
            speakers: vec!["S1".into(), "S2".into()],
        };
        assert_eq!(
            stream_line(&summary),
            "00:02.00 final, 00:00.00 lost, 2 speakers"
        );
        assert_eq!(
            show(&Event::Summary(summary)),
            Some(Shown::Line(
                "00:02.00 of audio, 00:02.00 final, 00:00.00 lost; speakers: S1, S2".into()
            ))
        );
    }
}
