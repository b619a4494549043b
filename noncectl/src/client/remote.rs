//! `noncectl --endpoint URL`: the daemon over the network. One WebSocket carries every call
//! and the progress subscription; the token goes in `Authorization: Bearer` on the upgrade
//! request and nowhere else. `https://` endpoints are checked against the system's roots, or
//! a private CA (`--ca-file`).

use super::{CallError, Daemon};
use jsonrpsee::core::client::{ClientT, Subscription, SubscriptionClientT};
use jsonrpsee::core::traits::ToRpcParams;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use nonce_api::{JobStatus, Method, RpcError};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use tokio_rustls::rustls;

/// The longest call: `search.wait` may wait an hour.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3700);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A daemon's network address and the caller's credentials.
#[derive(Clone)]
pub struct Remote {
    /// `ws://` or `wss://` URL of the daemon's `/ws`.
    url: String,
    /// The address as the user gave it (`https://host:port`): what messages name.
    shown: String,
    token: String,
    ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Remote")
            .field("url", &self.url)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// `endpoint`: `https://host[:port]` (or `http://` where TLS ends before the daemon, and
    /// on loopback); a path of `/`, `/rpc` or `/ws` is accepted and means the same daemon.
    pub fn new(endpoint: &str, token: String, ca_file: Option<PathBuf>) -> Result<Remote, String> {
        let endpoint = endpoint.trim();
        let (scheme, rest) = endpoint.split_once("://").ok_or_else(|| {
            format!("--endpoint {endpoint:?}: expected https://HOST[:PORT] or http://HOST[:PORT]")
        })?;
        let ws = match scheme.to_ascii_lowercase().as_str() {
            "https" | "wss" => "wss",
            "http" | "ws" => "ws",
            other => return Err(format!("--endpoint {endpoint:?}: scheme {other:?} is not http or https")),
        };
        let host = rest.trim_end_matches('/');
        let host = host.strip_suffix("/ws").or_else(|| host.strip_suffix("/rpc")).unwrap_or(host);
        if host.is_empty() || host.contains('/') || host.contains('@') || host.contains('?') {
            return Err(format!("--endpoint {endpoint:?}: expected SCHEME://HOST[:PORT]"));
        }
        let token = token.trim().to_string();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token is empty or not printable ASCII".into());
        }
        let shown = format!("{}://{host}", if ws == "wss" { "https" } else { "http" });
        Ok(Remote { url: format!("{ws}://{host}/ws"), shown, token, ca_file })
    }

    fn tls(&self) -> Result<rustls::ClientConfig, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                use rustls::pki_types::pem::PemObject;
                let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
                for cert in certs {
                    let cert = cert.map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
                    roots.add(cert).map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }

    pub async fn connect(&self) -> Result<RemoteClient, CallError> {
        let mut headers = http::HeaderMap::new();
        let value = http::HeaderValue::from_str(&format!("Bearer {}", self.token))
            .map_err(|_| CallError::Unreachable("the token cannot go in an HTTP header".into()))?;
        headers.insert(http::header::AUTHORIZATION, value);
        let mut builder = WsClientBuilder::default()
            .set_headers(headers)
            .request_timeout(REQUEST_TIMEOUT)
            .connection_timeout(CONNECT_TIMEOUT)
            .max_request_size(1 << 20);
        if self.url.starts_with("wss://") {
            builder = builder.with_custom_cert_store(self.tls().map_err(CallError::Unreachable)?);
        }
        let client = builder.build(&self.url).await.map_err(|e| explain(&self.shown, e))?;
        Ok(RemoteClient { client, updates: None })
    }
}

/// What a failed connection means, in the user's words, from the transport's typed error.
/// `shown` is the endpoint as the user gave it (`https://host:port`).
fn explain(shown: &str, e: jsonrpsee::core::ClientError) -> CallError {
    use jsonrpsee::client_transport::ws::WsHandshakeError;
    let handshake = match &e {
        jsonrpsee::core::ClientError::Transport(t) => t.downcast_ref::<WsHandshakeError>(),
        _ => None,
    };
    let tls = |io: &std::io::Error| io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()).cloned();
    let unreachable = |why: String| CallError::Unreachable(format!("cannot connect to {shown}: {why}"));
    match handshake {
        Some(WsHandshakeError::Rejected { status_code: status @ 401 }) => CallError::Refused {
            status: *status,
            message: format!("{shown}: the daemon refused the token (HTTP 401)"),
        },
        Some(WsHandshakeError::Rejected { status_code: status @ 429 }) => CallError::Refused {
            status: *status,
            message: format!(
                "{shown}: too many failed authentications from this address; wait a minute (HTTP 429)"
            ),
        },
        Some(WsHandshakeError::Io(io)) => match tls(io) {
            Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) => {
                unreachable(format!(
                    "the daemon there does not speak TLS (a plain listener?): try {}",
                    shown.replacen("https://", "http://", 1)
                ))
            }
            Some(rustls::Error::InvalidCertificate(c)) => unreachable(certificate_problem(&c)),
            _ => unreachable(e.to_string()),
        },
        // An HTTP parser meeting a TLS handshake's bytes.
        Some(WsHandshakeError::Transport(_)) if shown.starts_with("http://") => unreachable(format!(
            "the daemon did not answer HTTP (a TLS listener?): try {}",
            shown.replacen("http://", "https://", 1)
        )),
        _ => unreachable(e.to_string()),
    }
}

/// Why the daemon's certificate was refused, and what to do.
fn certificate_problem(c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match c {
        C::Expired | C::ExpiredContext { .. } => "the daemon's certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "the daemon's certificate is not valid yet (clocks?)".into()
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "the daemon's certificate is not for this host name (connect by the name it was issued for)"
                .into()
        }
        // webpki's CaUsedAsEndEntity comes through as an opaque error: its name is all there is.
        C::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => {
            "the daemon's certificate is a CA certificate, not a server's: make it with \
             basicConstraints=critical,CA:FALSE (README, \"network listener\")"
                .into()
        }
        _ => format!(
            "the daemon's certificate is not trusted ({c:?}): pass --ca-file with the certificate of \
             the CA that signed it (a self-signed one: the certificate itself)"
        ),
    }
}

/// JSON params as they are.
struct Raw(Value);

impl ToRpcParams for Raw {
    fn to_rpc_params(self) -> Result<Option<Box<serde_json::value::RawValue>>, serde_json::Error> {
        serde_json::value::to_raw_value(&self.0).map(Some)
    }
}

fn call_error(e: jsonrpsee::core::ClientError) -> CallError {
    match e {
        jsonrpsee::core::ClientError::Call(obj) => CallError::Rpc(RpcError {
            code: i64::from(obj.code()),
            message: obj.message().to_string(),
            data: obj.data().and_then(|d| serde_json::from_str(d.get()).ok()),
        }),
        other => CallError::Unreachable(other.to_string()),
    }
}

/// One WebSocket to the daemon, and the progress subscription it carries.
pub struct RemoteClient {
    client: WsClient,
    /// The job whose updates the daemon pushes, once `next_update` has asked for them.
    updates: Option<(String, Subscription<Value>)>,
}

impl std::fmt::Debug for RemoteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteClient").field("subscribed", &self.updates.as_ref().map(|u| &u.0)).finish()
    }
}

impl RemoteClient {
    /// Progress of `job` as the daemon pushes it (a `search.wait` reply a second), ending
    /// with the one whose `finished` is true.
    async fn subscribe(&self, job: &str) -> Result<Subscription<Value>, CallError> {
        self.client
            .subscribe::<Value, _>(
                "search.subscribe",
                Raw(serde_json::json!({ "job_id": job })),
                "search.unsubscribe",
            )
            .await
            .map_err(call_error)
    }
}

impl Daemon for RemoteClient {
    async fn call(&mut self, method: Method, params: Value) -> Result<Value, CallError> {
        self.client.request::<Value, _>(method.name(), Raw(params)).await.map_err(call_error)
    }

    /// Pushed by the daemon (`search.subscribe`), not polled.
    async fn next_update(&mut self, job_id: &str) -> Result<JobStatus, CallError> {
        if self.updates.as_ref().map(|u| u.0.as_str()) != Some(job_id) {
            let sub = self.subscribe(job_id).await?;
            self.updates = Some((job_id.to_string(), sub));
        }
        let next = match self.updates.as_mut() {
            Some((_, sub)) => sub.next().await,
            None => None,
        };
        let pushed = match next {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                return Err(CallError::Unreachable(format!("unreadable progress from the daemon: {e}")))
            }
            // The subscription ended without a final word (connection lost): ask once.
            None => {
                self.updates = None;
                return self.wait(job_id, 1.0).await;
            }
        };
        if let Some(e) = pushed.get("error") {
            self.updates = None;
            let e: RpcError = serde_json::from_value(e.clone()).map_err(|why| {
                CallError::Unreachable(format!("unreadable error from the daemon ({why}): {e}"))
            })?;
            return Err(CallError::Rpc(e));
        }
        let status: JobStatus = serde_json::from_value(pushed)
            .map_err(|e| CallError::Unreachable(format!("unreadable progress from the daemon: {e}")))?;
        if matches!(status, JobStatus::Finished(_)) {
            self.updates = None;
        }
        Ok(status)
    }
}
