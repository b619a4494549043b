//! `Connections`: the tasks serving a listener's open connections. Shutdown waits for them
//! (a call in flight is answered: mini-redis's `shutdown_complete`), and after a grace ends
//! the ones that will not finish (a client that stopped reading its reply blocks the write
//! forever) rather than letting one client hold the daemon's exit.

use std::future::Future;
use std::time::Duration;
use tokio::task::JoinSet;

/// See the module docs.
#[derive(Debug, Default)]
pub struct Connections(JoinSet<()>);

impl Connections {
    /// Serves one connection; the tasks of connections that ended are collected first, so
    /// the set holds only open ones.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&mut self, serving: F) {
        while self.0.try_join_next().is_some() {}
        self.0.spawn(serving);
    }

    /// Waits up to `grace` for every connection to end, then ends those still open. Returns
    /// how many had to be ended.
    pub async fn close(mut self, grace: Duration) -> usize {
        let all_ended = async { while self.0.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all_ended).await.is_ok() {
            return 0;
        }
        let open = self.0.len();
        self.0.abort_all();
        while self.0.join_next().await.is_some() {}
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_waits_for_connections_that_end_and_ends_those_that_do_not() {
        let mut c = Connections::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        c.spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = tx.send(());
        });
        c.spawn(std::future::pending());
        let t = std::time::Instant::now();
        assert_eq!(c.close(Duration::from_millis(500)).await, 1, "the stuck one was ended");
        assert!(rx.await.is_ok(), "the short one finished first");
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(500) && waited < Duration::from_secs(3), "{waited:?}");
    }
}
