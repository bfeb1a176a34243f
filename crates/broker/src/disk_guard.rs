//! The disk never fills: below `log.dir.min.free.bytes` of free space on the data directory's
//! file system, Produce is refused with KAFKA_STORAGE_ERROR (retriable: clients retry, and
//! their records wait in their buffers), while reads, admin requests, replication and retention
//! go on, so that lowering retention frees space. Writes are accepted again by themselves once
//! space returns. The broker's own small writes (group and transaction records, metadata) are
//! not refused: the margin is there for them. If the disk fills anyway, an append fails cleanly
//! (the segment is cut back to its last whole batch, `strom_storage`) and the broker goes on.
//!
//! `check` runs every second from the server's loop; the produce path reads one atomic.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The automatic margin (`log.dir.min.free.bytes=-1`, the default): 5% of the file system, at
/// most 1 GiB.
pub fn automatic_min_free(total: u64) -> u64 {
    (total / 20).min(1 << 30)
}

/// The margin `setting` asks for on a file system of `total` bytes.
pub fn min_free(setting: i64, total: u64) -> u64 {
    if setting < 0 {
        automatic_min_free(total)
    } else {
        setting as u64
    }
}

/// (bytes an unprivileged process may still write, total bytes) of the file system holding `dir`.
pub fn space(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct we own from a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some(((st.f_bavail as u64).saturating_mul(frsize), (st.f_blocks as u64).saturating_mul(frsize)))
}

#[derive(Default)]
pub struct DiskGuard {
    low: AtomicBool,
    /// Free bytes and the margin at the last check, for the refusal's message.
    free: AtomicU64,
    min: AtomicU64,
}

/// What a check found, for the one log line per change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    BecameLow,
    Recovered,
}

impl DiskGuard {
    /// Notes `free` bytes against a margin of `min`; says whether that changed the state.
    pub fn observe(&self, free: u64, min: u64) -> Change {
        self.free.store(free, Ordering::Relaxed);
        self.min.store(min, Ordering::Relaxed);
        let low = free < min;
        match (self.low.swap(low, Ordering::AcqRel), low) {
            (false, true) => Change::BecameLow,
            (true, false) => Change::Recovered,
            _ => Change::None,
        }
    }

    /// Whether writes are refused now.
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Acquire)
    }

    /// The refusal's message when writes are refused.
    pub fn refusal(&self) -> Option<String> {
        self.is_low().then(|| {
            format!(
                "the broker's data directory has {} bytes free, below log.dir.min.free.bytes ({}): writes are refused until space returns",
                self.free.load(Ordering::Relaxed),
                self.min.load(Ordering::Relaxed)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_stop_below_the_margin_and_resume_above_it() {
        let g = DiskGuard::default();
        assert_eq!(g.observe(100, 50), Change::None);
        assert!(g.refusal().is_none());
        assert_eq!(g.observe(49, 50), Change::BecameLow);
        assert_eq!(g.observe(10, 50), Change::None);
        assert!(g.refusal().is_some_and(|m| m.contains("10 bytes free") && m.contains("(50)")));
        assert_eq!(g.observe(50, 50), Change::Recovered);
        assert!(!g.is_low());
    }

    #[test]
    fn the_automatic_margin_is_five_percent_at_most_a_gibibyte() {
        assert_eq!(min_free(-1, 10 << 30), 512 << 20);
        assert_eq!(min_free(-1, 1 << 40), 1 << 30);
        assert_eq!(min_free(0, 1 << 40), 0);
        assert_eq!(min_free(1234, 1 << 40), 1234);
        let dir = tempfile::tempdir().unwrap();
        let (free, total) = space(dir.path()).unwrap();
        assert!(free <= total && total > 0);
        assert!(space(&dir.path().join("missing")).is_none());
    }
}
