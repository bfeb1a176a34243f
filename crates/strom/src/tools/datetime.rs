//! The dates of the group tools' `--to-datetime`, in Kafka's format.

/// Kafka's --to-datetime format: `yyyy-MM-ddTHH:mm:SS.sss`, optionally with `Z` or `±hh:mm`
/// (no zone means UTC here; Kafka takes the local zone, which on servers is usually UTC).
pub fn parse(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow::anyhow!("--to-datetime must look like 2024-01-31T23:59:59.000 (optionally Z or +hh:mm), not {s}");
    let (main, offset_min) = if let Some(m) = s.strip_suffix('Z') {
        (m, 0)
    } else if s.len() > 6 && s.is_char_boundary(s.len() - 6) && (s.as_bytes()[s.len() - 6] == b'+' || s.as_bytes()[s.len() - 6] == b'-') {
        let (m, z) = s.split_at(s.len() - 6);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let h: i64 = z.get(1..3).ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let mi: i64 = z.get(4..6).ok_or_else(bad)?.parse().map_err(|_| bad())?;
        (m, sign * (h * 60 + mi))
    } else {
        (s, 0)
    };
    let (date, time) = main.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date.split('-').map(|x| x.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let (hms, millis) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let [y, mo, da] = d[..] else { return Err(bad()) };
    let [h, mi, se] = t[..] else { return Err(bad()) };
    if millis.is_empty() || millis.len() > 3 || !millis.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let ms: i64 = format!("{millis:0<3}").parse().map_err(|_| bad())?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 86_400 + h * 3600 + mi * 60 + se) - offset_min * 60) * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_as_kafka_writes_them() {
        assert_eq!(parse("1970-01-01T00:00:00.000").unwrap(), 0);
        assert_eq!(parse("2024-02-29T12:34:56.789Z").unwrap(), 1_709_210_096_789);
        assert_eq!(parse("2024-02-29T14:34:56.789+02:00").unwrap(), 1_709_210_096_789);
        assert!(parse("yesterday").is_err());
        // Never a panic on odd input: multi-byte characters where the zone or millis would be.
        assert!(parse("2024-02-29T14:34:56.789+0é:00").is_err());
        assert!(parse("2024-02-29T14:34:56.é").is_err());
        assert!(parse("2024-02-29T14:34:56.éééé").is_err());
    }
}
