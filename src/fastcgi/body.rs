//! Where a request body goes while it arrives: memory up to
//! [`Limits::spill_threshold`], then an unlinked temp file, and nowhere past
//! [`Limits::max_body`] (the request is then answered 413) or once the temp
//! file cannot be written (a full disk: answered 500). A refused body is
//! still read to its end, so the connection stays in step for its next
//! request. Temp files are anonymous from the start, so a killed worker
//! leaves nothing on disk, and a refused body's file is dropped at once,
//! giving its space back.

use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::request::{Body, BodyRefused, Limits};

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
/// once it exceeds `max_body` or the temp file fails.
pub(super) struct BodyBuilder {
    max_body: u64,
    spill_threshold: usize,
    len: u64,
    memory: Vec<u8>,
    file: Option<File>,
    refused: Option<BodyRefused>,
}

fn not_stored(source: io::Error) -> BodyRefused {
    BodyRefused::NotStored {
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
            refused: None,
        }
    }

    pub(super) fn push(&mut self, data: &[u8]) {
        if self.refused.is_some() {
            return;
        }
        let len = self.len + data.len() as u64;
        if self.max_body != 0 && len > self.max_body {
            return self.refuse(BodyRefused::TooLarge {
                limit: self.max_body,
                seen: len,
            });
        }
        self.len = len;
        if let Err(e) = self.store(data) {
            self.refuse(not_stored(e));
        }
    }

    fn store(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(file) = &mut self.file {
            return file.write_all(data);
        }
        if self.memory.len() + data.len() <= self.spill_threshold {
            self.memory.extend_from_slice(data);
            return Ok(());
        }
        let mut file = create_temp_file(&env::temp_dir())?;
        file.write_all(&self.memory)?;
        file.write_all(data)?;
        self.memory = Vec::new();
        self.file = Some(file);
        Ok(())
    }

    /// The rest of the body is read and dropped; what was kept goes now.
    fn refuse(&mut self, why: BodyRefused) {
        self.refused = Some(why);
        self.memory = Vec::new();
        self.file = None;
    }

    /// The body, or why it was discarded.
    pub(super) fn finish(mut self) -> (Body, Option<BodyRefused>) {
        if let Some(mut file) = self.file.take() {
            match file.rewind() {
                Ok(()) => return (Body::File(file), None),
                Err(e) => self.refuse(not_stored(e)),
            }
        }
        let body = match self.refused.is_none() && !self.memory.is_empty() {
            true => Body::Memory(self.memory),
            false => Body::Empty,
        };
        (body, self.refused)
    }
}
