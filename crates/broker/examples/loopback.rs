//! The machine's loopback TCP bandwidth: one stream over 127.0.0.1, 4 GiB in 1 MiB writes,
//! read on another thread. The limit a produce or fetch over loopback cannot beat, printed by
//! `scripts/bench.sh` beside the broker's figures.
//!
//! `cargo run --release -p strom-broker --example loopback`

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

const TOTAL_BYTES: u64 = 4 << 30;
const CHUNK: usize = 1 << 20;

fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0u8; CHUNK];
        let mut received = 0u64;
        loop {
            match stream.read(&mut buf)? {
                0 => return Ok(received),
                n => received += n as u64,
            }
        }
    });

    let mut stream = TcpStream::connect(addr)?;
    let chunk = vec![7u8; CHUNK];
    let start = Instant::now();
    for _ in 0..TOTAL_BYTES / CHUNK as u64 {
        stream.write_all(&chunk)?;
    }
    // Closing the stream ends the reader's loop; the clock stops when it has read everything.
    drop(stream);
    let received = reader.join().expect("reader thread panicked")?;
    let secs = start.elapsed().as_secs_f64();
    if received != TOTAL_BYTES {
        let message = format!("sent {TOTAL_BYTES} bytes, received {received}");
        return Err(std::io::Error::other(message));
    }
    println!(
        "loopback TCP, one stream: {:.1} Gbit/s ({:.0} MB/s)",
        received as f64 * 8.0 / 1e9 / secs,
        received as f64 / 1e6 / secs
    );
    Ok(())
}
