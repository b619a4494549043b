//! The dashboard: a read-only page, shipped inside the binary (no CDN: nothing outside may be
//! reachable where the daemon runs), that asks for a token, buys a WebSocket ticket with it,
//! and draws what the JSON-RPC methods say, live: the jobs, one job's nonce space as the
//! ledger holds it (who holds what, what is done), its workers, its rate and its supervision
//! events. The page itself holds no data, so it is served without a token.

use http::{header, HeaderValue, Response, StatusCode};
use jsonrpsee::server::{HttpBody, HttpResponse};

/// (path, content type, text) of every file of the page.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", include_str!("dashboard/index.html")),
    ("/dashboard/app.js", "text/javascript; charset=utf-8", include_str!("dashboard/app.js")),
    ("/dashboard/rpc.js", "text/javascript; charset=utf-8", include_str!("dashboard/rpc.js")),
    ("/dashboard/draw.js", "text/javascript; charset=utf-8", include_str!("dashboard/draw.js")),
    ("/dashboard/style.css", "text/css; charset=utf-8", include_str!("dashboard/style.css")),
];

/// The asset at `path`, if there is one: (content type, text).
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    ASSETS.iter().find(|(p, _, _)| *p == path).map(|(_, t, body)| (*t, *body))
}

/// The asset at `path` with headers that keep the page to itself: scripts and connections
/// from this origin only, no framing, no referrer.
pub fn response(path: &str) -> HttpResponse {
    let Some((kind, body)) = asset(path) else {
        let mut r = Response::new(HttpBody::from("not found\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let mut r = Response::new(HttpBody::from(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
