//! A minimal HTTP/1.1 client for tests and benchmarks, on one keep-alive connection.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http1::SendRequest;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A response read in full.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

impl Reply {
    /// The first value of `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn cache_status(&self) -> String {
        self.header("cache-status").unwrap_or_default()
    }
}

/// How the request body is framed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `content-length`.
    Sized,
    /// `transfer-encoding: chunked`, in chunks of this many bytes.
    Chunked(usize),
}

pub struct Client {
    addr: SocketAddr,
    sender: Option<SendRequest<Body>>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    async fn sender(&mut self) -> std::io::Result<&mut SendRequest<Body>> {
        let closed = self.sender.as_ref().is_none_or(|s| s.is_closed());
        if closed {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("set above");
        sender.ready().await.map_err(std::io::Error::other)?;
        Ok(sender)
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        framing: Framing,
    ) -> std::io::Result<Reply> {
        self.send_timed(method, path, headers, body, framing).await.map(|(reply, _)| reply)
    }

    /// [`send`](Self::send), and how long the response's head took to arrive
    /// (time to first byte).
    pub async fn send_timed(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        framing: Framing,
    ) -> std::io::Result<(Reply, std::time::Duration)> {
        let started = std::time::Instant::now();
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        for (n, v) in headers {
            builder = builder.header(*n, *v);
        }
        let body: Body = match framing {
            Framing::Sized => Full::new(Bytes::copy_from_slice(body)).boxed(),
            Framing::Chunked(size) => {
                let chunks: Vec<Result<Frame<Bytes>, Infallible>> = body
                    .chunks(size.max(1))
                    .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                    .collect();
                StreamBody::new(futures::stream::iter(chunks)).boxed()
            }
        };
        let request = builder.body(body).map_err(std::io::Error::other)?;
        let response = self
            .sender()
            .await?
            .send_request(request)
            .await
            .map_err(std::io::Error::other)?;
        let to_head = started.elapsed();
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        let body = response.into_body().collect().await.map_err(std::io::Error::other)?.to_bytes();
        Ok((Reply { status, headers, body }, to_head))
    }

    pub async fn post(&mut self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.send("POST", path, headers, body, Framing::Sized).await.expect("request failed")
    }
}
