//! The web console at `/` of the HTTP listener: server-rendered pages (overview, brokers,
//! topics with a message browser, consumer groups with lag) and a little hand-written
//! JavaScript that draws the charts as SVG. No build step and nothing downloaded: the assets are
//! compiled into the binary.
//!
//! Every page is a view over Kafka requests answered in process by the broker's own handlers
//! (`kafka.rs`) with the viewer's session, so the console shows and does exactly what its user
//! could with Kafka's tools. Without an authorizer that user is `User:ANONYMOUS`; with one, the
//! console asks for a user name and password (HTTP Basic, checked as SASL PLAIN or SCRAM would
//! check them), and only over a loopback connection, since the HTTP listener has no TLS.
//!
//! Actions (create or delete a topic, reset a group's offsets) are POSTed forms carrying a token
//! made at startup, and a request whose `Origin` is another site is refused: a page elsewhere in
//! the viewer's browser cannot act through it.

mod groups;
mod history;
mod html;
mod kafka;
mod messages;
mod overview;
mod share_groups;
mod topics;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::broker::Broker;
use crate::session::Session;
pub use history::History;
use kafka::Viewer;

/// What the console's handlers share.
pub struct Console {
    broker: OnceLock<Arc<Broker>>,
    pub history: Arc<History>,
    /// The token every form carries (hex of 16 random bytes).
    token: String,
}

impl Console {
    pub fn new() -> Console {
        let mut bytes = [0u8; 16];
        // Without randomness the token is all zeros; the Origin check still stands, and the
        // log says why forms are weaker.
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
            tracing::warn!("no random bytes for the console's form token");
        }
        Console { broker: OnceLock::new(), history: Arc::new(History::default()), token: bytes.iter().map(|b| format!("{b:02x}")).collect() }
    }

    /// The broker is open: pages can be served, and the charts' sampler starts.
    pub fn broker_opened(&self, broker: Arc<Broker>) {
        if self.broker.set(broker.clone()).is_ok() {
            tokio::spawn(self.history.clone().run(broker));
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Console::new()
    }
}

/// The console's routes, to merge into the HTTP listener's router.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(overview::page))
        .route("/brokers", get(overview::brokers))
        .route("/topics", get(topics::list).post(topics::create))
        .route("/topic", get(topics::page))
        .route("/topic/delete", post(topics::delete))
        .route("/topic/messages", get(messages::page))
        .route("/groups", get(groups::list))
        .route("/group", get(groups::page))
        .route("/group/reset-offsets", post(groups::reset))
        .route("/api/series", get(series))
        .route("/assets/console.css", get(|| async { asset("text/css; charset=utf-8", include_str!("assets/console.css")) }))
        .route("/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("assets/console.js")) }))
        .with_state(console)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// A rendered page, with headers that keep it from being framed or sniffed, and a content
/// policy that runs no script but the console's own.
fn html(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn refused(status: StatusCode, why: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{why}\n")).into_response()
}

/// The viewer of one request: the broker and the session its requests run as.
async fn viewer(console: &Console, headers: &HeaderMap, peer: SocketAddr) -> Result<Viewer, Response> {
    let Some(broker) = console.broker.get().cloned() else {
        return Err(refused(StatusCode::SERVICE_UNAVAILABLE, "the broker is starting"));
    };
    let listener: Arc<str> = Arc::from(broker.config.listeners.first().map_or("PLAINTEXT", |l| l.name.as_str()));
    if broker.config.authorizer.is_none() {
        return Ok(Viewer { session: Session::anonymous(peer, listener), broker });
    }
    if !peer.ip().is_loopback() {
        return Err(refused(StatusCode::FORBIDDEN, "with an authorizer the console logs users in only over loopback connections: the HTTP listener has no TLS, and a password must not cross the network in clear"));
    }
    let ask = || {
        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"Strom\", charset=\"UTF-8\"")], "log in with a SASL user of this cluster\n").into_response()
    };
    let Some((user, password)) = basic_credentials(headers) else { return Err(ask()) };
    let image = broker.metadata.image();
    let config = broker.config.clone();
    let (u, p) = (user.clone(), password);
    // SCRAM's key derivation is thousands of HMACs: off the runtime's threads.
    let ok = tokio::task::spawn_blocking(move || crate::sasl::password_login(&config, &image, &u, &p)).await.unwrap_or(false);
    if !ok {
        tracing::debug!(user = %user, %peer, "console login refused");
        return Err(ask());
    }
    Ok(Viewer { session: Session { principal: Arc::from(format!("User:{user}")), peer, listener }, broker })
}

/// `Authorization: Basic base64(user:password)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(crate::sasl::scram::base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// A POST must carry the form token and, when the browser names its origin, come from this
/// console's own pages.
fn check_form(console: &Console, headers: &HeaderMap, token: &str) -> Result<(), Response> {
    if !crate::sasl::constant_time_eq(token.as_bytes(), console.token.as_bytes()) {
        return Err(refused(StatusCode::FORBIDDEN, "the form's token is missing or stale: reload the page"));
    }
    if let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        let same = origin.to_str().ok().and_then(|o| o.strip_prefix("http://")).is_some_and(|o| Some(o) == host.to_str().ok());
        if !same {
            return Err(refused(StatusCode::FORBIDDEN, "a form of another site cannot act on this console"));
        }
    }
    Ok(())
}

/// The hidden field that carries the form token.
fn token_field(console: &Console) -> String {
    format!("<input type=\"hidden\" name=\"token\" value=\"{}\">", console.token)
}

#[derive(serde::Deserialize)]
struct SeriesQuery {
    kind: String,
    #[serde(default)]
    name: String,
}

/// A chart's points as JSON `{"points": [[t_ms, value], ...]}`, after the same check the page
/// made: the viewer may describe the topic or group.
async fn series(State(console): State<Arc<Console>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, Query(q): Query<SeriesQuery>) -> Response {
    let v = match viewer(&console, &headers, peer).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(kind) = history::Kind::parse(&q.kind) else {
        return refused(StatusCode::BAD_REQUEST, "unknown chart kind");
    };
    use strom_metadata::acl::Operation;
    let authz = v.broker.authz(&v.session);
    let allowed = match kind {
        history::Kind::TopicRate => authz.allows_topic(Operation::Describe, &q.name),
        history::Kind::GroupLag | history::Kind::GroupRate => authz.allows_group(Operation::Describe, &q.name),
        history::Kind::TotalRate => authz.allows_cluster(Operation::Describe),
    };
    if !allowed {
        return refused(StatusCode::FORBIDDEN, "not authorized to describe it");
    }
    let points: Vec<[f64; 2]> = console.history.series(kind, &q.name).into_iter().map(|(t, v)| [t as f64, v]).collect();
    let body = serde_json::json!({ "points": points, "interval_ms": history::INTERVAL.as_millis() as u64 });
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body.to_string()).into_response()
}
