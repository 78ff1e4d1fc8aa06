//! Timestamps: parsing file and command-line texts, formatting for people and machines, and
//! [`Timeframe`], the bar length to resample to.
//!
//! All times are `i64` nanoseconds since 1970-01-01T00:00:00Z, which covers 1677-09-21 to
//! 2262-04-11. Parsing is hand-written (no chrono) because it runs once per row of every file.

use std::fmt;
use std::str::FromStr;

use super::error::DataError;

/// Nanoseconds in a second.
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
/// Nanoseconds in a minute.
pub const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SECOND;
/// Nanoseconds in an hour.
pub const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;
/// Nanoseconds in a day.
pub const NANOS_PER_DAY: i64 = 24 * NANOS_PER_HOUR;
/// Nanoseconds in a week.
pub const NANOS_PER_WEEK: i64 = 7 * NANOS_PER_DAY;

/// What the timestamp formats are, for error messages.
const EXPECTED: &str =
    "expected a date (2004-08-19), a date-time (2004-08-19 09:30, 2004-08-19T09:30:00.5Z, \
                        2004-08-19 09:30:00+02:00) or integer epoch seconds, ms, us or ns";

/// The unit of an integer epoch timestamp, decided from the largest magnitude in a column.
///
/// Thresholds (absolute values): below 1e11 seconds (up to year 5138), below 1e14 milliseconds,
/// below 1e17 microseconds, otherwise nanoseconds. Real data after 1973-03-03 is classified
/// correctly whatever its unit, since 1e11 ms, 1e14 us and 1e17 ns all fall on that day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    /// Seconds since the epoch.
    Seconds,
    /// Milliseconds since the epoch.
    Millis,
    /// Microseconds since the epoch.
    Micros,
    /// Nanoseconds since the epoch.
    Nanos,
}

impl EpochUnit {
    /// The unit for a column whose largest absolute value is `max_abs`.
    pub fn from_magnitude(max_abs: u64) -> EpochUnit {
        match max_abs {
            0..100_000_000_000 => EpochUnit::Seconds,
            100_000_000_000..100_000_000_000_000 => EpochUnit::Millis,
            100_000_000_000_000..100_000_000_000_000_000 => EpochUnit::Micros,
            _ => EpochUnit::Nanos,
        }
    }

    /// Nanoseconds in one unit.
    pub fn nanos(self) -> i64 {
        match self {
            EpochUnit::Seconds => NANOS_PER_SECOND,
            EpochUnit::Millis => 1_000_000,
            EpochUnit::Micros => 1_000,
            EpochUnit::Nanos => 1,
        }
    }

    /// `value` in this unit as nanoseconds, or `None` if that is outside 1677..2262.
    pub fn to_nanos(self, value: i64) -> Option<i64> {
        value.checked_mul(self.nanos())
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "seconds",
            EpochUnit::Millis => "milliseconds",
            EpochUnit::Micros => "microseconds",
            EpochUnit::Nanos => "nanoseconds",
        }
    }
}

/// One parsed timestamp text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stamp {
    /// A date or date-time, in ns (UTC); `date_only` when no time of day was given.
    Calendar { nanos: i64, date_only: bool },
    /// An integer whose unit depends on the whole column.
    Epoch(i64),
}

/// Parses a date, a date-time (space or `T`, optional seconds and fraction, optional `Z` or
/// offset, converted to UTC) or an integer epoch. Returns the reason on failure.
pub(crate) fn parse_stamp(text: &str) -> Result<Stamp, String> {
    let s = text.trim().as_bytes();
    if s.is_empty() {
        return Err("empty timestamp".to_owned());
    }
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        // All digits: an epoch integer (too many digits cannot be a timestamp at all).
        return text
            .trim()
            .parse::<i64>()
            .map(Stamp::Epoch)
            .map_err(|_| "integer is too large for a timestamp".to_owned());
    }
    parse_calendar(s).map(|(nanos, date_only)| Stamp::Calendar { nanos, date_only })
}

/// A cursor over the bytes of a timestamp.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Reads `min..=max` ASCII digits as a number.
    fn number(&mut self, min: usize, max: usize, what: &str) -> Result<i64, String> {
        let start = self.i;
        let mut value = 0i64;
        while self.i - start < max {
            match self.peek() {
                Some(b @ b'0'..=b'9') => {
                    value = value * 10 + i64::from(b - b'0');
                    self.i += 1;
                }
                _ => break,
            }
        }
        if self.i - start < min {
            return Err(format!("expected {what} at character {}", start + 1));
        }
        Ok(value)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }
}

fn parse_calendar(s: &[u8]) -> Result<(i64, bool), String> {
    let mut c = Cursor { s, i: 0 };
    let year = c
        .number(4, 4, "a 4-digit year")
        .map_err(|_| EXPECTED.to_owned())?;
    let sep = match c.peek() {
        Some(b @ (b'-' | b'/')) => b,
        _ => return Err(EXPECTED.to_owned()),
    };
    c.i += 1;
    let month = c.number(1, 2, "a month")?;
    if !c.eat(sep) {
        return Err(EXPECTED.to_owned());
    }
    let day = c.number(1, 2, "a day")?;
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(format!(
            "day {day} is out of range for {year:04}-{month:02}"
        ));
    }
    let days = days_from_civil(year, month, day);
    let date_nanos = i128::from(days) * i128::from(NANOS_PER_DAY);
    if c.i == s.len() {
        return to_i64(date_nanos).map(|n| (n, true));
    }

    // Time of day, after `T` or spaces.
    if !(c.eat(b'T') || c.eat(b't')) {
        let before = c.i;
        c.skip_spaces();
        if c.i == before {
            return Err(format!(
                "unexpected \"{}\" after the date; {EXPECTED}",
                rest(&c)
            ));
        }
    }
    let hour = c.number(1, 2, "an hour")?;
    if !c.eat(b':') {
        return Err(format!(
            "expected \":\" and minutes after the hour; {EXPECTED}"
        ));
    }
    let minute = c.number(2, 2, "2-digit minutes")?;
    let mut second = 0;
    let mut fraction = 0i64;
    if c.eat(b':') {
        second = c.number(2, 2, "2-digit seconds")?;
        if c.eat(b'.') || c.eat(b',') {
            let start = c.i;
            let mut scale = 100_000_000i64;
            while let Some(b @ b'0'..=b'9') = c.peek() {
                // Digits beyond nanoseconds are dropped.
                fraction += i64::from(b - b'0') * scale;
                scale /= 10;
                c.i += 1;
            }
            if c.i == start {
                return Err("expected digits after the decimal point of the seconds".to_owned());
            }
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "time of day {hour:02}:{minute:02}:{second:02} is out of range"
        ));
    }

    // Optional zone: Z, UTC, or an offset from UTC (+02:00, +0200, +02, -05:00).
    c.skip_spaces();
    let mut offset_seconds = 0i64;
    let zulu = c.eat(b'Z') || c.eat(b'z');
    if !zulu && (s[c.i..].eq_ignore_ascii_case(b"UTC") || s[c.i..].eq_ignore_ascii_case(b"GMT")) {
        c.i = s.len();
    } else if let (false, Some(sign @ (b'+' | b'-'))) = (zulu, c.peek()) {
        c.i += 1;
        let hours = c.number(2, 2, "a 2-digit offset hour")?;
        c.eat(b':');
        let minutes = if c.i < s.len() {
            c.number(2, 2, "2-digit offset minutes")?
        } else {
            0
        };
        if hours > 23 || minutes > 59 {
            return Err(format!(
                "offset {}{hours:02}:{minutes:02} is out of range",
                sign as char
            ));
        }
        offset_seconds = (hours * 3600 + minutes * 60) * if sign == b'-' { -1 } else { 1 };
    }
    if c.i != s.len() {
        return Err(format!(
            "unexpected \"{}\" after the time; {EXPECTED}",
            rest(&c)
        ));
    }
    let seconds = hour * 3600 + minute * 60 + second - offset_seconds;
    to_i64(date_nanos + i128::from(seconds) * i128::from(NANOS_PER_SECOND) + i128::from(fraction))
        .map(|n| (n, false))
}

fn rest(c: &Cursor<'_>) -> String {
    String::from_utf8_lossy(&c.s[c.i..]).into_owned()
}

fn to_i64(nanos: i128) -> Result<i64, String> {
    i64::try_from(nanos)
        .map_err(|_| "out of range (supported: 1677-09-21 to 2262-04-11)".to_owned())
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Parses a `--start`/`--end` bound: a date, a date-time or an integer epoch.
///
/// With `end_of_day`, a bare date means its last nanosecond, so `--end 2012-12-31` includes that
/// whole day.
pub fn parse_time_bound(text: &str, end_of_day: bool) -> Result<i64, DataError> {
    let invalid = |reason: String| DataError::InvalidTime {
        text: text.to_owned(),
        reason,
    };
    match parse_stamp(text).map_err(invalid)? {
        Stamp::Calendar {
            nanos,
            date_only: true,
        } if end_of_day => nanos.checked_add(NANOS_PER_DAY - 1).ok_or_else(|| {
            invalid("out of range (supported: 1677-09-21 to 2262-04-11)".to_owned())
        }),
        Stamp::Calendar { nanos, .. } => Ok(nanos),
        Stamp::Epoch(value) => {
            let unit = EpochUnit::from_magnitude(value.unsigned_abs());
            unit.to_nanos(value)
                .ok_or_else(|| invalid(format!("out of range as epoch {}", unit.name())))
        }
    }
}

/// Splits ns since the epoch into days and (hour, minute, second, nanosecond) of that day.
fn split(nanos: i64) -> (i64, i64, i64, i64, i64) {
    let days = nanos.div_euclid(NANOS_PER_DAY);
    let rem = nanos.rem_euclid(NANOS_PER_DAY);
    let secs = rem / NANOS_PER_SECOND;
    (
        days,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        rem % NANOS_PER_SECOND,
    )
}

/// Writes a fraction of a second as `.fff`, `.ffffff` or `.fffffffff`, whichever is exact.
fn write_fraction(f: &mut fmt::Formatter<'_>, nanos: i64) -> fmt::Result {
    if nanos == 0 {
        Ok(())
    } else if nanos % 1_000_000 == 0 {
        write!(f, ".{:03}", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        write!(f, ".{:06}", nanos / 1_000)
    } else {
        write!(f, ".{nanos:09}")
    }
}

/// A time displayed as RFC 3339 UTC (`2004-08-19T00:00:00Z`), without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339(pub i64);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (days, hour, minute, second, fraction) = split(self.0);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
        )?;
        write_fraction(f, fraction)?;
        f.write_str("Z")
    }
}

impl serde::Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A time displayed for people: `2004-08-19` at midnight, else `2017-04-19 09:00` (with seconds
/// and fraction only when present).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortTime(pub i64);

impl fmt::Display for ShortTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (days, hour, minute, second, fraction) = split(self.0);
        let (year, month, day) = civil_from_days(days);
        write!(f, "{year:04}-{month:02}-{day:02}")?;
        if (hour, minute, second, fraction) == (0, 0, 0, 0) {
            return Ok(());
        }
        write!(f, " {hour:02}:{minute:02}")?;
        if second != 0 || fraction != 0 {
            write!(f, ":{second:02}")?;
            write_fraction(f, fraction)?;
        }
        Ok(())
    }
}

/// RFC 3339 UTC for machines, always in full: `2004-08-19T00:00:00Z` (fraction when non-zero).
pub fn format_time(nanos: i64) -> String {
    Rfc3339(nanos).to_string()
}

/// A compact time for human tables: `2004-08-19` at midnight, else `2017-04-19 09:00`.
pub fn format_time_short(nanos: i64) -> String {
    ShortTime(nanos).to_string()
}

/// A duration in timeframe notation where whole (`1h`, `1d`, `2w`), else in s, ms, us or ns.
pub fn format_duration(nanos: i64) -> String {
    const UNITS: [(i64, &str); 7] = [
        (NANOS_PER_WEEK, "w"),
        (NANOS_PER_DAY, "d"),
        (NANOS_PER_HOUR, "h"),
        (NANOS_PER_MINUTE, "m"),
        (NANOS_PER_SECOND, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
    ];
    match UNITS
        .iter()
        .find(|(size, _)| nanos != 0 && nanos % size == 0)
    {
        Some((size, name)) => format!("{}{name}", nanos / size),
        None => format!("{nanos}ns"),
    }
}

/// Serializes a time as an RFC 3339 string (for `#[serde(serialize_with)]`).
pub fn serialize_time<S: serde::Serializer>(nanos: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&Rfc3339(*nanos))
}

/// Serializes times as an array of RFC 3339 strings (for `#[serde(serialize_with)]`).
pub fn serialize_times<S: serde::Serializer>(
    times: &[i64],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(times.iter().map(|&t| Rfc3339(t)))
}

/// A bar length to resample to: a whole number of minutes, hours, days or weeks.
///
/// Parsed from `<count><unit>` with unit `m`, `h`, `d` or `w` (`5m`, `4h`, `1d`, `1w`); displayed
/// in the largest unit that divides it, so `60m` displays as `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timeframe {
    nanos: i64,
}

impl Timeframe {
    /// Length of one bar in nanoseconds.
    pub fn nanos(&self) -> i64 {
        self.nanos
    }

    /// True when buckets are whole weeks, which start on Mondays.
    pub fn is_weeks(&self) -> bool {
        self.nanos % NANOS_PER_WEEK == 0
    }
}

impl FromStr for Timeframe {
    type Err = DataError;

    fn from_str(text: &str) -> Result<Timeframe, DataError> {
        let invalid = |reason: &str| DataError::InvalidTimeframe {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let s = text.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (count, unit) = s.split_at(split);
        let usage = "expected <count><unit> with unit m (minutes), h (hours), d (days) or w (weeks), e.g. 5m, 4h, 1d";
        if count.is_empty() {
            return Err(invalid(usage));
        }
        let unit_nanos =
            match unit {
                "m" | "min" => NANOS_PER_MINUTE,
                "h" | "H" => NANOS_PER_HOUR,
                "d" | "D" => NANOS_PER_DAY,
                "w" | "W" => NANOS_PER_WEEK,
                "M" | "mo" => return Err(invalid(
                    "months are not supported; m means minutes (5m), use d or w for longer bars",
                )),
                _ => return Err(invalid(usage)),
            };
        let count: i64 = count
            .parse()
            .map_err(|_| invalid("the count is too large"))?;
        if count == 0 {
            return Err(invalid("the count must be at least 1"));
        }
        let nanos = count
            .checked_mul(unit_nanos)
            .ok_or_else(|| invalid("the timeframe is too long"))?;
        Ok(Timeframe { nanos })
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calendar(text: &str) -> i64 {
        match parse_stamp(text).unwrap() {
            Stamp::Calendar { nanos, .. } => nanos,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn dates_and_datetimes_parse_to_utc_nanos() {
        assert_eq!(calendar("1970-01-01"), 0);
        assert_eq!(calendar("2004-08-19"), 1_092_873_600 * NANOS_PER_SECOND);
        assert_eq!(
            calendar("2017-04-19 09:00:00"),
            1_492_592_400 * NANOS_PER_SECOND
        );
        assert_eq!(
            calendar("2017-04-19T09:00"),
            1_492_592_400 * NANOS_PER_SECOND
        );
        assert_eq!(
            calendar("2017-04-19T09:00:00Z"),
            1_492_592_400 * NANOS_PER_SECOND
        );
        assert_eq!(
            calendar("2017-04-19 11:00:00+02:00"),
            1_492_592_400 * NANOS_PER_SECOND
        );
        assert_eq!(
            calendar("2017-04-19T04:00:00-0500"),
            1_492_592_400 * NANOS_PER_SECOND
        );
        assert_eq!(
            calendar("2017-04-19T09:00:00.25Z"),
            1_492_592_400 * NANOS_PER_SECOND + 250_000_000
        );
        assert_eq!(
            calendar("2017-04-19 09:00:00.123456789"),
            1_492_592_400 * NANOS_PER_SECOND + 123_456_789
        );
        assert_eq!(
            calendar(" 2017/04/19 09:00 UTC "),
            1_492_592_400 * NANOS_PER_SECOND
        );
        assert_eq!(calendar("1969-12-31T23:59:59Z"), -NANOS_PER_SECOND);
        assert_eq!(
            parse_stamp("2004-08-19"),
            Ok(Stamp::Calendar {
                nanos: calendar("2004-08-19"),
                date_only: true
            })
        );
    }

    #[test]
    fn bad_timestamps_say_why() {
        assert!(parse_stamp("2004-13-01")
            .unwrap_err()
            .contains("month 13 is out of range"));
        assert!(parse_stamp("2005-02-29")
            .unwrap_err()
            .contains("day 29 is out of range for 2005-02"));
        assert!(parse_stamp("2004-08-19 25:00")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_stamp("yesterday")
            .unwrap_err()
            .contains("expected a date"));
        assert!(parse_stamp("2004-08-19 09:00 CET")
            .unwrap_err()
            .contains("unexpected \"CET\""));
        assert!(parse_stamp("2300-01-01")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_stamp("").unwrap_err().contains("empty"));
    }

    #[test]
    fn epoch_unit_thresholds() {
        assert_eq!(EpochUnit::from_magnitude(1_092_873_600), EpochUnit::Seconds);
        assert_eq!(
            EpochUnit::from_magnitude(1_092_873_600_000),
            EpochUnit::Millis
        );
        assert_eq!(
            EpochUnit::from_magnitude(1_092_873_600_000_000),
            EpochUnit::Micros
        );
        assert_eq!(
            EpochUnit::from_magnitude(1_092_873_600_000_000_000),
            EpochUnit::Nanos
        );
        assert_eq!(
            EpochUnit::from_magnitude(99_999_999_999),
            EpochUnit::Seconds
        );
        assert_eq!(
            EpochUnit::from_magnitude(100_000_000_000),
            EpochUnit::Millis
        );
        assert_eq!(parse_stamp("1092873600"), Ok(Stamp::Epoch(1_092_873_600)));
    }

    #[test]
    fn time_bounds_cover_whole_days_at_the_end() {
        let day = calendar("2012-12-31");
        assert_eq!(parse_time_bound("2012-12-31", false).unwrap(), day);
        assert_eq!(
            parse_time_bound("2012-12-31", true).unwrap(),
            day + NANOS_PER_DAY - 1
        );
        assert_eq!(
            parse_time_bound("2012-12-31 12:00", true).unwrap(),
            day + 12 * NANOS_PER_HOUR
        );
        assert_eq!(parse_time_bound("1356912000", true).unwrap(), day);
        let err = parse_time_bound("31/12/2012", false)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid time \"31/12/2012\": "), "{err}");
    }

    #[test]
    fn formats_for_machines_and_people() {
        let t = calendar("2004-08-19");
        assert_eq!(format_time(t), "2004-08-19T00:00:00Z");
        assert_eq!(format_time_short(t), "2004-08-19");
        let t = calendar("2017-04-19 09:00");
        assert_eq!(format_time(t), "2017-04-19T09:00:00Z");
        assert_eq!(format_time_short(t), "2017-04-19 09:00");
        assert_eq!(
            format_time_short(t + 5 * NANOS_PER_SECOND),
            "2017-04-19 09:00:05"
        );
        assert_eq!(format_time(t + 1_500_000), "2017-04-19T09:00:00.001500Z");
        assert_eq!(format_time(t + 250_000_000), "2017-04-19T09:00:00.250Z");
        assert_eq!(format_time(-NANOS_PER_SECOND), "1969-12-31T23:59:59Z");
        assert_eq!(
            serde_json::to_string(&Rfc3339(0)).unwrap(),
            "\"1970-01-01T00:00:00Z\""
        );
        for days in [-200_000, -1, 0, 59, 60, 11_000, 106_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn timeframes_parse_and_display() {
        let tf = |s: &str| s.parse::<Timeframe>().unwrap();
        assert_eq!(tf("5m").nanos(), 5 * NANOS_PER_MINUTE);
        assert_eq!(tf("4h").to_string(), "4h");
        assert_eq!(tf("60m"), tf("1h"));
        assert_eq!(tf("1h").to_string(), "1h");
        assert_eq!(tf("7d").to_string(), "1w");
        assert_eq!(tf("90m").to_string(), "90m");
        assert!(tf("2w").is_weeks() && !tf("1d").is_weeks());
        for bad in ["", "m", "5", "5x", "0m", "1M", "-5m", "99999999999999999w"] {
            let err = bad.parse::<Timeframe>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid timeframe \"{bad}\"")),
                "{err}"
            );
        }
        assert!("1M"
            .parse::<Timeframe>()
            .unwrap_err()
            .to_string()
            .contains("months are not supported"));
    }

    #[test]
    fn durations_use_timeframe_units() {
        assert_eq!(format_duration(NANOS_PER_DAY), "1d");
        assert_eq!(format_duration(31 * NANOS_PER_DAY), "31d");
        assert_eq!(format_duration(90 * NANOS_PER_MINUTE), "90m");
        assert_eq!(format_duration(1_500_000_000), "1500ms");
        assert_eq!(format_duration(7), "7ns");
    }
}
