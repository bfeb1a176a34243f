//! The broker's HTTP listener (`http.listeners`, default `http://127.0.0.1:9644`): `/metrics`
//! in Prometheus' text format, `/health` and `/ready` for load balancers and orchestrators, and
//! the web console at `/` (`console`).
//!
//! The listener opens before anything else (a port in use stops the start, naming the key) and
//! serves `/health` at once; `/ready` answers 503 until the node has registered and takes
//! clients, and again from the start of shutdown. `/metrics` renders the request path's counters
//! and histograms (`crate::metrics`), then the values computed from state at scrape time
//! (`scrape`: partitions, consumer lag, the disk, the process), on a blocking thread: a scrape
//! only reads snapshots and short critical sections, never what a request waits on.
//!
//! hyper parses the requests: malformed HTTP gets 400 from it, an unknown path 404, another
//! method 405; nothing a client sends reaches a panic.

pub mod console;
pub mod lag;
mod process;
pub mod scrape;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::broker::Broker;
use strom_config::HttpSettings;

/// Prometheus' text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Histogram samples are folded into their buckets at least this often, so memory stays bounded
/// when nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// What the handlers share: set up before the broker opens, filled in as it comes up.
pub struct Http {
    broker: OnceLock<Arc<Broker>>,
    ready: AtomicBool,
    prometheus: Option<PrometheusHandle>,
    scrape: scrape::Limits,
    console: Arc<console::Console>,
    /// Whether any listener serves (the console's sampler runs only then).
    served: bool,
}

/// The bound HTTP listeners, not yet serving.
pub struct Bound {
    listeners: Vec<TcpListener>,
    /// `http://host:port` of each, with the port actually bound.
    pub urls: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (from `http.listeners`): {cause}")]
pub struct BindError {
    pub addr: String,
    /// Not a `source`: the message already says it, and the binary prints the causes too.
    pub cause: std::io::Error,
}

/// Opens every HTTP listener of `settings` (none when `http.listeners` is empty).
pub async fn bind(settings: &HttpSettings) -> Result<Bound, BindError> {
    let mut bound = Bound { listeners: Vec::new(), urls: Vec::new() };
    for l in &settings.listeners {
        let addr = l.address();
        let err = |cause| BindError { addr: addr.clone(), cause };
        let listener = TcpListener::bind(&addr).await.map_err(err)?;
        let port = listener.local_addr().map_err(err)?.port();
        bound.urls.push(format!("http://{}:{port}", if l.host.contains(':') { format!("[{}]", l.host) } else { l.host.clone() }));
        bound.listeners.push(listener);
    }
    Ok(bound)
}

impl Http {
    /// Starts serving `bound` (its `/metrics` renders `prometheus`, the recorder's handle).
    /// Stops when `stopping` turns true.
    pub fn serve(bound: Bound, prometheus: Option<PrometheusHandle>, settings: &HttpSettings, stopping: tokio::sync::watch::Receiver<bool>) -> Arc<Http> {
        let http = Arc::new(Http {
            broker: OnceLock::new(),
            ready: AtomicBool::new(false),
            prometheus,
            scrape: scrape::Limits::new(settings.partition_series_max),
            console: Arc::new(console::Console::new()),
            served: !bound.listeners.is_empty(),
        });
        if bound.listeners.is_empty() {
            return http;
        }
        if let Some(handle) = http.prometheus.clone() {
            let mut stopping = stopping.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(UPKEEP) => handle.run_upkeep(),
                        _ = stopping.wait_for(|s| *s) => return,
                    }
                }
            });
        }
        let app = Router::new()
            .route("/health", get(health))
            .route("/ready", get(ready))
            .route("/metrics", get(metrics))
            .with_state(http.clone())
            .merge(console::router(http.console.clone()))
            .fallback(not_found);
        for listener in bound.listeners {
            let mut stopping = stopping.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stopping.wait_for(|s| *s).await;
                };
                // The console needs the client's address (its login is for loopback only).
                let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
                if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
                    tracing::error!(error = %e, "the HTTP listener stopped");
                }
            });
        }
        http
    }

    /// The broker is open: `/metrics` can read it.
    pub fn broker_opened(&self, broker: Arc<Broker>) {
        if self.broker.set(broker.clone()).is_ok() && self.served {
            self.console.broker_opened(broker);
        }
    }

    /// Whether `/ready` answers 200: the node registered and takes clients (true), or is not
    /// there yet or is shutting down (false).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(http): State<Arc<Http>>) -> Response {
    if http.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(http): State<Arc<Http>>) -> Response {
    let Some(broker) = http.broker.get().cloned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    };
    let shared = http.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        let mut text = shared.prometheus.as_ref().map(PrometheusHandle::render).unwrap_or_default();
        scrape::render(&broker, &shared.scrape, &mut text);
        text
    })
    .await;
    match rendered {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering /metrics failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering the metrics failed\n").into_response()
        }
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found: this listener serves the console at /, /metrics, /health and /ready\n").into_response()
}
