//! `strom cluster`: a local N-node cluster for development in one command.
//!
//! Each node is its own `strom server` process (this same binary), with its own data directory
//! and ports on 127.0.0.1, every node a broker and a controller voter. The processes are real, so
//! `kill -9 <pid>` on one of them is a real broker crash; their log lines are prefixed with the
//! node id. Ctrl-C (or SIGTERM) stops them all cleanly.
//!
//! Each node's settings are written to a config file of its own (`DIR/node<i>.properties`) and
//! the node is started with `strom server --config` that file, so that a node that stopped
//! (crashed, killed) can be started again by hand with the same command: `strom cluster`
//! says so when a node exits, and restarts nothing on its own (a development cluster should
//! show what a crash does, not hide it).
//!
//! `--secured` starts the README's secured cluster instead: clients on SASL_SSL with
//! SCRAM-SHA-512, the brokers on an INTERNAL SASL_SSL listener of their own, the controllers on
//! mutual TLS, ACLs on. Its CA and node certificates are made once with the `openssl` command
//! (in `DIR/certs`), and its two users' passwords once at random (`DIR/secrets.properties`);
//! `DIR/admin.properties` is a librdkafka client config for the administrator.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context};

mod secured;

#[derive(clap::Args)]
pub struct Args {
    /// How many nodes (each a broker and a controller voter).
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Client port of node 1; node i listens on BASE + i - 1.
    #[arg(long, default_value_t = 9092)]
    base_port: u16,
    /// CONTROLLER port of node 1; node i uses it + i - 1.
    #[arg(long, default_value_t = 19092)]
    controller_base_port: u16,
    /// HTTP port (`/metrics`, `/health`, `/ready`) of node 1; node i uses it + i - 1. `0`: no
    /// HTTP listener.
    #[arg(long, default_value_t = 9644)]
    http_base_port: u16,
    /// Node i keeps its data in DIR/node<i> and its config in DIR/node<i>.properties (kept
    /// across runs, like `strom server`'s data; the config is rewritten at each start).
    #[arg(long, default_value = "./strom-data/cluster")]
    dir: PathBuf,
    /// Everything encrypted and authenticated: SASL_SSL (SCRAM-SHA-512) for clients and between
    /// brokers, mutual TLS between controllers, ACLs on (certificates made with `openssl`).
    #[arg(long)]
    secured: bool,
    /// With --secured: the INTERNAL (inter-broker) port of node 1; node i uses it + i - 1.
    #[arg(long, default_value_t = 29092)]
    inter_broker_base_port: u16,
    /// A property for every node, as `strom server --override` (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

enum Event {
    /// A node's bootstrap address and its HTTP listener's URL, if any.
    Ready(u16, String, Option<String>),
    /// The node's standard output ended: it exited (or closed it, which a node does not do).
    Exited(u16),
    /// Ctrl-C or SIGTERM.
    Stop,
    /// Our own standard output is gone (piped into `head`, say): stop, as a tool killed by
    /// SIGPIPE would, but cleanly and without leaving the nodes running.
    StdoutClosed,
}

/// One line to our standard output; `false` once it cannot be written (a closed pipe).
fn say(line: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.nodes == 0 || a.nodes > 99 {
        bail!("--nodes must be 1-99");
    }
    let port = |base: u16, i: u16| base.checked_add(i - 1).context("port out of range");
    let mut voters = Vec::new();
    for i in 1..=a.nodes {
        voters.push(format!("{i}@127.0.0.1:{}", port(a.controller_base_port, i)?));
    }
    let mut overrides = Vec::with_capacity(a.overrides.len());
    for o in &a.overrides {
        let Some((k, v)) = o.split_once('=') else { bail!("--override expects KEY=VALUE, got `{o}`") };
        overrides.push((k.trim().to_string(), v.trim().to_string()));
    }
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    // Absolute paths in the config files and the restart command: they must work from any
    // directory the node is restarted in.
    let dir = a.dir.canonicalize().with_context(|| format!("resolving {}", a.dir.display()))?;
    let exe = std::env::current_exe().context("finding the strom binary")?;
    let secrets = if a.secured { Some(secured::prepare(&dir, a.nodes)?) } else { None };
    let mut configs = Vec::new();
    for i in 1..=a.nodes {
        let listeners = match secrets {
            None => format!("PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}", port(a.base_port, i)?, port(a.controller_base_port, i)?),
            Some(_) => format!(
                "CLIENT://127.0.0.1:{},INTERNAL://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                port(a.base_port, i)?,
                port(a.inter_broker_base_port, i)?,
                port(a.controller_base_port, i)?
            ),
        };
        let mut props = vec![
            ("node.id".to_string(), i.to_string()),
            ("listeners".to_string(), listeners),
            ("controller.quorum.voters".to_string(), voters.join(",")),
            (
                "http.listeners".to_string(),
                if a.http_base_port == 0 { String::new() } else { format!("http://127.0.0.1:{}", port(a.http_base_port, i)?) },
            ),
            ("log.dirs".to_string(), dir.join(format!("node{i}")).display().to_string()),
            // As the README's example configs: up to three replicas, acks=all needs two.
            ("default.replication.factor".to_string(), a.nodes.min(3).to_string()),
            ("min.insync.replicas".to_string(), a.nodes.min(3).saturating_sub(1).max(1).to_string()),
        ];
        if let Some(secrets) = &secrets {
            props.extend(secured::node_props(&dir, i, secrets));
        }
        // An --override replaces the generated line of its key (one line per key: which of two
        // a reader keeps is not something a person should have to know).
        for (k, v) in &overrides {
            match props.iter_mut().find(|(pk, _)| pk == k) {
                Some(p) => p.1 = v.clone(),
                None => props.push((k.clone(), v.clone())),
            }
        }
        let path = dir.join(format!("node{i}.properties"));
        write_config(&path, i, a.nodes, &exe, &props)?;
        configs.push(path);
    }

    let (tx, rx) = mpsc::channel();
    {
        let tx = tx.clone();
        crate::signals::on_stop(move || {
            let _ = tx.send(Event::Stop);
        });
    }
    let mut children: Vec<(u16, Child)> = Vec::new();
    for (i, config) in (1..=a.nodes).zip(&configs) {
        let mut cmd = Command::new(&exe);
        cmd.arg("server").arg("--config").arg(config);
        if let Some(secrets) = &secrets {
            // The cluster's first users, written by whichever node founds it (ignored later).
            cmd.args(secrets.add_scram());
        }
        let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
            Ok(c) => c,
            Err(e) => {
                stop_all(&mut children);
                return Err(e).context(format!("starting node {i}"));
            }
        };
        if let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut stdout_open = true;
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    // Keep reading after our stdout closed: a node blocked on a full pipe would hang.
                    if stdout_open && !say(&format!("[node {i}] {line}")) {
                        stdout_open = false;
                        let _ = tx.send(Event::StdoutClosed);
                    }
                    // After the line is out, so the cluster's summary comes after every node's.
                    if let Some(b) = line.split("bootstrap.servers=").nth(1) {
                        let http = line.split(" http=").nth(1).and_then(|h| h.split_whitespace().next()).map(str::to_string);
                        let _ = tx.send(Event::Ready(i, b.split_whitespace().next().unwrap_or_default().to_string(), http));
                    }
                }
                let _ = tx.send(Event::Exited(i));
            });
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    // Errors ignored: a closed stderr must not stop the draining of the node's.
                    let _ = writeln!(std::io::stderr(), "[node {i}] {line}");
                }
            });
        }
        children.push((i, child));
    }
    drop(tx);
    let mut ready = Vec::new();
    while ready.len() < a.nodes as usize {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Event::Ready(i, addr, http)) => ready.push((i, addr, http)),
            Ok(Event::Exited(i)) => {
                stop_all(&mut children);
                bail!("node {i} exited before it was ready (its error is above)");
            }
            Ok(Event::Stop | Event::StdoutClosed) => {
                stop_all(&mut children);
                return Ok(());
            }
            Err(_) => {
                stop_all(&mut children);
                bail!("the nodes did not start within 30 s");
            }
        }
    }
    ready.sort();
    let bootstrap: Vec<&str> = ready.iter().map(|(_, b, _)| b.as_str()).collect();
    let mut lines = vec![format!("Strom cluster of {} nodes is ready: bootstrap.servers={}", a.nodes, bootstrap.join(","))];
    for (((i, c), config), (_, _, http)) in children.iter().zip(&configs).zip(&ready) {
        let http = http.as_ref().map(|u| format!(", metrics at {u}/metrics")).unwrap_or_default();
        lines.push(format!("  node {i}: pid {}, data in {}, config {}{http}", c.id(), dir.join(format!("node{i}")).display(), config.display()));
    }
    if secrets.is_some() {
        lines.push(format!(
            "Secured: SASL_SSL with SCRAM-SHA-512, user admin (a super user); client settings in {}",
            dir.join("admin.properties").display()
        ));
    }
    lines.push("Ctrl-C stops every node cleanly; `kill -9 <pid>` crashes one, and nothing restarts it.".to_string());
    lines.push(format!(
        "To start a stopped node again, by hand: {} server --config {}/node<i>.properties",
        shell_word(&exe.display().to_string()),
        shell_word(&dir.display().to_string())
    ));
    if !lines.iter().all(|l| say(l)) {
        stop_all(&mut children);
        return Ok(());
    }
    for event in rx {
        match event {
            Event::Exited(i) => {
                let status = children.iter_mut().find(|(n, _)| *n == i).and_then(|(_, c)| c.wait().ok());
                let status = status.map_or_else(|| "exited".to_string(), |s| format!("exited ({s})"));
                let config = dir.join(format!("node{i}.properties"));
                // It is no child of ours once restarted: Ctrl-C here does not stop it then.
                let ok = say(&format!(
                    "[node {i}] {status}; the other nodes keep running. To start it again, in a terminal of its own: {}",
                    restart_command(&exe, &config)
                ));
                if !ok {
                    break;
                }
            }
            Event::Ready(..) => {}
            Event::Stop | Event::StdoutClosed => break,
        }
    }
    stop_all(&mut children);
    Ok(())
}

/// The command that starts one node alone, as `strom cluster` started it, ready to paste.
fn restart_command(exe: &Path, config: &Path) -> String {
    format!("{} server --config {}", shell_word(&exe.display().to_string()), shell_word(&config.display().to_string()))
}

/// `s` as one word of a POSIX shell command line: as it is if nothing in it is special.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Writes node `i`'s config file: Kafka's properties format, with a header saying what it is.
fn write_config(path: &Path, i: u16, nodes: u16, exe: &Path, props: &[(String, String)]) -> anyhow::Result<()> {
    let mut text = format!(
        "# Node {i} of a local {nodes}-node Strom cluster, written by `strom cluster` (rewritten at each of its starts).\n\
         # Start this node alone, by hand: {}\n",
        restart_command(exe, path)
    );
    for (k, v) in props {
        text.push_str(&format!("{}={}\n", escape(k, true), escape(v, false)));
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A key or value escaped for a Java properties file: backslashes and line breaks always, and in
/// a key the characters that would end it (`=`, `:`, white space).
fn escape(s: &str, key: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '=' | ':' | ' ' | '\t' if key => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// SIGTERM to every node still running (a clean shutdown each), then wait for them. Nodes that
/// exited before (and were reported then) are not reported again.
fn stop_all(children: &mut [(u16, Child)]) {
    let mut running = Vec::new();
    for (i, c) in children.iter_mut() {
        if let Ok(None) = c.try_wait() {
            // SAFETY: kill(2) on the pid of a child we have not reaped yet; no memory involved.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            running.push(*i);
        }
    }
    for (i, c) in children.iter_mut().filter(|(i, _)| running.contains(i)) {
        // Said only if our stdout is still there; the nodes are stopped either way.
        match c.wait() {
            Ok(s) => {
                say(&format!("[node {i}] stopped ({s})"));
            }
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "[node {i}] could not be waited for: {e}");
            }
        }
    }
}
