//! The master's line to one worker: a UNIX socket pair carrying a few kinds
//! of messages, and connections as descriptors (`SCM_RIGHTS`).
//!
//! Stop requests travel here, never as signals, so a running script never
//! sees them (no `EINTR`, no `%SIG` handler runs); a worker reads its
//! channel only between requests. Connections travel both ways: the master
//! assigns a ready request to an idle worker, a worker hands back the
//! connections it holds before it starts on a request (and when it
//! leaves). The bytes already read from a connection travel with it.
//!
//! Wire format: a 12-byte header (kind, flags, a kept connection's last
//! request id, idle time in ms and payload length, little-endian), then
//! the payload; a
//! descriptor rides with the first byte of its message. The master's end is
//! non-blocking (messages wait in a queue until the socket takes them; the
//! master never blocks on a worker), a worker's end blocks.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// One message between the master and a worker.
#[derive(Debug)]
pub enum Message {
    /// Master → worker: serve the request on this connection; `input` is
    /// what was already read from it (the request's first records).
    Assign { conn: Conn },
    /// Master → worker: finish the request in hand, if any, and exit.
    Stop,
    /// Master → worker: the answer to `Idle` when nothing is queued any more.
    NoWork,
    /// Worker → master: this connection is the master's to watch again.
    HandBack { conn: Conn },
    /// Worker → master: idle, and it saw requests queued.
    Idle,
    /// Master → worker: the pool stops. Hand back every connection held,
    /// and from now on each kept one as soon as its response is done (the
    /// master says goodbye on it); then answer `HandedBack`.
    Stopping,
    /// Worker → master: the answer to `Stopping`, after its hand-backs.
    HandedBack,
}

/// A connection in transit, with the bytes already read from it.
#[derive(Debug)]
pub struct Conn {
    pub fd: OwnedFd,
    pub tcp: bool,
    pub input: Vec<u8>,
    /// How long it has been idle or partial (its idle timeout runs on).
    pub idle: Duration,
    /// A kept connection: the id of the last request answered on it (a
    /// stopping pool's goodbye record carries it).
    pub kept: Option<u16>,
}

const HEADER: usize = 12;
const KIND_ASSIGN: u8 = 1;
const KIND_STOP: u8 = 2;
const KIND_NO_WORK: u8 = 3;
const KIND_HAND_BACK: u8 = 4;
const KIND_IDLE: u8 = 5;
const KIND_STOPPING: u8 = 6;
const KIND_HANDED_BACK: u8 = 7;
const FLAG_TCP: u8 = 1;
/// The reserved bytes hold the kept connection's last request id.
const FLAG_KEPT: u8 = 2;
/// A message's payload is at most a request's params plus a share of its
/// body; anything larger means the stream is out of step.
const MAX_PAYLOAD: usize = 64 << 20;

/// One end of a channel.
pub struct Channel {
    fd: OwnedFd,
    inbuf: Vec<u8>,
    /// Descriptors received, in order, not yet claimed by a message.
    fds: VecDeque<OwnedFd>,
    out: VecDeque<Outgoing>,
    blocking: bool,
}

struct Outgoing {
    bytes: Vec<u8>,
    sent: usize,
    fd: Option<OwnedFd>,
    /// For [`Channel::take_unsent`]: the connection, if nothing was sent.
    tcp: bool,
    kept: Option<u16>,
}

impl Channel {
    /// A new pair: (the master's end, non-blocking; the worker's end).
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        nix::fcntl::fcntl(
            a.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        Ok((Channel::new(a, false), Channel::new(b, true)))
    }

    fn new(fd: OwnedFd, blocking: bool) -> Channel {
        Channel {
            fd,
            inbuf: Vec::new(),
            fds: VecDeque::new(),
            out: VecDeque::new(),
            blocking,
        }
    }

    /// A second end on the same socket, for another thread of the worker
    /// to send on (a `dup`): the two must never send at the same time.
    pub fn sender(&self) -> io::Result<Channel> {
        Ok(Channel::new(self.fd.try_clone()?, self.blocking))
    }

    /// Queues `msg` and sends what the socket takes. On a blocking end this
    /// returns once everything is sent.
    pub fn send(&mut self, msg: Message) -> io::Result<()> {
        self.queue(msg);
        self.flush().map(|_| ())
    }

    /// Queues `msg` for the next [`Self::flush`] (messages queued together
    /// leave in one system call).
    pub fn queue(&mut self, msg: Message) {
        self.out.push_back(encode(msg));
    }

    /// Sends queued messages, several per `sendmsg`; true when none is
    /// left. A non-blocking end stops at `EAGAIN` (wait for the socket to
    /// be writable). The descriptors of a batch ride with its first byte:
    /// they may arrive before the rest of their messages, never after, and
    /// in order, which is all the receiving end needs.
    pub fn flush(&mut self) -> io::Result<bool> {
        const BATCH: usize = 16;
        while !self.out.is_empty() {
            let batch = self.out.len().min(BATCH);
            let fds: Vec<RawFd> = self
                .out
                .iter()
                .take(batch)
                .filter_map(|o| o.fd.as_ref().map(|fd| fd.as_raw_fd()))
                .collect();
            let cmsgs: Vec<ControlMessage> = if fds.is_empty() {
                Vec::new()
            } else {
                vec![ControlMessage::ScmRights(&fds)]
            };
            let iov: Vec<IoSlice> = self
                .out
                .iter()
                .take(batch)
                .map(|o| IoSlice::new(&o.bytes[o.sent..]))
                .collect();
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                &cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(mut n) => {
                    for out in self.out.iter_mut().take(batch) {
                        // Every descriptor of the batch went with its first
                        // byte; ours close.
                        out.fd = None;
                    }
                    while n > 0 {
                        let front = self
                            .out
                            .front_mut()
                            .expect("sent bytes belong to a message");
                        let take = n.min(front.bytes.len() - front.sent);
                        front.sent += take;
                        n -= take;
                        if front.sent == front.bytes.len() {
                            self.out.pop_front();
                        }
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) if !self.blocking => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// Messages are waiting for the socket to take them.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// Connections queued for the other end that never left (the worker
    /// died first): the master takes them back.
    pub fn take_unsent(&mut self) -> Vec<Conn> {
        let mut conns = Vec::new();
        for out in self.out.drain(..) {
            if let (Some(fd), 0) = (out.fd, out.sent) {
                // Never sent, so its descriptor is still ours.
                conns.push(Conn {
                    fd,
                    tcp: out.tcp,
                    input: out.bytes[HEADER..].to_vec(),
                    idle: Duration::ZERO,
                    kept: out.kept,
                });
            }
        }
        conns
    }

    /// One read from the socket into the buffer; false at end of file (the
    /// other process is gone). On the master's end, `WouldBlock` when
    /// nothing is there.
    pub fn receive(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 16 * 1024];
        // Room for the descriptors of a whole batch (see `flush`).
        let mut space = nix::cmsg_space!([RawFd; 16]);
        loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => msg,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
                return Err(out_of_step(
                    "descriptors lost (control data truncated)".into(),
                ));
            }
            for cmsg in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(fds) = cmsg {
                    for fd in fds {
                        // SAFETY: the kernel just installed this descriptor
                        // for us; nothing else owns it.
                        self.fds.push_back(unsafe { OwnedFd::from_raw_fd(fd) });
                    }
                }
            }
            let n = msg.bytes;
            if n == 0 {
                return Ok(false);
            }
            self.inbuf.extend_from_slice(&buf[..n]);
            return Ok(true);
        }
    }

    /// The next whole message already received, if any.
    pub fn next_message(&mut self) -> io::Result<Option<Message>> {
        let Some(header) = self.inbuf.first_chunk::<HEADER>() else {
            return Ok(None);
        };
        let kind = header[0];
        let tcp = header[1] & FLAG_TCP != 0;
        let kept = (header[1] & FLAG_KEPT != 0).then(|| u16::from_le_bytes([header[2], header[3]]));
        let idle_ms = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(out_of_step(format!("a {len}-byte message")));
        }
        if self.inbuf.len() < HEADER + len {
            return Ok(None);
        }
        let input = self.inbuf[HEADER..HEADER + len].to_vec();
        self.inbuf.drain(..HEADER + len);
        let conn = || -> io::Result<Conn> {
            let fd = self
                .fds
                .pop_front()
                .ok_or_else(|| out_of_step("a connection message without its descriptor".into()))?;
            Ok(Conn {
                fd,
                tcp,
                input,
                idle: Duration::from_millis(u64::from(idle_ms)),
                kept,
            })
        };
        Ok(Some(match kind {
            KIND_ASSIGN => Message::Assign { conn: conn()? },
            KIND_HAND_BACK => Message::HandBack { conn: conn()? },
            KIND_STOP => Message::Stop,
            KIND_NO_WORK => Message::NoWork,
            KIND_IDLE => Message::Idle,
            KIND_STOPPING => Message::Stopping,
            KIND_HANDED_BACK => Message::HandedBack,
            other => return Err(out_of_step(format!("message kind {other}"))),
        }))
    }

    /// Waits for the next message (blocking end); None when the other end
    /// is gone.
    pub fn wait_message(&mut self) -> io::Result<Option<Message>> {
        loop {
            if let Some(msg) = self.next_message()? {
                return Ok(Some(msg));
            }
            if !self.receive()? {
                return Ok(None);
            }
        }
    }

    /// A whole message is buffered already (poll would not say so).
    pub fn has_message(&self) -> bool {
        self.inbuf.first_chunk::<HEADER>().is_some_and(|h| {
            self.inbuf.len() >= HEADER + u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize
        })
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn out_of_step(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("dispatch channel out of step: {what}"),
    )
}

fn encode(msg: Message) -> Outgoing {
    let (kind, conn) = match msg {
        Message::Assign { conn } => (KIND_ASSIGN, Some(conn)),
        Message::HandBack { conn } => (KIND_HAND_BACK, Some(conn)),
        Message::Stop => (KIND_STOP, None),
        Message::NoWork => (KIND_NO_WORK, None),
        Message::Idle => (KIND_IDLE, None),
        Message::Stopping => (KIND_STOPPING, None),
        Message::HandedBack => (KIND_HANDED_BACK, None),
    };
    let (payload, tcp, kept, idle_ms, fd) = match conn {
        Some(c) => {
            let ms = u32::try_from(c.idle.as_millis()).unwrap_or(u32::MAX);
            (c.input, c.tcp, c.kept, ms, Some(c.fd))
        }
        None => (Vec::new(), false, None, 0, None),
    };
    let mut bytes = Vec::with_capacity(HEADER + payload.len());
    bytes.push(kind);
    let mut flags = if tcp { FLAG_TCP } else { 0 };
    if kept.is_some() {
        flags |= FLAG_KEPT;
    }
    bytes.push(flags);
    bytes.extend_from_slice(&kept.unwrap_or(0).to_le_bytes());
    bytes.extend_from_slice(&idle_ms.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&payload);
    Outgoing {
        bytes,
        sent: 0,
        fd,
        tcp,
        kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn conn_message(input: &[u8]) -> (Message, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let msg = Message::Assign {
            conn: Conn {
                fd: theirs.into(),
                tcp: true,
                input: input.to_vec(),
                idle: Duration::from_millis(1500),
                kept: Some(0x1234),
            },
        };
        (msg, ours)
    }

    #[test]
    fn messages_and_descriptors_arrive_in_order() {
        let (mut master, mut worker) = Channel::pair().unwrap();
        let (assign, mut peer) = conn_message(b"records");
        master.send(Message::Stop).unwrap();
        master.send(assign).unwrap();
        master.send(Message::NoWork).unwrap();
        assert!(!master.wants_write());

        assert!(matches!(
            worker.wait_message().unwrap(),
            Some(Message::Stop)
        ));
        let Some(Message::Assign { conn }) = worker.wait_message().unwrap() else {
            panic!("expected Assign");
        };
        assert_eq!(conn.input, b"records");
        assert!(conn.tcp);
        assert_eq!(conn.idle, Duration::from_millis(1500));
        assert_eq!(conn.kept, Some(0x1234));
        // The descriptor is the same connection.
        let mut stream = UnixStream::from(conn.fd);
        stream.write_all(b"hi").unwrap();
        let mut got = [0; 2];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
        assert!(matches!(
            worker.wait_message().unwrap(),
            Some(Message::NoWork)
        ));

        worker.send(Message::Idle).unwrap();
        let (_, peer2) = UnixStream::pair().unwrap();
        worker
            .send(Message::HandBack {
                conn: Conn {
                    fd: peer2.into(),
                    tcp: false,
                    input: Vec::new(),
                    idle: Duration::ZERO,
                    kept: None,
                },
            })
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            match master.receive() {
                Ok(true) => {}
                Ok(false) => panic!("eof"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
            while let Some(m) = master.next_message().unwrap() {
                got.push(m);
            }
        }
        assert!(matches!(got[0], Message::Idle));
        assert!(matches!(got[1], Message::HandBack { ref conn } if !conn.tcp));

        drop(worker);
        assert!(
            !master.receive().unwrap(),
            "end of file once the worker is gone"
        );
    }

    #[test]
    fn large_payload_waits_in_the_queue_without_blocking_the_master() {
        let (mut master, mut worker) = Channel::pair().unwrap();
        let big = vec![7u8; 4 << 20];
        let (assign, _peer) = conn_message(&big);
        master.send(assign).unwrap();
        assert!(master.wants_write(), "4 MiB does not fit a socket buffer");
        let reader = std::thread::spawn(move || {
            let Some(Message::Assign { conn }) = worker.wait_message().unwrap() else {
                panic!("expected Assign");
            };
            conn.input.len()
        });
        while !master.flush().unwrap() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(reader.join().unwrap(), 4 << 20);
    }

    #[test]
    fn unsent_connections_come_back() {
        let (mut master, worker) = Channel::pair().unwrap();
        // Fill the socket so the next message cannot leave.
        while !master.wants_write() {
            master
                .send(Message::Assign {
                    conn: conn_message(&[0; 60_000]).0.into_conn(),
                })
                .unwrap();
        }
        let (assign, _peer) = conn_message(b"late");
        master.send(assign).unwrap();
        drop(worker);
        let back = master.take_unsent();
        assert!(back.iter().any(|c| c.input == b"late"));
    }

    impl Message {
        fn into_conn(self) -> Conn {
            match self {
                Message::Assign { conn } | Message::HandBack { conn } => conn,
                _ => panic!("no connection"),
            }
        }
    }
}
