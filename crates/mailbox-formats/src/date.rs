//! asctime-style dates of mbox `From ` separator lines: tolerant parsing and formatting.

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Formats unix seconds as a UTC asctime date: `Sat Nov 21 12:00:00 2026`
/// (day of month space-padded to two columns, as C `asctime` does).
pub(crate) fn format_asctime(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = (days + 4).rem_euclid(7) as usize;
    let wd = &WEEKDAYS[weekday][..3];
    let mon = &MONTHS[month as usize - 1][..3];
    format!(
        "{}{} {}{} {day:>2} {:02}:{:02}:{:02} {year}",
        wd[..1].to_ascii_uppercase(),
        &wd[1..],
        mon[..1].to_ascii_uppercase(),
        &mon[1..],
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
    )
}

fn month_of(token: &str) -> Option<u32> {
    if token.len() < 3 || !token.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let lower = token.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|m| m.starts_with(&lower))
        .map(|i| i as u32 + 1)
}

/// True if `token` is an (abbreviated) English weekday name.
pub(crate) fn is_weekday(token: &str) -> bool {
    if token.len() < 3 || !token.bytes().all(|b| b.is_ascii_alphabetic()) {
        return false;
    }
    let lower = token.to_ascii_lowercase();
    WEEKDAYS.iter().any(|w| w.starts_with(&lower))
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses the date part of a `From ` line into unix seconds.
///
/// Tolerant of the variants seen in the wild: plain asctime
/// (`Sat Nov 21 12:00:00 2026`), a timezone name or numeric offset before or
/// after the year (`... 12:00:00 EST 2026`, `... 2026 +0100`), year-first
/// orders, missing seconds, RFC 2822-ish commas and ISO `2026-11-21` dates.
/// Named timezones are treated as UTC; numeric offsets are applied.
pub(crate) fn parse_separator_date(tokens: &[&str]) -> Option<i64> {
    let mut month = None;
    let mut day: Option<u32> = None;
    let mut year: Option<i64> = None;
    let mut time: Option<(i64, i64, i64)> = None;
    let mut offset: Option<i64> = None;

    for raw in tokens {
        let tok = raw.trim_matches(',');
        if tok.is_empty() {
            continue;
        }
        if let Some(m) = month_of(tok) {
            month.get_or_insert(m);
        } else if tok.contains(':') && time.is_none() {
            let parts: Vec<&str> = tok.split(':').collect();
            if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| all_digits(p)) {
                return None;
            }
            let h: i64 = parts[0].parse().ok()?;
            let m: i64 = parts[1].parse().ok()?;
            let s: i64 = parts.get(2).map_or(Some(0), |p| p.parse().ok())?;
            if h > 23 || m > 59 || s > 60 {
                return None;
            }
            time = Some((h, m, s));
        } else if (tok.starts_with('+') || tok.starts_with('-'))
            && tok.len() == 5
            && all_digits(&tok[1..])
        {
            let v: i64 = tok[1..].parse().ok()?;
            let secs = (v / 100) * 3600 + (v % 100) * 60;
            offset.get_or_insert(if tok.starts_with('-') { -secs } else { secs });
        } else if all_digits(tok) {
            match tok.len() {
                1 | 2 if day.is_none() => day = Some(tok.parse().ok()?),
                2 if year.is_none() => {
                    let y: i64 = tok.parse().ok()?;
                    year = Some(if y < 70 { 2000 + y } else { 1900 + y });
                }
                4 if year.is_none() => year = Some(tok.parse().ok()?),
                _ => {}
            }
        } else if let Some((y, m, d)) = iso_date(tok) {
            year.get_or_insert(y);
            month.get_or_insert(m);
            day.get_or_insert(d);
        }
        // Anything else (weekday, timezone name, "remote from ...") is ignored.
    }

    let (month, day, year, (h, m, s)) = (month?, day?, year?, time?);
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + h * 3600 + m * 60 + s - offset.unwrap_or(0))
}

fn iso_date(tok: &str) -> Option<(i64, u32, u32)> {
    let mut it = tok.split('-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || y.len() != 4 || !all_digits(y) || !all_digits(m) || !all_digits(d) {
        return None;
    }
    let m: u32 = m.parse().ok()?;
    if !(1..=12).contains(&m) {
        return None;
    }
    Some((y.parse().ok()?, m, d.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<i64> {
        parse_separator_date(&s.split_whitespace().collect::<Vec<_>>())
    }

    // 2026-11-21T12:00:00Z
    const T: i64 = 1_795_262_400;

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for d in [-800_000, -1, 0, 1, 11_016, 20_000, 2_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn formats_asctime() {
        assert_eq!(format_asctime(T), "Sat Nov 21 12:00:00 2026");
        assert_eq!(format_asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(format_asctime(-1), "Wed Dec 31 23:59:59 1969");
    }

    #[test]
    fn parses_variants() {
        assert_eq!(p("Sat Nov 21 12:00:00 2026"), Some(T));
        assert_eq!(p("Sat Nov 21 12:00:00 2026 +0100"), Some(T - 3600));
        assert_eq!(p("Sat Nov 21 12:00:00 EST 2026"), Some(T));
        assert_eq!(p("Sat Nov 21 12:00 2026"), Some(T));
        assert_eq!(p("2026 Nov 21 12:00:00"), Some(T));
        assert_eq!(p("Sat, 21 Nov 2026 12:00:00 -0030"), Some(T + 1800));
        assert_eq!(p("2026-11-21 12:00:00"), Some(T));
        assert_eq!(p("Thu Jan  1 00:00:00 1970"), Some(0));
        assert_eq!(p("Sat Nov 31 12:00:00 2026"), None);
        assert_eq!(p("garbage"), None);
        assert_eq!(p(""), None);
        assert_eq!(p("Sat Nov 21 25:00:00 2026"), None);
    }
}
