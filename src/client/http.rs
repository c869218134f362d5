//! JSON over HTTPS to an AA server (PROTOCOLS.md 1.0 and 1.5): every call is a JSON body in and a
//! JSON body out, credentials in the body, no `Authorization` header. A reply that is not the JSON
//! the call expects becomes one [`ClientError`] line naming the field.
use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ClientError;
use crate::aa::errors::ErrorBody;

/// How the client trusts the server's certificate.
#[derive(Debug, Clone, Default)]
pub enum TlsTrust {
    /// The system's roots.
    #[default]
    System,
    /// The system's roots and the certificates of this PEM file (a self-signed appliance).
    Ca(PathBuf),
    /// Any certificate: the appliance's self-signed one, as other AA clients do (PROTOCOLS.md 1.0).
    Insecure,
}

/// A connection to one AA server.
#[derive(Debug, Clone)]
pub struct AaHttp {
    client: reqwest::Client,
    base: Url,
    timeout: Duration,
}

/// Longest excerpt of an unexpected body quoted in an error.
const EXCERPT: usize = 80;

impl AaHttp {
    /// A client for `server` (`https://host[:port]`, a path prefix allowed), failing a call that
    /// gets no answer within `timeout`.
    pub fn new(server: &str, trust: &TlsTrust, timeout: Duration) -> Result<Self, ClientError> {
        let base = Url::parse(server.trim_end_matches('/'))
            .map_err(|e| ClientError::Config(format!("--server {server:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(ClientError::Config(format!(
                "--server {server:?}: not an http(s) URL with a host"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("vu2f/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .use_rustls_tls();
        match trust {
            TlsTrust::System => {}
            TlsTrust::Ca(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| ClientError::Config(format!("--ca {}: {e}", path.display())))?;
                for certificate in reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| ClientError::Config(format!("--ca {}: {e}", path.display())))?
                {
                    builder = builder.add_root_certificate(certificate);
                }
            }
            TlsTrust::Insecure => builder = builder.danger_accept_invalid_certs(true),
        }
        let client = builder
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            base,
            timeout,
        })
    }

    /// The server's origin, `scheme://host[:port]` with the default port left out.
    pub fn origin(&self) -> String {
        self.base.origin().ascii_serialization()
    }

    /// `POST path` with a JSON body.
    pub async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        self.call(Method::POST, path, &[], Some(body)).await
    }

    /// `POST path?query` with no body.
    pub async fn post_query<R: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<R, ClientError> {
        self.call::<(), R>(Method::POST, path, query, None).await
    }

    /// `GET path?query`.
    pub async fn get<R: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<R, ClientError> {
        self.call::<(), R>(Method::GET, path, query, None).await
    }

    /// `DELETE path` with a JSON body; the answer's body is not read.
    pub async fn delete<B: Serialize>(&self, path: &str, body: &B) -> Result<(), ClientError> {
        self.send(Method::DELETE, path, &[], Some(body)).await?;
        Ok(())
    }

    /// `DELETE path?query` with no body; the answer's body is not read.
    pub async fn delete_query(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<(), ClientError> {
        self.send::<()>(Method::DELETE, path, query, None).await?;
        Ok(())
    }

    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let call = format!("{method} {path}");
        let (status, bytes) = self.send(method, path, query, body).await?;
        read_reply(&call, status.as_u16(), &bytes)
    }

    /// Sends a request; a non-2xx answer is an error that quotes the server's error body.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let call = format!("{method} {path}");
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport_error = |e: reqwest::Error| {
            if e.is_timeout() {
                ClientError::Timeout {
                    call: call.clone(),
                    after: self.timeout,
                }
            } else {
                ClientError::Unreachable {
                    call: call.clone(),
                    detail: error_chain(&e),
                }
            }
        };
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_error)?.to_vec();
        if !status.is_success() {
            return Err(http_error(call, status.as_u16(), &bytes));
        }
        Ok((status, bytes))
    }
}

/// How the client reads any server reply to `call`: an error quoting the server's words for a
/// non-2xx `status`, else the body as `R`, or a one-line error naming the bad field. Total: no
/// body makes it panic (fuzzed by `tests/fuzz`, target `server_reply`).
pub fn read_reply<R: DeserializeOwned>(
    call: &str,
    status: u16,
    bytes: &[u8],
) -> Result<R, ClientError> {
    if !(200..300).contains(&status) {
        return Err(http_error(call.to_owned(), status, bytes));
    }
    decode_json(bytes).map_err(|detail| ClientError::BadReply {
        call: call.to_owned(),
        detail: format!("(HTTP {status}) {detail}"),
    })
}

fn http_error(call: String, status: u16, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) if !body.errors.is_empty() => ClientError::Http {
            call,
            status,
            msgid: body.msgid().map(str::to_owned),
            detail: body.summary(),
        },
        _ => ClientError::Http {
            call,
            status,
            msgid: None,
            detail: excerpt(&String::from_utf8_lossy(bytes)),
        },
    }
}

/// `bytes` as `R`, or a line that says what is wrong and where.
fn decode_json<R: DeserializeOwned>(bytes: &[u8]) -> Result<R, String> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err("empty body, expected JSON".into()),
        Some(b'<') => {
            let text = String::from_utf8_lossy(bytes);
            return Err(format!(
                "HTML instead of JSON: {}",
                excerpt(text.trim_start())
            ));
        }
        Some(_) => {}
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path == "?" {
            format!("{inner}")
        } else {
            format!("field `{path}`: {inner}")
        }
    })
}

fn excerpt(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(EXCERPT) {
        Some((cut, _)) => format!("{:?}…", &line[..cut]),
        None if line.is_empty() => "(empty body)".into(),
        None => format!("{line:?}"),
    }
}

/// An error and its causes on one line (reqwest hides the useful part in its sources).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::decode_json;
    use crate::aa::api::LogonResponse;

    #[test]
    fn a_wrong_type_names_the_field() {
        let error =
            decode_json::<LogonResponse>(br#"{"status":"OK","msg":7,"completed_methods":[]}"#)
                .unwrap_err();
        assert!(error.starts_with("field `msg`: invalid type"), "{error}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let error = decode_json::<LogonResponse>(br#"{"msg":"hi"}"#).unwrap_err();
        assert!(error.contains("missing field `status`"), "{error}");
    }

    #[test]
    fn html_is_recognised() {
        let error =
            decode_json::<LogonResponse>(b"\n<html><body>Bad Gateway</body></html>").unwrap_err();
        assert!(error.starts_with("HTML instead of JSON"), "{error}");
    }
}
