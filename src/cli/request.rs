//! `fcgi-spawn request`: a FastCGI client for one request, like `cgi-fcgi`,
//! for health checks, debugging and tests. It fills the CGI params a web
//! server would, prints the raw CGI response on stdout and the FCGI_STDERR
//! stream on stderr, and exits non-zero on a protocol error.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use clap::Args;

use crate::fastcgi::client;
use crate::fastcgi::record::ROLE_RESPONDER;

#[derive(Args)]
pub struct RequestArgs {
    /// Server socket: a path (contains '/') or HOST:PORT.
    #[arg(long, value_name = "PATH | HOST:PORT")]
    connect: String,
    /// Request method [default: GET, or POST with --data].
    #[arg(long, value_name = "M")]
    method: Option<String>,
    /// Extra or overriding param (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Request body from FILE, or '-' for stdin.
    #[arg(long, value_name = "FILE|-")]
    data: Option<PathBuf>,
    /// The script to run, as the web server would name it.
    script_filename: String,
    /// Query string (without '?').
    query_string: Option<String>,
}

pub fn main(args: RequestArgs) -> i32 {
    match request(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fcgi-spawn request: {e:#}");
            2
        }
    }
}

fn request(args: RequestArgs) -> anyhow::Result<i32> {
    let body: Vec<u8> = match &args.data {
        None => Vec::new(),
        Some(p) if p.as_os_str() == "-" => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b)?;
            b
        }
        Some(p) => std::fs::read(p)
            .map_err(|e| anyhow::anyhow!("cannot read --data {}: {e}", p.display()))?,
    };
    let method = args.method.clone().unwrap_or_else(|| {
        if args.data.is_some() {
            "POST".into()
        } else {
            "GET".into()
        }
    });
    let query = args.query_string.clone().unwrap_or_default();
    let script_name = args
        .script_filename
        .rsplit('/')
        .next()
        .map(|n| format!("/{n}"))
        .unwrap_or_default();
    let request_uri = if query.is_empty() {
        script_name.clone()
    } else {
        format!("{script_name}?{query}")
    };
    let mut params: Vec<(String, String)> = vec![
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
        ("SERVER_SOFTWARE".into(), "fcgi-spawn-request".into()),
        ("SERVER_NAME".into(), "localhost".into()),
        ("SERVER_PORT".into(), "80".into()),
        ("REMOTE_ADDR".into(), "127.0.0.1".into()),
        ("REQUEST_METHOD".into(), method),
        ("SCRIPT_FILENAME".into(), args.script_filename.clone()),
        ("SCRIPT_NAME".into(), script_name),
        ("REQUEST_URI".into(), request_uri),
        ("QUERY_STRING".into(), query),
        ("CONTENT_LENGTH".into(), body.len().to_string()),
    ];
    if args.data.is_some() {
        params.push((
            "CONTENT_TYPE".into(),
            "application/x-www-form-urlencoded".into(),
        ));
    }
    for p in &args.params {
        let (name, value) = p
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--param {p:?} must be NAME=VALUE"))?;
        params.retain(|(n, _)| n != name);
        params.push((name.to_string(), value.to_string()));
    }
    let params: Vec<(Vec<u8>, Vec<u8>)> = params
        .into_iter()
        .map(|(n, v)| (n.into_bytes(), v.into_bytes()))
        .collect();

    let response = if args.connect.contains('/') {
        let mut s = UnixStream::connect(&args.connect)
            .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", args.connect))?;
        client::send_request(&mut s, 1, ROLE_RESPONDER, false, &params, &mut &body[..])?
    } else {
        let mut s = std::net::TcpStream::connect(&args.connect)
            .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", args.connect))?;
        client::send_request(&mut s, 1, ROLE_RESPONDER, false, &params, &mut &body[..])?
    };
    std::io::stdout().write_all(&response.stdout)?;
    std::io::stdout().flush()?;
    std::io::stderr().write_all(&response.stderr)?;
    if response.protocol_status != 0 {
        anyhow::bail!(
            "server refused the request (protocol status {})",
            response.protocol_status
        );
    }
    Ok(0)
}
