//! Benchmarks: what a post-cache hit, miss and pass-through cost beside two
//! floors and the origin itself, measured in one run on this machine.
//! `cargo run -p spin-test-host --bin bench` (add `-- --quick` for a short run,
//! `-- --protocols`, `-- --stale`, `-- --purge`, `-- --scale`, `-- --sockets`, `-- --large`,
//! `-- --sweep`, `-- --hits`, `-- --graphql-hits`, `-- --graphql-misses` or
//! `-- --mutation` for that section alone).

use sha2::{Digest, Sha256};
use spin_test_host::client::{Client, Framing};
use spin_test_host::origin::{Faults, TestOrigin};
use spin_test_host::{build, engine, load, start, HostConfig, Route, RunningHost};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
const CONCURRENCY: usize = 4;
const ROUNDS: usize = 3;

/// A host config for post-cache in front of `origin`, with these variables.
fn in_front_of(origin: &TestOrigin, vars: &[(&str, &str)]) -> HostConfig {
    let mut c = HostConfig::default();
    c.variables.insert("origin".into(), origin.base_url());
    for (name, value) in vars {
        c.variables.insert(name.to_string(), value.to_string());
    }
    c.allowed_outbound_hosts.push(origin.base_url());
    c
}

/// Tags that make request bodies unique across the whole run.
static UNIQUE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[derive(Clone, Copy)]
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Share of requests slower than 30 ms (a delayed-ACK stall is 40 ms).
    over_30ms: f64,
    peak_mem: usize,
    /// Requests answered.
    requests: usize,
}

/// Runs `count` requests (or until `limit`) on `CONCURRENCY` connections.
async fn load_run(
    addr: SocketAddr,
    method: &'static str,
    path: String,
    body: Arc<Vec<u8>>,
    unique_bodies: bool,
    count: usize,
    limit: Duration,
    host: Option<&RunningHost>,
) -> Figures {
    load_run_with(addr, method, path, &[], body, unique_bodies, count, limit, host).await
}

/// [`load_run`] with request headers.
#[allow(clippy::too_many_arguments)]
async fn load_run_with(
    addr: SocketAddr,
    method: &'static str,
    path: String,
    headers: &'static [(&'static str, &'static str)],
    body: Arc<Vec<u8>>,
    unique_bodies: bool,
    count: usize,
    limit: Duration,
    host: Option<&RunningHost>,
) -> Figures {
    load_run_checked(addr, method, path, headers, body, unique_bodies, count, limit, host, "").await
}

/// What a row's every answer must say in `Cache-Status`: a row named for a
/// path measures that path only.
const HIT: &str = "post-cache; hit; ttl=";
const MISS: &str = "post-cache; fwd=uri-miss; detail=storing";
const BYPASS: &str = "post-cache; fwd=bypass;";

/// [`load_run_with`], checking that every answer's `Cache-Status` starts with
/// `expect` (nothing checked when it is empty: floors and the origin).
#[allow(clippy::too_many_arguments)]
async fn load_run_checked(
    addr: SocketAddr,
    method: &'static str,
    path: String,
    headers: &'static [(&'static str, &'static str)],
    body: Arc<Vec<u8>>,
    unique_bodies: bool,
    count: usize,
    limit: Duration,
    host: Option<&RunningHost>,
    expect: &'static str,
) -> Figures {
    if let Some(h) = host {
        h.stats.peak_memory.store(0, Ordering::SeqCst);
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + limit;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (path, body, next) = (path.clone(), body.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            let mut latencies = Vec::new();
            let mut own = (*body).clone();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count || Instant::now() > deadline {
                    break;
                }
                if unique_bodies {
                    // A fresh key per request, across all runs: every one is a miss.
                    let tag = UNIQUE.fetch_add(1, Ordering::SeqCst).to_le_bytes();
                    let n = tag.len().min(own.len());
                    own[..n].copy_from_slice(&tag[..n]);
                }
                let t = Instant::now();
                let r = client.send(method, &path, headers, &own, Framing::Sized).await.expect("request");
                let elapsed = t.elapsed();
                assert!(r.status == 200, "{method} {path}: {} {}", r.status, r.cache_status());
                assert!(r.cache_status().starts_with(expect), "{method} {path}: expected {expect:?}, got {:?}", r.cache_status());
                latencies.push(elapsed);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1e3;
    Figures {
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        over_30ms: all.iter().filter(|d| d.as_millis() >= 30).count() as f64 / all.len() as f64,
        peak_mem: host.map(|h| h.stats.peak_memory.load(Ordering::SeqCst)).unwrap_or(0),
        requests: all.len(),
    }
}

/// p50 latency (ms) of hits over `bodies`, one connection, in sequence.
async fn hit_p50(addr: SocketAddr, bodies: &[Vec<u8>], rounds: usize) -> f64 {
    let mut client = Client::new(addr);
    let mut latencies = Vec::new();
    for _ in 0..rounds {
        for body in bodies {
            let t = Instant::now();
            let r = client.send("POST", "/bench?size=4096&static=1", &[], body, Framing::Sized).await.unwrap();
            assert!(r.cache_status().starts_with(HIT), "{}", r.cache_status());
            latencies.push(t.elapsed());
        }
    }
    latencies.sort();
    latencies[latencies.len() / 2].as_secs_f64() * 1e3
}

/// The round with the median throughput, with the median p50 and p99 of all rounds.
fn median(mut rounds: Vec<Figures>) -> Figures {
    let mid = rounds.len() / 2;
    let mut p50: Vec<f64> = rounds.iter().map(|f| f.p50_ms).collect();
    let mut p99: Vec<f64> = rounds.iter().map(|f| f.p99_ms).collect();
    p50.sort_by(f64::total_cmp);
    p99.sort_by(f64::total_cmp);
    rounds.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let peak_mem = rounds.iter().map(|f| f.peak_mem).max().unwrap_or(0);
    Figures { p50_ms: p50[mid], p99_ms: p99[mid], peak_mem, ..rounds[mid] }
}

fn size(n: usize) -> String {
    if n >= MIB { format!("{} MiB", n / MIB) } else { format!("{} KiB", n / KIB) }
}

fn mib(n: usize) -> String {
    if n == 0 { "-".into() } else { format!("{:.1}", n as f64 / MIB as f64) }
}

/// A GraphQL request of about `len` bytes: half document (aliased fields), half
/// variables.
fn graphql_body(len: usize) -> Vec<u8> {
    let mut doc = String::from("query Q($v: [String!]) { ");
    let mut i = 0;
    while doc.len() < len / 2 {
        doc.push_str(&format!("f{i}: item(id: {i}, filter: $v) {{ id name }} "));
        i += 1;
    }
    doc.push('}');
    let words: Vec<String> = (0..len / 24).map(|i| format!("\"word-{i}\"")).collect();
    format!("{{\"query\":\"{doc}\",\"operationName\":\"Q\",\"variables\":{{\"v\":[{}]}}}}", words.join(",")).into_bytes()
}

/// A JSON-RPC `eth_call` of about `len` bytes, at a block named by number: a
/// call at `latest` is kept only for `rpc_tip_ttl`, shorter than a round.
fn jsonrpc_body(len: usize) -> Vec<u8> {
    let data: String = (0..len.saturating_sub(120)).map(|i| b"0123456789abcdef"[i % 16] as char).collect();
    format!(r#"{{"jsonrpc":"2.0","id":7,"method":"eth_call","params":[{{"to":"0x00000000000000000000000000000000deadbeef","data":"0x{data}"}},"0x12a05f2"]}}"#).into_bytes()
}

/// Hits in `graphql` and `jsonrpc` mode against `raw` hits on the same bodies and
/// answers: one host, the same wasm at four routes.
async fn protocol_hits(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
    origin: &TestOrigin,
    scale: f64,
    limit: Duration,
) -> wasmtime::Result<()> {
    let mut config = in_front_of(origin, &[("default_ttl", "86400")]);
    // The test origin answers GraphQL under /graphql… and JSON-RPC under /rpc…,
    // so each raw route replays the same answer as its protocol route.
    config.routes = vec![
        Route::new("/graphql-raw/...", &[]),
        Route::new("/graphql/...", &[("body_format", "graphql")]),
        Route::new("/rpc-raw/...", &[]),
        Route::new("/rpc/...", &[("body_format", "jsonrpc"), ("rpc_methods", "eth_call")]),
    ];
    let host = start(engine, component, config).await?;
    const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
    println!();
    println!("Protocol hits vs raw hits on the same body and answer ({CONCURRENCY} connections, median of {ROUNDS} rounds):");
    println!();
    println!("| mode | body | raw req/s | mode req/s | mode/raw | raw p50 ms | mode p50 ms | parsing adds (p50) ms |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (mode, raw_path, mode_path, make) in [
        ("graphql", "/graphql-raw/q", "/graphql/q", graphql_body as fn(usize) -> Vec<u8>),
        ("jsonrpc", "/rpc-raw/q", "/rpc/q", jsonrpc_body as fn(usize) -> Vec<u8>),
    ] {
        for body_len in [KIB, 64 * KIB] {
            let body = Arc::new(make(body_len));
            let count = ((if body_len == KIB { 3000.0 } else { 1500.0 }) * scale) as usize;
            let mut c = Client::new(host.addr);
            for path in [raw_path, mode_path] {
                let warm = c.send("POST", path, JSON, &body, Framing::Sized).await?;
                assert!(warm.cache_status().contains("storing"), "{path}: {}", warm.cache_status());
                // A miss writes its record after answering: let it finish.
                host.wait_idle(Duration::from_secs(10)).await;
                let hit = c.send("POST", path, JSON, &body, Framing::Sized).await?;
                assert!(hit.cache_status().contains("hit"), "{path}: {}", hit.cache_status());
            }
            let mut rounds: [Vec<Figures>; 2] = Default::default();
            for _ in 0..ROUNDS {
                rounds[0].push(load_run_checked(host.addr, "POST", raw_path.into(), JSON, body.clone(), false, count, limit, Some(&host), HIT).await);
                rounds[1].push(load_run_checked(host.addr, "POST", mode_path.into(), JSON, body.clone(), false, count, limit, Some(&host), HIT).await);
            }
            let [raw, parsed] = rounds.map(median);
            println!(
                "| {mode} | {} ({} B) | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:+.2} |",
                size(body_len), body.len(), raw.rps, parsed.rps, parsed.rps / raw.rps, raw.p50_ms, parsed.p50_ms, parsed.p50_ms - raw.p50_ms
            );
        }
    }
    Ok(())
}

/// The paths through post-cache with Spin's sockets (no `TCP_NODELAY` on the
/// accepted or the outbound connections) and with `TCP_NODELAY` on both.
async fn socket_modes(
    engine: &wasmtime::Engine,
    post_cache: &wasmtime::component::Component,
    trivial: &wasmtime::component::Component,
    forward: &wasmtime::component::Component,
    origin: &TestOrigin,
    scale: f64,
    limit: Duration,
) -> wasmtime::Result<()> {
    println!();
    println!("Socket modes ({CONCURRENCY} connections, 1 KiB request bodies, 4 KiB answers, median of {ROUNDS} rounds):");
    println!();
    println!("| host sockets | path | req/s | p50 ms | p99 ms | requests ≥ 30 ms |");
    println!("|---|---|---:|---:|---:|---:|");
    let count = (2000.0 * scale) as usize;
    let body = Arc::new(spin_test_host::origin::binary_body(KIB, 5));
    let q = "/bench?size=4096&static=1".to_string();
    let mut wrk_rows = Vec::new();
    for (mode, nodelay) in [("Spin (no TCP_NODELAY)", false), ("TCP_NODELAY both sides", true)] {
        let config = |vars: bool| {
            let c = if vars { in_front_of(origin, &[("default_ttl", "86400")]) } else { HostConfig::default() };
            HostConfig { tcp_nodelay: nodelay, ..c }
        };
        let pc = start(engine, post_cache, config(true)).await?;
        let floor = start(engine, trivial, config(false)).await?;
        let forwarding = start(engine, forward, config(true)).await?;
        let mut c = Client::new(pc.addr);
        c.send("POST", &q, &[], &body, Framing::Sized).await?;
        let mut rounds: [Vec<Figures>; 7] = Default::default();
        for _ in 0..ROUNDS {
            rounds[0].push(load_run(floor.addr, "POST", q.clone(), body.clone(), false, count, limit, None).await);
            rounds[5].push(load_run(forwarding.addr, "GET", q.clone(), Arc::new(Vec::new()), false, count, limit, None).await);
            rounds[6].push(load_run(forwarding.addr, "POST", q.clone(), body.clone(), false, count, limit, None).await);
            rounds[1].push(load_run_checked(pc.addr, "GET", q.clone(), &[], Arc::new(Vec::new()), false, count, limit, None, BYPASS).await);
            rounds[2].push(load_run_checked(pc.addr, "POST", q.clone(), &[("cache-control", "no-store")], body.clone(), false, count, limit, None, BYPASS).await);
            rounds[3].push(load_run_checked(pc.addr, "POST", q.clone(), &[], body.clone(), true, count, limit, None, MISS).await);
            rounds[4].push(load_run_checked(pc.addr, "POST", q.clone(), &[], body.clone(), false, count, limit, None, HIT).await);
        }
        let names = [
            "floor: fixed 4 KiB answer",
            "GET pass-through",
            "POST pass-through (no-store)",
            "POST miss, stored",
            "POST hit",
            "floor: GET forwarded to the origin",
            "floor: POST forwarded to the origin",
        ];
        for (name, f) in names.iter().zip(rounds.map(median)) {
            println!("| {mode} | {name} | {:.0} | {:.2} | {:.2} | {:.2} % |", f.rps, f.p50_ms, f.p99_ms, f.over_30ms * 100.0);
        }
        wrk_rows.extend(wrk_paths(mode, pc.addr, floor.addr, forwarding.addr, limit));
    }
    if !wrk_rows.is_empty() {
        println!();
        println!("The same paths loaded by wrk (1 thread, 4 connections), whose connections show delayed-ACK stalls where this load generator's do not:");
        println!();
        println!("| host sockets | path | req/s | p50 ms | p99 ms |");
        println!("|---|---|---:|---:|---:|");
        for row in wrk_rows {
            println!("{row}");
        }
    }
    Ok(())
}

/// Runs wrk, when it is installed, over the socket section's paths; a row each.
fn wrk_paths(mode: &str, pc: SocketAddr, floor: SocketAddr, forwarding: SocketAddr, limit: Duration) -> Vec<String> {
    if std::process::Command::new("wrk").arg("--version").output().is_err() {
        return Vec::new();
    }
    let dir = std::env::temp_dir();
    let script = |name: &str, lua: &str| {
        let path = dir.join(format!("post-cache-bench-{name}.lua"));
        std::fs::write(&path, lua).expect("temp file");
        path
    };
    let body = "wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", 1024)\n";
    let no_store = script("no-store", &format!("{body}wrk.headers[\"cache-control\"] = \"no-store\"\n"));
    let hit = script("hit", body);
    let miss = script(
        "miss",
        "local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(\"POST\", nil, nil, tostring(os.time()) .. \":\" .. tostring(math.random()) .. \":\" .. n .. string.rep(\"m\", 990))\nend\n",
    );
    let runs: [(&str, SocketAddr, Option<&std::path::Path>); 7] = [
        ("floor: fixed 4 KiB answer", floor, Some(hit.as_path())),
        ("floor: GET forwarded to the origin", forwarding, None),
        ("floor: POST forwarded to the origin", forwarding, Some(hit.as_path())),
        ("GET pass-through", pc, None),
        ("POST pass-through (no-store)", pc, Some(no_store.as_path())),
        ("POST miss, stored", pc, Some(miss.as_path())),
        ("POST hit", pc, Some(hit.as_path())),
    ];
    let mut rows = Vec::new();
    for (name, addr, lua) in runs {
        let mut cmd = std::process::Command::new("wrk");
        cmd.args(["-t1", "-c4", &format!("-d{}s", limit.as_secs().max(2)), "--latency"]);
        if let Some(lua) = lua {
            cmd.arg("-s").arg(lua);
        }
        cmd.arg(format!("http://{addr}/bench?size=4096&static=1"));
        let Ok(out) = cmd.output() else { continue };
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |prefix: &str| {
            text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string())).unwrap_or_default()
        };
        let ms = |v: String| match v.strip_suffix("ms") {
            Some(n) => n.parse::<f64>().unwrap_or(0.0),
            None => v.strip_suffix("us").and_then(|n| n.parse::<f64>().ok()).map_or(0.0, |u| u / 1e3),
        };
        let rps = field("Requests/sec:").parse::<f64>().unwrap_or(0.0);
        rows.push(format!("| {mode} | {name} | {rps:.0} | {:.2} | {:.2} |", ms(field("50%")), ms(field("99%"))));
    }
    rows
}

/// Keys in the store other than the benchmark's filler (whose URL digests
/// are small numbers) and indexes.
fn real_entries(host: &RunningHost) -> Vec<String> {
    host.kv
        .keys("default")
        .into_iter()
        .filter(|k| !k.starts_with("post-cache:v3:000000000000000000000") && !k.starts_with("post-cache:v3:ix:"))
        .collect()
}

/// Stores /item's entry by a miss, tagged `item`; returns its key.
async fn store_item(host: &RunningHost, client: &mut Client) -> wasmtime::Result<Vec<String>> {
    let r = client.send("POST", "/item?cc=max-age%3D600&tags=item", &[], b"{}", Framing::Sized).await?;
    assert_eq!(r.cache_status(), MISS);
    host.wait_idle(Duration::from_secs(60)).await;
    let item = real_entries(host);
    assert_eq!(item.len(), 1, "{item:?}");
    Ok(item)
}

/// What one invalidation (a PUT) and one purge by URL or by tag cost with 100
/// and with 100,000 entries in the store: each reads an index, not the store's
/// listing (`get-keys` lists the whole store).
async fn invalidation_cost(
    engine: &wasmtime::Engine,
    post_cache: &wasmtime::component::Component,
    origin: &TestOrigin,
) -> wasmtime::Result<()> {
    const TOKEN: &str = "bench-purge-token-0123456789";
    println!();
    println!("Invalidation and purge against the store size (sequential, median of 15; the PUT's client is answered before the invalidation, so its time is the instance's, which includes the idle settle delay before its second look at the index; a purge's time is its client's):");
    println!();
    println!("| entries in store | PUT, invalidate_on_unsafe=false, ms | PUT, invalidating, ms | purge by URL, ms | purge by tag, ms | get-keys calls | peak guest MiB (invalidating) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for entries in [100usize, 100_000] {
        let mut times = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        let mut listings = 0;
        let mut peak = 0;
        for (i, invalidate) in ["false", "true"].into_iter().enumerate() {
            // No automatic sweep step: the filler values are not records, and
            // a step would delete them as dead.
            let c = in_front_of(origin, &[("invalidate_on_unsafe", invalidate), ("purge_token", TOKEN), ("sweep_every", "0")]);
            let host = start(engine, post_cache, c).await?;
            let filler = vec![0x11u8; 4 * KIB];
            for n in 0..entries as u64 {
                host.kv.insert("default", &format!("post-cache:v3:{n:032x}:{n:016x}:{n:064x}"), filler.clone());
            }
            let mut client = Client::new(host.addr);
            // Each timed request has a real entry of /item to delete (stored
            // by a miss first), and is checked to have deleted it, or, without
            // invalidation, to have left it.
            for _ in 0..15 {
                let item = store_item(&host, &mut client).await?;
                let t = Instant::now();
                let r = client.send("PUT", "/item", &[], b"{}", Framing::Sized).await?;
                assert_eq!(r.status, 200);
                times[i].push(idle_at(&host).await - t);
                let left = real_entries(&host);
                if invalidate == "true" {
                    assert!(left.is_empty(), "the PUT left /item's entry: {left:?}");
                } else {
                    assert_eq!(left, item, "the PUT without invalidation kept /item's entry");
                    host.kv.remove("default", &item[0]);
                }
            }
            if invalidate == "true" {
                peak = host.stats.peak_memory.load(Ordering::SeqCst);
                let auth = format!("Bearer {TOKEN}");
                for _ in 0..15 {
                    store_item(&host, &mut client).await?;
                    let t = Instant::now();
                    let r = client.send("POST", "/.well-known/post-cache/purge", &[("authorization", auth.as_str())], br#"{"url":"/item"}"#, Framing::Sized).await?;
                    times[2].push(t.elapsed());
                    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                    assert_eq!(String::from_utf8_lossy(&r.body), r#"{"purged":1,"soft":false}"#);
                    assert!(real_entries(&host).is_empty());
                }
                for _ in 0..15 {
                    store_item(&host, &mut client).await?;
                    let t = Instant::now();
                    let r = client.send("POST", "/.well-known/post-cache/purge", &[("authorization", auth.as_str())], br#"{"tags":["item"]}"#, Framing::Sized).await?;
                    times[3].push(t.elapsed());
                    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                    assert_eq!(String::from_utf8_lossy(&r.body), r#"{"purged":1,"soft":false}"#);
                    host.wait_idle(Duration::from_secs(60)).await;
                    assert!(real_entries(&host).is_empty());
                }
                listings = host.kv.ops.snapshot().get_keys;
                assert_eq!(listings, 0, "the PUTs and purges read indexes, not the store's listing");
            }
            let left = host.kv.keys("default").into_iter().filter(|k| !k.starts_with("post-cache:v3:ix:")).count();
            assert_eq!(left, entries, "only the filler is left, and indexes");
        }
        let med = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2].as_secs_f64() * 1e3
        };
        let [a, b, p, t] = &mut times;
        println!("| {entries} | {:.2} | {:.2} | {:.2} | {:.2} | {listings} | {} |", med(a), med(b), med(p), med(t), mib(peak));
    }
    Ok(())
}

/// Waits until the host has no instance running (the work after the
/// response included), polling more finely than `wait_idle`; returns when.
async fn idle_at(host: &RunningHost) -> Instant {
    let started = Instant::now();
    while host.stats.active.load(Ordering::SeqCst) > 0 {
        assert!(started.elapsed() < Duration::from_secs(120), "instances still running");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Instant::now()
}

/// The store calls of each request of a row, as `get/set/delete/get-keys`:
/// one figure each when every request made the same calls, else the range.
fn calls_column(calls: &[spin_test_host::kv::KvCounts]) -> String {
    let field = |f: fn(&spin_test_host::kv::KvCounts) -> u64| {
        let (lo, hi) = (calls.iter().map(f).min().unwrap_or(0), calls.iter().map(f).max().unwrap_or(0));
        if lo == hi { lo.to_string() } else { format!("{lo}–{hi}") }
    };
    [field(|c| c.get), field(|c| c.set), field(|c| c.delete), field(|c| c.get_keys)].join("/")
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// What a GraphQL query answer shows, for the tagging cost.
#[derive(Clone, Copy, PartialEq)]
enum Shown {
    /// 16 `User` objects with `__typename` and `id`, each padded by a long
    /// `bio` string to the answer's size.
    Padded,
    /// The same objects with `typename__` in place of `__typename`: the same
    /// bytes to read, no entity.
    PaddedUntyped,
    /// As many small `User` objects as fill the answer.
    Many,
    /// The same small objects with `typename__`: no entity.
    ManyUntyped,
}

/// A GraphQL query whose answer (the test origin echoes `variables.entities`
/// as `data.entities`) is about `answer_len` bytes and shows what `shown`
/// says; entity ids carry `n`, so every request is its own entry with its own
/// entity tags.
fn entities_query(answer_len: usize, shown: Shown, n: u64) -> Vec<u8> {
    let type_member = if matches!(shown, Shown::PaddedUntyped | Shown::ManyUntyped) { "typename__" } else { "__typename" };
    let entities: Vec<serde_json::Value> = match shown {
        Shown::Padded | Shown::PaddedUntyped => {
            let bio = "x".repeat((answer_len.saturating_sub(100) / 16).saturating_sub(60));
            (0..16).map(|i| serde_json::json!({type_member: "User", "id": format!("{n}-{i}"), "bio": bio})).collect()
        }
        Shown::Many | Shown::ManyUntyped => {
            let one = serde_json::json!({type_member: "User", "id": format!("{n}-00000")}).to_string().len() + 1;
            (0..answer_len.saturating_sub(100) / one).map(|i| serde_json::json!({type_member: "User", "id": format!("{n}-{i:05}")})).collect()
        }
    };
    let query = "query Show($entities: [E]) { answer { n } }";
    serde_json::to_vec(&serde_json::json!({"query": query, "variables": {"entities": entities}})).expect("serialises")
}

/// What entity tagging costs a GraphQL miss (issue 18): answers of 4 KiB,
/// 256 KiB and 1 MiB showing entities, stored with entity tags, with the type
/// tag only (`graphql_entity_tags = 0`), and without any (no `__typename`).
/// Every miss has its own path and entity ids, so each writes fresh indexes.
async fn graphql_miss_cost(engine: &wasmtime::Engine, post_cache: &wasmtime::component::Component, origin: &TestOrigin) -> wasmtime::Result<()> {
    const MISSES: usize = 21;
    const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
    println!();
    println!("GraphQL misses and entity tags (sequential, {MISSES} misses per row, each with its own path and entity ids; medians; instance time is request to instance end, which includes the 200 ms settle delay before a writer's second look at its indexes; store calls per miss counted by the host; the request body carries the entities the origin echoes, so it is about as large as the answer):");
    println!();
    println!("| answer | entities shown | graphql_entity_tags | answer bytes | miss p50 ms (client) | instance p50 ms | store calls per miss (get/set/delete/get-keys) | tag indexes after {MISSES} misses | peak guest MiB |");
    println!("|---|---|---:|---:|---:|---:|---|---:|---:|");
    for answer_len in [4 * KIB, 256 * KIB, MIB] {
        for (shown, tags, what) in [
            (Shown::Padded, "16", "16 `User` with `__typename`, padded"),
            (Shown::Padded, "0", "16 `User` with `__typename`, padded"),
            (Shown::PaddedUntyped, "16", "16 `User` without `__typename`, padded"),
            (Shown::Many, "16", "many small `User` with `__typename`"),
            (Shown::ManyUntyped, "16", "many small `User` without `__typename`"),
        ] {
            // No automatic sweep step: it lists the store, and would be
            // counted with the miss it follows.
            let vars = [("body_format", "graphql"), ("graphql_entity_tags", tags), ("sweep_every", "0"), ("max_body_bytes", "4194304")];
            let host = start(engine, post_cache, in_front_of(origin, &vars)).await?;
            let mut client = Client::new(host.addr);
            let (mut latencies, mut instance, mut calls, mut peak, mut bytes) = (Vec::new(), Vec::new(), Vec::new(), 0, 0);
            let mut last = (String::new(), Vec::new());
            for _ in 0..MISSES {
                let n = UNIQUE.fetch_add(1, Ordering::SeqCst);
                let (path, body) = (format!("/graphql/m{n}"), entities_query(answer_len, shown, n));
                host.stats.peak_memory.store(0, Ordering::SeqCst);
                let before = host.kv.ops.snapshot();
                let t = Instant::now();
                let r = client.send("POST", &path, JSON, &body, Framing::Sized).await?;
                latencies.push(t.elapsed());
                assert_eq!((r.status, r.cache_status()), (200, MISS.to_string()), "{}", String::from_utf8_lossy(&r.body[..r.body.len().min(200)]));
                instance.push(idle_at(&host).await - t);
                calls.push(host.kv.ops.snapshot() - before);
                peak = peak.max(host.stats.peak_memory.load(Ordering::SeqCst));
                bytes = r.body.len();
                last = (path, body);
            }
            let hit = client.send("POST", &last.0, JSON, &last.1, Framing::Sized).await?;
            assert!(hit.cache_status().starts_with(HIT), "the last miss was stored: {}", hit.cache_status());
            let tag_indexes = host.kv.keys("default").iter().filter(|k| k.starts_with("post-cache:v3:ix:t:")).count();
            // Each miss's 16 entities, or the one `User:*` all share, or none;
            // past the cap the many small entities add `User:*`.
            let expected = match (shown, tags) {
                (Shown::Padded, "16") => 16 * MISSES,
                (Shown::Padded, _) => 1,
                (Shown::PaddedUntyped | Shown::ManyUntyped, _) => 0,
                (Shown::Many, _) => 16 * MISSES + 1,
            };
            assert_eq!(tag_indexes, expected, "{what}, graphql_entity_tags={tags}: tag indexes");
            println!(
                "| {} | {what} | {tags} | {bytes} | {:.2} | {:.2} | {} | {tag_indexes} | {} |",
                size(answer_len), median_ms(latencies), median_ms(instance), calls_column(&calls), mib(peak)
            );
        }
    }
    Ok(())
}

/// What a GraphQL mutation's invalidation costs with 100 and 100,000 entries
/// in the store (issue 18): filler as in [`invalidation_cost`], and four
/// stored queries of which two show `User:2`; each mutation answers `User:2`.
async fn mutation_cost(engine: &wasmtime::Engine, post_cache: &wasmtime::component::Component, origin: &TestOrigin) -> wasmtime::Result<()> {
    const TIMES: usize = 15;
    const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
    println!();
    println!("A GraphQL mutation's invalidation against the store size (sequential, median of {TIMES}; 4 stored queries, 2 of them showing User:2; the mutation answers User:2; its client is answered before the invalidation, whose time is the instance's and includes the 200 ms settle delay before the purge's second look at the index):");
    println!();
    println!("| entries in store | mutation p50 ms (client) | instance p50 ms | entries removed | store calls per mutation (get/set/delete/get-keys) | peak guest MiB |");
    println!("|---:|---:|---:|---:|---|---:|");
    let user = |id: &str| serde_json::json!({"__typename": "User", "id": id});
    let gql = |document: &str, entities: serde_json::Value| {
        serde_json::to_vec(&serde_json::json!({"query": document, "variables": {"entities": entities}})).expect("serialises")
    };
    let shows = "query Q($entities: [E]) { answer { n } }";
    let first = gql(&shows.replace('Q', "First"), serde_json::json!([user("1")]));
    let second = gql(&shows.replace('Q', "Second"), serde_json::json!([user("2")]));
    let both = gql(&shows.replace('Q', "Both"), serde_json::json!([user("1"), {"__typename": "Post", "id": 9, "author": user("2")}]));
    let post = gql(&shows.replace('Q', "Post"), serde_json::json!([{"__typename": "Post", "id": 3}]));
    let update = gql("mutation Update($entities: [E]) { updateUser { id } }", serde_json::json!([user("2")]));
    for entries in [100usize, 100_000] {
        let host = start(engine, post_cache, in_front_of(origin, &[("body_format", "graphql"), ("sweep_every", "0")])).await?;
        let filler = vec![0x11u8; 4 * KIB];
        for n in 0..entries as u64 {
            host.kv.insert("default", &format!("post-cache:v3:{n:032x}:{n:016x}:{n:064x}"), filler.clone());
        }
        let mut client = Client::new(host.addr);
        for body in [&first, &second, &both, &post] {
            assert_eq!(client.post("/graphql", JSON, body).await.cache_status(), MISS);
        }
        host.wait_idle(Duration::from_secs(60)).await;
        let (mut latencies, mut instance, mut calls, mut peak, mut removed) = (Vec::new(), Vec::new(), Vec::new(), 0, Vec::new());
        for _ in 0..TIMES {
            let stored = real_entries(&host).len();
            assert_eq!(stored, 4, "the four queries are stored");
            host.stats.peak_memory.store(0, Ordering::SeqCst);
            let before = host.kv.ops.snapshot();
            let t = Instant::now();
            let r = client.post("/graphql", JSON, &update).await;
            latencies.push(t.elapsed());
            assert_eq!((r.status, r.cache_status()), (200, "post-cache; fwd=bypass; detail=mutation".to_string()));
            instance.push(idle_at(&host).await - t);
            let used = host.kv.ops.snapshot() - before;
            assert_eq!(used.get_keys, 0, "the mutation listed the store");
            calls.push(used);
            peak = peak.max(host.stats.peak_memory.load(Ordering::SeqCst));
            removed.push(stored - real_entries(&host).len());
            // Exactly the two queries that showed User:2 went.
            for body in [&first, &post] {
                let r = client.post("/graphql", JSON, body).await;
                assert!(r.cache_status().starts_with(HIT), "a query without User:2 still hits: {}", r.cache_status());
            }
            for body in [&second, &both] {
                assert_eq!(client.post("/graphql", JSON, body).await.cache_status(), MISS, "a query showing User:2 is a miss");
            }
            host.wait_idle(Duration::from_secs(60)).await;
        }
        assert!(removed.iter().all(|&n| n == 2), "every mutation removed two entries: {removed:?}");
        let left = host.kv.keys_but_indexes("default").len();
        assert_eq!(left, entries + 4, "the filler is all there");
        println!(
            "| {entries} | {:.2} | {:.2} | {} | {} | {} |",
            median_ms(latencies), median_ms(instance), removed[0], calls_column(&calls), mib(peak)
        );
    }
    Ok(())
}

/// Entries over hosted Spin's 1 MB value (issue 10), under the host's 1 MB
/// cap: a 4 MiB hit against the origin answering directly, and its peak guest
/// memory; then time to first byte of a 256 KiB miss (teed to the client as it
/// arrives) against the origin's (issue 11).
async fn large_entries(engine: &wasmtime::Engine, post_cache: &wasmtime::component::Component, origin: &TestOrigin, scale: f64) -> wasmtime::Result<()> {
    let max_value = 1_000_000;
    let config = |cap: Option<usize>, max_value_bytes: usize| {
        let c = in_front_of(origin, &[("default_ttl", "86400"), ("max_value_bytes", &max_value_bytes.to_string())]);
        HostConfig { kv_max_value_bytes: cap, ..c }
    };
    let host = start(engine, post_cache, config(Some(max_value), max_value)).await?;
    // The same answer in one value, on a store without a cap: what segmenting costs.
    let whole = start(engine, post_cache, config(None, 16 * MIB)).await?;
    let body = Arc::new(b"{\"query\":\"{ blocks }\"}".to_vec());
    let path = format!("/large?size={}&static=1", 4 * MIB);
    for h in [&host, &whole] {
        let warm = Client::new(h.addr).send("POST", &path, &[], &body, Framing::Sized).await?;
        assert_eq!(warm.body.len(), 4 * MIB);
        h.wait_idle(Duration::from_secs(10)).await;
    }
    let count = (200.0 * scale).max(20.0) as usize;
    let limit = Duration::from_secs(10);
    let mut rounds: [Vec<Figures>; 3] = Default::default();
    for _ in 0..ROUNDS {
        rounds[0].push(load_run_checked(host.addr, "POST", path.clone(), &[], body.clone(), false, count, limit, Some(&host), HIT).await);
        rounds[1].push(load_run_checked(whole.addr, "POST", path.clone(), &[], body.clone(), false, count, limit, Some(&whole), HIT).await);
        rounds[2].push(load_run(origin.addr, "POST", path.clone(), body.clone(), false, count, limit, None).await);
    }
    let mut c = Client::new(host.addr);
    let check = c.send("POST", &path, &[], &body, Framing::Sized).await?;
    assert!(check.cache_status().contains("hit"), "{}", check.cache_status());
    assert_eq!(host.kv.keys("default").len(), 5, "a head and 4 segments");
    let [hit, one_value, direct] = rounds.map(median);
    println!();
    println!("large entries: 4 MiB answer, stored as a head and 4 segments under a 1,000,000-byte value cap, {CONCURRENCY} connections");
    println!("| path | req/s | p50 ms | p99 ms | MB/s | peak guest MiB |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, f) in [("post-cache hit (segmented)", hit), ("post-cache hit (one value, no cap)", one_value), ("origin directly", direct)] {
        let mbps = f.rps * (4 * MIB) as f64 / 1e6;
        println!("| {name} | {:.0} | {:.2} | {:.2} | {mbps:.0} | {} |", f.rps, f.p50_ms, f.p99_ms, mib(f.peak_mem));
    }
    let budget = 3 * max_value + MIB;
    println!(
        "hit/origin req/s {:.2}, segmented/one value {:.2}; peak guest memory of a 4 MiB hit {} MiB, target <= 3 x max_value_bytes + 1 MiB = {} MiB: {}",
        hit.rps / direct.rps,
        hit.rps / one_value.rps,
        mib(hit.peak_mem),
        mib(budget),
        if hit.peak_mem <= budget { "met" } else { "NOT MET" }
    );

    // Time to first byte of a miss: 256 KiB answers, one connection, in turn.
    let samples = (100.0 * scale).max(20.0) as usize;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut c = Client::new(host.addr);
    let mut o = Client::new(origin.addr);
    for i in 0..samples {
        let path = format!("/ttfb?size={}&static=1", 256 * KIB);
        let unique = format!("{{\"n\":{}}}", UNIQUE.fetch_add(1, Ordering::SeqCst) + i as u64);
        let (miss, to_head) = c.send_timed("POST", &path, &[], unique.as_bytes(), Framing::Sized).await?;
        assert!(miss.cache_status().contains("fwd=uri-miss"), "{}", miss.cache_status());
        ours.push(to_head);
        let (_, origin_head) = o.send_timed("POST", &path, &[], unique.as_bytes(), Framing::Sized).await?;
        theirs.push(origin_head);
        host.wait_idle(Duration::from_secs(10)).await;
    }
    ours.sort();
    theirs.sort();
    let p50 = |v: &[Duration]| v[v.len() / 2].as_secs_f64() * 1e3;
    println!(
        "256 KiB miss, time to first byte p50: post-cache {:.2} ms, origin directly {:.2} ms, difference {:+.2} ms (target <= +1 ms: {})",
        p50(&ours),
        p50(&theirs),
        p50(&ours) - p50(&theirs),
        if p50(&ours) - p50(&theirs) <= 1.0 { "met" } else { "NOT MET" }
    );
    Ok(())
}

/// Stale hits against fresh hits of the same entry, and what collapsing does to
/// a burst of identical cold misses.
async fn stale_and_collapse(
    engine: &wasmtime::Engine,
    post_cache: &wasmtime::component::Component,
    origin: &TestOrigin,
    scale: f64,
    limit: Duration,
) -> wasmtime::Result<()> {
    let config = |collapse_wait_ms: &str| in_front_of(origin, &[("collapse_wait_ms", collapse_wait_ms)]);
    let host = start(engine, post_cache, config("300")).await?;
    host.freeze_clock();
    let body = Arc::new(spin_test_host::origin::binary_body(KIB, 77));
    let fresh_path = "/stale-bench?size=4096&static=1&cc=max-age%3D86400".to_string();
    let stale_path = "/stale-bench?size=4096&static=1&cc=max-age%3D1%2C%20stale-while-revalidate%3D86400".to_string();
    let mut c = Client::new(host.addr);
    c.send("POST", &fresh_path, &[], &body, Framing::Sized).await?;
    c.send("POST", &stale_path, &[], &body, Framing::Sized).await?;
    host.wait_idle(Duration::from_secs(10)).await;
    host.advance_clock(10);
    // The first stale hit marks the entry and refreshes it; the origin fails that
    // refresh, so the marked entry stays stale and every later request is a pure
    // stale hit (one get, no write), as while a real refresh is in flight.
    origin.set_faults(Faults { status: Some(503), ..Faults::default() });
    let first = c.send("POST", &stale_path, &[], &body, Framing::Sized).await?;
    assert!(first.cache_status().contains("ttl=-"), "{}", first.cache_status());
    host.wait_idle(Duration::from_secs(10)).await;
    let count = (3000.0 * scale) as usize;
    let mut rounds: [Vec<Figures>; 2] = Default::default();
    // What each kind of hit asks of the store, counted by the host.
    let mut calls = [spin_test_host::kv::KvCounts::default(); 2];
    for _ in 0..ROUNDS {
        for (i, (path, expect)) in [(&fresh_path, HIT), (&stale_path, "post-cache; hit; ttl=-")].into_iter().enumerate() {
            let before = host.kv.ops.snapshot();
            let f = load_run_checked(host.addr, "POST", path.clone(), &[], body.clone(), false, count, limit, Some(&host), expect).await;
            host.wait_idle(Duration::from_secs(10)).await;
            let used = host.kv.ops.snapshot() - before;
            let c = &mut calls[i];
            (c.open, c.get, c.set, c.delete, c.exists, c.get_keys) =
                (c.open + used.open, c.get + used.get, c.set + used.set, c.delete + used.delete, c.exists + used.exists, c.get_keys + used.get_keys);
            rounds[i].push(f);
        }
    }
    let requests: Vec<u64> = rounds.iter().map(|r| r.iter().map(|f| f.requests as u64).sum()).collect();
    for (i, name) in ["fresh", "stale"].into_iter().enumerate() {
        let (c, n) = (calls[i], requests[i]);
        assert_eq!((c.get, c.set, c.delete, c.get_keys), (n, 0, 0, 0), "{name} hits: one get and no write each");
    }
    origin.set_faults(Faults::default());
    let check = c.send("POST", &stale_path, &[], &body, Framing::Sized).await?;
    assert!(check.cache_status().contains("hit; ttl=-"), "still stale hits: {}", check.cache_status());
    let [fresh, stale] = rounds.map(median);
    println!();
    println!("Stale hits vs fresh hits (1 KiB body, 4 KiB response, {CONCURRENCY} connections, median of {ROUNDS} rounds):");
    println!();
    println!("| hit | req/s | p50 ms | p99 ms | stale/fresh req/s |");
    println!("|---|---:|---:|---:|---:|");
    println!("| fresh | {:.0} | {:.2} | {:.2} | |", fresh.rps, fresh.p50_ms, fresh.p99_ms);
    println!("| stale (refresh in flight) | {:.0} | {:.2} | {:.2} | {:.2} |", stale.rps, stale.p50_ms, stale.p99_ms, stale.rps / fresh.rps);
    for (i, name) in ["fresh", "stale"].into_iter().enumerate() {
        let c = calls[i];
        println!(
            "store calls counted by the host over {} {name} hits: {} get, {} set, {} delete, {} get-keys",
            requests[i], c.get, c.set, c.delete, c.get_keys
        );
    }

    // Bursts of 32 identical misses against an origin taking 50 ms: on keys
    // that hold nothing, and on expired entries.
    println!();
    println!("Bursts of 32 concurrent identical misses, origin answering in 50 ms:");
    println!();
    println!("| key | collapse_wait_ms | collapse_cold_misses | bursts | origin calls per burst (mean) | max | burst p50 ms | burst max ms |");
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    let bursts = ((20.0 * scale) as usize).max(3);
    for (key, wait, cold) in [("cold", "300", "true"), ("cold", "300", "false"), ("expired", "300", "false"), ("cold", "0", "false")] {
        let c = in_front_of(origin, &[("collapse_wait_ms", wait), ("collapse_cold_misses", cold)]);
        let host = start(engine, post_cache, c).await?;
        host.freeze_clock();
        let (mut calls, mut latencies) = (Vec::new(), Vec::new());
        for _ in 0..bursts {
            let body = UNIQUE.fetch_add(1, Ordering::SeqCst).to_le_bytes().to_vec();
            const PATH: &str = "/burst?cc=max-age%3D60&delay_ms=50";
            if key == "expired" {
                let r = Client::new(host.addr).send("POST", PATH, &[], &body, Framing::Sized).await?;
                assert_eq!(r.cache_status(), MISS);
                host.wait_idle(Duration::from_secs(10)).await;
                host.advance_clock(61);
            }
            let before = origin.count("POST", "/burst", &body);
            let tasks: Vec<_> = (0..32)
                .map(|_| {
                    let (addr, body) = (host.addr, body.clone());
                    tokio::spawn(async move {
                        let t = Instant::now();
                        let r = Client::new(addr).send("POST", PATH, &[], &body, Framing::Sized).await;
                        assert_eq!(r.expect("request").status, 200);
                        t.elapsed()
                    })
                })
                .collect();
            for t in tasks {
                latencies.push(t.await?);
            }
            calls.push(origin.count("POST", "/burst", &body) - before);
            host.wait_idle(Duration::from_secs(10)).await;
        }
        latencies.sort();
        let mean = calls.iter().sum::<u64>() as f64 / calls.len() as f64;
        println!(
            "| {key} | {wait} | {cold} | {bursts} | {mean:.2} | {} | {:.1} | {:.1} |",
            calls.iter().max().unwrap_or(&0),
            latencies[latencies.len() / 2].as_secs_f64() * 1e3,
            latencies.last().map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
        );
    }

    // What a mark on every cold key costs where writes cost what they do under
    // `spin up`: a SQLite store.
    println!();
    println!("Cold misses (every body unique, 1 KiB body, 4 KiB answer, origin answering at once), SQLite store as spin up keeps it, {CONCURRENCY} connections:");
    println!();
    println!("| collapse_cold_misses | req/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    let count = ((1500.0 * scale) as usize).max(100);
    for cold in ["false", "true"] {
        let db = std::env::temp_dir().join(format!("post-cache-bench-cold-{}-{cold}.db", std::process::id()));
        let _ = std::fs::remove_file(&db);
        let c = HostConfig { kv_sqlite: Some(db.clone()), ..in_front_of(origin, &[("collapse_cold_misses", cold)]) };
        let host = start(engine, post_cache, c).await?;
        let body = Arc::new(spin_test_host::origin::binary_body(KIB, 7));
        let f = load_run_checked(host.addr, "POST", "/cold?size=4096&static=1".into(), &[], body, true, count, limit, Some(&host), MISS).await;
        println!("| {cold} | {:.0} | {:.2} | {:.2} |", f.rps, f.p50_ms, f.p99_ms);
        host.wait_idle(Duration::from_secs(20)).await;
        drop(host);
        let _ = std::fs::remove_file(&db);
    }
    Ok(())
}

/// Hit p50 with 100 entries, then with 100,000, in a store that keeps them
/// as `spin up` does (SQLite; an in-memory map answers in the same time at any
/// size, so it would measure nothing).
async fn hit_at_scale(engine: &wasmtime::Engine, post_cache: &wasmtime::component::Component, origin: &TestOrigin, scale: f64) -> wasmtime::Result<()> {
    let db = std::env::temp_dir().join(format!("post-cache-bench-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let config = HostConfig { kv_sqlite: Some(db.clone()), ..in_front_of(origin, &[("default_ttl", "86400")]) };
    let scaled = start(engine, post_cache, config).await?;
    let mut c = Client::new(scaled.addr);
    let bodies: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_le_bytes().repeat(256)).collect();
    for b in &bodies {
        let r = c.send("POST", "/bench?size=4096&static=1", &[], b, Framing::Sized).await?;
        assert_eq!(r.cache_status(), MISS);
    }
    scaled.wait_idle(Duration::from_secs(10)).await;
    let rounds = (20.0 * scale).max(3.0) as usize;
    let small = hit_p50(scaled.addr, &bodies, rounds).await;
    let entries = scaled.kv.keys("default").len();
    assert_eq!(entries, 100);
    // Entries of the size and key shape post-cache writes, as records of other
    // requests would be.
    let filler = vec![0x11u8; 4 * KIB + 300];
    scaled.kv.insert_many("default", (0..99_900u64).map(|i| (format!("post-cache:v3:{i:032x}:{i:016x}:{i:064x}"), filler.clone())));
    let large = hit_p50(scaled.addr, &bodies, rounds).await;
    let large_entries = scaled.kv.keys("default").len();
    assert_eq!(large_entries, 100_000);
    println!(
        "hit p50 (SQLite store, as spin up keeps it): {small:.3} ms at {entries} entries, {large:.3} ms at {large_entries} entries, ratio {:.2}",
        large / small
    );
    drop(scaled);
    let _ = std::fs::remove_file(&db);
    Ok(())
}

/// Hits against the hash+get floor alone, at the body sizes where the hit path's
/// own work shows (1 and 64 KiB, 4 KiB answer), over more interleaved rounds
/// than the full run. `BENCH_COMPONENTS=name=file.wasm,name=file.wasm` runs
/// several builds of post-cache in the same rounds instead of the one just
/// built (e.g. opt levels, or a build with a part of the hit path left out):
/// the machine's drift then hits every build alike. With `graphql`, the hits
/// are GraphQL queries in `graphql` mode (the 1 and 64 KiB bodies of the
/// protocol section, and a query whose 4 KiB answer shows 16 entities), the
/// floor hashing the same bodies.
async fn hits_against_floor(
    engine: &wasmtime::Engine,
    post_cache: &wasmtime::component::Component,
    hash_get: &wasmtime::component::Component,
    origin: &TestOrigin,
    scale: f64,
    limit: Duration,
    graphql: bool,
) -> wasmtime::Result<()> {
    const HIT_ROUNDS: usize = 7;
    const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
    let builds: Vec<(String, wasmtime::component::Component, u64)> = match std::env::var("BENCH_COMPONENTS") {
        Ok(list) => list
            .split(',')
            .map(|item| {
                let (name, file) = item.split_once('=').expect("BENCH_COMPONENTS items are name=file.wasm");
                let bytes = std::fs::metadata(file)?.len();
                Ok((name.to_string(), load(engine, std::path::Path::new(file))?, bytes))
            })
            .collect::<wasmtime::Result<_>>()?,
        Err(_) => {
            let bytes = std::fs::metadata(build::component("post-cache")?)?.len();
            vec![("post-cache".to_string(), post_cache.clone(), bytes)]
        }
    };
    // Each build has a host, and so a store, of its own.
    let mut hosts = Vec::new();
    for (_, component, _) in &builds {
        let vars: &[(&str, &str)] = if graphql { &[("default_ttl", "86400"), ("body_format", "graphql")] } else { &[("default_ttl", "86400")] };
        hosts.push(start(engine, component, in_front_of(origin, vars)).await?);
    }
    let hg = start(engine, hash_get, HostConfig::default()).await?;
    let resp = 4 * KIB;
    hg.kv.insert("default", &format!("bench:value:{resp}"), vec![0x33; resp]);
    let floor_path = format!("/bench?size={resp}&static=1");
    let (path, headers, bodies): (String, &'static [(&str, &str)], Vec<(String, Vec<u8>)>) = if graphql {
        let entities = entities_query(4 * KIB, Shown::Padded, 0);
        let bodies = vec![
            (format!("{} GraphQL", size(KIB)), graphql_body(KIB)),
            (format!("{} GraphQL", size(64 * KIB)), graphql_body(64 * KIB)),
            (format!("{} B GraphQL, 16 entities shown", entities.len()), entities),
        ];
        ("/graphql/q".into(), JSON, bodies)
    } else {
        let bodies = [KIB, 64 * KIB].map(|n| (size(n), spin_test_host::origin::binary_body(n, n as u64))).to_vec();
        (floor_path.clone(), &[], bodies)
    };
    println!("Hits against the hash+get floor ({CONCURRENCY} connections, median of {HIT_ROUNDS} interleaved rounds{}):", if graphql { "; GraphQL hits in graphql mode, the floor answering 4 KiB for the same bodies" } else { "" });
    println!();
    println!("| build | component bytes | body | response | hash+get req/s | hit req/s | hit/hash+get req/s | hash+get p50 ms | hit p50 ms |");
    println!("|---|---:|---|---|---:|---:|---:|---:|---:|");
    for (label, body) in bodies {
        let count = ((if body.len() <= 4 * KIB { 3000.0 } else { 1500.0 }) * scale) as usize;
        let body = Arc::new(body);
        let mut answer = 0;
        for pc in &hosts {
            let mut c = Client::new(pc.addr);
            let warm = c.send("POST", &path, headers, &body, Framing::Sized).await?;
            assert!(warm.cache_status().contains("post-cache;"), "{}", warm.cache_status());
            answer = warm.body.len();
            pc.wait_idle(Duration::from_secs(10)).await;
        }
        let mut floor = Vec::new();
        let mut hits: Vec<Vec<Figures>> = hosts.iter().map(|_| Vec::new()).collect();
        for _ in 0..HIT_ROUNDS {
            floor.push(load_run(hg.addr, "POST", floor_path.clone(), body.clone(), false, count, limit, None).await);
            for (pc, rounds) in hosts.iter().zip(&mut hits) {
                rounds.push(load_run_checked(pc.addr, "POST", path.clone(), headers, body.clone(), false, count, limit, None, HIT).await);
            }
        }
        let h = median(floor);
        let response = if graphql { format!("{answer} B") } else { size(resp) };
        for ((name, _, bytes), rounds) in builds.iter().zip(hits) {
            let hit = median(rounds);
            println!(
                "| {name} | {bytes} | {label} | {response} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} |",
                h.rps, hit.rps, hit.rps / h.rps, h.p50_ms, hit.p50_ms
            );
        }
    }
    Ok(())
}

/// The sweep (issue 17): one admin sweep request over a store of live and of
/// dead entries, and the automatic step after a miss, at 100 and 100,000
/// entries. Entries are copies of one real 4 KiB record under distinct keys.
async fn sweep_cost(engine: &wasmtime::Engine, post_cache: &wasmtime::component::Component, origin: &TestOrigin) -> wasmtime::Result<()> {
    const TOKEN: &str = "bench-purge-token-0123456789";
    const EVERY: u64 = 32;
    println!();
    println!("Sweep cost against the store size (sequential; instance time is request to instance end, median of 5; memory, store calls (get/set/delete/get-keys) and keys deleted are the first request's):");
    println!();
    println!("| entries | what | instance ms | peak guest MiB | store calls | deleted |");
    println!("|---:|---|---:|---:|---|---:|");
    for entries in [100usize, 100_000] {
        for what in ["admin sweep, all live", "admin sweep, all dead", "miss without step", "miss with step, all live", "miss with step, all dead"] {
            let every = if what.contains("with step") { "1" } else { "0" };
            let c = in_front_of(origin, &[("purge_token", TOKEN), ("sweep_every", every)]);
            let host = start(engine, post_cache, c).await?;
            host.freeze_clock();
            let mut client = Client::new(host.addr);
            let r = client.send("POST", "/seed?cc=max-age%3D60&size=4096&static=1", &[], b"seed", Framing::Sized).await?;
            assert_eq!(r.status, 200);
            host.wait_idle(Duration::from_secs(60)).await;
            let seed_key = host.kv.keys("default").into_iter().next().expect("the seed entry");
            let record = host.kv.get("default", &seed_key).expect("stored");
            for n in 0..entries as u64 {
                host.kv.insert("default", &format!("post-cache:v3:{n:032x}:{n:016x}:{n:064x}"), record.clone());
            }
            if what.ends_with("dead") {
                host.advance_clock(3600);
            }
            let (mut times, mut peak, mut calls, mut deleted) = (Vec::new(), 0, [0u64; 4], 0);
            for i in 0..5 {
                host.stats.peak_memory.store(0, Ordering::SeqCst);
                let before_calls = kv_calls(&host.kv);
                let before_keys = host.kv.keys("default").len();
                let t = Instant::now();
                let r = if what.starts_with("admin") {
                    let auth = format!("Bearer {TOKEN}");
                    client.send("POST", "/.well-known/post-cache/sweep", &[("authorization", auth.as_str())], b"", Framing::Sized).await?
                } else {
                    client.send("POST", "/miss?cc=max-age%3D60", &[], format!("{i}-{}", UNIQUE.fetch_add(1, Ordering::SeqCst)).as_bytes(), Framing::Sized).await?
                };
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                host.wait_idle(Duration::from_secs(120)).await;
                times.push(t.elapsed());
                if i == 0 {
                    // The first request's: later ones find what it deleted gone.
                    peak = host.stats.peak_memory.load(Ordering::SeqCst);
                    let after = kv_calls(&host.kv);
                    calls = std::array::from_fn(|k| after[k] - before_calls[k]);
                    deleted = (before_keys + usize::from(what.starts_with("miss"))).saturating_sub(host.kv.keys("default").len());
                }
            }
            times.sort();
            let ms = times[times.len() / 2].as_secs_f64() * 1e3;
            println!("| {entries} | {what} | {ms:.2} | {} | {}/{}/{}/{} | {deleted} |", mib(peak), calls[0], calls[1], calls[2], calls[3]);
        }
    }
    println!();
    println!("The automatic step runs after one stored miss in sweep_every (default {EVERY}) on average: its amortized cost per miss is the step's extra time over a miss without it, divided by {EVERY}.");
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> wasmtime::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale: f64 = if quick { 0.1 } else { 1.0 };
    let limit = Duration::from_secs_f64(if quick { 1.0 } else { 5.0 });

    let engine = engine()?;
    let post_cache_path = build::component("post-cache")?;
    let post_cache = load(&engine, &post_cache_path)?;
    let trivial = load(&engine, &build::component("bench-trivial")?)?;
    let forward = load(&engine, &build::component("bench-forward")?)?;
    let hash_get = load(&engine, &build::component("bench-hash-get")?)?;
    let origin = TestOrigin::start().await?;
    if std::env::args().any(|a| a == "--protocols") {
        return protocol_hits(&engine, &post_cache, &origin, scale, limit).await;
    }
    if std::env::args().any(|a| a == "--stale") {
        return stale_and_collapse(&engine, &post_cache, &origin, scale, limit).await;
    }
    if std::env::args().any(|a| a == "--scale") {
        return hit_at_scale(&engine, &post_cache, &origin, scale).await;
    }
    if std::env::args().any(|a| a == "--purge") {
        return invalidation_cost(&engine, &post_cache, &origin).await;
    }
    if let Some(seconds) = std::env::args().skip_while(|a| a != "--serve").nth(1) {
        // For an outside load generator (wrk): both socket modes, then wait.
        for nodelay in [false, true] {
            let c = HostConfig { tcp_nodelay: nodelay, ..in_front_of(&origin, &[("default_ttl", "86400")]) };
            let host = start(&engine, &post_cache, c).await?;
            println!("tcp_nodelay={nodelay}: http://{} (origin {})", host.addr, origin.base_url());
            std::mem::forget(host);
        }
        tokio::time::sleep(Duration::from_secs(seconds.parse()?)).await;
        return Ok(());
    }
    if std::env::args().any(|a| a == "--large") {
        return large_entries(&engine, &post_cache, &origin, scale).await;
    }
    if std::env::args().any(|a| a == "--sweep") {
        return sweep_cost(&engine, &post_cache, &origin).await;
    }
    if std::env::args().any(|a| a == "--hits") {
        return hits_against_floor(&engine, &post_cache, &hash_get, &origin, scale, limit, false).await;
    }
    if std::env::args().any(|a| a == "--graphql-hits") {
        return hits_against_floor(&engine, &post_cache, &hash_get, &origin, scale, limit, true).await;
    }
    if std::env::args().any(|a| a == "--graphql-misses") {
        return graphql_miss_cost(&engine, &post_cache, &origin).await;
    }
    if std::env::args().any(|a| a == "--mutation") {
        return mutation_cost(&engine, &post_cache, &origin).await;
    }
    if std::env::args().any(|a| a == "--sockets") {
        return socket_modes(&engine, &post_cache, &trivial, &forward, &origin, scale, limit).await;
    }

    let pc_config = || in_front_of(&origin, &[("default_ttl", "86400")]);
    let pc = start(&engine, &post_cache, pc_config()).await?;
    // The same, marking cold keys for collapsing as the default did before.
    let pc_cold = start(&engine, &post_cache, in_front_of(&origin, &[("default_ttl", "86400"), ("collapse_cold_misses", "true")])).await?;
    let triv = start(&engine, &trivial, HostConfig::default()).await?;
    let hg = start(&engine, &hash_get, HostConfig::default()).await?;

    println!("post-cache benchmark: {CONCURRENCY} connections, loopback, one process (host, origin, load), median of {ROUNDS} interleaved rounds");
    println!("machine: {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
    println!();
    println!("| scenario | body | response | req/s | p50 ms | p99 ms | peak guest MiB |");
    println!("|---|---|---|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    let mut worst_mem = Vec::new();
    for &resp in &[4 * KIB, 256 * KIB] {
        for key in [format!("bench:value:{resp}")] {
            hg.kv.insert("default", &key, vec![0x33; resp]);
        }
        for &body_len in &[KIB, 64 * KIB, MIB] {
            let count = ((match body_len { KIB => 3000.0, b if b == 64 * KIB => 1500.0, _ => 300.0 }) * scale) as usize;
            let body = Arc::new(spin_test_host::origin::binary_body(body_len, body_len as u64));
            let q = format!("/bench?size={resp}&static=1");
            let row = |name: &str, f: Figures| {
                println!(
                    "| {name} | {} | {} | {:.0} | {:.2} | {:.2} | {} |",
                    size(body_len), size(resp), f.rps, f.p50_ms, f.p99_ms, mib(f.peak_mem)
                );
            };
            // Each scenario runs ROUNDS times, interleaved, and reports its median
            // round: the machine's drift then hits every scenario alike.
            let mut rounds: [Vec<Figures>; 6] = Default::default();
            for _ in 0..ROUNDS {
                rounds[0].push(load_run(triv.addr, "POST", q.clone(), body.clone(), false, count, limit, Some(&triv)).await);
                rounds[1].push(load_run(hg.addr, "POST", q.clone(), body.clone(), false, count, limit, Some(&hg)).await);
                // Warm the entry, then every request is a hit.
                let mut c = Client::new(pc.addr);
                let warm = c.send("POST", &q, &[], &body, Framing::Sized).await?;
                assert!(warm.cache_status().contains("post-cache;"), "{}", warm.cache_status());
                pc.wait_idle(Duration::from_secs(10)).await;
                rounds[2].push(load_run_checked(pc.addr, "POST", q.clone(), &[], body.clone(), false, count, limit, Some(&pc), HIT).await);
                rounds[3].push(load_run_checked(pc.addr, "POST", q.clone(), &[], body.clone(), true, count, limit, Some(&pc), MISS).await);
                rounds[4].push(load_run(origin.addr, "POST", q.clone(), body.clone(), true, count, limit, None).await);
                rounds[5].push(load_run_checked(pc_cold.addr, "POST", q.clone(), &[], body.clone(), true, count, limit, Some(&pc_cold), MISS).await);
            }
            let [t, h, hit, miss, direct, miss_cold] = rounds.map(median);
            row("1 trivial", t);
            row("2 hash+get", h);
            row("3 post-cache hit", hit);
            row("4 post-cache miss", miss);
            row("4c miss, collapse_cold_misses", miss_cold);
            row("6 origin direct", direct);
            ratios.push((body_len, resp, hit.rps / t.rps, hit.rps / h.rps, miss.p50_ms - direct.p50_ms, hit.p50_ms));
            worst_mem.push((body_len, resp, hit.peak_mem.max(miss.peak_mem)));
        }
        let count = (3000.0 * scale) as usize;
        let get = load_run_checked(pc.addr, "GET", format!("/bench?size={resp}&static=1"), &[], Arc::new(Vec::new()), false, count, limit, Some(&pc), BYPASS).await;
        println!("| 5 pass-through GET | - | {} | {:.0} | {:.2} | {:.2} | {} |", size(resp), get.rps, get.p50_ms, get.p99_ms, mib(get.peak_mem));
    }

    println!();
    println!("| body | response | hit/trivial req/s | hit/hash+get req/s | miss p50 - origin p50 (ms) | hit p50 ms |");
    println!("|---|---|---:|---:|---:|---:|");
    for (b, r, r1, r2, d, p50) in &ratios {
        println!("| {} | {} | {r1:.2} | {r2:.2} | {d:+.2} | {p50:.2} |", size(*b), size(*r));
    }

    println!();
    println!("component size: {} bytes", std::fs::metadata(&post_cache_path)?.len());

    // SHA-256 in the component vs natively, over the same 16 MiB x 4.
    let mut c = Client::new(hg.addr);
    let r = c.send("GET", "/sha?mib=16&rounds=4", &[], b"", Framing::Sized).await?;
    let wasm_mbps: f64 = String::from_utf8_lossy(&r.body).split(' ').next().unwrap_or("0").parse().unwrap_or(0.0);
    let data = vec![0x5au8; 16 * MIB];
    let t = Instant::now();
    let mut sink = 0u8;
    for _ in 0..4 {
        sink ^= Sha256::digest(&data)[0];
    }
    let native_mbps = 64.0 * 1.048576 / t.elapsed().as_secs_f64();
    println!(
        "SHA-256: component {wasm_mbps:.0} MB/s, native {native_mbps:.0} MB/s, ratio {:.2} ({sink})",
        wasm_mbps / native_mbps
    );

    hit_at_scale(&engine, &post_cache, &origin, scale).await?;

    protocol_hits(&engine, &post_cache, &origin, scale, limit).await?;
    stale_and_collapse(&engine, &post_cache, &origin, scale, limit).await?;
    invalidation_cost(&engine, &post_cache, &origin).await?;
    graphql_miss_cost(&engine, &post_cache, &origin).await?;
    mutation_cost(&engine, &post_cache, &origin).await?;
    socket_modes(&engine, &post_cache, &trivial, &forward, &origin, scale, limit).await?;
    large_entries(&engine, &post_cache, &origin, scale).await?;

    println!();
    println!("peak guest memory per request (hit or miss) vs 2 x (body + response) + 1 MiB:");
    for (b, r, peak) in worst_mem {
        let budget = 2 * (b + r) + MIB;
        println!(
            "  body {} response {}: {} MiB of {} MiB budget {}",
            size(b), size(r), mib(peak), mib(budget), if peak <= budget { "ok" } else { "OVER" }
        );
    }
    Ok(())
}

/// get, set, delete and get-keys calls so far.
fn kv_calls(kv: &spin_test_host::kv::KvData) -> [u64; 4] {
    let c = kv.ops.snapshot();
    [c.get, c.set, c.delete, c.get_keys]
}
