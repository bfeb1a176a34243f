//! Ctrl-C or SIGTERM (what `kill` and service managers send), for the tools that must finish
//! cleanly rather than die: `strom cluster` stops its nodes, `console-consumer` commits what it
//! printed and leaves its group.

/// Runs `then` on a thread of its own once Ctrl-C or SIGTERM arrives.
pub fn on_stop(then: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        });
        then();
    });
}
