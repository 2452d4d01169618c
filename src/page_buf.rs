//! Large I/O buffers mapped straight from the kernel.
//!
//! A worker is forked from the master and shares its heap copy-on-write.
//! A zeroed buffer from the heap is written in full when it is made (or
//! reuses freed memory among pages the worker shares), so a 64 KiB read
//! buffer costs the worker 16 private pages before it reads a byte. An
//! anonymous mapping costs a page only when that page is first written: a
//! buffer that only ever holds small requests stays one page.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// A zero-filled byte buffer of a fixed length, backed by its own mapping.
pub struct PageBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: PageBuf owns its mapping exclusively, as Box<[u8]> owns its heap
// block; nothing in it is tied to a thread.
unsafe impl Send for PageBuf {}
// SAFETY: shared references only read through Deref, as for Box<[u8]>.
unsafe impl Sync for PageBuf {}

impl PageBuf {
    /// `len` zero bytes (rounded up to whole pages in the mapping).
    pub fn zeroed(len: usize) -> PageBuf {
        assert!(len > 0, "PageBuf of zero bytes");
        // SAFETY: a new private anonymous mapping; no existing memory is
        // named, and the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            // As an allocation failure: the process cannot go on.
            std::alloc::handle_alloc_error(
                std::alloc::Layout::from_size_align(len, 1).expect("a valid buffer length"),
            );
        }
        PageBuf {
            ptr: NonNull::new(ptr.cast()).expect("mmap does not return null on success"),
            len,
        }
    }
}

impl Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes, zero-filled by the
        // kernel, and lives as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref; &mut self makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `zeroed`, unmapped once; no slice of
        // it outlives self.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_writable_and_sized() {
        let mut buf = PageBuf::zeroed(66 * 1024);
        assert_eq!(buf.len(), 66 * 1024);
        assert!(buf.iter().all(|&b| b == 0));
        buf[0] = 1;
        buf[66 * 1024 - 1] = 2;
        buf.copy_within(0..1, 5);
        assert_eq!((buf[0], buf[5], buf[66 * 1024 - 1]), (1, 1, 2));
    }
}
