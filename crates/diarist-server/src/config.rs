//! `configs/server.toml`: where the service listens and its limits.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Settings of `diarist serve`; every value is written out in `configs/server.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The engine's configuration (models, streaming settings), relative to the directory above
    /// this file's directory.
    pub engine: std::path::PathBuf,
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
}

impl ServerConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut c: Self = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if c.engine.is_relative() {
            let base = path
                .canonicalize()
                .ok()
                .and_then(|p| p.parent()?.parent().map(Path::to_path_buf))
                .unwrap_or_default();
            c.engine = base.join(&c.engine);
        }
        c.validate()?;
        Ok(c)
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
        ] {
            if !positive(v) {
                return Err(format!("{name} must be positive"));
            }
        }
        if !(self.stats_interval_secs.is_finite() && self.stats_interval_secs >= 0.0) {
            return Err("stats_interval_secs must be 0 or positive".into());
        }
        Ok(())
    }
}
