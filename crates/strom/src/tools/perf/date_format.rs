//! Java's `SimpleDateFormat`, the letters the tools' users put in `--date-format`, in UTC
//! (`strom consumer-perf-test` prints its times with it, as Kafka's tool does).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;

#[derive(Debug, PartialEq)]
enum DatePart {
    Literal(String),
    Field(char, usize),
}

#[derive(Debug)]
pub(super) struct DateFormat(Vec<DatePart>);

const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

impl DateFormat {
    pub(super) fn parse(pattern: &str) -> anyhow::Result<DateFormat> {
        let mut parts = Vec::new();
        let mut chars = pattern.chars().peekable();
        let mut literal = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    literal.push('\'');
                    continue;
                }
                loop {
                    match chars.next() {
                        None => bail!("--date-format {pattern}: unterminated quote"),
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            literal.push('\'');
                        }
                        Some('\'') => break,
                        Some(q) => literal.push(q),
                    }
                }
            } else if c.is_ascii_alphabetic() {
                if !"yMdHhmsSaEZXz".contains(c) {
                    bail!("--date-format {pattern}: the letter {c} is not supported (use y M d H h m s S a E Z X z)");
                }
                let mut count = 1;
                while chars.peek() == Some(&c) {
                    chars.next();
                    count += 1;
                }
                if !literal.is_empty() {
                    parts.push(DatePart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(DatePart::Field(c, count));
            } else {
                literal.push(c);
            }
        }
        if !literal.is_empty() {
            parts.push(DatePart::Literal(literal));
        }
        Ok(DateFormat(parts))
    }

    pub(super) fn format(&self, t: SystemTime) -> String {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs();
        let days = (secs / 86_400) as i64;
        let (year, month, day) = civil_from_days(days);
        let sod = secs % 86_400;
        let (hour, minute, second) = (sod / 3600, sod / 60 % 60, sod % 60);
        let millis = d.subsec_millis();
        let mut s = String::new();
        for part in &self.0 {
            use std::fmt::Write as _;
            let _ = match part {
                DatePart::Literal(l) => write!(s, "{l}"),
                DatePart::Field('y', 2) => write!(s, "{:02}", year.rem_euclid(100)),
                DatePart::Field('y', n) => write!(s, "{year:0n$}"),
                DatePart::Field('M', n) if *n >= 4 => write!(s, "{}", MONTHS[month as usize - 1]),
                DatePart::Field('M', 3) => write!(s, "{}", &MONTHS[month as usize - 1][..3]),
                DatePart::Field('M', n) => write!(s, "{month:0n$}"),
                DatePart::Field('d', n) => write!(s, "{day:0n$}"),
                DatePart::Field('H', n) => write!(s, "{hour:0n$}"),
                DatePart::Field('h', n) => write!(s, "{:0n$}", if hour % 12 == 0 { 12 } else { hour % 12 }),
                DatePart::Field('m', n) => write!(s, "{minute:0n$}"),
                DatePart::Field('s', n) => write!(s, "{second:0n$}"),
                DatePart::Field('S', n) => write!(s, "{millis:0n$}"),
                DatePart::Field('a', _) => write!(s, "{}", if hour < 12 { "AM" } else { "PM" }),
                DatePart::Field('E', n) => {
                    // 1970-01-01 was a Thursday.
                    let name = DAYS[(days + 3).rem_euclid(7) as usize];
                    write!(s, "{}", if *n >= 4 { name } else { &name[..3] })
                }
                DatePart::Field('Z', _) => write!(s, "+0000"),
                DatePart::Field('X', _) => write!(s, "Z"),
                DatePart::Field('z', _) => write!(s, "UTC"),
                DatePart::Field(_, _) => Ok(()),
            };
        }
        s
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn kafka_default_date_format() {
        let f = DateFormat::parse("yyyy-MM-dd HH:mm:ss:SSS").unwrap();
        // 2026-12-01 21:43:16.007 UTC
        let t = UNIX_EPOCH + Duration::from_millis(1_796_161_396_007);
        assert_eq!(f.format(t), "2026-12-01 21:43:16:007");
        assert_eq!(f.format(UNIX_EPOCH), "1970-01-01 00:00:00:000");
        let f = DateFormat::parse("EEE, d MMM yy h:mm a 'at' z ''").unwrap();
        assert_eq!(f.format(t), "Tue, 1 Dec 26 9:43 PM at UTC '");
        assert!(DateFormat::parse("yyyy-QQ").is_err());
        assert!(DateFormat::parse("'open").is_err());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
