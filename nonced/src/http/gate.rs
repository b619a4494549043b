//! The gate every HTTP request passes before any JSON-RPC runs: routing (`/rpc`, `/ws`,
//! `/healthz`, nothing else), authentication (a bearer token that maps to a user, else 401
//! with no detail), and the failed-authentication throttle (429). The authenticated caller
//! travels to the methods as a request extension; the token itself goes no further.

use super::throttle::AuthThrottle;
use crate::users::{LiveUsers, Session};
use http::{header, Method, Request, Response, StatusCode};
use jsonrpsee::server::{HttpBody, HttpResponse};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What every connection's gate shares.
#[derive(Debug)]
pub struct GateShared {
    /// What `POST /rpc` calls: the socket's own dispatcher (see `post`).
    pub methods: super::module::Table,
    pub max_request_bytes: usize,
    pub users: Arc<LiveUsers>,
    pub throttle: AuthThrottle,
    /// Take the client address from `X-Forwarded-For`'s last hop (behind a load balancer).
    pub forwarded_for: bool,
    /// One-use tickets for browsers' WebSockets (a browser cannot set `Authorization` on one).
    pub tickets: super::tickets::Tickets,
    /// What `/metrics` serves, and whether it needs an admin token.
    pub metrics: Arc<dyn super::MetricsSource>,
    pub metrics_public: bool,
}

/// One connection's gate in front of jsonrpsee's service `S`.
#[derive(Debug, Clone)]
pub struct Gate<S> {
    pub rpc: S,
    pub shared: Arc<GateShared>,
    pub peer: SocketAddr,
}

fn plain(status: StatusCode, body: &'static str) -> HttpResponse {
    let mut r = Response::new(HttpBody::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
    r
}

/// The bearer token of a request, if it carries one.
fn bearer<B>(req: &Request<B>) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

impl<S> Gate<S> {
    /// The client's address for throttling: the TCP peer, or behind a load balancer the last
    /// address it appended to `X-Forwarded-For` (earlier entries are the client's to forge).
    fn client<B>(&self, req: &Request<B>) -> IpAddr {
        if self.shared.forwarded_for {
            let last = req
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|ip| ip.trim().parse().ok());
            if let Some(ip) = last {
                return ip;
            }
        }
        self.peer.ip()
    }
}

impl<S, B> tower::Service<Request<B>> for Gate<S>
where
    S: tower::Service<Request<B>, Response = HttpResponse, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let ready = |r: HttpResponse| -> Self::Future { Box::pin(async move { Ok(r) }) };
        let is_ws = req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        let client = self.client(&req);
        let now = Instant::now();
        match (req.uri().path(), req.method()) {
            ("/healthz", &Method::GET) => return ready(plain(StatusCode::OK, "ok\n")),
            ("/metrics", &Method::GET) => {
                if !self.shared.metrics_public {
                    if self.shared.throttle.blocked(client, now) {
                        return ready(plain(
                            StatusCode::TOO_MANY_REQUESTS,
                            "too many failed authentications\n",
                        ));
                    }
                    match bearer(&req).and_then(|t| self.shared.users.by_token(t)) {
                        Some(c) if c.is_admin() => {}
                        Some(_) => return ready(plain(StatusCode::FORBIDDEN, "metrics are for admins\n")),
                        None => {
                            self.shared.throttle.failed(client, now);
                            let mut r = plain(StatusCode::UNAUTHORIZED, "");
                            r.headers_mut()
                                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
                            return ready(r);
                        }
                    }
                }
                let source = Arc::clone(&self.shared.metrics);
                let format = crate::metrics::Format::from_accept(
                    req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()),
                );
                return Box::pin(async move {
                    let text = source.exposition().await;
                    let body = match format {
                        crate::metrics::Format::OpenMetrics => text,
                        crate::metrics::Format::Text => crate::metrics::to_text_format(&text),
                    };
                    let mut r = Response::new(HttpBody::from(body));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static(format.content_type()),
                    );
                    Ok(r)
                });
            }
            ("/rpc" | "/ticket", &Method::POST) => {}
            ("/ws", &Method::GET) if is_ws => {
                // A browser's WebSocket: authenticated by a ticket it bought with its token.
                let ticket = req
                    .uri()
                    .query()
                    .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ticket=")).map(str::to_string));
                if let Some(t) = ticket {
                    return match self.shared.tickets.redeem(&t, now) {
                        Some((caller, generation)) => {
                            req.extensions_mut().insert(caller);
                            req.extensions_mut()
                                .insert(Session { generation, users: Arc::clone(&self.shared.users) });
                            let mut rpc = self.rpc.clone();
                            Box::pin(async move { rpc.call(req).await })
                        }
                        None => {
                            self.shared.throttle.failed(client, now);
                            ready(plain(StatusCode::UNAUTHORIZED, ""))
                        }
                    };
                }
            }
            (path, &Method::GET) if super::dashboard::asset(path).is_some() => {
                // The page and its modules hold no data: everything comes over the WebSocket.
                return ready(super::dashboard::response(path));
            }
            ("/rpc" | "/ws" | "/healthz" | "/ticket" | "/metrics", _) => {
                return ready(plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"))
            }
            _ => return ready(plain(StatusCode::NOT_FOUND, "not found\n")),
        }
        if self.shared.throttle.blocked(client, now) {
            let mut r = plain(StatusCode::TOO_MANY_REQUESTS, "too many failed authentications\n");
            r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
            return ready(r);
        }
        // Read before the lookup: a reload in between makes the session stale, never current.
        let generation = self.shared.users.generation();
        let Some(caller) = bearer(&req).and_then(|t| self.shared.users.by_token(t)) else {
            self.shared.throttle.failed(client, now);
            tracing::info!(client = %client, path = req.uri().path(), "authentication failed");
            let mut r = plain(StatusCode::UNAUTHORIZED, "");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return ready(r);
        };
        req.headers_mut().remove(header::AUTHORIZATION);
        if req.uri().path() == "/ticket" {
            let ticket = self.shared.tickets.issue(caller, generation, now);
            let mut r = Response::new(HttpBody::from(format!("{{\"ticket\":\"{ticket}\"}}")));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
            r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
            return ready(r);
        }
        if req.uri().path() == "/rpc" {
            let (methods, limit) = (Arc::clone(&self.shared.methods.0), self.shared.max_request_bytes);
            return Box::pin(async move { Ok(super::post::answer(req, methods, caller, limit).await) });
        }
        req.extensions_mut().insert(caller);
        req.extensions_mut().insert(Session { generation, users: Arc::clone(&self.shared.users) });
        let mut rpc = self.rpc.clone();
        Box::pin(async move { rpc.call(req).await })
    }
}
