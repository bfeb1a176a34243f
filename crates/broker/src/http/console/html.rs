//! HTML for the console, written as text with one rule: everything that is not a literal of
//! this crate goes through `esc` (topic names are tame, but group ids, client ids, hosts, record
//! keys, values and headers are anything a client chose). `Page` is the layout every page shares.

use std::fmt::Write;

/// `s` with the five characters that matter in HTML text and attribute values replaced.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` for a URL's query value (RFC 3986 unreserved characters kept, the rest %-encoded).
pub fn url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A page: the shared header and navigation, then what the view writes into `body`.
pub struct Page {
    title: String,
    nav: &'static str,
    pub body: String,
}

const NAV: [(&str, &str); 4] = [("/", "Overview"), ("/brokers", "Brokers"), ("/topics", "Topics"), ("/groups", "Consumer groups")];

impl Page {
    /// `nav` is the path of the navigation entry to highlight.
    pub fn new(title: &str, nav: &'static str) -> Page {
        Page { title: title.to_string(), nav, body: String::new() }
    }

    pub fn h1(&mut self, text: &str) {
        let _ = write!(self.body, "<h1>{}</h1>", esc(text));
    }

    /// A notice above the content: an action's outcome or why something is missing.
    pub fn notice(&mut self, ok: bool, text: &str) {
        let _ = write!(self.body, "<p class=\"notice {}\" role=\"status\">{}</p>", if ok { "ok" } else { "error" }, esc(text));
    }

    /// A table with `head` columns; each row's cells are HTML already (escape them with `esc`).
    pub fn table(&mut self, id: &str, head: &[&str], rows: &[Vec<String>]) {
        let _ = write!(self.body, "<table id=\"{}\"><thead><tr>", esc(id));
        for h in head {
            let _ = write!(self.body, "<th>{}</th>", esc(h));
        }
        self.body.push_str("</tr></thead><tbody>");
        if rows.is_empty() {
            let _ = write!(self.body, "<tr><td colspan=\"{}\" class=\"empty\">none</td></tr>", head.len());
        }
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                let _ = write!(self.body, "<td>{cell}</td>");
            }
            self.body.push_str("</tr>");
        }
        self.body.push_str("</tbody></table>");
    }

    /// A chart that `console.js` draws and refreshes from `/api/series?<query>`.
    pub fn chart(&mut self, id: &str, title: &str, query: &str) {
        let _ = write!(
            self.body,
            "<figure class=\"chart\" id=\"{}\" data-series=\"{}\"><figcaption>{}</figcaption><svg viewBox=\"0 0 600 160\" role=\"img\"></svg></figure>",
            esc(id),
            esc(query),
            esc(title)
        );
    }

    pub fn finish(self, principal: &str) -> String {
        let mut out = String::with_capacity(self.body.len() + 1024);
        let _ = write!(
            out,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
             <title>{} · Strom</title><link rel=\"stylesheet\" href=\"/assets/console.css\"></head><body><header><a class=\"brand\" href=\"/\">Strom</a><nav>",
            esc(&self.title)
        );
        for (path, label) in NAV {
            let class = if path == self.nav { " class=\"here\"" } else { "" };
            let _ = write!(out, "<a href=\"{path}\"{class}>{label}</a>");
        }
        let _ = write!(out, "</nav><span class=\"who\">{}</span></header><main>{}</main><script src=\"/assets/console.js\"></script></body></html>", esc(principal), self.body);
        out
    }
}

/// A link to `path` (a literal of the console) with a query value and escaped text.
pub fn link(path: &str, key: &str, value: &str, text: &str) -> String {
    format!("<a href=\"{path}?{key}={}\">{}</a>", esc(&url(value)), esc(text))
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn seconds(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// Milliseconds since the epoch as UTC `YYYY-MM-DD HH:MM:SS.mmm`.
pub fn timestamp(ms: i64) -> String {
    if ms < 0 {
        return "-".to_string();
    }
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}", rest / 3_600_000, rest / 60_000 % 60, rest / 1000 % 60, rest % 1000)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's well-known algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DDTHH:MM[:SS[.mmm]]` (UTC, as a `datetime-local` input sends it) to epoch ms.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let (date, time) = s.trim().split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let (hms, millis) = match time.split_once('.') {
        Some((hms, ms)) => (hms, format!("{ms:0<3}").get(..3)?.parse::<i64>().ok()?),
        None => (time, 0),
    };
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next().flatten().unwrap_or(0));
    if h > 23 || min > 59 || sec > 60 {
        return None;
    }
    // Days from civil (the inverse of civil_from_days).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + min) * 60_000 + sec * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(esc("<script>alert('x')</script>&\""), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;");
        assert_eq!(url("a b/é?&"), "a%20b%2F%C3%A9%3F%26");
    }

    #[test]
    fn timestamps_round_trip() {
        for ms in [0i64, 951_782_400_000 /* 2000-02-29 */, 1_780_000_000_123, 4_102_444_800_000] {
            let shown = timestamp(ms);
            assert_eq!(parse_timestamp(&shown.replacen(' ', "T", 1)), Some(ms), "{shown}");
        }
        assert_eq!(timestamp(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(parse_timestamp("2026-12-05T14:30"), Some(1_796_481_000_000));
        assert_eq!(parse_timestamp("2026-13-05T14:30"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(12), "12 B");
    }
}
