//! The server's configuration, `configs/server.toml`: where the service listens and its limits
//! (`diarist-config` composes it from the compiled-in defaults and the files found).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Settings of `diarist serve`; every value is written out in `configs/server.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The engine's configuration file, merged over the engine configuration files found as for
    /// every other command; empty for none ([`ServerConfig::engine_file`]). Relative to the
    /// directory of the file that sets it.
    pub engine: PathBuf,
    /// Address and port to listen on.
    pub listen: String,
    /// Bearer token every connection must present (header `Authorization: Bearer T`, or
    /// `?token=T` for browsers). Empty: the environment variable `DIARIST_TOKEN` must give one.
    pub token: String,
    /// Most sessions at once; further connections get HTTP 503.
    pub max_sessions: usize,
    /// Largest WebSocket frame or message, bytes.
    pub max_frame_bytes: usize,
    /// Longest session, seconds of audio received; then it is flushed and ended.
    pub max_session_secs: f64,
    /// A session that receives nothing for this long is flushed and ended, seconds.
    pub idle_timeout_secs: f64,
    /// Time a client has to send its HTTP request head, seconds (slow clients are dropped).
    pub handshake_timeout_secs: f64,
    /// Longest HTTP request head, bytes.
    pub max_header_bytes: usize,
    /// A client that does not read what the server sends for this long is dropped, seconds.
    pub send_timeout_secs: f64,
    /// Interval of `stats` messages, seconds (0: none).
    pub stats_interval_secs: f64,
    /// Transcript segments of one session that may wait for their audio to become final; more
    /// are refused with a `bad_message` error.
    pub max_pending_transcripts: usize,
    /// PII taggers (worker threads) shared by every session's transcript redaction.
    pub redaction_workers: usize,
    /// Transcripts that may wait for a free tagger; a session sending more waits its turn.
    pub redaction_queue: usize,
    /// On SIGTERM, how long sessions may go on (readiness failing, new sessions refused) before
    /// they are flushed and ended with `shutting_down`, seconds (0: at once).
    pub drain_timeout_secs: f64,
    /// The `retry_after_secs` of a `busy` refusal (and the `Retry-After` of an HTTP 503).
    pub busy_retry_after_secs: u64,
    /// Not ready, and new sessions refused as `busy`, while the engine's batcher holds more than
    /// this many jobs waiting for a worker (0: no limit).
    pub ready_max_queued_jobs: u64,
    /// Not ready, and new sessions refused as `busy`, while the process uses more than this
    /// share of the machine's cores (over the last second or more; 0: no limit).
    pub ready_max_cpu: f64,
    /// The key the fleet shares to sign and check checkpoint tokens (HMAC-SHA256). Empty: the
    /// environment variable `DIARIST_CHECKPOINT_KEY` gives it, else checkpoints are off.
    pub checkpoint_key: String,
    /// Least time between two `checkpoint` messages to a session, seconds.
    pub checkpoint_interval_secs: f64,
}

impl ServerConfig {
    /// The engine's configuration file that `engine` names, if any.
    pub fn engine_file(&self) -> Option<&Path> {
        (!self.engine.as_os_str().is_empty()).then_some(self.engine.as_path())
    }

    /// Checks every value.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if self.max_sessions == 0 {
            return Err("max_sessions must be at least 1".into());
        }
        if self.max_frame_bytes < 1024 {
            return Err("max_frame_bytes must be at least 1024".into());
        }
        if self.max_header_bytes < 512 {
            return Err("max_header_bytes must be at least 512".into());
        }
        for (v, name) in [
            (self.max_session_secs, "max_session_secs"),
            (self.idle_timeout_secs, "idle_timeout_secs"),
            (self.handshake_timeout_secs, "handshake_timeout_secs"),
            (self.send_timeout_secs, "send_timeout_secs"),
            (self.checkpoint_interval_secs, "checkpoint_interval_secs"),
        ] {
            if !positive(v) {
                return Err(format!("{name} must be positive"));
            }
        }
        for (v, name) in [
            (self.stats_interval_secs, "stats_interval_secs"),
            (self.drain_timeout_secs, "drain_timeout_secs"),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} must be 0 or positive"));
            }
        }
        if !(self.ready_max_cpu.is_finite() && (0.0..=1.0).contains(&self.ready_max_cpu)) {
            return Err("ready_max_cpu must be between 0 (no limit) and 1".into());
        }
        if self.max_pending_transcripts == 0
            || self.redaction_workers == 0
            || self.redaction_queue == 0
        {
            return Err(
                "max_pending_transcripts, redaction_workers and redaction_queue must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}
