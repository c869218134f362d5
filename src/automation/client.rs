//! The API's client for `vu2f ctl`: one HTTP/1.1 exchange per call, over the Unix socket of the
//! store's `vu2f serve --control`, or over TCP to `--url http://HOST:PORT`.
//!
//! ```text
//!  METHOD PATH HTTP/1.1\r\n Host: vu2f\r\n Authorization: Bearer TOKEN\r\n
//!  Content-Type: application/json\r\n Content-Length: N\r\n Connection: close\r\n\r\n BODY
//!  ← HTTP/1.1 STATUS REASON\r\n headers (Content-Length) \r\n\r\n {"value": …}
//! ```
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::device::uhid::HIDRAW_APPEARS;

/// How long a call waits for its answer: an add or a replug waits for the kernel's new node.
const PATIENCE: Duration = HIDRAW_APPEARS.saturating_add(Duration::from_secs(20));
/// The largest answer read.
const MAX_ANSWER: u64 = 16 * 1024 * 1024;

/// Where the API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Unix socket.
    Unix(PathBuf),
    /// `HOST:PORT` over TCP.
    Tcp(String),
}

impl Target {
    /// `http://HOST:PORT` or `unix:PATH`, as serve prints it.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        if let Some(path) = url.strip_prefix("unix:") {
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        let host = url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|host| !host.is_empty() && !host.contains('/'))
            .ok_or_else(|| {
                anyhow::anyhow!("{url:?} is not http://HOST:PORT or unix:PATH (no https, no path)")
            })?;
        Ok(Self::Tcp(host.to_owned()))
    }
}

/// A client of one API, with its bearer token.
pub struct Client {
    target: Target,
    bearer: String,
}

/// An answer's status and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Client {
    /// A client of `target`, with the bearer token in `token_file`.
    pub fn new(target: Target, token_file: &Path) -> anyhow::Result<Self> {
        let bearer = std::fs::read_to_string(token_file).map_err(|e| {
            anyhow::anyhow!(
                "reading the bearer token {}: {e} (is `vu2f serve --control` running on this \
                 store?)",
                token_file.display()
            )
        })?;
        Ok(Self {
            target,
            bearer: bearer.trim().to_owned(),
        })
    }

    /// Calls `method path` with `body`; the answer's `value`, or its error as one line.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let body = body.map(serde_json::to_vec).transpose()?;
        let request = request(method, path, &self.bearer, body.as_deref());
        let answer = match &self.target {
            Target::Unix(socket) => {
                let stream = UnixStream::connect(socket).map_err(|e| {
                    anyhow::anyhow!(
                        "no automation API at {} ({e}): is `vu2f serve --control` running?",
                        socket.display()
                    )
                })?;
                stream.set_read_timeout(Some(PATIENCE))?;
                exchange(stream, &request)?
            }
            Target::Tcp(host) => {
                let stream = TcpStream::connect(host)
                    .map_err(|e| anyhow::anyhow!("no automation API at {host}: {e}"))?;
                stream.set_read_timeout(Some(PATIENCE))?;
                exchange(stream, &request)?
            }
        };
        let json: Value = serde_json::from_slice(&answer.body).map_err(|e| {
            anyhow::anyhow!(
                "the server answered HTTP {} without JSON: {e}",
                answer.status
            )
        })?;
        let value = json.get("value").cloned().unwrap_or(Value::Null);
        if (200..300).contains(&answer.status) {
            return Ok(value);
        }
        let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or("");
        anyhow::bail!(
            "{} (HTTP {}): {}",
            field("error"),
            answer.status,
            field("message")
        )
    }
}

/// The request's bytes.
fn request(method: &str, path: &str, bearer: &str, body: Option<&[u8]>) -> Vec<u8> {
    let body = body.unwrap_or(b"");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: vu2f\r\nAuthorization: Bearer {bearer}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Sends `request` and reads the answer to the end of the connection.
fn exchange(mut stream: impl Read + Write, request: &[u8]) -> anyhow::Result<Answer> {
    stream.write_all(request)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut raw)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                anyhow::anyhow!("the server did not answer within {PATIENCE:?}")
            }
            _ => anyhow::anyhow!("reading the answer: {e}"),
        })?;
    parse_answer(&raw)
}

/// An HTTP/1.1 answer: its status line, its headers, and the body Content-Length says.
fn parse_answer(raw: &[u8]) -> anyhow::Result<Answer> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("the server's answer has no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end])
        .map_err(|_| anyhow::anyhow!("the server's answer headers are not text"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP status line: {status_line:?}"))?;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            anyhow::bail!("not an HTTP header: {line:?}");
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| anyhow::anyhow!("Content-Length {value:?} is not a number"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            anyhow::bail!("the server answered with Transfer-Encoding {value}, which is not read");
        }
    }
    let rest = &raw[end + 4..];
    let body = match length {
        Some(length) if length > rest.len() => {
            anyhow::bail!("the answer ended after {} of {length} bytes", rest.len())
        }
        Some(length) => rest[..length].to_vec(),
        None => rest.to_vec(),
    };
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_by_their_length() {
        let answer = parse_answer(
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 4\r\n\r\nnullXX",
        )
        .unwrap();
        assert_eq!((answer.status, &answer.body[..]), (404, &b"null"[..]));
        let short = parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnull")
            .err()
            .unwrap();
        assert!(short.to_string().contains("after 4 of 9"), "{short}");
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_answer(b"SSH-2.0\r\n\r\n").is_err());
        let chunked = parse_answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n");
        assert!(chunked.is_err());
    }

    #[test]
    fn requests_carry_the_length_and_the_bearer() {
        let bytes = request("POST", "/x", "T", Some(b"{}"));
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("POST /x HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("\r\nAuthorization: Bearer T\r\n"), "{text}");
        assert!(
            text.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\n{}"),
            "{text}"
        );
    }

    #[test]
    fn urls_are_http_or_unix() {
        assert_eq!(
            Target::parse("http://127.0.0.1:9/").unwrap(),
            Target::Tcp("127.0.0.1:9".into())
        );
        assert_eq!(
            Target::parse("unix:/run/x.sock").unwrap(),
            Target::Unix("/run/x.sock".into())
        );
        assert!(Target::parse("https://127.0.0.1:9").is_err());
        assert!(Target::parse("http://127.0.0.1:9/webauthn").is_err());
    }
}
