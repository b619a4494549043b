//! The network listener: JSON-RPC 2.0 over HTTP POST (`/rpc`) and over WebSocket (`/ws`) on
//! one port, plus `/healthz` for load balancers. What the report set out to do: users reach
//! the daemon from any machine and language with a token, and hold no AWS credentials.
//!
//! jsonrpsee speaks the protocol (HTTP, WebSocket, batches, subscriptions); around it, this
//! module owns what a public listener must: accepting under limits (connections in total and
//! per client address, here), TLS ([`tls`], reloaded on SIGHUP), the idle cut-off
//! ([`idle`]), the gate that authenticates every request first ([`gate`], with the
//! failed-authentication [`throttle`] and WebSocket [`tickets`] for browsers), the method
//! table shared with the Unix socket ([`module`]), and the [`dashboard`] page.

pub mod dashboard;
pub mod gate;
pub mod idle;
pub mod module;
pub mod post;
pub mod throttle;
pub mod tickets;
pub mod tls;

use super::config::HttpTable;
use super::rpc::MAX_BATCH;
use super::users::LiveUsers;
use gate::{Gate, GateShared};
use jsonrpsee::server::{
    serve_with_graceful_shutdown, stop_channel, BatchRequestConfig, PingConfig, ServerConfig,
};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Largest reply (a `search.list` of many jobs stays far below it).
const MAX_RESPONSE_BYTES: u32 = 16 << 20;
/// Subscriptions one WebSocket may hold at once.
const MAX_SUBSCRIPTIONS_PER_CONNECTION: u32 = 16;
/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What `/metrics` serves (the daemon's state, rendered at scrape time).
pub trait MetricsSource: Send + Sync + std::fmt::Debug {
    fn exposition(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + '_>>;
}

/// A bound listener, ready to serve.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    certs: Option<Arc<tls::Certificates>>,
    table: HttpTable,
}

impl Listener {
    /// Binds `[http] listen` and reads the certificate (errors name the file or address).
    pub async fn bind(table: &HttpTable) -> Result<Option<Listener>, String> {
        let Some(listen) = &table.listen else { return Ok(None) };
        let certs = match (&table.tls_cert, &table.tls_key) {
            (Some(c), Some(k)) => Some(Arc::new(tls::Certificates::load(c, k)?)),
            _ => None,
        };
        let tcp = TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        Ok(Some(Listener { tcp, certs, table: table.clone() }))
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp.local_addr().ok()
    }

    /// The certificate, for the SIGHUP reload.
    pub fn certificates(&self) -> Option<Arc<tls::Certificates>> {
        self.certs.clone()
    }

    /// Serves until `shutdown` turns true; then takes no new connections, tells every open
    /// one to finish (a call in flight is answered, a WebSocket is closed), and returns once
    /// they have, or after `grace`.
    pub async fn serve(
        self,
        table: module::Table,
        users: Arc<LiveUsers>,
        metrics: Arc<dyn MetricsSource>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
        grace: Duration,
    ) -> Result<(), String> {
        let for_post = table.clone();
        let module = module::module(table)?;
        let idle = Duration::from_secs(self.table.idle_timeout_s);
        let config = ServerConfig::builder()
            .max_request_body_size(self.table.max_request_bytes)
            .max_response_body_size(MAX_RESPONSE_BYTES)
            .max_connections(self.table.max_connections as u32)
            .max_subscriptions_per_connection(MAX_SUBSCRIPTIONS_PER_CONNECTION)
            .set_batch_request_config(BatchRequestConfig::Limit(MAX_BATCH))
            .enable_ws_ping(PingConfig::new().ping_interval(idle / 3).inactive_limit(idle))
            .build();
        let builder = jsonrpsee::server::Server::builder().set_config(config).to_service_builder();
        let methods: jsonrpsee::Methods = module.into();
        // Kept alive for as long as we serve: dropping the handle would stop every connection.
        let (stop, handle) = stop_channel();
        let shared = Arc::new(GateShared {
            methods: for_post,
            max_request_bytes: self.table.max_request_bytes as usize,
            users,
            throttle: throttle::AuthThrottle::new(self.table.auth_failures_per_minute),
            forwarded_for: self.table.forwarded_for,
            tickets: tickets::Tickets::default(),
            metrics,
            metrics_public: self.table.metrics_public,
        });
        let total = Arc::new(Semaphore::new(self.table.max_connections));
        let per_ip = Arc::new(PerAddress::new(self.table.max_connections_per_ip));
        let mut open = crate::connections::Connections::default();
        loop {
            let accepted = tokio::select! {
                a = self.tcp.accept() => a,
                _ = shutdown.wait_for(|&stop| stop) => break,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&total).try_acquire_owned() else {
                tracing::warn!(%peer, limit = self.table.max_connections, "connection refused: listener full");
                continue; // dropping the stream closes it
            };
            let Some(slot) = PerAddress::claim(&per_ip, peer.ip()) else {
                tracing::warn!(%peer, limit = self.table.max_connections_per_ip, "connection refused: too many from this address");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let gate = Gate {
                rpc: builder.clone().build(methods.clone(), stop.clone()),
                shared: Arc::clone(&shared),
                peer,
            };
            let acceptor = self.certs.as_ref().map(|c| c.acceptor());
            let stopped = stop.clone();
            // Every event of this connection names its peer.
            let span = tracing::info_span!("connection", listener = "http", %peer);
            open.spawn(
                async move {
                    let io = idle::IdleTimeout::new(stream, idle);
                    let served = match acceptor {
                        Some(acceptor) => {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                                Ok(Ok(tls)) => {
                                    serve_with_graceful_shutdown(tls, gate, stopped.shutdown()).await
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, "TLS handshake failed");
                                    Ok(())
                                }
                                Err(_) => Ok(()),
                            }
                        }
                        None => serve_with_graceful_shutdown(io, gate, stopped.shutdown()).await,
                    };
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "connection ended");
                    }
                    drop((permit, slot));
                }
                .instrument(span),
            );
        }
        let _ = handle.stop();
        let cut = open.close(grace).await;
        if cut > 0 {
            tracing::warn!(connections = cut, "network connections still open after the grace: closed");
        }
        Ok(())
    }
}

/// Connections per client address: each connection holds a [`Slot`] that gives its place
/// back when dropped.
#[derive(Debug)]
struct PerAddress {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    fn new(limit: usize) -> Self {
        PerAddress { limit, open: Mutex::new(HashMap::new()) }
    }

    fn claim(this: &Arc<PerAddress>, ip: IpAddr) -> Option<Slot> {
        let mut open = this.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= this.limit {
            return None;
        }
        *n += 1;
        Some(Slot { owner: Arc::clone(this), ip })
    }
}

/// One connection's place in [`PerAddress`].
#[derive(Debug)]
struct Slot {
    owner: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_limit_and_its_places_back() {
        let p = Arc::new(PerAddress::new(2));
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let b: IpAddr = "127.0.0.2".parse().expect("ip");
        let one = PerAddress::claim(&p, a).expect("first");
        let _two = PerAddress::claim(&p, a).expect("second");
        assert!(PerAddress::claim(&p, a).is_none(), "a third is refused");
        assert!(PerAddress::claim(&p, b).is_some(), "another address is not");
        drop(one);
        assert!(PerAddress::claim(&p, a).is_some(), "a closed connection gives its place back");
    }
}
