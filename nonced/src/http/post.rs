//! JSON-RPC over HTTP `POST /rpc`, answered by the same dispatcher as the Unix socket
//! ([`rpc::handle_text`]), so both listeners treat the specification's cases alike: an
//! invalid request object is -32600 with the socket's `data`, an `id` comes back as it was
//! sent, and notifications (or a batch of only notifications) get `204 No Content`, no body.
//! WebSocket `/ws` stays with jsonrpsee for its subscriptions.

use crate::rpc::{self, Methods};
use crate::users::Caller;
use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use jsonrpsee::server::{HttpBody, HttpResponse};
use std::sync::Arc;

/// Answers one POST body for `caller` (already authenticated).
pub async fn answer<B>(
    req: Request<B>,
    methods: Arc<dyn Methods>,
    caller: Caller,
    limit: usize,
) -> HttpResponse
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    // None is taken as JSON; another type is refused (a browser's form post among them).
    if let Some(t) = content_type {
        let media = t.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "text/plain",
                "expected Content-Type: application/json\n".into(),
            );
        }
    }
    let body = match http_body_util::Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                format!("request exceeds {limit} bytes\n"),
            );
        }
        Err(_) => {
            return reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "the request body could not be read\n".into(),
            )
        }
    };
    let text = String::from_utf8_lossy(&body);
    match rpc::handle_text(methods.as_ref(), &caller, text.trim()).await {
        Some(json) => reply(StatusCode::OK, "application/json", json),
        None => reply(StatusCode::NO_CONTENT, "application/json", String::new()),
    }
}

fn reply(status: StatusCode, kind: &'static str, body: String) -> HttpResponse {
    let mut r = Response::new(HttpBody::from(body));
    *r.status_mut() = status;
    if status != StatusCode::NO_CONTENT {
        r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    }
    r
}
