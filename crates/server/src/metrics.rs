//! The server's Prometheus metrics: one process-wide recorder, every metric described (`# HELP` and `# TYPE`), and
//! request latency as histograms per protocol. They are served on the admin listener ([`crate::front::admin`]),
//! never on the ports phones use.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Request latency: from the request to the answer (its headers, or a TFTP transfer's first block), per protocol.
pub const REQUEST_SECONDS: &str = "provisor_request_duration_seconds";

/// Buckets of [`REQUEST_SECONDS`], from a cached answer (well under a millisecond) to a slow render or a busy store.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The process-wide recorder, installed on first use, with every metric described.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_SECONDS.into()), LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; metrics then go there.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

/// `# HELP` for every metric the server records.
fn describe() {
    describe_counter!(
        "provisor_requests_total",
        "Requests answered, by protocol and HTTP status (TFTP errors map to 403/404)."
    );
    describe_histogram!(REQUEST_SECONDS, Unit::Seconds, "Time from a request to its answer, by protocol.");
    describe_counter!("provisor_cache_hits_total", "Device files answered from the rendering cache.");
    describe_gauge!(
        "provisor_cache_bytes",
        Unit::Bytes,
        "About how many bytes the rendering cache holds ([provisioning] cache_mb bounds it)."
    );
    describe_counter!(
        "provisor_cache_evictions_total",
        "Cached renderings dropped to stay within [provisioning] cache_mb (rendered again on the next fetch)."
    );
    describe_counter!(
        "provisor_log_lines_dropped_total",
        "Log lines (standard error) dropped because 16 MiB were waiting to be written; the audit log drops none."
    );
    describe_counter!("provisor_renders_total", "Files rendered from templates (cache misses), by kind.");
    describe_counter!(
        "provisor_rate_limited_total",
        "Requests refused by a rate or enumeration limit (429), by protocol."
    );
    describe_counter!(
        "provisor_tls_handshake_failures_total",
        "Failed TLS handshakes (untrusted or malformed client certificates, clients that do not trust the server)."
    );
    describe_counter!(
        "provisor_http_connections_refused_total",
        "Connections closed at once because their address had too many open."
    );
    describe_counter!("provisor_syslog_lines_total", "Syslog lines received.");
    describe_counter!("provisor_events_dropped_total", "Device events not stored, by reason.");
}

/// Records the latency of one answer, through a handle looked up once per protocol (not by name per request).
pub fn request_latency(protocol: &'static str, elapsed: std::time::Duration) {
    static HANDLES: [OnceLock<metrics::Histogram>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let Some(i) = PROTOCOLS.iter().position(|p| *p == protocol) else {
        metrics::histogram!(REQUEST_SECONDS, "protocol" => protocol).record(elapsed.as_secs_f64());
        return;
    };
    HANDLES[i]
        .get_or_init(|| {
            handle();
            metrics::histogram!(REQUEST_SECONDS, "protocol" => PROTOCOLS[i])
        })
        .record(elapsed.as_secs_f64());
}

/// The protocols that label request metrics.
const PROTOCOLS: [&str; 3] = ["tftp", "http", "https"];

/// The statuses `provisor_requests_total` tells apart; any other counts as `other`.
const STATUSES: [&str; 8] = ["200", "401", "403", "404", "429", "500", "503", "other"];

/// Counts one answered request (`provisor_requests_total`), through a handle looked up once per protocol and status.
pub fn request_answered(protocol: &'static str, status: u16) {
    static HANDLES: [[OnceLock<metrics::Counter>; 8]; 3] = [const { [const { OnceLock::new() }; 8] }; 3];
    let status = match status {
        200 => 0,
        401 => 1,
        403 => 2,
        404 => 3,
        429 => 4,
        500 => 5,
        503 => 6,
        _ => 7,
    };
    let Some(p) = PROTOCOLS.iter().position(|p| *p == protocol) else {
        metrics::counter!("provisor_requests_total", "protocol" => protocol, "status" => STATUSES[status]).increment(1);
        return;
    };
    HANDLES[p][status]
        .get_or_init(|| {
            handle();
            metrics::counter!("provisor_requests_total", "protocol" => PROTOCOLS[p], "status" => STATUSES[status])
        })
        .increment(1);
}

/// Drains the samples histograms gathered into their buckets every few seconds. The recorder is built without the
/// exporter's own upkeep task, and without this a server nobody scrapes keeps every latency sample it ever recorded
/// (8 bytes a request: 40 MB a minute at 80,000 requests/s).
pub async fn upkeep(shutdown: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => handle().run_upkeep(),
            () = shutdown.cancelled() => return,
        }
    }
}
