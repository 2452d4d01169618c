//! What a CGI response's bytes mean, and the daemon's own pages in that
//! form: the one place that reads a CGI header block (the worker's
//! access log and response, `fcgi-spawn request`, `status`, `compare`).

/// The daemon's answer to a script that printed nothing.
pub const NO_OUTPUT: (u16, &str) = (500, "Internal Server Error");

/// The HTTP status of a CGI response, from its headers: `Status: NNN`, else
/// 302 with a `Location` (RFC 3875 §6.2.3), else 200; a response with no
/// header block at all (nothing sent) is the daemon's 500. `head` may go on
/// past the header block: the first empty line ends it.
pub fn status(head: &[u8]) -> u16 {
    if head.is_empty() {
        return NO_OUTPUT.0;
    }
    let mut location = false;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"status") {
            let digits = value.get(..3).unwrap_or_default();
            if let Some(code) = std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse::<u16>().ok())
            {
                return code;
            }
        } else if name.eq_ignore_ascii_case(b"location") {
            location = true;
        }
    }
    if location {
        302
    } else {
        200
    }
}

/// The CGI response of an error page.
pub fn error_page((status, reason): (u16, &str)) -> Vec<u8> {
    format!(
        "Status: {status} {reason}\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\r\n\
         <!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\
         <body><h1>{reason}</h1></body></html>\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::{error_page, status};

    #[test]
    fn status_comes_from_the_cgi_headers() {
        assert_eq!(
            status(b"Content-Type: text/plain\r\n\r\nStatus: 404\n"),
            200
        );
        assert_eq!(status(b"Status: 404 Not Found\r\n\r\n"), 404);
        assert_eq!(status(b"content-type: text/html\nstatus:503\n\nx"), 503);
        assert_eq!(status(b"status:504\n\nStatus: 200"), 504);
        assert_eq!(status(b"Content-Type: text/html\n\nStatus: 500"), 200);
        assert_eq!(status(b"Location: /next\r\n\r\n"), 302);
        assert_eq!(status(b"Location: /x\nStatus: 301 Moved\n\n"), 301);
        assert_eq!(status(b""), 500);
        assert_eq!(status(&error_page((504, "Gateway Timeout"))), 504);
    }
}
