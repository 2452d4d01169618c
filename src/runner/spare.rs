//! `fork` isolation's request child, forked before its request comes.
//!
//! Forking the child once the request has arrived put the fork on the
//! request's path (half a millisecond of page tables copied here), and
//! waiting for the child's exit put the kernel's teardown of its address
//! space there too. Now the worker forks the child between requests, as a
//! *spare* waiting on a socket pair, and hands it the request there: its
//! fds 0/1/2 (`SCM_RIGHTS`), the script's path and the params. The child
//! reports its exit status on the same socket and closes its descriptors
//! before it exits (`Interpreter::report_exit_on`): the response ends on
//! that, and the worker reaps the child after the response.
//!
//! A spare is a copy of the worker as it was when forked. The runner
//! keeps one only while no Perl runs in the worker: a compile, a
//! `perlrun` or `registry` request discards it first (a script's `wait`
//! in the worker would otherwise wait for it for ever).
//!
//! While it waits, a spare also writes the heap pages a recent child
//! wrote ([`prefault`]; one child in 32 reports them, [`Reported`]): most
//! of a child's run is copying those pages from the worker, one fault
//! each, which a request that comes alone then does not wait for.

use std::io;
use std::iter;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{recvmsg, send, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, read, ForkResult, Pid};

use crate::fds::dup2;

/// The worker's side of a spare child.
pub struct Spare {
    pid: Pid,
    sock: UnixStream,
}

/// Which side of [`Spare::fork`] this is.
pub enum Forked {
    /// The worker, with its new spare.
    Spare(Spare),
    /// The spare, with its end of the socket pair.
    InSpare(UnixStream),
}

/// A request as the spare receives it (fds 0/1/2 are in place already):
/// the script's path, then the params, names and values in turn.
pub struct Handoff {
    message: Vec<u8>,
}

impl Handoff {
    pub fn fields(&self) -> Fields<'_> {
        Fields(&self.message)
    }
}

/// Each field's length precedes it.
type FieldLen = u32;
/// The whole message's length precedes it.
type MessageLen = u64;

impl Spare {
    /// Forks a spare. In the child, `close_in_child` (the connections the
    /// worker holds: a copy kept there would hold a connection open after
    /// the worker closed it) are closed before this returns.
    pub fn fork(close_in_child: &[RawFd]) -> io::Result<Forked> {
        let (ours, theirs) = UnixStream::pair()?;
        // SAFETY: the child only runs this thread's interpreter and plain
        // system calls (`Runner::spare_main`), never a lock the worker's
        // other thread may have held at the fork.
        match unsafe { fork() }? {
            ForkResult::Child => {
                drop(ours);
                for &fd in close_in_child {
                    let _ = nix::unistd::close(fd);
                }
                Ok(Forked::InSpare(theirs))
            }
            ForkResult::Parent { child } => Ok(Forked::Spare(Spare {
                pid: child,
                sock: ours,
            })),
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Hands the request to the spare: this process's fds 0/1/2 as they
    /// are now, the script and the params.
    pub fn hand(&self, script: &[u8], params: &[&[u8]]) -> io::Result<()> {
        let fields = || iter::once(script).chain(params.iter().copied());
        let body_len: usize = fields().map(|f| size_of::<FieldLen>() + f.len()).sum();
        let mut message = Vec::with_capacity(size_of::<MessageLen>() + body_len);
        message.extend_from_slice(&(body_len as MessageLen).to_ne_bytes());
        for field in fields() {
            let len = FieldLen::try_from(field.len())
                .map_err(|_| io::Error::other("a request param over 4 GiB"))?;
            message.extend_from_slice(&len.to_ne_bytes());
            message.extend_from_slice(field);
        }
        let fd = self.sock.as_raw_fd();
        let std_fds: [RawFd; 3] = [0, 1, 2];
        // MSG_NOSIGNAL: a spare that died is an error here, not a SIGPIPE
        // (the runner's signal to stop a script).
        let mut sent = loop {
            match sendmsg::<()>(
                fd,
                &[io::IoSlice::new(&message)],
                &[ControlMessage::ScmRights(&std_fds)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(Errno::EINTR) => continue,
                other => break other?,
            }
        };
        while sent < message.len() {
            match send(fd, &message[sent..], MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => sent += n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Waits for the end of the script the spare was handed: its exit
    /// status as the child reported it (then the child is still to be
    /// reaped, and has more to tell: [`Reported`]), or, when it ended
    /// without a report (killed, `POSIX::_exit`, `exec`), as its exit
    /// gives it.
    pub fn wait(self) -> (i32, Option<Reported>) {
        let mut report = [0u8; size_of::<i32>()];
        if read_exactly(self.sock.as_raw_fd(), &mut report).is_some() {
            let reported = Reported {
                pid: self.pid,
                sock: self.sock,
            };
            (i32::from_ne_bytes(report), Some(reported))
        } else {
            (reap(self.pid), None)
        }
    }

    /// Ends a spare that will not be used.
    pub fn discard(self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        reap(self.pid);
    }
}

/// A request's child that reported its exit status, on its way out.
pub struct Reported {
    pid: Pid,
    sock: UnixStream,
}

impl Reported {
    /// The pages the child wrote since its fork, as (start, length)
    /// ranges, if it was asked and said; then its end.
    pub fn written_pages_and_reap(self) -> Option<Vec<(usize, usize)>> {
        let fd = self.sock.as_raw_fd();
        let mut count = [0u8; size_of::<u64>()];
        let mut pages = None;
        let n = read_exactly(fd, &mut count).map(|()| u64::from_ne_bytes(count));
        if let Some(n) = n.filter(|&n| n <= MAX_WRITTEN_RANGES) {
            let mut raw = vec![0u8; n as usize * 2 * size_of::<u64>()];
            if read_exactly(fd, &mut raw).is_some() {
                let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or_default()) as usize;
                pages = Some(
                    raw.chunks_exact(2 * size_of::<u64>())
                        .map(|pair| (word(&pair[..8]), word(&pair[8..])))
                        .collect(),
                );
            }
        }
        drop(self.sock);
        reap(self.pid);
        pages
    }
}

/// What the glue reports at most (FS_WRITTEN_RANGES_MAX).
const MAX_WRITTEN_RANGES: u64 = 65536;

/// In a spare forked ahead: writes (copies, faults in) the pages the last
/// request's child wrote, while no request waits: the next one mostly
/// writes the same pages. No byte changes. It stops when its request
/// comes on `sock` (under load that is at once: the child then faults in
/// what it writes, as it would have). A kernel without
/// `MADV_POPULATE_WRITE` (before Linux 5.14) says EINVAL: nothing is done.
pub fn prefault(pages: &[(usize, usize)], sock: &UnixStream) {
    /// Ranges written between two looks at the socket.
    const BETWEEN_LOOKS: usize = 16;
    for batch in pages.chunks(BETWEEN_LOOKS) {
        let mut request = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        if nix::poll::poll(&mut request, PollTimeout::ZERO) != Ok(0) {
            return;
        }
        for &(start, len) in batch {
            // SAFETY: advice on this process's own address space; the
            // kernel checks the range (a hole or another mapping fails with
            // ENOMEM and is skipped) and changes no content.
            let done = unsafe {
                libc::madvise(start as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE)
            };
            if done != 0 && Errno::last() == Errno::EINVAL {
                return;
            }
        }
    }
}

/// Waits for the child `pid` to exit; its exit status as a shell gives
/// it (128 + the signal that killed it).
pub fn reap(pid: Pid) -> i32 {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                log::error!("waiting for the request's child: {e}");
                return 255;
            }
        }
    }
}

/// In the spare: waits for the request and puts its descriptors on fds
/// 0/1/2. None when the worker is gone (or sent something else): the
/// spare then has nothing to do but exit.
pub fn receive(sock: &UnixStream) -> Option<Handoff> {
    let fd = sock.as_raw_fd();
    // The length first, with the descriptors; then exactly the rest.
    let mut len = [0u8; size_of::<MessageLen>()];
    let mut cmsg = nix::cmsg_space!([RawFd; 3]);
    let (got, std_fds) = loop {
        let mut iov = [io::IoSliceMut::new(&mut len)];
        match recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs().ok()? {
                    if let ControlMessageOwned::ScmRights(received) = c {
                        // SAFETY: descriptors the kernel just gave this
                        // process; nothing else owns them.
                        fds.extend(
                            received
                                .into_iter()
                                .map(|f| unsafe { OwnedFd::from_raw_fd(f) }),
                        );
                    }
                }
                break (msg.bytes, fds);
            }
        }
    };
    if got == 0 || std_fds.len() != 3 {
        return None;
    }
    for (target, received) in std_fds.iter().enumerate() {
        dup2(received.as_raw_fd(), target as RawFd).ok()?;
    }
    drop(std_fds);
    read_exactly(fd, &mut len[got..])?;
    let mut message = vec![0u8; usize::try_from(MessageLen::from_ne_bytes(len)).ok()?];
    read_exactly(fd, &mut message)?;
    Some(Handoff { message })
}

/// Fills `buf` from `fd`; None at EOF or on an error.
fn read_exactly(fd: RawFd, buf: &mut [u8]) -> Option<()> {
    let mut have = 0;
    while have < buf.len() {
        match read(fd, &mut buf[have..]) {
            Ok(0) => return None,
            Ok(n) => have += n,
            Err(Errno::EINTR) => {}
            Err(_) => return None,
        }
    }
    Some(())
}

/// The length-prefixed fields of a message.
pub struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<{ size_of::<FieldLen>() }>()?;
        let len = FieldLen::from_ne_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (field, rest) = rest.split_at(len);
        self.0 = rest;
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_back_as_sent_and_a_short_one_ends_them() {
        let mut message = Vec::new();
        for field in [&b"/srv/a.pl"[..], b"", b"QUERY_STRING", b"x=1"] {
            message.extend_from_slice(&(field.len() as FieldLen).to_ne_bytes());
            message.extend_from_slice(field);
        }
        let fields: Vec<&[u8]> = Fields(&message).collect();
        assert_eq!(fields, [&b"/srv/a.pl"[..], b"", b"QUERY_STRING", b"x=1"]);
        message.extend_from_slice(&9u32.to_ne_bytes());
        message.extend_from_slice(b"short");
        assert_eq!(Fields(&message).count(), 4);
    }

    /// A request larger than the socket's buffer arrives whole, and the
    /// descriptors with it (this process's own 0/1/2, put back on 0/1/2).
    #[test]
    fn a_request_is_handed_over_whole() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let spare = Spare {
            pid: Pid::from_raw(0),
            sock: ours,
        };
        let big = vec![b'x'; 300_000];
        let sender = std::thread::spawn(move || {
            let big = vec![b'x'; 300_000];
            spare.hand(b"/srv/a.pl", &[b"HTTP_X_BIG", &big, b"EMPTY", b""])
        });
        let request = receive(&theirs).expect("a request");
        sender.join().unwrap().unwrap();
        let fields: Vec<&[u8]> = request.fields().collect();
        assert_eq!(
            fields,
            [&b"/srv/a.pl"[..], b"HTTP_X_BIG", &big, b"EMPTY", b""]
        );
    }

    #[test]
    fn a_spare_whose_worker_is_gone_gets_nothing() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(ours);
        assert!(receive(&theirs).is_none());
    }
}
