//! Fetch responses without copying record bytes through user space.
//!
//! kafka-protocol encodes a response into any `ByteBufMut`. `ScatterBuf` is one that keeps the
//! small encoded fields in memory but, when the encoder writes a records field that is a
//! *placeholder* (a slice of one zeroed allocation nobody ever reads), records a
//! reference to the segment file range instead. The connection then writes the in-memory parts
//! with `write` and the file parts with `sendfile(2)`: the kernel copies page cache straight into
//! the socket, as Kafka does. So the crate still owns every byte of framing; Strom only swaps
//! where the record bytes come from.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use strom_storage::FileSlice;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;

use crate::transport::WriteHalf;

/// Largest records field sent zero-copy; larger ones (only possible through the min-one-message
/// rule with a huge batch) are read into memory instead.
pub const PLACEHOLDER_LEN: usize = 64 << 20;

/// The zeroed bytes placeholders are slices of, allocated on first use and never freed. Not a
/// `static [u8; N]`: an immutable static lands in .rodata, 64 MiB of zeros in the binary file.
/// A zeroed allocation this large is fresh pages from mmap (calloc): never touched, never resident.
fn placeholder_bytes() -> &'static [u8] {
    static PLACEHOLDER: std::sync::OnceLock<&'static [u8]> = std::sync::OnceLock::new();
    PLACEHOLDER.get_or_init(|| Box::leak(vec![0u8; PLACEHOLDER_LEN].into_boxed_slice()))
}

/// A records value of `len` bytes that the encoder will not read and `ScatterBuf` replaces.
pub fn placeholder(len: usize) -> Option<Bytes> {
    (len <= PLACEHOLDER_LEN).then(|| Bytes::from_static(&placeholder_bytes()[..len]))
}

fn is_placeholder(src: &[u8]) -> bool {
    let base = placeholder_bytes().as_ptr() as usize;
    let p = src.as_ptr() as usize;
    !src.is_empty() && p >= base && p + src.len() <= base + PLACEHOLDER_LEN
}

pub enum Part {
    Memory(Bytes),
    File(FileSlice),
}

pub struct ScatterBuf {
    head: BytesMut,
    parts: Vec<Part>,
    /// File ranges for the placeholders, in the order the encoder will meet them.
    pending: VecDeque<FileSlice>,
    len: usize,
    /// Set when a placeholder did not match the pending file ranges; the response must not be sent.
    mismatch: bool,
}

impl ScatterBuf {
    pub fn new(files: Vec<FileSlice>) -> Self {
        ScatterBuf { head: BytesMut::with_capacity(4096), parts: Vec::new(), pending: files.into(), len: 0, mismatch: false }
    }

    /// The parts to write, in order, or None when the encoder and the file ranges disagreed.
    pub fn finish(mut self) -> Option<(Vec<Part>, usize)> {
        if self.mismatch || !self.pending.is_empty() {
            return None;
        }
        if !self.head.is_empty() {
            self.parts.push(Part::Memory(self.head.split().freeze()));
        }
        Some((self.parts, self.len))
    }

    fn splice(&mut self, len: usize) {
        if !self.head.is_empty() {
            self.parts.push(Part::Memory(self.head.split().freeze()));
        }
        let mut left = len;
        while left > 0 {
            match self.pending.pop_front() {
                Some(f) if f.len <= left => {
                    left -= f.len;
                    self.parts.push(Part::File(f));
                }
                _ => {
                    self.mismatch = true;
                    return;
                }
            }
        }
        self.len += len;
    }
}

// SAFETY: `chunk_mut` hands out the spare capacity of `head`, and `advance_mut` advances `head`
// by what the caller initialised, exactly as BytesMut's own implementation requires.
unsafe impl BufMut for ScatterBuf {
    fn remaining_mut(&self) -> usize {
        usize::MAX - self.len
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded contract: `cnt` bytes of `chunk_mut()` were initialised.
        unsafe { self.head.advance_mut(cnt) };
        self.len += cnt;
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        if self.head.capacity() == self.head.len() {
            self.head.reserve(4096);
        }
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if is_placeholder(src) {
            self.splice(src.len());
        } else {
            self.head.extend_from_slice(src);
            self.len += src.len();
        }
    }
}

impl ByteBufMut for ScatterBuf {
    fn offset(&self) -> usize {
        self.len
    }

    // Fetch responses never seek back (only record-batch encoding does, which this buffer is
    // never used for). Seeking forward pads with zeros; anything else is refused safely.
    fn seek(&mut self, offset: usize) {
        if offset >= self.len {
            self.head.resize(self.head.len() + (offset - self.len), 0);
            self.len = offset;
        } else {
            self.mismatch = true;
        }
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let base = self.len - self.head.len();
        match (r.start.checked_sub(base), r.end.checked_sub(base)) {
            (Some(a), Some(b)) if a <= b && b <= self.head.len() => &mut self.head[a..b],
            _ => {
                self.mismatch = true;
                Default::default()
            }
        }
    }
}

/// Writes the parts of one response: memory with `write`, file ranges with `sendfile` on a
/// plain socket, or read into one buffer and encrypted from there under TLS.
pub async fn write_parts(w: &mut WriteHalf, parts: Vec<Part>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    for part in parts {
        match (part, &mut *w) {
            (Part::Memory(b), w) => w.write_all(&b).await?,
            (Part::File(f), WriteHalf::Plain(w)) => send_file(w, &f).await?,
            (Part::File(f), WriteHalf::Tls(w)) => copy_file(w, &f, &mut buf).await?,
        }
    }
    w.flush().await
}

/// Chunk of segment bytes read at a time for a TLS connection: big enough to fill TLS records
/// (16 KiB each) many times over, small enough not to pin memory per connection.
const TLS_CHUNK: usize = 256 * 1024;

/// A file range through user space: `pread` into `buf`, then the TLS stream encrypts from it.
/// The read is synchronous like `sendfile`'s (page cache, the same cost model).
async fn copy_file(w: &mut (impl tokio::io::AsyncWrite + Unpin), f: &FileSlice, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut pos = f.position;
    let end = f.position + f.len as u64;
    while pos < end {
        let n = TLS_CHUNK.min((end - pos) as usize);
        buf.resize(n, 0);
        f.file.read_exact_at(buf, pos).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "segment shorter than the fetch response")
            } else {
                e
            }
        })?;
        w.write_all(buf).await?;
        pos += n as u64;
    }
    Ok(())
}

async fn send_file(w: &OwnedWriteHalf, f: &FileSlice) -> std::io::Result<()> {
    let stream = w.as_ref();
    let end = f.position + f.len as u64;
    let mut offset = f.position as libc::off_t;
    while (offset as u64) < end {
        stream.writable().await?;
        let count = (end - offset as u64) as usize;
        let sent = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call (we hold the
            // stream and the Arc<File>); the kernel updates `offset`.
            let n = unsafe { libc::sendfile(stream.as_raw_fd(), f.file.as_raw_fd(), &mut offset, count) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            // The file got shorter (truncation) than the response promised: the frame can no
            // longer be completed, so the connection must close; the client will refetch.
            Ok(0) => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "segment shorter than the fetch response")),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use std::io::Write;
    use std::sync::Arc;

    /// The scattered encoding, with file parts read back, is byte-identical to the crate's own
    /// encoding of the same response with the real bytes, for every supported Fetch version.
    #[test]
    fn scattered_encoding_matches_plain_encoding() {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        tmp.write_all(&data).unwrap();
        let file = Arc::new(tmp.reopen().unwrap());
        let slice = |pos: u64, len: usize| FileSlice { file: file.clone(), path: tmp.path().into(), position: pos, len };
        // Partition 0: two slices (a read spanning segments); partition 1: one; partition 2: none.
        let files = vec![slice(10, 300), slice(1000, 700), slice(5000, 4000)];
        let real = [Bytes::from([&data[10..310], &data[1000..1700]].concat()), Bytes::copy_from_slice(&data[5000..9000])];
        let response = |records: [Option<Bytes>; 2]| {
            let [a, b] = records;
            FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![
                    PartitionData::default().with_partition_index(0).with_records(a),
                    PartitionData::default().with_partition_index(1).with_records(b),
                    PartitionData::default().with_partition_index(2).with_records(None),
                ])])
        };
        for version in 4..=12 {
            let mut plain = BytesMut::new();
            response([Some(real[0].clone()), Some(real[1].clone())]).encode(&mut plain, version).unwrap();
            let mut scatter = ScatterBuf::new(files.clone());
            response([placeholder(1000), placeholder(4000)]).encode(&mut scatter, version).unwrap();
            let (parts, len) = scatter.finish().expect("placeholders matched the files");
            let mut joined = Vec::new();
            for p in parts {
                match p {
                    Part::Memory(b) => joined.extend_from_slice(&b),
                    Part::File(f) => f.read_into(&mut joined).unwrap(),
                }
            }
            assert_eq!(len, plain.len(), "v{version}");
            assert_eq!(joined, plain.to_vec(), "v{version}");
        }
    }

    #[test]
    fn mismatched_files_are_refused() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let file = Arc::new(tmp.reopen().unwrap());
        let f = FileSlice { file, path: tmp.path().into(), position: 0, len: 10 };
        let mut scatter = ScatterBuf::new(vec![f]);
        scatter.put_slice(&placeholder_bytes()[..11]);
        assert!(scatter.finish().is_none());
    }
}

/// Whether this kernel offers TLS in the kernel (kTLS), with which `sendfile` could serve a TLS
/// connection from the page cache too: asks for the `tls` upper-layer protocol on a loopback TCP
/// connection of its own, as a kTLS setup would first do. `Err` says why not (ENOENT: the kernel
/// has no `tls` module, as on the machines Strom is tested on).
///
/// Only the answer is used today (logged once at startup): TLS listeners encrypt in user space
/// (rustls), the record bytes read into one buffer per response and encrypted from there. A kTLS
/// path would hand rustls's session keys to the kernel after the handshake (TLS_TX/TLS_RX) and
/// then use the `sendfile` path above; it is not built, because no machine here can run it.
pub fn kernel_tls() -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let stream = std::net::TcpStream::connect(listener.local_addr()?)?;
    let _accepted = listener.accept()?;
    const TCP_ULP: libc::c_int = 31;
    let name = b"tls";
    // SAFETY: a valid socket descriptor we own, and a pointer/length pair to a live byte array.
    let rc = unsafe { libc::setsockopt(stream.as_raw_fd(), libc::SOL_TCP, TCP_ULP, name.as_ptr().cast(), name.len() as libc::socklen_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
