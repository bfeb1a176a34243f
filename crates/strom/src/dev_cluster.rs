//! `strom cluster`: a local N-node cluster for development in one command.
//!
//! Each node is its own `strom server` process (this same binary), with its own data directory
//! and ports on 127.0.0.1, every node a broker and a controller voter. The processes are real, so
//! `kill -9 <pid>` on one of them is a real broker crash; their log lines are prefixed with the
//! node id. Ctrl-C (or SIGTERM) stops them all cleanly.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context};

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
    /// Node i keeps its data in DIR/node<i> (kept across runs, like `strom server`'s).
    #[arg(long, default_value = "./strom-data/cluster")]
    dir: PathBuf,
    /// A property for every node, as `strom server --override` (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

enum Event {
    Ready(u16, String),
    Exited(u16),
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
    let exe = std::env::current_exe().context("finding the strom binary")?;
    let (tx, rx) = mpsc::channel();
    let mut children: Vec<(u16, Child)> = Vec::new();
    for i in 1..=a.nodes {
        let mut cmd = Command::new(&exe);
        cmd.arg("server")
            .args(["--override", &format!("node.id={i}")])
            .args([
                "--override",
                &format!("listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}", port(a.base_port, i)?, port(a.controller_base_port, i)?),
            ])
            .args(["--override", &format!("controller.quorum.voters={}", voters.join(","))])
            .args(["--override", &format!("log.dirs={}", a.dir.join(format!("node{i}")).display())])
            // As the README's example configs: up to three replicas, acks=all needs two (later
            // --override flags win).
            .args(["--override", &format!("default.replication.factor={}", a.nodes.min(3))])
            .args(["--override", &format!("min.insync.replicas={}", a.nodes.min(3).saturating_sub(1).max(1))]);
        for o in &a.overrides {
            cmd.args(["--override", o]);
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
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(b) = line.split("bootstrap.servers=").nth(1) {
                        let _ = tx.send(Event::Ready(i, b.split_whitespace().next().unwrap_or_default().to_string()));
                    }
                    println!("[node {i}] {line}");
                }
                let _ = tx.send(Event::Exited(i));
            });
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    eprintln!("[node {i}] {line}");
                }
            });
        }
        children.push((i, child));
    }
    drop(tx);
    let mut ready = Vec::new();
    while ready.len() < a.nodes as usize {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Event::Ready(i, addr)) => ready.push((i, addr)),
            Ok(Event::Exited(i)) => {
                stop_all(&mut children);
                bail!("node {i} exited before it was ready (its error is above)");
            }
            Err(_) => {
                stop_all(&mut children);
                bail!("the nodes did not start within 30 s");
            }
        }
    }
    ready.sort();
    let bootstrap: Vec<&str> = ready.iter().map(|(_, b)| b.as_str()).collect();
    println!("Strom cluster of {} nodes is ready: bootstrap.servers={}", a.nodes, bootstrap.join(","));
    for (i, c) in &children {
        println!("  node {i}: pid {}, data in {}", c.id(), a.dir.join(format!("node{i}")).display());
    }
    println!("Ctrl-C stops every node cleanly; `kill -9 <pid>` crashes one.");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<_, std::io::Error>(())
    })?;
    stop_all(&mut children);
    Ok(())
}

/// SIGTERM to every node still running (a clean shutdown each), then wait for all.
fn stop_all(children: &mut [(u16, Child)]) {
    for (_, c) in children.iter_mut() {
        if let Ok(None) = c.try_wait() {
            // SAFETY: kill(2) on the pid of a child we have not reaped yet; no memory involved.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
    }
    for (i, c) in children.iter_mut() {
        match c.wait() {
            Ok(s) => println!("[node {i}] stopped ({s})"),
            Err(e) => eprintln!("[node {i}] could not be waited for: {e}"),
        }
    }
}
