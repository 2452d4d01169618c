//! `fcgi-spawn request`: a FastCGI client for one request, like `cgi-fcgi`,
//! for health checks, debugging and tests. It fills the CGI params a web
//! server would, prints the raw CGI response on stdout and the FCGI_STDERR
//! stream on stderr, and says with its exit code how the request went:
//! [`EXIT_OK`], [`EXIT_ERROR`], [`EXIT_4XX`], [`EXIT_5XX`]. For a 403 it
//! says on stderr why, as far as it can tell from here (the path policy of
//! `--config`/`--root`/`--ext`, the daemon's own checks).
//!
//! [`CgiRequest`] is the one description of such a request: `compare` sends
//! its requests (and gives the plain CGI run its environment) through it, so
//! both commands fill the same params the same way.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::fastcgi::client::{self, Response};
use crate::fastcgi::record::ROLE_RESPONDER;

/// The response's status was below 400.
pub const EXIT_OK: i32 = 0;
/// No response: cannot connect, a protocol error, the server refused it.
pub const EXIT_ERROR: i32 = 2;
/// A 4xx status (403: the reason on stderr, 404: no such script).
pub const EXIT_4XX: i32 = 4;
/// A 5xx status (the script died, a timeout: the daemon's log says more).
pub const EXIT_5XX: i32 = 5;

#[derive(Args)]
#[command(
    after_help = "Exit status: 0 a response below 400; 2 no response (cannot connect,     protocol error, request refused); 4 a 4xx response (why a 403, on stderr); 5 a 5xx response."
)]
pub struct RequestArgs {
    /// Server socket: a path (contains '/') or HOST:PORT.
    #[arg(long, value_name = "PATH | HOST:PORT")]
    connect: String,
    /// The daemon's TOML config file: on a 403, its roots, extensions and
    /// deny globs say why.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The daemon's --root (repeatable), to say why a 403 happened.
    #[arg(long = "root", value_name = "DIR")]
    root: Vec<PathBuf>,
    /// The daemon's --ext, to say why a 403 happened.
    #[arg(long, value_name = "LIST")]
    ext: Option<String>,
    #[command(flatten)]
    flags: RequestFlags,
    /// The script to run, as the web server would name it.
    script_filename: String,
    /// Query string (without '?').
    query_string: Option<String>,
}

/// How a request differs from a plain GET: the flags `request` and
/// `compare` share.
#[derive(Args, Clone)]
pub struct RequestFlags {
    /// Request method [default: GET, or POST with --data].
    #[arg(long, value_name = "M")]
    method: Option<String>,
    /// Extra or overriding CGI param, e.g. HTTP_COOKIE=id=1 (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Request body from FILE, or '-' for stdin.
    #[arg(long, value_name = "FILE|-")]
    data: Option<PathBuf>,
}

impl RequestFlags {
    /// The request for `script_filename` and `query` (reads --data).
    pub fn request(&self, script_filename: String, query: String) -> anyhow::Result<CgiRequest> {
        Ok(CgiRequest {
            script_filename,
            query,
            method: self.method.clone(),
            body: self.data.as_deref().map(read_data).transpose()?,
            extra_params: self.params.clone(),
        })
    }
}

/// One CGI request as a web server would describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgiRequest {
    /// `SCRIPT_FILENAME`.
    pub script_filename: String,
    /// `QUERY_STRING`, without the '?'.
    pub query: String,
    /// `REQUEST_METHOD`; `None`: GET, or POST with a body.
    pub method: Option<String>,
    /// The body (stdin of the script); `Some` even when empty means a body
    /// was given (POST, `CONTENT_TYPE`).
    pub body: Option<Vec<u8>>,
    /// `NAME=VALUE` params added or overriding the defaults, in order.
    pub extra_params: Vec<String>,
}

impl CgiRequest {
    pub fn method(&self) -> &str {
        match (&self.method, &self.body) {
            (Some(m), _) => m,
            (None, Some(_)) => "POST",
            (None, None) => "GET",
        }
    }

    pub fn body(&self) -> &[u8] {
        self.body.as_deref().unwrap_or_default()
    }

    /// The params sent: the usual CGI ones (`REQUEST_METHOD`, `SCRIPT_NAME`,
    /// `CONTENT_LENGTH`, ...), then `extra_params`, each replacing a
    /// default of the same name.
    pub fn params(&self) -> anyhow::Result<Vec<(String, String)>> {
        let script_name = self
            .script_filename
            .rsplit('/')
            .next()
            .map(|n| format!("/{n}"))
            .unwrap_or_default();
        let request_uri = if self.query.is_empty() {
            script_name.clone()
        } else {
            format!("{script_name}?{}", self.query)
        };
        let mut params: Vec<(String, String)> = vec![
            ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
            ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
            ("SERVER_SOFTWARE".into(), "fcgi-spawn-request".into()),
            ("SERVER_NAME".into(), "localhost".into()),
            ("SERVER_PORT".into(), "80".into()),
            ("REMOTE_ADDR".into(), "127.0.0.1".into()),
            ("REQUEST_METHOD".into(), self.method().to_string()),
            ("SCRIPT_FILENAME".into(), self.script_filename.clone()),
            ("SCRIPT_NAME".into(), script_name),
            ("REQUEST_URI".into(), request_uri),
            ("QUERY_STRING".into(), self.query.clone()),
            ("CONTENT_LENGTH".into(), self.body().len().to_string()),
        ];
        if self.body.is_some() {
            params.push((
                "CONTENT_TYPE".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        for p in &self.extra_params {
            let (name, value) = p
                .split_once('=')
                .filter(|(name, _)| !name.is_empty())
                .ok_or_else(|| anyhow::anyhow!("--param {p:?} must be NAME=VALUE"))?;
            params.retain(|(n, _)| n != name);
            params.push((name.to_string(), value.to_string()));
        }
        Ok(params)
    }

    /// Sends the request to `connect` (a socket path if it contains '/',
    /// else HOST:PORT) and reads the whole response. With `timeout`, a
    /// server silent for that long is an error.
    pub fn send(&self, connect: &str, timeout: Option<Duration>) -> anyhow::Result<Response> {
        let params: Vec<(Vec<u8>, Vec<u8>)> = self
            .params()?
            .into_iter()
            .map(|(n, v)| (n.into_bytes(), v.into_bytes()))
            .collect();
        let cannot = |e: std::io::Error| anyhow::anyhow!("cannot connect to {connect}: {e}");
        let body = &mut self.body();
        let response = if connect.contains('/') {
            let mut s = UnixStream::connect(connect).map_err(cannot)?;
            s.set_read_timeout(timeout)?;
            client::send_request(&mut s, 1, ROLE_RESPONDER, false, &params, body)?
        } else {
            let mut s = std::net::TcpStream::connect(connect).map_err(cannot)?;
            s.set_read_timeout(timeout)?;
            client::send_request(&mut s, 1, ROLE_RESPONDER, false, &params, body)?
        };
        Ok(response)
    }
}

/// Reads a `--data` argument: a file, or stdin for '-'.
fn read_data(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .map_err(|e| anyhow::anyhow!("cannot read --data from stdin: {e}"))?;
        return Ok(b);
    }
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read --data {}: {e}", path.display()))
}

pub fn main(args: RequestArgs) -> i32 {
    match request(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fcgi-spawn request: {}", super::report(&e));
            EXIT_ERROR
        }
    }
}

fn request(args: RequestArgs) -> anyhow::Result<i32> {
    let request = args.flags.request(
        args.script_filename.clone(),
        args.query_string.clone().unwrap_or_default(),
    )?;
    let response = request.send(&args.connect, None)?;
    std::io::stdout().write_all(&response.stdout)?;
    std::io::stdout().flush()?;
    std::io::stderr().write_all(&response.stderr)?;
    if response.protocol_status != 0 {
        anyhow::bail!(
            "server refused the request (protocol status {})",
            response.protocol_status
        );
    }
    let status = crate::cgi::status(&response.stdout);
    // Not "fcgi-spawn request: ", which reads as "no response".
    let say = |why: &str| eprintln!("fcgi-spawn request (status {status}): {why}");
    Ok(match status {
        403 => {
            say(&forbidden_reason(&args));
            EXIT_4XX
        }
        404 => {
            say(&format!("no such script: {}", args.script_filename));
            EXIT_4XX
        }
        400..=499 => EXIT_4XX,
        500.. => {
            say("the server answered with an error; its log says why");
            EXIT_5XX
        }
        _ => EXIT_OK,
    })
}

/// Why the daemon refused the script, as far as this side can tell: the
/// path policy of the given config (or flags) applied to the name sent.
fn forbidden_reason(args: &RequestArgs) -> String {
    let settings = crate::config::Settings {
        config: args.config.clone(),
        root: args.root.clone(),
        ext: args.ext.clone(),
        ..Default::default()
    };
    let given = args.config.is_some() || !args.root.is_empty() || args.ext.is_some();
    let policy = match crate::config::Config::load(settings) {
        Ok(cfg) => crate::path_policy::PathPolicy::of(&cfg),
        Err(e) => return format!("forbidden; cannot read the daemon's settings to say why: {e}"),
    };
    match policy.check(args.script_filename.as_bytes()) {
        crate::path_policy::ScriptCheck::Forbidden(why) => format!("forbidden: {why}"),
        _ if given => {
            "forbidden, though these settings would allow it: the daemon runs with other \
            settings, or the file is not readable by its user"
                .to_string()
        }
        _ => "forbidden: outside the daemon's roots, or refused by its deny globs (give \
            --config, or --root and --ext, to say which)"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn params_of_a_get_and_a_post() {
        let get_req = CgiRequest {
            script_filename: "/srv/www/form.pl".into(),
            query: "a=1".into(),
            ..Default::default()
        };
        let p = get_req.params().unwrap();
        assert_eq!(get(&p, "REQUEST_METHOD"), Some("GET"));
        assert_eq!(get(&p, "SCRIPT_NAME"), Some("/form.pl"));
        assert_eq!(get(&p, "REQUEST_URI"), Some("/form.pl?a=1"));
        assert_eq!(get(&p, "CONTENT_LENGTH"), Some("0"));
        assert_eq!(get(&p, "CONTENT_TYPE"), None);

        let post = CgiRequest {
            body: Some(b"x=2".to_vec()),
            extra_params: vec!["CONTENT_TYPE=text/plain".into(), "HTTP_X=a=b".into()],
            ..get_req
        };
        let p = post.params().unwrap();
        assert_eq!(get(&p, "REQUEST_METHOD"), Some("POST"));
        assert_eq!(get(&p, "CONTENT_LENGTH"), Some("3"));
        assert_eq!(get(&p, "CONTENT_TYPE"), Some("text/plain"));
        assert_eq!(get(&p, "HTTP_X"), Some("a=b"));
        assert_eq!(p.iter().filter(|(n, _)| n == "CONTENT_TYPE").count(), 1);
    }

    #[test]
    fn a_param_without_a_name_is_refused() {
        for bad in ["NOVALUE", "=x"] {
            let r = CgiRequest {
                script_filename: "/x.pl".into(),
                extra_params: vec![bad.into()],
                ..Default::default()
            };
            let e = r.params().unwrap_err().to_string();
            assert!(e.contains("NAME=VALUE"), "{e}");
        }
    }
}
