//! Requests that overlap in time: what one does to the store must never
//! destroy what another wrote since.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client that sends one request and then reads its response slowly: the
/// head and a first part, then nothing until told to go on.
struct SlowReader {
    stream: tokio::net::TcpStream,
    received: Vec<u8>,
}

impl SlowReader {
    async fn start(addr: std::net::SocketAddr, path: &str, body: &[u8], first: usize) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        // A small window, so the host cannot buffer the whole answer for us.
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        let head = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n\r\n", body.len());
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut reader = SlowReader { stream, received: Vec::new() };
        while reader.received.len() < first {
            let mut buf = vec![0; 16 * 1024];
            let n = reader.stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the response ended early");
            reader.received.extend_from_slice(&buf[..n]);
        }
        reader
    }

    /// Reads on until the host closes the connection (or the response is
    /// complete); returns the head's text and the body bytes.
    async fn finish(mut self, total_body: usize) -> (String, Vec<u8>) {
        let mut buf = vec![0; 256 * 1024];
        loop {
            let head_end = self.received.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
            if head_end.is_some_and(|end| self.received.len() - end >= total_body) {
                break;
            }
            match tokio::time::timeout(std::time::Duration::from_secs(20), self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => self.received.extend_from_slice(&buf[..n]),
                Err(_) => panic!("the host neither finished nor closed the response"),
            }
        }
        let end = self.received.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
        (String::from_utf8_lossy(&self.received[..end]).into_owned(), self.received[end..].to_vec())
    }
}

fn segments_of_generation(s: &Setup, generation: &str) -> usize {
    s.host.kv.keys_but_indexes("default").iter().filter(|k| k.split(':').count() == 7 && k.split(':').nth(5) == Some(generation)).count()
}

fn generations(s: &Setup) -> Vec<String> {
    let mut g: Vec<String> = s
        .host
        .kv
        .keys("default")
        .iter()
        .filter(|k| k.split(':').count() == 7)
        .map(|k| k.split(':').nth(5).unwrap().to_string())
        .collect();
    g.sort();
    g.dedup();
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_of_a_replaced_segmented_entry_is_cut_short_and_the_newer_entry_is_kept() {
    let mut s = setup_with(&[], |c| c.kv_max_value_bytes = Some(1_000_000)).await;
    let size = 15 << 20;
    let path = "/replaced?size=15728640&cc=max-age%3D60";
    let first = s.client.post(path, &[], b"q").await;
    assert_eq!(first.body.len(), size);
    let old = generations(&s);
    assert_eq!(old.len(), 1);
    // A client reads the head and the first part of the entry, then stalls.
    let slow = SlowReader::start(s.host.addr, path, b"q", 64 * 1024).await;
    // Meanwhile another client forces a refetch: a newer entry replaces the
    // one being read, and once the grace has passed the old segments go.
    let mut other = Client::new(s.host.addr);
    let newer = other.post(path, &[("cache-control", "no-cache")], b"q").await;
    assert_eq!(newer.cache_status(), "post-cache; fwd=request; detail=storing");
    assert!(newer.body != first.body);
    let started = std::time::Instant::now();
    while segments_of_generation(&s, &old[0]) > 0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "the old segments were never deleted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The slow client goes on: its answer is cut short, never mixed.
    let (head, body) = slow.finish(size).await;
    assert!(head.contains("cache-status: post-cache; hit; ttl=60"), "{head}");
    assert!(body.len() < size, "the old entry's replay cannot complete");
    assert!(body[..] == first.body[..body.len()], "what it got is the old entry's prefix");
    s.client.settle().await;
    // The newer entry survived the broken replay: a hit, whole, no third fetch.
    let hit = s.client.post(path, &[], b"q").await;
    assert_eq!(hit.cache_status(), "post-cache; hit; ttl=60");
    assert!(hit.body == newer.body, "the newer entry is replayed");
    assert_eq!(s.origin.count("POST", "/replaced", b"q"), 2);
    let now = generations(&s);
    assert_eq!(now.len(), 1);
    assert_ne!(now, old);
    assert_eq!(segments_of_generation(&s, &now[0]), 15);
}
