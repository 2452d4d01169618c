//! The scripts a pool has served, in memory its processes share: what a
//! reload (SIGHUP) precompiles on its own in `registry` and `fork`
//! isolation, so that the new generation's workers do not make the next
//! visitors wait for the compiles the old ones had done (README
//! "Precompiling scripts").
//!
//! A fixed table mapped by the master before the first fork. A worker adds
//! a script the first time it serves it (it remembers what it reported, so
//! a request costs a hash lookup); an entry is claimed with one atomic
//! add and published with a release store, so readers see whole names
//! only. Two workers may add the same script: the master's reader drops
//! the duplicates. A full table takes no more (the first scripts served
//! are the ones kept).

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;

use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};

/// How many scripts the table holds.
pub const CAPACITY: usize = 1024;
/// The longest path kept (a longer one is not recorded).
const PATH_BYTES: usize = 248;

#[repr(C)]
struct Entry {
    /// 0 empty, 1 being written, 2 ready.
    state: AtomicU32,
    len: AtomicU32,
    path: [u8; PATH_BYTES],
}

#[repr(C)]
struct Table {
    next: AtomicUsize,
    entries: [Entry; CAPACITY],
}

static TABLE: OnceLock<SharedTable> = OnceLock::new();

struct SharedTable(NonNull<Table>);

// SAFETY: the table lives in a shared mapping for the life of the process
// and is only touched through atomics (and bytes published by them).
unsafe impl Send for SharedTable {}
// SAFETY: as above.
unsafe impl Sync for SharedTable {}

/// Maps the table: in the master, before the first fork (workers inherit
/// it). A second call keeps the first table.
pub fn map() -> std::io::Result<()> {
    if TABLE.get().is_some() {
        return Ok(());
    }
    let size = NonZeroUsize::new(std::mem::size_of::<Table>()).expect("non-empty table");
    // SAFETY: a fresh anonymous shared mapping of the table's size,
    // zero-filled by the kernel: an empty table (all states 0, next 0).
    let ptr = unsafe {
        mmap_anonymous(
            None,
            size,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )?
    };
    let _ = TABLE.set(SharedTable(ptr.cast()));
    Ok(())
}

fn table() -> Option<&'static Table> {
    // SAFETY: mapped by `map`, never unmapped.
    TABLE.get().map(|t| unsafe { t.0.as_ref() })
}

/// A worker's record of what it reported, so each script is written once.
#[derive(Default)]
pub struct Reporter {
    reported: HashSet<PathBuf>,
}

impl Reporter {
    /// `script` was served: added to the table the first time.
    pub fn served(&mut self, script: &Path) {
        if self.reported.contains(script) {
            return;
        }
        self.reported.insert(script.to_path_buf());
        record(script);
    }
}

fn record(script: &Path) {
    let Some(table) = table() else { return };
    let bytes = script.as_os_str().as_bytes();
    if bytes.len() > PATH_BYTES {
        return;
    }
    let index = table.next.fetch_add(1, Ordering::Relaxed);
    let Some(entry) = table.entries.get(index) else {
        table.next.store(CAPACITY, Ordering::Relaxed);
        return;
    };
    entry.state.store(1, Ordering::Relaxed);
    // SAFETY: this process claimed the entry with the atomic add: nobody
    // else writes it, and readers look at it only once state is 2.
    unsafe {
        let dst = entry.path.as_ptr() as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
    }
    entry.len.store(bytes.len() as u32, Ordering::Relaxed);
    entry.state.store(2, Ordering::Release);
}

/// The scripts served so far, each once, in the order first served.
pub fn list() -> Vec<PathBuf> {
    let Some(table) = table() else {
        return Vec::new();
    };
    let filled = table.next.load(Ordering::Relaxed).min(CAPACITY);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for entry in &table.entries[..filled] {
        if entry.state.load(Ordering::Acquire) != 2 {
            continue;
        }
        let len = (entry.len.load(Ordering::Relaxed) as usize).min(PATH_BYTES);
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&entry.path[..len]));
        if seen.insert(path.clone()) {
            out.push(path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_scripts_are_listed_once_each_in_order() {
        map().unwrap();
        let mut a = Reporter::default();
        let mut b = Reporter::default();
        a.served(Path::new("/srv/www/a.pl"));
        a.served(Path::new("/srv/www/a.pl"));
        b.served(Path::new("/srv/www/b.pl"));
        b.served(Path::new("/srv/www/a.pl"));
        let long = format!("/{}", "x".repeat(PATH_BYTES + 1));
        a.served(Path::new(&long));
        let listed = list();
        let a_at = listed.iter().position(|p| p == Path::new("/srv/www/a.pl"));
        let b_at = listed.iter().position(|p| p == Path::new("/srv/www/b.pl"));
        assert!(
            a_at.is_some() && b_at.is_some() && a_at < b_at,
            "{listed:?}"
        );
        assert_eq!(
            listed
                .iter()
                .filter(|p| *p == Path::new("/srv/www/a.pl"))
                .count(),
            1
        );
        assert!(!listed.iter().any(|p| p.as_os_str().len() > PATH_BYTES));
    }
}
