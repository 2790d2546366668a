//! Prometheus metrics: counters kept as the requests go by, and gauges read
//! from the live tables when scraped, served in the text exposition format
//! on a listener of their own (`--metrics`), never through a front door:
//! the numbers say who is busy, which is nobody's business on the network.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::server::core::instance::Registry;

/// Upper bounds of the request-duration histogram, seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// One histogram: bucket counts (not cumulative), sum and count.
#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            if let Some(b) = self.buckets.get_mut(i) {
                *b += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// Everything counted since the start.
#[derive(Default)]
pub(crate) struct Metrics {
    logins: Mutex<BTreeMap<(String, String), u64>>,
    requests: Mutex<BTreeMap<(String, String), u64>>,
    durations: Mutex<BTreeMap<String, Histogram>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// The process's metrics.
pub(crate) fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::default)
}

impl Metrics {
    /// A login: `ok`, or failed with its reason (the audit's words).
    pub(crate) fn login(&self, outcome: &str, reason: &str) {
        let mut m = self.logins.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((outcome.to_string(), reason.to_string()))
            .or_default() += 1;
    }

    /// A sealed operation with its outcome (`ok` or an error code), time
    /// and bytes.
    pub(crate) fn request(&self, op: &str, outcome: &str, took: Duration, bytes: (u64, u64)) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((op.to_string(), outcome.to_string()))
            .or_default() += 1;
        self.durations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(op.to_string())
            .or_default()
            .observe(took.as_secs_f64());
        self.bytes_in.fetch_add(bytes.0, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes.1, Ordering::Relaxed);
    }
}

/// A label value as the exposition format wants it quoted.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What the live tables hold now, summed over the instances.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Live {
    /// Instances loaded.
    pub instances: usize,
    /// Live sessions.
    pub sessions: usize,
    /// Of which certificate sessions.
    pub cert_sessions: usize,
    /// Batch commands running.
    pub commands: usize,
    /// Transfers (`get`, `put`, `list`) in progress.
    pub transfers: usize,
    /// Interactive processes.
    pub processes: usize,
    /// Firewall grants (`None`: no instance has `[firewall]`).
    pub grants: Option<usize>,
    /// Audit rows queued, not yet written.
    pub audit_queue: usize,
}

/// Reads the live tables (the firewall ledger through nft: off the async
/// workers).
pub(crate) async fn live(registry: &Registry) -> Live {
    let mut l = Live::default();
    for (_, inst) in registry.entries() {
        l.instances += 1;
        let sessions = inst.sessions.all();
        l.sessions += sessions.len();
        l.cert_sessions += sessions.iter().filter(|s| s.cert.is_some()).count();
        l.commands += inst.commands.in_use();
        l.transfers += inst.transfers.in_use();
        l.processes += inst.procs.len();
        l.audit_queue += inst.audit.queued();
        if let Some(fw) = inst.firewall.clone() {
            let n = tokio::task::spawn_blocking(move || {
                crate::firewall::backend::Nft::new(&fw)
                    .ledger()
                    .map(|v| v.len())
            })
            .await;
            if let Ok(Ok(n)) = n {
                *l.grants.get_or_insert(0) += n;
            }
        }
    }
    l
}

/// The exposition text.
pub(crate) fn render(m: &Metrics, live: &Live) -> String {
    let mut o = String::new();
    let gauge = |o: &mut String, name: &str, help: &str, v: usize| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(
        &mut o,
        "remo_instances",
        "Instances loaded.",
        live.instances,
    );
    gauge(&mut o, "remo_sessions", "Live sessions.", live.sessions);
    gauge(
        &mut o,
        "remo_certificate_sessions",
        "Live sessions a certificate authorised.",
        live.cert_sessions,
    );
    gauge(
        &mut o,
        "remo_commands_running",
        "Batch commands running.",
        live.commands,
    );
    gauge(
        &mut o,
        "remo_transfers_running",
        "Transfers (get, put, list) in progress.",
        live.transfers,
    );
    gauge(
        &mut o,
        "remo_processes",
        "Interactive processes.",
        live.processes,
    );
    if let Some(g) = live.grants {
        gauge(
            &mut o,
            "remo_firewall_grants",
            "Firewall grants in force.",
            g,
        );
    }
    gauge(
        &mut o,
        "remo_audit_queue_depth",
        "Audit rows queued and not yet written.",
        live.audit_queue,
    );
    let _ = writeln!(
        o,
        "# HELP remo_logins_total Logins, by outcome and reason.\n# TYPE remo_logins_total counter"
    );
    for ((outcome, reason), n) in m.logins.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(
            o,
            "remo_logins_total{{outcome=\"{}\",reason=\"{}\"}} {n}",
            label(outcome),
            label(reason)
        );
    }
    let _ = writeln!(
        o,
        "# HELP remo_requests_total Sealed operations, by operation and outcome.\n# TYPE remo_requests_total counter"
    );
    for ((op, outcome), n) in m.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(
            o,
            "remo_requests_total{{op=\"{}\",outcome=\"{}\"}} {n}",
            label(op),
            label(outcome)
        );
    }
    let _ = writeln!(
        o,
        "# HELP remo_request_duration_seconds Time of sealed operations, by operation.\n# TYPE remo_request_duration_seconds histogram"
    );
    for (op, h) in m.durations.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let op = label(op);
        let mut cum = 0;
        for (b, n) in BUCKETS.iter().zip(h.buckets) {
            cum += n;
            let _ = writeln!(
                o,
                "remo_request_duration_seconds_bucket{{op=\"{op}\",le=\"{b}\"}} {cum}"
            );
        }
        let _ = writeln!(
            o,
            "remo_request_duration_seconds_bucket{{op=\"{op}\",le=\"+Inf\"}} {}\nremo_request_duration_seconds_sum{{op=\"{op}\"}} {}\nremo_request_duration_seconds_count{{op=\"{op}\"}} {}",
            h.count, h.sum, h.count
        );
    }
    let _ = writeln!(
        o,
        "# HELP remo_received_bytes_total Request bytes after the descriptor.\n# TYPE remo_received_bytes_total counter\nremo_received_bytes_total {}",
        m.bytes_in.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        o,
        "# HELP remo_sent_bytes_total Response data bytes.\n# TYPE remo_sent_bytes_total counter\nremo_sent_bytes_total {}",
        m.bytes_out.load(Ordering::Relaxed)
    );
    o
}

/// Where `--metrics` listens: a loopback address, or `unix:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MetricsAddr {
    /// A TCP address on loopback.
    Tcp(std::net::SocketAddr),
    /// A unix socket.
    Unix(std::path::PathBuf),
}

/// Parses `--metrics`: `unix:PATH` or `HOST:PORT` on loopback (others are
/// refused: the metrics say who is busy).
pub(crate) fn parse_addr(s: &str) -> Result<MetricsAddr, String> {
    if let Some(p) = s.strip_prefix("unix:") {
        return Ok(MetricsAddr::Unix(std::path::PathBuf::from(p)));
    }
    let a: std::net::SocketAddr = s
        .parse()
        .map_err(|_| format!("--metrics {s:?}: not unix:PATH or IP:PORT"))?;
    if !a.ip().is_loopback() {
        return Err(format!(
            "--metrics {s:?}: only a loopback address or a unix socket (put a proxy with access control in front to publish it)"
        ));
    }
    Ok(MetricsAddr::Tcp(a))
}

/// A bound metrics listener.
pub(crate) enum Listener {
    /// TCP on loopback.
    Tcp(tokio::net::TcpListener),
    /// A unix socket.
    Unix(tokio::net::UnixListener),
}

/// Binds `--metrics` (at start, so a port in use stops remod with a clear
/// error rather than leaving it without metrics).
pub(crate) async fn listen(addr: &MetricsAddr) -> Result<Listener, String> {
    match addr {
        MetricsAddr::Tcp(a) => tokio::net::TcpListener::bind(a)
            .await
            .map(Listener::Tcp)
            .map_err(|e| format!("--metrics {a}: {e}")),
        MetricsAddr::Unix(p) => crate::server::control::bind(p)
            .map(Listener::Unix)
            .map_err(|e| e.to_string()),
    }
}

/// Serves `GET /metrics` (and nothing else) until the runtime ends.
pub(crate) async fn serve(
    listener: Listener,
    router: std::sync::Arc<crate::server::core::router::Router>,
) {
    use hyper::service::service_fn;
    let handle = move |req: hyper::Request<hyper::body::Incoming>| {
        let router = router.clone();
        async move {
            let resp = if req.method() == hyper::Method::GET && req.uri().path() == "/metrics" {
                let live = live(router.registry()).await;
                hyper::Response::builder()
                    .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                    .body(http_body_util::Full::new(bytes::Bytes::from(render(
                        global(),
                        &live,
                    ))))
            } else {
                hyper::Response::builder()
                    .status(404)
                    .body(http_body_util::Full::new(bytes::Bytes::from_static(
                        b"only /metrics here\n",
                    )))
            };
            resp
        }
    };
    macro_rules! accept_loop {
        ($listener:expr) => {
            loop {
                let Ok((stream, _)) = $listener.accept().await else {
                    continue;
                };
                let h = handle.clone();
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service_fn(h))
                        .await;
                });
            }
        };
    }
    match listener {
        Listener::Tcp(l) => accept_loop!(l),
        Listener::Unix(l) => accept_loop!(l),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_text() {
        let m = Metrics::default();
        m.login("ok", "");
        m.login("failed", "bad \"signature\"");
        m.request("cmd", "ok", Duration::from_millis(3), (10, 20));
        m.request("cmd", "forbidden", Duration::from_secs(2), (0, 0));
        let t = render(
            &m,
            &Live {
                sessions: 2,
                ..Default::default()
            },
        );
        assert!(t.contains("remo_sessions 2\n"), "{t}");
        assert!(
            t.contains("remo_logins_total{outcome=\"failed\",reason=\"bad \\\"signature\\\"\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("remo_requests_total{op=\"cmd\",outcome=\"ok\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("remo_request_duration_seconds_bucket{op=\"cmd\",le=\"0.005\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("remo_request_duration_seconds_bucket{op=\"cmd\",le=\"5\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("remo_request_duration_seconds_count{op=\"cmd\"} 2"),
            "{t}"
        );
        assert!(t.contains("remo_received_bytes_total 10\n"), "{t}");
        assert!(!t.contains("remo_firewall_grants"), "{t}");
    }

    #[test]
    fn addresses() {
        assert!(parse_addr("127.0.0.1:9464").is_ok());
        assert!(parse_addr("[::1]:9464").is_ok());
        assert!(parse_addr("unix:/run/remod/metrics.sock").is_ok());
        assert!(parse_addr("0.0.0.0:9464").is_err());
        assert!(parse_addr("192.0.2.1:9464").is_err());
        assert!(parse_addr("nonsense").is_err());
    }
}
