//! The preamble state machine against the reference: a connection watched
//! by a `Preamble` until a request is ready, then read by a worker's
//! `ServerConnection` from the bytes handed over, its leftover going back
//! to a fresh `Preamble` (as `worker::conn` does after each request), must
//! come to what one `ServerConnection` reading the stream alone comes to:
//! the same requests, the same answers, an error where it errs. The stream
//! reaches the preamble in pieces the schedule cuts.

use fcgi_spawn::fastcgi::preamble::{Preamble, PreambleSettings, Scan};
use fcgi_spawn::fastcgi::ServerConnection;

use super::{reference, Input, Outcome, Pipe, Schedule, Seen};

/// One input: panics when the preamble and the worker part from the
/// reference.
pub fn run(data: &[u8]) {
    let Ok(Input {
        stream,
        mut schedule,
        limits,
    }) = Input::parse(data)
    else {
        return;
    };
    let expected = reference(&stream, &limits);
    let settings = PreambleSettings::new(limits.clone(), 1, 1);
    let mut outcome = Outcome::default();
    let mut preamble = Preamble::default();
    // What the web server sent that nobody has read yet.
    let mut socket = stream;
    let mut pos = 0;
    loop {
        if pos < socket.len() {
            let n = schedule.chunk().min(socket.len() - pos);
            preamble.push(&socket[pos..pos + n]);
            pos += n;
        }
        match preamble.scan(&settings, &mut outcome.replies) {
            Err(e) => {
                outcome.error = Some(e.to_string());
                break;
            }
            Ok(Scan::Close) => break,
            Ok(Scan::Incomplete) if pos < socket.len() => {}
            Ok(Scan::Incomplete) => {
                // The web server closed the connection: mid-request is an error.
                if !preamble.is_empty() {
                    outcome.error = Some("closed mid-request".into());
                }
                break;
            }
            Ok(Scan::Ready) => {
                assert!(preamble.is_ready());
                let complete = preamble.is_complete();
                let mut input = preamble.take();
                assert!(preamble.is_empty() && !preamble.is_ready());
                // The worker reads what was handed over, then the socket.
                input.extend_from_slice(&socket[pos..]);
                let pieces = Schedule::new(&[schedule.choose(256) as u8]);
                let mut worker =
                    ServerConnection::new(Pipe::chunked(input, pieces), limits.clone(), 1, 1);
                let request = worker.read_request();
                let (pipe, leftover) = worker.into_parts();
                outcome.replies.extend_from_slice(&pipe.written);
                let request = match request {
                    Ok(Some(request)) => request,
                    // Aborted while its body arrived.
                    Ok(None) if !complete => break,
                    Ok(None) => panic!("a ready request that the worker does not find"),
                    Err(e) => {
                        outcome.error = Some(e.to_string());
                        break;
                    }
                };
                let keep_conn = request.keep_conn;
                outcome.requests.push(Seen::new(request));
                if !keep_conn {
                    break;
                }
                // What the worker read past its request waits for the next
                // one; the rest is still to come.
                preamble = Preamble::with_bytes(leftover);
                socket = pipe.rest().to_vec();
                pos = 0;
            }
        }
    }
    outcome.assert_agrees(&expected, "preamble then worker");
}
