//! The ready queue: requests the master found ready on connections it
//! watches, waiting in the kernel for whichever worker is free first.
//!
//! One `SOCK_SEQPACKET` socket pair made before the first fork: the master
//! sends each ready connection (its descriptor and the bytes already read
//! from it, one atomic message) into one end; every worker holds the other
//! end and takes the oldest message with one non-blocking `recvmsg`, as it
//! accepts from the listen backlog. The kernel gives each message to
//! exactly one worker, in order, so a worker that finishes a request takes
//! the next queued one without a round trip through the master (which, on
//! a busy machine, waits to be scheduled), and an idle worker is woken by
//! the message itself.
//!
//! Workers keep the sending end too: while the master builds a reload's
//! interpreter (and dispatches nothing), a worker that takes a request
//! passes the other ready requests it holds straight into the queue.
//!
//! The kernel holds what fits in the sending end's buffer
//! (`net.core.wmem_default`, 208 KiB by default: a few hundred small
//! requests, or three carrying 64 KiB of body each; a socket pair is not
//! bound by `net.unix.max_dgram_qlen`), in messages of at most
//! [`MAX_INPUT`] bytes; what does not fit stays in the master's own queue
//! and goes the slow way (`Idle`, then `Assign` over the worker's channel).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use super::channel::Conn;
use crate::page_buf::PageBuf;

/// Bytes already read from a connection that may ride in one message: a
/// request's records up to its params and 64 KiB of body, usually.
pub const MAX_INPUT: usize = 96 * 1024;

/// tcp flag (1 byte), 3 reserved, idle time in ms (u32, little-endian).
const HEADER: usize = 8;

pub struct ReadyQueue {
    /// The master's end: it sends (non-blocking).
    tx: OwnedFd,
    /// The workers' end: each takes from it (also the master, to drain it
    /// at a stop).
    rx: OwnedFd,
}

impl ReadyQueue {
    pub fn new() -> io::Result<ReadyQueue> {
        let (tx, rx) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )?;
        Ok(ReadyQueue { tx, rx })
    }

    /// Master: queues `conn`; gives it back when it does not fit (too
    /// large, or the kernel's queue is full).
    pub fn push(&self, conn: Conn) -> Result<(), Conn> {
        if conn.input.len() > MAX_INPUT {
            return Err(conn);
        }
        let mut header = [0u8; HEADER];
        header[0] = u8::from(conn.tcp);
        let idle_ms = u32::try_from(conn.idle.as_millis()).unwrap_or(u32::MAX);
        header[4..8].copy_from_slice(&idle_ms.to_le_bytes());
        let fds = [conn.fd.as_raw_fd()];
        let iov = [IoSlice::new(&header), IoSlice::new(&conn.input)];
        loop {
            match sendmsg::<()>(
                self.tx.as_raw_fd(),
                &iov,
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                None,
            ) {
                // The message holds its own reference to the connection;
                // ours closes with `conn`.
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return Err(conn),
            }
        }
    }

    /// Worker (or the master, draining): the oldest queued connection, if
    /// any; never blocks. `buf` must hold [`HEADER`] + [`MAX_INPUT`] bytes.
    pub fn pop(&self, buf: &mut [u8]) -> io::Result<Option<Conn>> {
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let mut fd = None;
        let (n, truncated) = {
            let mut iov = [IoSliceMut::new(buf)];
            let msg = loop {
                match recvmsg::<()>(
                    self.rx.as_raw_fd(),
                    &mut iov,
                    Some(&mut space),
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Ok(msg) => break msg,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(nix::errno::Errno::EAGAIN) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            };
            for cmsg in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(fds) = cmsg {
                    for raw in fds {
                        // SAFETY: the kernel just installed this descriptor
                        // for us; nothing else owns it.
                        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                        fd.get_or_insert(owned);
                    }
                }
            }
            (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC))
        };
        let Some(fd) = fd else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "ready queue: a message without its connection",
            ));
        };
        if truncated || n < HEADER {
            // Dropping `fd` closes our copy of a connection we cannot use.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "ready queue: a message cut short; its connection is closed",
            ));
        }
        let idle_ms = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        Ok(Some(Conn {
            fd,
            tcp: buf[0] != 0,
            input: buf[HEADER..n].to_vec(),
            idle: Duration::from_millis(u64::from(idle_ms)),
            kept: None,
        }))
    }

    /// A buffer for [`Self::pop`].
    pub fn buffer() -> PageBuf {
        PageBuf::zeroed(HEADER + MAX_INPUT)
    }

    /// The end workers poll.
    pub fn rx(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn conn(input: &[u8]) -> (Conn, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let conn = Conn {
            fd: theirs.into(),
            tcp: true,
            input: input.to_vec(),
            idle: Duration::from_millis(1500),
            kept: None,
        };
        (conn, ours)
    }

    #[test]
    fn connections_come_out_in_order_with_their_bytes() {
        let q = ReadyQueue::new().unwrap();
        let mut buf = ReadyQueue::buffer();
        assert!(q.pop(&mut buf).unwrap().is_none());
        let (a, mut peer_a) = conn(b"first");
        let (b, _peer_b) = conn(b"second");
        q.push(a).map_err(|_| ()).unwrap();
        q.push(b).map_err(|_| ()).unwrap();
        let got = q.pop(&mut buf).unwrap().unwrap();
        assert_eq!(got.input, b"first");
        assert!(got.tcp);
        assert_eq!(got.idle, Duration::from_millis(1500));
        let mut stream = UnixStream::from(got.fd);
        stream.write_all(b"hi").unwrap();
        let mut two = [0; 2];
        peer_a.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"hi");
        assert_eq!(q.pop(&mut buf).unwrap().unwrap().input, b"second");
        assert!(q.pop(&mut buf).unwrap().is_none());
    }

    #[test]
    fn what_does_not_fit_is_given_back() {
        let q = ReadyQueue::new().unwrap();
        let (big, _peer) = conn(&vec![0; MAX_INPUT + 1]);
        assert!(q.push(big).is_err());
        let mut pushed = 0;
        let mut peers = Vec::new();
        loop {
            let (c, peer) = conn(b"x");
            peers.push(peer);
            if q.push(c).is_err() {
                break;
            }
            pushed += 1;
            assert!(pushed < 10_000, "the kernel queue never filled");
        }
        assert!(pushed >= 1);
    }
}
