//! Where a request body goes while it arrives: memory up to
//! [`Limits::spill_threshold`], then an unlinked temp file, and nowhere past
//! [`Limits::max_body`] (the request is then answered 413). Temp files are
//! anonymous from the start, so a killed worker leaves nothing on disk.

use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::request::{Body, ConnectionError, Limits};

/// Creates an anonymous read-write file in `dir`: `O_TMPFILE` where the
/// kernel and file system support it, otherwise a file created with a unique
/// name (`O_CREAT|O_EXCL`, mode 0600, as `mkstemp` does) and unlinked at
/// once. Either way nothing is left on disk once the file is closed, even if
/// the process is killed.
pub fn create_temp_file(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
        .or_else(|_| create_unlinked_named(dir))
}

pub(super) fn create_unlinked_named(dir: &Path) -> io::Result<File> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const ATTEMPTS: u32 = 100;
    for _ in 0..ATTEMPTS {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            ".fcgi-spawn-body-{}-{}-{nanos}",
            process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => {
                fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no unused temp file name after {ATTEMPTS} attempts"),
    ))
}

/// Accumulates `FCGI_STDIN` in memory, then in a temp file, and discards it
/// once it exceeds `max_body`.
pub(super) struct BodyBuilder {
    max_body: u64,
    spill_threshold: usize,
    len: u64,
    memory: Vec<u8>,
    file: Option<File>,
    too_large: bool,
}

fn spill_error(source: io::Error) -> ConnectionError {
    ConnectionError::BodySpill {
        dir: env::temp_dir(),
        source,
    }
}

impl BodyBuilder {
    pub(super) fn new(limits: &Limits) -> BodyBuilder {
        BodyBuilder {
            max_body: limits.max_body,
            spill_threshold: limits.spill_threshold,
            len: 0,
            memory: Vec::new(),
            file: None,
            too_large: false,
        }
    }

    pub(super) fn push(&mut self, data: &[u8]) -> Result<(), ConnectionError> {
        if self.too_large {
            return Ok(());
        }
        let len = self.len + data.len() as u64;
        if self.max_body != 0 && len > self.max_body {
            self.too_large = true;
            self.memory = Vec::new();
            self.file = None;
            return Ok(());
        }
        self.len = len;
        if let Some(file) = &mut self.file {
            return file.write_all(data).map_err(spill_error);
        }
        if self.memory.len() + data.len() <= self.spill_threshold {
            self.memory.extend_from_slice(data);
            return Ok(());
        }
        let mut file = create_temp_file(&env::temp_dir()).map_err(spill_error)?;
        file.write_all(&self.memory).map_err(spill_error)?;
        file.write_all(data).map_err(spill_error)?;
        self.memory = Vec::new();
        self.file = Some(file);
        Ok(())
    }

    /// The body, and whether it was discarded for exceeding `max_body`.
    pub(super) fn finish(self) -> Result<(Body, bool), ConnectionError> {
        if self.too_large {
            return Ok((Body::Empty, true));
        }
        let body = match self.file {
            Some(mut file) => {
                file.rewind().map_err(spill_error)?;
                Body::File(file)
            }
            None if self.memory.is_empty() => Body::Empty,
            None => Body::Memory(self.memory),
        };
        Ok((body, false))
    }
}
