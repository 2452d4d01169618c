//! Descriptor plumbing shared by the runner, the output channel and the
//! log. Descriptors 0/1/2 belong to the request while a script runs (its
//! body, the stdout and stderr pipes) and are set with `dup2`; everything
//! the daemon keeps for itself lives above them, close-on-exec, so no
//! `dup2` onto 0/1/2 and no script's `exec` can touch it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Moves `fd` to a number ≥ 3 (close-on-exec), so no dup2 onto 0/1/2 can
/// ever close it.
pub fn above_std_fds(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    dup_above_std(fd.as_raw_fd())
}

/// A close-on-exec duplicate of `fd`, numbered ≥ 3.
pub fn dup_above_std(fd: RawFd) -> io::Result<OwnedFd> {
    let copy = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// Points descriptor `to` (one of 0/1/2) at what `from` is open on. The
/// std descriptors are owned by the runner, never by Rust objects, so
/// replacing them closes nothing a Rust value holds.
pub fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    if from != to {
        nix::unistd::dup2(from, to)?;
    }
    Ok(())
}
