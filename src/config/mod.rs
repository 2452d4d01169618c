//! One model of the daemon's configuration.
//!
//! `schema.rs` declares every key once (its doc is its `--help` line):
//! `Settings` is both the `run` command line (clap) and the TOML config
//! file (serde), so the two cannot drift apart. The file is read first
//! (`file.rs`), then flags override it (`Settings::overridden_by`), then
//! `Config::resolve` fills defaults and validates (`resolve.rs` for what is
//! more than a default), naming the key (and file) of anything wrong.

use std::path::PathBuf;

mod declare;
mod file;
mod resolve;
mod schema;

pub use schema::{Config, Isolation, Settings, STAT_FIELDS};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{key}: {message}{}", .file.as_ref().map(|f| format!(" (in {} or on the command line)", f.display())).unwrap_or_default())]
    Invalid {
        key: &'static str,
        message: String,
        file: Option<PathBuf>,
    },
}

impl Config {
    /// `idle_timeout` as a duration; 0 (no limit) as a century.
    pub fn idle_timeout(&self) -> std::time::Duration {
        const NEVER: u64 = 100 * 365 * 24 * 3600;
        std::time::Duration::from_secs(match self.idle_timeout {
            0 => NEVER,
            secs => secs.min(NEVER),
        })
    }

    /// Loads `--config` if given, applies the flags, validates.
    pub fn load(flags: Settings) -> Result<Config, ConfigError> {
        let file = flags.config.clone();
        Self::resolve(flags.with_config_file()?, file)
    }
}
