//! The one system call std does not offer safely: a positional write of several buffers
//! (`pwritev(2)`). An append hands the kernel each batch's patched header and the request's own
//! record bytes side by side, so no record is copied in user space on its way to the page cache.

use std::fs::File;
use std::io::{Error, ErrorKind, IoSlice, Result};
use std::os::fd::AsRawFd;

/// Linux's IOV_MAX: at most this many buffers per call.
const IOV_MAX: usize = 1024;

pub(crate) trait WriteVectoredAt {
    /// Writes every byte of `bufs`, in order, starting at `offset`, whatever the file position
    /// (readers share the file and read at their own offsets).
    fn write_all_vectored_at(&self, bufs: &mut [IoSlice<'_>], offset: u64) -> Result<()>;
}

impl WriteVectoredAt for File {
    fn write_all_vectored_at(&self, mut bufs: &mut [IoSlice<'_>], mut offset: u64) -> Result<()> {
        IoSlice::advance_slices(&mut bufs, 0); // drops leading empty buffers
        while !bufs.is_empty() {
            let count = bufs.len().min(IOV_MAX);
            let at = libc::off_t::try_from(offset).map_err(|_| Error::from(ErrorKind::InvalidInput))?;
            // SAFETY: on Unix, std guarantees `IoSlice` is ABI-compatible with `struct iovec`; the
            // `count` slices are borrowed for the call, and the descriptor is open while `self` is.
            let written = unsafe { libc::pwritev(self.as_raw_fd(), bufs.as_ptr().cast::<libc::iovec>(), count as libc::c_int, at) };
            if written < 0 {
                let e = Error::last_os_error();
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if written == 0 {
                return Err(Error::from(ErrorKind::WriteZero));
            }
            offset += written as u64;
            IoSlice::advance_slices(&mut bufs, written as usize);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn writes_every_buffer_in_order_at_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(dir.path().join("f")).unwrap();
        file.write_all_at(b"0123", 0).unwrap();
        // More buffers than one call takes, empty ones among them.
        let parts: Vec<Vec<u8>> = (0..2500u32).map(|i| if i % 7 == 0 { Vec::new() } else { i.to_be_bytes().to_vec() }).collect();
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        file.write_all_vectored_at(&mut slices, 2).unwrap();
        let expected: Vec<u8> = b"01".iter().copied().chain(parts.concat()).collect();
        let mut read = vec![0u8; expected.len()];
        file.read_exact_at(&mut read, 0).unwrap();
        assert_eq!(read, expected);
        assert_eq!(file.metadata().unwrap().len(), expected.len() as u64);
        file.write_all_vectored_at(&mut [], 0).unwrap();
    }
}
