//! The standard `process_*` metrics (Prometheus' client libraries' names), read from `/proc` at
//! scrape time: CPU time, memory, open file descriptors and the start time. A metric whose file
//! cannot be read (not Linux) is left out.

use super::scrape::Out;

pub fn render(out: &mut Out) {
    // SAFETY: sysconf only reads configuration values.
    let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
    if let Some(stat) = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| Stat::parse(&s)) {
        if ticks > 0 {
            out.single("process_cpu_seconds_total", "counter", "user and system CPU time spent, in seconds", (stat.utime + stat.stime) as f64 / ticks as f64);
            if let Some(boot) = boot_time() {
                out.single("process_start_time_seconds", "gauge", "start time of the process since the Unix epoch, in seconds", boot as f64 + stat.start_ticks as f64 / ticks as f64);
            }
        }
        out.single("process_virtual_memory_bytes", "gauge", "virtual memory size, in bytes", stat.vsize as f64);
        if page > 0 {
            out.single("process_resident_memory_bytes", "gauge", "resident memory size, in bytes", (stat.rss_pages.max(0) as u64 * page as u64) as f64);
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // The count includes the descriptor read_dir itself holds, as other exporters' do.
        out.single("process_open_fds", "gauge", "open file descriptors", dir.count() as f64);
    }
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 && limit.rlim_cur != libc::RLIM_INFINITY {
        out.single("process_max_fds", "gauge", "the limit of open file descriptors", limit.rlim_cur as f64);
    }
}

/// The fields of `/proc/self/stat` used here (proc(5)).
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: i64,
}

impl Stat {
    /// The command name (field 2) is in parentheses and may hold spaces or parentheses itself:
    /// the fields are counted from the last `)`.
    fn parse(s: &str) -> Option<Stat> {
        let rest = &s[s.rfind(')')? + 1..];
        // Field 3 (state) is the first after the name.
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| f.get(n - 3).copied();
        Some(Stat {
            utime: field(14)?.parse().ok()?,
            stime: field(15)?.parse().ok()?,
            start_ticks: field(22)?.parse().ok()?,
            vsize: field(23)?.parse().ok()?,
            rss_pages: field(24)?.parse().ok()?,
        })
    }
}

/// Boot time from `/proc/stat` (`btime`), in seconds since the epoch.
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 12345 1000000 300 18446744073709551615";
        assert_eq!(Stat::parse(line), Some(Stat { utime: 250, stime: 50, start_ticks: 12345, vsize: 1000000, rss_pages: 300 }));
        assert_eq!(Stat::parse("garbage"), None);
        assert_eq!(Stat::parse("1 (x) S 1"), None);
    }

    #[test]
    fn this_process_reports_its_metrics() {
        let mut text = String::new();
        render(&mut Out::new(&mut text));
        for name in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"] {
            assert!(text.contains(&format!("\n{name} ")), "{name} missing from:\n{text}");
        }
    }
}
