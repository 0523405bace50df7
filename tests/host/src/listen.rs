//! The HTTP/1.1 accept loop shared by the host and the test origin.

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use wasmtime_wasi_http::io::TokioIo;

/// Serves every connection on `listener` with keep-alive, calling `handle` with
/// the peer address and each request, until the returned task is aborted. A
/// connection accepted while `open()` is false is closed at once, unanswered: a
/// server that is down. `nodelay` sets `TCP_NODELAY` on accepted sockets (Spin
/// does not).
pub fn serve<H, F, B, E>(
    listener: TcpListener,
    nodelay: bool,
    open: Arc<dyn Fn() -> bool + Send + Sync>,
    handle: H,
) -> JoinHandle<()>
where
    H: Fn(SocketAddr, hyper::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<hyper::Response<B>, E>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    tokio::spawn(async move {
        loop {
            let Ok((socket, peer)) = listener.accept().await else { continue };
            if !open() {
                drop(socket);
                continue;
            }
            if nodelay {
                let _ = socket.set_nodelay(true);
            }
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(peer, req));
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    })
}
