//! The reading side of a client connection: Kafka's size-prefixed frames, read into one buffer
//! and split off it. A large frame (a produce request's records) stays in the memory the socket,
//! or rustls, wrote it into: no copy on the way to the decoder, and none after it either, since
//! the log writes the records from the request's buffer. A small frame is copied out instead, so
//! that a request that waits (a long-polling fetch, a parked join) never pins a large buffer.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// What one read asks for at least: frames smaller than this arrive many to a read.
const READ_CHUNK: usize = 64 * 1024;
/// Frames below this size are copied out of the read buffer.
const COPY_BELOW: usize = 4 * 1024;
/// An empty read buffer larger than this is let go (frames split off it keep their part alive),
/// so an idle connection does not keep the size of the largest request it ever sent.
const KEEP_AT_MOST: usize = 4 * READ_CHUNK;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes is outside {min}..={max} (socket.request.max.bytes)")]
    Size { size: i32, min: i32, max: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R) -> FrameReader<R> {
        FrameReader { inner, buf: BytesMut::new() }
    }

    /// The next frame, without its 4-byte size prefix; None when the stream ends before one
    /// starts. A size outside `min..=max` is an error and nothing of the frame is read.
    pub async fn next(&mut self, min: i32, max: usize) -> Result<Option<Bytes>, FrameError> {
        if !self.fill(4).await? {
            return Ok(None);
        }
        let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if size < min || usize::try_from(size).map_or(true, |s| s > max) {
            return Err(FrameError::Size { size, min, max });
        }
        let size = size as usize;
        if !self.fill(4 + size).await? {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        self.buf.advance(4);
        Ok(Some(if size < COPY_BELOW {
            let frame = Bytes::copy_from_slice(&self.buf[..size]);
            self.buf.advance(size);
            frame
        } else {
            self.buf.split_to(size).freeze()
        }))
    }

    /// Reads until the buffer holds `want` bytes; false when the stream ends first.
    async fn fill(&mut self, want: usize) -> std::io::Result<bool> {
        while self.buf.len() < want {
            if self.buf.is_empty() && self.buf.capacity() > KEEP_AT_MOST {
                self.buf = BytesMut::new();
            }
            // Room for the whole frame at once, so that it is never moved while it arrives.
            self.buf.reserve((want - self.buf.len()).max(READ_CHUNK));
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.iter().flat_map(|f| (f.len() as i32).to_be_bytes().into_iter().chain(f.iter().copied())).collect()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    proptest! {
        /// Whatever the frame sizes and however the bytes are cut into reads, the frames come out
        /// whole and in order, then a clean end.
        #[test]
        fn frames_survive_any_read_boundaries(sizes in proptest::collection::vec(prop_oneof![0usize..100, 4000usize..5000, 60_000usize..200_000], 1..8), cut in 1usize..70_000) {
            let frames: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect()).collect();
            let bytes = framed(&frames);
            let got = runtime().block_on(async move {
                let (mut tx, rx) = tokio::io::duplex(cut);
                let writer = tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    for chunk in bytes.chunks(cut) {
                        tx.write_all(chunk).await.unwrap();
                    }
                });
                let mut reader = FrameReader::new(rx);
                let mut got = Vec::new();
                while let Some(f) = reader.next(0, 1 << 20).await.unwrap() {
                    got.push(f.to_vec());
                }
                writer.await.unwrap();
                got
            });
            prop_assert_eq!(got, frames);
        }
    }

    #[test]
    fn bad_sizes_and_torn_frames_are_errors() {
        runtime().block_on(async {
            let mut r = FrameReader::new(&[0u8, 0, 0, 3, 1, 2, 3][..]);
            assert!(matches!(r.next(8, 100).await, Err(FrameError::Size { size: 3, .. })));
            let mut r = FrameReader::new(&[0x7f, 0, 0, 0][..]);
            assert!(matches!(r.next(0, 1000).await, Err(FrameError::Size { .. })));
            let mut r = FrameReader::new(&[0xff, 0xff, 0xff, 0xff][..]);
            assert!(matches!(r.next(0, 1000).await, Err(FrameError::Size { size: -1, .. })));
            let mut r = FrameReader::new(&[0, 0, 0, 10, 1, 2][..]);
            assert!(matches!(r.next(0, 1000).await, Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof));
            // A stream that ends inside the size prefix ends cleanly, as one that ends between frames.
            let mut r = FrameReader::new(&[0, 0][..]);
            assert!(r.next(0, 1000).await.unwrap().is_none());
        });
    }
}
