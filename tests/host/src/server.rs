//! Serves a wasi:http component on loopback the way `spin up` does.

use crate::kv::{KvAccess, KvData};
use crate::outbound::OutboundPolicy;
use wasmtime::error::Context;
use wasmtime::{format_err, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Bindings for the Spin interfaces, generated from the project's own `wit/`.
pub mod spin_bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "spin-host",
        imports: { default: async },
        with: {
            "fermyon:spin/key-value.store": crate::kv::StoreHandle,
        },
    });
}

/// What the host runs and what the component is granted, like a spin.toml.
pub struct HostConfig {
    /// Component variables (after `SPIN_VARIABLE_*` overrides).
    pub variables: HashMap<String, String>,
    /// The same wasm listed as several components, each at its own route with
    /// its own variables on top of `variables`; empty means one component at `/...`.
    pub routes: Vec<Route>,
    /// `allowed_outbound_hosts`, e.g. `http://127.0.0.1:8080`.
    pub allowed_outbound_hosts: Vec<String>,
    /// `key_value_stores` of the component.
    pub key_value_stores: Vec<String>,
    /// Labels the runtime defines (runtime-config.toml); `default` always.
    pub defined_stores: Vec<String>,
    /// Hosted Spin caps values at 1 MB (the default here); `None` behaves
    /// like local SQLite or Redis, which have no cap.
    pub kv_max_value_bytes: Option<usize>,
    /// Keep the key-value data in a SQLite database at this path, as `spin up`
    /// does; `None` keeps it in memory (where a lookup costs the same at any size).
    pub kv_sqlite: Option<std::path::PathBuf>,
    /// Guest linear memory limit per instance.
    pub max_memory_bytes: usize,
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// `TCP_NODELAY` on the sockets the host accepts and on its outbound
    /// connections. Spin sets it on neither (the default here, so that the
    /// host is slow where Spin is slow); `true` is a Spin patched to set it.
    pub tcp_nodelay: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            variables: HashMap::new(),
            routes: Vec::new(),
            allowed_outbound_hosts: Vec::new(),
            key_value_stores: vec!["default".into()],
            defined_stores: vec!["default".into()],
            kv_max_value_bytes: Some(crate::kv::HOSTED_MAX_VALUE_BYTES),
            kv_sqlite: None,
            max_memory_bytes: 256 << 20,
            listen: "127.0.0.1:0".parse().unwrap(),
            tcp_nodelay: false,
        }
    }
}

/// One `[[trigger.http]]` route: `/exact` or `/prefix/...` (`/...` for everything).
#[derive(Clone, Debug)]
pub struct Route {
    pub pattern: String,
    pub variables: HashMap<String, String>,
}

impl Route {
    pub fn new(pattern: &str, variables: &[(&str, &str)]) -> Self {
        let variables = variables.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self { pattern: pattern.to_string(), variables }
    }

    /// For a path this route matches: whether it matched exactly (not through a
    /// wildcard) and the path info (the part after a wildcard route's prefix).
    fn matches(&self, path: &str) -> Option<(bool, String)> {
        match self.pattern.strip_suffix("/...") {
            Some(prefix) if path == prefix => Some((false, String::new())),
            Some(prefix) => path.strip_prefix(prefix).filter(|rest| rest.starts_with('/')).map(|rest| (false, rest.to_string())),
            None => (path == self.pattern).then(|| (true, String::new())),
        }
    }
}

/// Spin's router: an exact route beats wildcards; among wildcards the longest prefix wins.
fn route_for<'a>(routes: &'a [(Route, Arc<HashMap<String, String>>)], path: &str) -> Option<(&'a (Route, Arc<HashMap<String, String>>), String)> {
    routes
        .iter()
        .filter_map(|r| r.0.matches(path).map(|(exact, info)| (r, exact, info)))
        .max_by_key(|(r, exact, _)| (*exact, r.0.pattern.len()))
        .map(|(r, _, info)| (r, info))
}

/// Counters the tests and benchmarks read.
#[derive(Default)]
pub struct HostStats {
    pub requests: AtomicU64,
    /// Largest guest linear memory any one instance reached, bytes.
    pub peak_memory: AtomicUsize,
    /// Instances that trapped or never answered.
    pub failures: AtomicU64,
    /// Instances still running: after their response, until the handler returns
    /// (as Spin keeps them), e.g. for a background refresh.
    pub active: AtomicU64,
}

/// A host serving in the background of the current tokio runtime.
pub struct RunningHost {
    pub addr: SocketAddr,
    pub kv: Arc<KvData>,
    pub stats: Arc<HostStats>,
    /// The guest's wall clock: real time, or frozen, plus an offset in seconds.
    pub clock: GuestClock,
    task: tokio::task::JoinHandle<()>,
}

impl RunningHost {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Moves the guest's clock forward.
    pub fn advance_clock(&self, seconds: i64) {
        self.clock.offset.fetch_add(seconds, Ordering::SeqCst);
    }

    /// Waits until no instance is running (background work included); panics
    /// after `limit`, so a wedged instance fails the test instead of hanging it.
    pub async fn wait_idle(&self, limit: std::time::Duration) {
        let started = std::time::Instant::now();
        while self.stats.active.load(Ordering::SeqCst) > 0 {
            assert!(started.elapsed() < limit, "instances still running after {limit:?}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Stops the guest's clock at the current second, so ages and TTLs are exact.
    pub fn freeze_clock(&self) {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        self.clock.frozen_at.store(now.as_secs(), Ordering::SeqCst);
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Per-request store data.
pub struct RequestState {
    pub(crate) table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: OutboundPolicy,
    pub(crate) kv: KvAccess,
    pub(crate) variables: Arc<HashMap<String, String>>,
    memory: MemoryTracker,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}

/// Tracks the peak linear memory of one instance and enforces the limit.
struct MemoryTracker {
    peak: usize,
    limit: usize,
}

impl wasmtime::ResourceLimiter for MemoryTracker {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// The guest's wall clock, controlled by tests: real or frozen time, plus an offset.
#[derive(Clone, Default)]
pub struct GuestClock {
    /// Seconds added to the time.
    pub offset: Arc<AtomicI64>,
    /// Unix seconds the clock stands at; 0 runs it in real time.
    pub frozen_at: Arc<AtomicU64>,
}

impl HostWallClock for GuestClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        let real = match self.frozen_at.load(Ordering::SeqCst) {
            0 => SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default(),
            frozen => Duration::from_secs(frozen),
        };
        let offset = self.offset.load(Ordering::SeqCst);
        if offset >= 0 {
            real + Duration::from_secs(offset as u64)
        } else {
            real.saturating_sub(Duration::from_secs(offset.unsigned_abs()))
        }
    }
}

struct Shared {
    pre: ProxyPre<RequestState>,
    kv: Arc<KvData>,
    granted: Arc<Vec<String>>,
    /// Each route with its component's variables.
    routes: Vec<(Route, Arc<HashMap<String, String>>)>,
    outbound: OutboundPolicy,
    stats: Arc<HostStats>,
    clock: GuestClock,
    max_memory: usize,
}

/// An engine configured like Spin's: pooling allocator, Cranelift.
pub fn engine() -> Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(256)
        .total_core_instances(2048)
        .total_memories(512)
        .total_tables(512)
        .max_memories_per_component(8)
        .max_tables_per_component(8)
        .max_core_instances_per_component(32)
        .max_memory_size(1 << 30);
    let mut config = wasmtime::Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // For `perf record`: WASMTIME_PERFMAP=1 names the compiled guest functions.
    if std::env::var_os("WASMTIME_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config)
}

/// Compiles a component file.
pub fn load(engine: &Engine, path: &Path) -> Result<Component> {
    Component::from_file(engine, path).with_context(|| format!("loading {}", path.display()))
}

/// Serves `component` until the returned host is dropped.
pub async fn start(engine: &Engine, component: &Component, config: HostConfig) -> Result<RunningHost> {
    let mut linker: Linker<RequestState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    spin_bindings::SpinHost::add_to_linker::<_, HasSelf<RequestState>>(&mut linker, |s| s)?;
    let pre = ProxyPre::new(linker.instantiate_pre(component)?)?;

    let labels: Vec<&str> = config.defined_stores.iter().map(String::as_str).collect();
    let kv = Arc::new(match &config.kv_sqlite {
        Some(path) => KvData::new_sqlite(&labels, config.kv_max_value_bytes, path),
        None => KvData::new(&labels, config.kv_max_value_bytes),
    });
    let stats = Arc::new(HostStats::default());
    let clock = GuestClock::default();
    let routes = if config.routes.is_empty() { vec![Route::new("/...", &[])] } else { config.routes };
    let routes = routes
        .into_iter()
        .map(|route| {
            let mut variables = config.variables.clone();
            variables.extend(route.variables.clone());
            (route, Arc::new(variables))
        })
        .collect();
    let shared = Arc::new(Shared {
        pre,
        kv: kv.clone(),
        granted: Arc::new(config.key_value_stores),
        routes,
        outbound: OutboundPolicy::new(config.allowed_outbound_hosts, config.tcp_nodelay),
        stats: stats.clone(),
        clock: clock.clone(),
        max_memory: config.max_memory_bytes,
    });

    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let task = crate::listen::serve(listener, config.tcp_nodelay, Arc::new(|| true), move |client, req| handle(shared.clone(), client, req));
    Ok(RunningHost { addr, kv, stats, clock, task })
}

/// Connection-level headers Spin does not pass to components (wasi:http forbids them).
const DROPPED_INCOMING: &[&str] =
    &["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "http2-settings"];

/// Adds the headers Spin adds for the component at `route` (crates/trigger-http/src/headers.rs).
fn add_spin_headers(
    req: &mut hyper::Request<hyper::body::Incoming>,
    client: SocketAddr,
    listen_host: &str,
    route: &str,
    path_info: String,
) {
    let path_and_query = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or("/".into());
    let headers = req.headers_mut();
    for name in DROPPED_INCOMING {
        headers.remove(*name);
    }
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("spin-full-url", format!("http://{listen_host}{path_and_query}"));
    set("spin-path-info", path_info);
    set("spin-matched-route", route.into());
    set("spin-base-path", "/".into());
    set("spin-raw-component-route", route.into());
    set("spin-component-route", route.strip_suffix("/...").unwrap_or(route).into());
    set("spin-client-addr", client.to_string());
}

async fn handle(
    shared: Arc<Shared>,
    client: SocketAddr,
    mut req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<HyperOutgoingBody>> {
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let Some(((route, variables), path_info)) = route_for(&shared.routes, req.uri().path()) else {
        // Spin answers 404 when no route matches.
        use http_body_util::BodyExt;
        let empty: HyperOutgoingBody = http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync();
        let mut response = hyper::Response::new(empty);
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        return Ok(response);
    };
    add_spin_headers(&mut req, client, &host, &route.pattern, path_info);

    let wasi = WasiCtx::builder()
        .inherit_stdout()
        .inherit_stderr()
        .wall_clock(shared.clock.clone())
        .build();
    let state = RequestState {
        table: ResourceTable::new(),
        wasi,
        http: WasiHttpCtx::new(),
        outbound: shared.outbound.clone(),
        kv: KvAccess { data: shared.kv.clone(), granted: shared.granted.clone() },
        variables: variables.clone(),
        memory: MemoryTracker { peak: 0, limit: shared.max_memory },
    };
    let mut store = Store::new(shared.pre.engine(), state);
    store.limiter(|s| &mut s.memory);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let incoming = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
    let out = store.data_mut().http().new_response_outparam(sender)?;
    let task_shared = shared.clone();
    shared.stats.active.fetch_add(1, Ordering::SeqCst);
    let task = tokio::spawn(async move {
        let result = async {
            let proxy = task_shared.pre.instantiate_async(&mut store).await?;
            proxy.wasi_http_incoming_handler().call_handle(&mut store, incoming, out).await
        }
        .await;
        let peak = store.data().memory.peak;
        task_shared.stats.peak_memory.fetch_max(peak, Ordering::Relaxed);
        if let Err(e) = &result {
            task_shared.stats.failures.fetch_add(1, Ordering::Relaxed);
            eprintln!("host: component failed: {e:?}");
        }
        task_shared.stats.active.fetch_sub(1, Ordering::SeqCst);
        result
    });
    match receiver.await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => {
            shared.stats.failures.fetch_add(1, Ordering::Relaxed);
            Err(format_err!("component answered with error {code:?}"))
        }
        Err(_) => {
            let e = match task.await {
                Ok(Ok(())) => format_err!("component never set a response"),
                Ok(Err(e)) => e,
                Err(e) => e.into(),
            };
            Err(e.context("component never set a response"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(patterns: &[&str]) -> Vec<(Route, Arc<HashMap<String, String>>)> {
        patterns.iter().map(|p| (Route::new(p, &[]), Arc::new(HashMap::new()))).collect()
    }

    fn matched(routes: &[(Route, Arc<HashMap<String, String>>)], path: &str) -> Option<(String, String)> {
        route_for(routes, path).map(|((r, _), info)| (r.pattern.clone(), info))
    }

    #[test]
    fn routes_match_like_spins_router() {
        let r = routes(&["/...", "/rpc/...", "/rpc/v2/...", "/graphql"]);
        let m = |p| matched(&r, p);
        assert_eq!(m("/graphql"), Some(("/graphql".into(), "".into())));
        assert_eq!(m("/graphql/x"), Some(("/...".into(), "/graphql/x".into())));
        assert_eq!(m("/rpc"), Some(("/rpc/...".into(), "".into())));
        assert_eq!(m("/rpc/"), Some(("/rpc/...".into(), "/".into())));
        assert_eq!(m("/rpc/v2/a"), Some(("/rpc/v2/...".into(), "/a".into())));
        assert_eq!(m("/rpcx"), Some(("/...".into(), "/rpcx".into())));
        assert_eq!(matched(&routes(&["/graphql"]), "/other"), None);
        // An exact route beats a wildcard that also matches.
        assert_eq!(matched(&routes(&["/a/...", "/a"]), "/a"), Some(("/a".into(), "".into())));
    }
}
