//! The listening socket: a UNIX socket created with its final mode from the
//! start, a TCP address, or a socket inherited from the parent
//! (`FCGI_LISTENSOCK_FILENO` — fd 0 — as spawn-fcgi and mod_fcgid pass it, or
//! systemd's `LISTEN_FDS`). The master binds it once, before forking; every
//! worker then `accept`s on the same descriptor.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrLike, UnixAddr};
use nix::sys::stat::Mode;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{path}: a file that is not a socket is in the way; remove it or choose another --listen path")]
    NotASocket { path: PathBuf },
    #[error("{path}: another process is already listening on this socket")]
    InUse { path: PathBuf },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("{addr} is neither a socket path (with a '/') nor HOST:PORT")]
    BadAddress { addr: String },
    #[error("unknown {what} {name:?} for --socket-{what}")]
    UnknownId { what: &'static str, name: String },
    #[error(
        "no --listen given and no inherited socket (LISTEN_FDS, or a listening socket on fd 0)"
    )]
    NothingToListenOn,
}

/// Ownership and permissions of a UNIX socket file.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    pub mode: u32,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub backlog: i32,
}

/// Where systemd puts the first passed socket (sd_listen_fds(3)).
const SD_LISTEN_FDS_START: RawFd = 3;
/// Where spawn-fcgi and mod_fcgid put the listening socket (FastCGI spec).
const FCGI_LISTENSOCK_FILENO: RawFd = 0;

pub enum Listener {
    Unix {
        listener: UnixListener,
        path: Option<PathBuf>,
        /// The socket file was removed, or that was tried: a stop tries
        /// once, whoever asks (and logs a failure once).
        removed: AtomicBool,
    },
    Tcp(TcpListener),
}

/// An accepted connection. It reads (`fastcgi/` does); it does not
/// write: what goes to a client leaves through `fastcgi::ClientSocket`.
pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Listener {
    /// Binds `addr`: a path when it contains a '/', else `HOST:PORT`.
    pub fn bind(addr: &str, opts: &SocketOptions) -> Result<Listener, ListenError> {
        if addr.contains('/') {
            bind_unix(Path::new(addr), opts)
        } else {
            bind_tcp(addr, opts.backlog)
        }
    }

    /// systemd passed this process a socket (`LISTEN_PID`, `LISTEN_FDS`):
    /// that is the one to serve on, whatever `listen` says.
    pub fn systemd_passed_one() -> bool {
        systemd_sockets() >= 1
    }

    /// A socket handed over by the parent process: systemd socket
    /// activation first (`LISTEN_PID`/`LISTEN_FDS`, the socket on fd 3),
    /// then the FastCGI convention (`FCGI_LISTENSOCK_FILENO`: a listening
    /// socket on fd 0, as spawn-fcgi and mod_fcgid pass it). The fd-0
    /// socket moves to a higher number and fd 0 becomes `/dev/null`: fd 0
    /// is a script's STDIN, which workers point at each request's body.
    pub fn inherited() -> Result<Listener, ListenError> {
        let fds = systemd_sockets();
        // Meant for this process only: scripts and their children must not
        // take the socket for theirs (sd_listen_fds(3) unsets them too).
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(name);
        }
        if fds >= 1 {
            if fds > 1 {
                log::warn!("systemd passed {fds} sockets; listening on the first one (fd 3)");
            }
            log::info!("listening on the socket systemd passed (LISTEN_FDS, fd 3)");
            return Ok(Self::from_fd(SD_LISTEN_FDS_START));
        }
        // SAFETY: fd 0 is only borrowed for getsockopt.
        let fd0 = unsafe { BorrowedFd::borrow_raw(FCGI_LISTENSOCK_FILENO) };
        if socket::getsockopt(&fd0, socket::sockopt::AcceptConn).unwrap_or(false) {
            let moved = nix::fcntl::fcntl(
                FCGI_LISTENSOCK_FILENO,
                nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3),
            )
            .map_err(|e| ListenError::Bind {
                addr: "the socket inherited on fd 0".into(),
                source: e.into(),
            })?;
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .and_then(|null| {
                    nix::unistd::dup2(null.as_raw_fd(), FCGI_LISTENSOCK_FILENO)
                        .map_err(io::Error::from)
                });
            if let Err(e) = null {
                log::warn!("cannot put /dev/null on fd 0 after taking the inherited socket: {e}");
            }
            log::info!("listening on the socket passed on fd 0 (FCGI_LISTENSOCK_FILENO)");
            return Ok(Self::from_fd(moved));
        }
        Err(ListenError::NothingToListenOn)
    }

    fn from_fd(fd: RawFd) -> Listener {
        // SAFETY: `fd` is a listening socket handed to us by our parent and
        // owned by nobody else in this process.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        // SAFETY: getsockname on a valid descriptor.
        let is_unix = socket::getsockname::<socket::SockaddrStorage>(fd)
            .map(|a| a.family() == Some(AddressFamily::Unix))
            .unwrap_or(false);
        if is_unix {
            Listener::Unix {
                listener: UnixListener::from(owned),
                path: None,
                removed: AtomicBool::new(false),
            }
        } else {
            Listener::Tcp(TcpListener::from(owned))
        }
    }

    /// Accepts one connection. Unlike std's `accept`, an interrupting
    /// signal is returned as `ErrorKind::Interrupted`, so a worker blocked
    /// here notices a stop request.
    pub fn accept(&self) -> io::Result<Stream> {
        let fd = socket::accept4(self.as_raw_fd(), SockFlag::SOCK_CLOEXEC)?;
        // SAFETY: accept4 returned a fresh connected socket that we own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(match self {
            Listener::Unix { .. } => Stream::Unix(UnixStream::from(owned)),
            Listener::Tcp(_) => {
                let s = TcpStream::from(owned);
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }
        })
    }

    /// Human-readable address, for the log.
    pub fn describe(&self) -> String {
        match self {
            Listener::Unix { path: Some(p), .. } => format!("unix:{}", p.display()),
            Listener::Unix { path: None, .. } => "inherited unix socket".to_string(),
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "tcp".into()),
        }
    }

    /// A graceful stop begins: new connections are refused from now on
    /// (the socket file goes, and the socket stops listening), so a web
    /// server with another pool sends them there at once instead of
    /// queueing them here until the exit resets them. Only for a socket
    /// this process bound: an inherited one belongs to systemd (or the
    /// spawner), whose queue keeps connections for the next instance.
    pub fn stop_listening(&self) {
        self.remove_socket_file();
        // Linux: shutdown of a listening socket ends the listening, for
        // every process sharing it (the workers too).
        let _ = socket::shutdown(self.as_raw_fd(), socket::Shutdown::Read);
    }

    /// Removes the socket file (UNIX sockets we created), once: the stop
    /// asks at its start and the master's exit again. Says so, once, when
    /// it cannot (its directory is not writable by `--user`).
    pub fn remove_socket_file(&self) {
        let Listener::Unix {
            path: Some(p),
            removed,
            ..
        } = self
        else {
            return;
        };
        if removed.swap(true, Ordering::Relaxed) {
            return;
        }
        match std::fs::remove_file(p) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                let user = crate::users::current_name();
                let dir = socket_dir(p);
                log::warn!(
                    "cannot remove socket file {} ({e}): its directory {} is not writable by \
                     {user}, whom the daemon runs as; the next start replaces the file. Give \
                     the directory to {user} (install -d -o {user} {}) to have it removed at \
                     every stop",
                    p.display(),
                    dir.display(),
                    dir.display()
                );
            }
            Err(e) if e.kind() != io::ErrorKind::NotFound => log::warn!(
                "cannot remove socket file {} ({e}); the next start replaces it",
                p.display()
            ),
            _ => {}
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Unix { listener, .. } => listener.as_fd(),
            Listener::Tcp(l) => l.as_fd(),
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Unix { listener, .. } => listener.as_raw_fd(),
            Listener::Tcp(l) => l.as_raw_fd(),
        }
    }
}

fn bind_unix(path: &Path, opts: &SocketOptions) -> Result<Listener, ListenError> {
    remove_stale_socket(path)?;
    let bind_err = |source: io::Error| ListenError::Bind {
        addr: path.display().to_string(),
        source,
    };
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| bind_err(e.into()))?;
    let addr = UnixAddr::new(path).map_err(|e| bind_err(e.into()))?;
    // The socket file gets its final mode at creation: bind() applies the
    // umask, so no moment exists where it is more open than configured.
    let old = nix::sys::stat::umask(Mode::from_bits_truncate(!opts.mode & 0o777));
    let bound = socket::bind(fd.as_raw_fd(), &addr);
    nix::sys::stat::umask(old);
    bound.map_err(|e| bind_err(e.into()))?;
    let finish = || {
        std::fs::set_permissions(
            path,
            std::os::unix::fs::PermissionsExt::from_mode(opts.mode),
        )
        .map_err(bind_err)?;
        chown_socket(path, opts)?;
        socket::listen(
            &fd,
            socket::Backlog::new(opts.backlog).unwrap_or(socket::Backlog::MAXCONN),
        )
        .map_err(|e| bind_err(e.into()))
    };
    if let Err(e) = finish() {
        // The file exists since bind(); nothing will listen on it.
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(Listener::Unix {
        listener: UnixListener::from(fd),
        path: Some(path.to_path_buf()),
        removed: AtomicBool::new(false),
    })
}

/// The directory a socket file is in (`.` for a bare name).
fn socket_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// For `config` and the start, as the user the daemon runs as (after the
/// switch to `--user`): a socket file whose directory that user cannot
/// write to, where a stop could not remove it. Says so, and `also`.
pub fn warn_if_socket_dir_unwritable(path: &Path, also: &str) {
    let dir = socket_dir(path);
    let flags = nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK;
    if let Err(nix::errno::Errno::EACCES) = nix::unistd::access(dir, flags) {
        let user = crate::users::current_name();
        log::warn!(
            "listen = {}: its directory {} is not writable by {user}, whom the daemon runs as: \
             a stop cannot remove the socket file (the next start replaces it); give the \
             directory to {user} (install -d -o {user} {}){also}",
            path.display(),
            dir.display(),
            dir.display()
        );
    }
}

/// A socket file left by a daemon that died is replaced; a live one, or
/// anything that is not a socket, is refused.
fn remove_stale_socket(path: &Path) -> Result<(), ListenError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    if !meta.file_type().is_socket() {
        return Err(ListenError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ListenError::InUse {
            path: path.to_path_buf(),
        }),
        Err(_) => {
            log::info!("replacing stale socket {}", path.display());
            std::fs::remove_file(path).map_err(|source| ListenError::Bind {
                addr: path.display().to_string(),
                source,
            })
        }
    }
}

fn chown_socket(path: &Path, opts: &SocketOptions) -> Result<(), ListenError> {
    let uid = match &opts.owner {
        Some(name) => Some(lookup_user(name)?),
        None => None,
    };
    let gid = match &opts.group {
        Some(name) => Some(lookup_group(name)?),
        None => None,
    };
    if uid.is_some() || gid.is_some() {
        nix::unistd::chown(path, uid, gid).map_err(|e| ListenError::Bind {
            addr: path.display().to_string(),
            source: e.into(),
        })?;
    }
    Ok(())
}

pub fn lookup_user(name: &str) -> Result<nix::unistd::Uid, ListenError> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(nix::unistd::Uid::from_raw(n));
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(u.uid),
        _ => Err(ListenError::UnknownId {
            what: "owner",
            name: name.to_string(),
        }),
    }
}

pub fn lookup_group(name: &str) -> Result<nix::unistd::Gid, ListenError> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(nix::unistd::Gid::from_raw(n));
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid),
        _ => Err(ListenError::UnknownId {
            what: "group",
            name: name.to_string(),
        }),
    }
}

fn bind_tcp(addr: &str, backlog: i32) -> Result<Listener, ListenError> {
    use std::net::ToSocketAddrs;
    let bad = || ListenError::BadAddress {
        addr: addr.to_string(),
    };
    let sa: SocketAddr = addr
        .to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)?;
    let bind_err = |source: io::Error| ListenError::Bind {
        addr: addr.to_string(),
        source,
    };
    let family = if sa.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| bind_err(e.into()))?;
    socket::setsockopt(&fd, socket::sockopt::ReuseAddr, &true).map_err(|e| bind_err(e.into()))?;
    let bound = match sa {
        SocketAddr::V4(v4) => socket::bind(fd.as_raw_fd(), &socket::SockaddrIn::from(v4)),
        SocketAddr::V6(v6) => socket::bind(fd.as_raw_fd(), &socket::SockaddrIn6::from(v6)),
    };
    bound.map_err(|e| bind_err(e.into()))?;
    socket::listen(
        &fd,
        socket::Backlog::new(backlog).unwrap_or(socket::Backlog::MAXCONN),
    )
    .map_err(|e| bind_err(e.into()))?;
    Ok(Listener::Tcp(TcpListener::from(fd)))
}

impl Stream {
    /// A connection received from another process (`tcp`: of a TCP
    /// listener, else UNIX).
    pub fn from_fd(fd: OwnedFd, tcp: bool) -> Stream {
        if tcp {
            Stream::Tcp(TcpStream::from(fd))
        } else {
            Stream::Unix(UnixStream::from(fd))
        }
    }

    /// Timeout of blocking reads (None: wait forever).
    pub fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(timeout),
            Stream::Tcp(s) => s.set_read_timeout(timeout),
        }
    }

    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    /// The TCP peer address (None for UNIX sockets).
    pub fn peer_ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Stream::Tcp(s) => s.peer_addr().ok().map(|a| a.ip()),
            Stream::Unix(_) => None,
        }
    }
}

impl From<Stream> for OwnedFd {
    fn from(stream: Stream) -> OwnedFd {
        match stream {
            Stream::Unix(s) => s.into(),
            Stream::Tcp(s) => s.into(),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tcp(s) => s.as_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

/// How many sockets systemd passed this very process (0: none, or they
/// were meant for another pid).
fn systemd_sockets() -> i32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    if ours {
        count
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn opts(mode: u32) -> SocketOptions {
        SocketOptions {
            mode,
            owner: None,
            group: None,
            backlog: 16,
        }
    }

    #[test]
    fn unix_socket_gets_mode_and_replaces_stale_one() {
        let dir = std::env::temp_dir().join(format!("fs-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let l = Listener::bind(path.to_str().unwrap(), &opts(0o600)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A live listener is refused.
        assert!(matches!(
            Listener::bind(path.to_str().unwrap(), &opts(0o660)),
            Err(ListenError::InUse { .. })
        ));
        drop(l); // socket file stays behind: stale
        let l2 = Listener::bind(path.to_str().unwrap(), &opts(0o660)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        l2.remove_socket_file();
        std::fs::write(&path, "not a socket").unwrap();
        assert!(matches!(
            Listener::bind(path.to_str().unwrap(), &opts(0o660)),
            Err(ListenError::NotASocket { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tcp_and_bad_addresses() {
        let l = Listener::bind("127.0.0.1:0", &opts(0)).unwrap();
        assert!(l.describe().starts_with("127.0.0.1:"));
        assert!(matches!(
            Listener::bind("no-port-here", &opts(0)),
            Err(ListenError::BadAddress { .. })
        ));
    }
}
