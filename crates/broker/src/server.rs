//! The listener: binds, accepts, spawns a task per connection, runs the background retention
//! and log-cleaner tasks, and on SIGTERM / Ctrl-C closes every log cleanly so the next start needs no recovery.
//!
//! The background loops are owned by shutdown: each stops when `Broker::stopping` turns true,
//! after the pass it is in, and shutdown waits for them before it closes the logs (a pass on a
//! blocking thread would otherwise outlive the logs, and the process, which waits for blocking
//! threads, would log on after "shut down cleanly").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::transport::Stream;
use crate::broker::{Broker, BrokerError};
use crate::clock::now_ms;
use strom_config::BrokerConfig;
use strom_metadata::Endpoint;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    // `cause`, not `source`: the message says it, and a source would be printed a second time
    // after it by the binary's error chain ("(os error 98): ... (os error 98)").
    #[error("cannot listen on {addr} (from `listeners`): {cause}")]
    Bind { addr: String, cause: std::io::Error },
    #[error(transparent)]
    HttpBind(#[from] crate::http::BindError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("{0}")]
    Fatal(String),
    #[error("listener {listener}: {cause}")]
    Tls { listener: String, cause: crate::tls::TlsError },
}

/// A client has this long to complete its TLS handshake; one that stalls is dropped instead of
/// holding a task and a socket forever.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a ready broker serves, for its ready line.
pub struct Ready {
    /// The first advertised listener's `host:port`.
    pub bootstrap: String,
    /// `http://host:port` of each HTTP listener (none when `http.listeners` is empty).
    pub http: Vec<String>,
}

/// Runs the broker until a shutdown signal. `on_ready` receives the addresses it serves once
/// the broker accepts connections.
pub async fn run(mut config: BrokerConfig, on_ready: impl FnOnce(&Broker, &Ready)) -> Result<(), ServerError> {
    for key in &config.ignored {
        tracing::info!(key, "config key is accepted for compatibility with Kafka but has no effect in Strom");
    }
    let signals = ShutdownSignals::install();
    // The HTTP listener first: `/health` answers while the node starts, and the metrics
    // recorder is in place before any partition makes its counters.
    let http_bound = crate::http::bind(&config.http).await?;
    let prometheus = if config.http.listeners.is_empty() { None } else { crate::metrics::install() };
    let http_stopping = tokio::sync::watch::Sender::new(false);
    let http_urls = http_bound.urls.clone();
    let http = crate::http::Http::serve(http_bound, prometheus, &config.http, http_stopping.subscribe());
    let mut listeners = Vec::new();
    if config.listeners.iter().any(|l| l.tls.is_some()) {
        match crate::zero_copy::kernel_tls() {
            Ok(()) => tracing::info!("kernel TLS is offered by this kernel, but not used yet: TLS listeners encrypt in user space (rustls)"),
            Err(e) => tracing::info!(error = %e, "kernel TLS is not offered by this kernel (TCP_ULP \"tls\"): TLS listeners encrypt in user space (rustls), without sendfile"),
        }
    }
    for (i, l) in config.listeners.clone().into_iter().enumerate() {
        let addr = format!("{}:{}", l.host, l.port);
        // The config refuses such listeners; checked again where the port opens, because serving
        // plaintext on a port configured for TLS or SASL must be impossible, not merely unlikely.
        if l.security_protocol.uses_tls() != l.tls.is_some() || l.security_protocol.uses_sasl() != l.sasl.is_some() {
            return Err(ServerError::Fatal(format!("listener {} ({addr}) asks for {}, which is not served", l.name, l.security_protocol.name())));
        }
        // Keys and certificates are read before any port opens: a bad one stops the start.
        let tls = match &l.tls {
            Some(settings) => Some(Arc::new(
                crate::tls::TlsListener::new(settings.clone()).map_err(|cause| ServerError::Tls { listener: l.name.clone(), cause })?,
            )),
            None => None,
        };
        // OAUTHBEARER's key set likewise: a broker that could not check tokens does not start.
        let oauth = match l.sasl.as_ref().and_then(|s| s.oauth.clone()) {
            Some(o) => Some(crate::sasl::oauth::OAuthValidator::start(o, now_ms()).await.map_err(|e| ServerError::Fatal(format!("listener {}: {e}", l.name)))?),
            None => None,
        };
        let bind = |cause| ServerError::Bind { addr: addr.clone(), cause };
        let sock = l.socket_addr().map_err(bind)?;
        let listener = TcpListener::bind(sock).await.map_err(bind)?;
        let port = listener.local_addr().map_err(bind)?.port();
        // Port 0 means "pick one": advertise the port actually bound (tests rely on this).
        if l.port == 0 {
            config.listeners[i].port = port;
            if let Some(a) = config.advertised_listeners.get_mut(i) {
                if a.port == 0 {
                    a.port = port;
                }
            }
        }
        listeners.push((listener, Arc::<str>::from(l.name.as_str()), tls, l.sasl.clone().map(|s| (s, oauth))));
    }
    let broker = Broker::open(config).await?;
    http.broker_opened(broker.clone());
    let ready = Ready { bootstrap: broker.config.bootstrap_address(), http: http_urls };
    let mut loops = vec![
        tokio::spawn(retention_loop(broker.clone())),
        tokio::spawn(disk_loop(broker.clone())),
        tokio::spawn(group_loop(broker.clone())),
        tokio::spawn(transaction_loop(broker.clone())),
        tokio::spawn(crate::replica_manager::maintain_isr(
            broker.replicas.clone(),
            broker.metadata.clone(),
            broker.config.replica_lag_time_max_ms,
            broker.stopping(),
        )),
    ];
    if broker.config.log_cleaner_enable {
        loops.push(tokio::spawn(cleaner_loop(broker.clone())));
    }
    let endpoints = broker
        .config
        .advertised_listeners
        .iter()
        .map(|l| Endpoint { listener: l.name.clone(), host: l.host.clone(), port: l.port })
        .collect();
    if broker.config.cluster.is_single_node() {
        // Alone, registration is one local append: do it before taking clients, so the first
        // Metadata request already lists this broker.
        let incarnation = broker.metadata.register(endpoints).await;
        tokio::spawn(broker.metadata.clone().heartbeat_forever(incarnation));
    } else {
        tokio::spawn(broker.metadata.clone().run_broker(endpoints));
    }
    let serve = async {
        // Clients are accepted (the bound listeners queue them meanwhile) only once this node's
        // image holds its own registration, as a Kafka broker enables request processing only
        // once caught up and unfenced. Before that the image is empty or stale (a wiped or long
        // stopped node): Metadata would list no brokers, and librdkafka drops the brokers it is
        // not told about, a consumer's coordinator among them, never to find it again.
        broker.metadata.registered_here().await;
        let client_listeners = listeners.len();
        for (listener, name, tls, sasl) in listeners {
            // SCRAM credentials are read from the metadata image at each login, so a change
            // (AlterUserScramCredentials, here or on another node) applies to the next one.
            let sasl = sasl.map(|(settings, oauth)| {
                let metadata = broker.metadata.clone();
                let credentials: crate::sasl::CredentialLookup = Arc::new(move |user, mechanism| metadata.image().scram.get(user, mechanism).cloned());
                if let Some(v) = &oauth {
                    loops.push(tokio::spawn(v.clone().refresh_loop(broker.stopping())));
                }
                Arc::new(crate::sasl::Authenticator::new(settings, credentials, oauth))
            });
            if let Some(tls) = &tls {
                // Stores altered at run time outlive a restart: serve them before the first
                // client is accepted (the image is this node's own by now).
                let mut stores = broker.config.reconfigurable_tls(&name);
                apply_dynamic_tls(&broker, tls, &name, &mut stores);
                loops.push(tokio::spawn(tls_reload_loop(broker.clone(), tls.clone(), name.clone(), stores, broker.stopping())));
            }
            tokio::spawn(accept_loop(broker.clone(), listener, name, tls, sasl, client_listeners, broker.stopping()));
        }
        // "Ready" also includes the replay of the offsets partitions a single node leads: a
        // client that starts on the ready line must not meet COORDINATOR_LOAD_IN_PROGRESS, which
        // some clients' commits do not retry. (Requests arriving earlier get that code and
        // retry, as on Kafka.) In a cluster the leaders are elected later, so only a single node
        // waits here.
        let load_deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while broker.config.cluster.is_single_node() && !broker.groups.is_loaded() && tokio::time::Instant::now() < load_deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        http.set_ready(true);
        on_ready(&broker, &ready);
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = serve => {}
        _ = signals.received() => {}
        why = broker.metadata.fatal() => {
            broker.shutdown();
            return Err(ServerError::Fatal(why));
        }
    }
    http.set_ready(false);
    tracing::info!("shutting down: handing leadership over, closing logs");

    // An internal topic being created (a FindCoordinator in flight) is finished first: it needs
    // the metadata follower, and its partitions must be open to be closed cleanly below.
    broker.stop_creating_topics().await;
    broker.metadata.controlled_shutdown().await;
    // Nothing may open, read or write a log once they are closed: the metadata follower and the
    // background loops stop (and the listeners stop accepting), each after the pass it is in.
    broker.stop_work().await;
    for l in loops {
        let _ = l.await;
    }
    broker.shutdown();
    broker.metadata.shutdown().await;
    http_stopping.send_replace(true);
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Whether shutdown began; waits for it (or for the broker to go away).
async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}

async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    name: Arc<str>,
    tls: Option<Arc<crate::tls::TlsListener>>,
    sasl: Option<Arc<crate::sasl::Authenticator>>,
    client_listeners: usize,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    // `max.connections` does not hold back the inter-broker listener when there are others
    // (Kafka's protected listener), so replication goes on when clients use every slot.
    let protected = client_listeners > 1 && name.eq_ignore_ascii_case(&broker.config.inter_broker.listener);
    loop {
        let accepted = tokio::select! {
            a = async {
                broker.quotas.connections.wait_for_slot(protected).await;
                listener.accept().await
            } => a,
            _ = stopped(&mut stopping) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let slot = match broker.quotas.connections.admit(peer.ip(), &broker.metadata.image().quotas, crate::clock::now_ms()) {
                    crate::quotas::connections::Admission::Admitted(slot) => slot,
                    crate::quotas::connections::Admission::TooMany(max) => {
                        tracing::debug!(%peer, listener = %name, max, "max.connections.per.ip reached: connection closed");
                        continue;
                    }
                    crate::quotas::connections::Admission::Throttled(ms) => {
                        // Kafka's delayed close: the client sees its connection stay silent
                        // and close, and backs off, rather than reconnecting at once.
                        tracing::debug!(%peer, listener = %name, ms, "over the address's connection_creation_rate: closing the connection after the throttle time");
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(ms.max(0) as u64)).await;
                            drop(stream);
                        });
                        continue;
                    }
                };
                let (broker, name, tls, sasl) = (broker.clone(), name.clone(), tls.clone(), sasl.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    let (stream, principal) = match tls {
                        None => (Stream::Plain(stream), None),
                        Some(tls) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(crate::transport::tls_socket(stream))).await {
                            Ok(Ok(s)) => match tls.principal(s.get_ref().1.peer_certificates()) {
                                Ok(p) => (Stream::Tls(Box::new(s)), Some(p)),
                                Err(why) => {
                                    tracing::debug!(%peer, listener = %name, why, "TLS client refused");
                                    crate::sasl::report_failure(peer, &name, crate::clock::now_ms());
                                    return;
                                }
                            },
                            // A failed handshake (garbage, an untrusted client certificate, a
                            // port scan) is the client's problem: debug level, so that a client
                            // retrying in a loop cannot flood the log.
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, listener = %name, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, listener = %name, "TLS handshake timed out");
                                return;
                            }
                        },
                    };
                    crate::connection::serve(broker, stream, peer, name, principal, sasl).await;
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Switches a TLS listener to the stores this broker's dynamic configs name, if they are not
/// the ones `stores` says it serves (see `tls::TlsListener::replace_settings`). `true` when a
/// change was acted on.
fn apply_dynamic_tls(broker: &Broker, tls: &crate::tls::TlsListener, listener: &str, stores: &mut BTreeMap<String, String>) -> bool {
    // AlterConfigs checked the new stores before committing them; they are loaded again here,
    // where they are served (a file may have changed since).
    let Ok(effective) = broker.config.with_dynamic(&broker.metadata.image().dynamic_configs(broker.config.node_id)) else { return false };
    let now = effective.reconfigurable_tls(listener);
    if now == *stores {
        return false;
    }
    *stores = now;
    let Some(settings) = effective.listeners.iter().find(|l| l.name == listener).and_then(|l| l.tls.clone()) else { return false };
    match tls.replace_settings(settings) {
        Ok(()) => tracing::info!(%listener, "TLS keystore or truststore altered as a dynamic config: new connections use it"),
        Err(e) => {
            tracing::error!(%listener, error = %e, "the TLS stores altered as a dynamic config do not load: still serving the previous ones");
            return true;
        }
    }
    // On the inter-broker listener the same stores are the ones this node presents and checks
    // when it connects to its peers (follower fetches, markers).
    if effective.inter_broker.listener == listener {
        match broker.replicas.connector().replace_tls(&effective.inter_broker) {
            Ok(()) => tracing::info!(%listener, "inter-broker client: new connections to the peers use the altered TLS stores"),
            Err(e) => tracing::error!(%listener, error = %e, "inter-broker client: the altered TLS stores do not load: still connecting with the previous ones"),
        }
    }
    true
}

/// Rotates a TLS listener's certificates when their files change (see `tls`), and switches to
/// new stores when they are altered as this broker's dynamic configs. `stores`: what it serves.
async fn tls_reload_loop(
    broker: Arc<Broker>,
    tls: Arc<crate::tls::TlsListener>,
    listener: Arc<str>,
    mut stores: BTreeMap<String, String>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(crate::tls::RELOAD_CHECK) => {}
            _ = stopped(&mut stopping) => return,
        }
        if apply_dynamic_tls(&broker, &tls, &listener, &mut stores) {
            continue;
        }
        // Reading a few small files: cheap enough for the reactor every few seconds.
        match tls.reload_if_changed() {
            Ok(true) => tracing::info!(%listener, "TLS keystore or truststore changed: new connections use the new certificates"),
            Ok(false) => {}
            Err(e) => tracing::error!(%listener, error = %e, "TLS files changed but do not load: still serving the previous certificates"),
        }
    }
}

async fn retention_loop(broker: Arc<Broker>) {
    let every = Duration::from_millis(broker.config.log_retention_check_interval_ms);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut stopping = broker.stopping();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut stopping) => return,
        }
        let b = broker.clone();
        // File deletion is blocking work; keep it off the reactor threads.
        let _ = tokio::task::spawn_blocking(move || b.replicas.enforce_retention(now_ms())).await;
    }
}

/// Checks the data directory's free space every second against `log.dir.min.free.bytes` (a
/// dynamic config: read from the image at each check). While writes are refused, retention runs
/// every 10 s rather than every `log.retention.check.interval.ms`, so that lowered retention
/// frees space soon.
async fn disk_loop(broker: Arc<Broker>) {
    use crate::disk_guard::{min_free, space, Change};
    const KEY: &str = "log.dir.min.free.bytes";
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = broker.stopping();
    let mut last_retention = 0i64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut stopping) => return,
        }
        let Some((free, total)) = space(&broker.config.log_dir) else { continue };
        // AlterConfigs checked the value against the key table; a bad one cannot be here.
        let setting = broker.metadata.image().dynamic_configs(broker.config.node_id).get(KEY).and_then(|v| v.trim().parse().ok()).unwrap_or(broker.config.log_dir_min_free_bytes);
        let min = min_free(setting, total);
        match broker.disk.observe(free, min) {
            Change::BecameLow => tracing::warn!(free, min, dir = %broker.config.log_dir.display(), "the data directory is nearly full: refusing produce requests (KAFKA_STORAGE_ERROR) until {KEY} bytes are free again; reads, admin requests and retention go on"),
            Change::Recovered => tracing::info!(free, min, "the data directory has room again: accepting produce requests"),
            Change::None => {}
        }
        let now = now_ms();
        if broker.disk.is_low() && now - last_retention >= 10_000 {
            last_retention = now;
            let b = broker.clone();
            let _ = tokio::task::spawn_blocking(move || b.replicas.enforce_retention(now_ms())).await;
        }
    }
}

async fn cleaner_loop(broker: Arc<Broker>) {
    let pause = Duration::from_millis(broker.config.log_cleaner_backoff_ms);
    let mut stopping = broker.stopping();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped(&mut stopping) => return,
        }
        let b = broker.clone();
        // Reading and rewriting segments is blocking work; keep it off the reactor threads.
        let _ = tokio::task::spawn_blocking(move || b.replicas.compact_all(now_ms())).await;
    }
}

/// Drives the group timers: sessions, rebalance timeouts, offset expiry, and the share
/// partitions of leaderships that moved away.
async fn group_loop(broker: Arc<Broker>) {
    // Timers are checked every 100 ms: a session timeout is at least
    // group.min.session.timeout.ms (seconds), so this is precise enough and costs nothing
    // while no deadline is due.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let expiry_every = broker.config.groups.offsets_retention_check_interval_ms as i64;
    let mut next_expiry = now_ms() + expiry_every;
    let mut sweeps = 0u64;
    let mut stopping = broker.stopping();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut stopping) => return,
        }
        broker.groups.tick();
        broker.shares.tick();
        // Share partitions whose leadership moved away, once a second (a topic id's name is
        // looked up once per sweep).
        sweeps += 1;
        if sweeps % 10 == 0 {
            let image = broker.metadata.image();
            let names: std::collections::HashMap<_, _> = image.topics.values().map(|t| (t.id, t.name.as_str())).collect();
            broker.shares.retain_led(|(_, topic_id, index), epoch| {
                names.get(topic_id).and_then(|name| broker.replicas.leader(name, *index).ok()).is_some_and(|p| p.leader_epoch() == epoch)
            });
        }
        if now_ms() >= next_expiry {
            broker.groups.expire_offsets();
            next_expiry = now_ms() + expiry_every;
        }
    }
}

/// Drives the transaction timers: aborts of transactions open past their timeout, expiry of
/// idle transactional ids, and of idempotent producers' state in the partitions.
async fn transaction_loop(broker: Arc<Broker>) {
    let t = &broker.config.transactions;
    let mut tick = tokio::time::interval(Duration::from_millis(t.abort_timed_out_interval_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (expiry_every, expiration_ms) = (t.producer_id_expiration_check_interval_ms as i64, t.producer_id_expiration_ms);
    let mut next_expiry = now_ms() + expiry_every;
    let mut stopping = broker.stopping();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut stopping) => return,
        }
        broker.transactions.tick();
        if now_ms() >= next_expiry {
            let b = broker.clone();
            let _ = tokio::task::spawn_blocking(move || b.replicas.expire_producers(now_ms(), expiration_ms)).await;
            next_expiry = now_ms() + expiry_every;
        }
    }
}

/// SIGTERM and SIGINT (Ctrl-C), listened for from the moment this is made. Made before the
/// ready line is printed: a signal sent as soon as a process reads that line must find the
/// handlers in place (tokio's `ctrl_c()` installs its handler only when first polled, and a
/// `select!` may poll the branch that prints the line first; a SIGTERM then killed the process
/// with the default action, no clean shutdown).
struct ShutdownSignals {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignals {
    fn install() -> ShutdownSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signals = signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?)));
            if let Err(e) = &signals {
                tracing::warn!(error = %e, "cannot listen for SIGTERM/SIGINT; Ctrl-C only");
            }
            ShutdownSignals { signals: signals.ok() }
        }
        #[cfg(not(unix))]
        ShutdownSignals {}
    }

    async fn received(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.signals {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
