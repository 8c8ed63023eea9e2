//! Time rules (design.md "Time"): UTC, whole seconds, `add_months` without drift.

use ::time::{
    Date, Month, OffsetDateTime, PrimitiveDateTime, UtcOffset,
    format_description::well_known::Rfc3339,
};

/// An instant in UTC at whole-second precision, stored as Unix seconds.
pub type Timestamp = i64;

/// `now` truncated to whole seconds.
pub fn now() -> Timestamp {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn to_odt(ts: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(ts).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Formats as RTR does: `2022-03-18T13:37:20Z`.
pub fn format_rtr(ts: Timestamp) -> String {
    let t = to_odt(ts);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses RFC 3339 (fractional seconds and offsets accepted) and also a bare
/// date `YYYY-MM-DD` (midnight UTC), as list filters use both.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let fmt = ::time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &fmt).ok().map(|d| {
        PrimitiveDateTime::new(d, ::time::Time::MIDNIGHT)
            .assume_offset(UtcOffset::UTC)
            .unix_timestamp()
    })
}

fn days_in_month(year: i32, month: Month) -> u8 {
    month.length(year)
}

/// Adds calendar months keeping the time of day and the day of month, clamped to
/// the target month's last day. `expiryDate = add_months(createdDate, total)` is
/// always computed from the creation date, so Jan 31 → Feb 28 → Mar 31 never drifts.
pub fn add_months(ts: Timestamp, months: i64) -> Timestamp {
    let t = to_odt(ts);
    let total = i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1 + months;
    let year = total.div_euclid(12) as i32;
    let month = Month::try_from((total.rem_euclid(12) + 1) as u8).unwrap_or(Month::January);
    let day = t.day().min(days_in_month(year, month));
    let date = Date::from_calendar_date(year, month, day).unwrap_or(t.date());
    PrimitiveDateTime::new(date, t.time())
        .assume_offset(UtcOffset::UTC)
        .unix_timestamp()
}

pub const DAY: i64 = 86_400;

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn formats_like_rtr() {
        assert_eq!(
            format_rtr(ts("2022-03-18T13:37:20Z")),
            "2022-03-18T13:37:20Z"
        );
        assert_eq!(ts("2022-03-18T13:37:20.000Z"), ts("2022-03-18T13:37:20Z"));
        assert_eq!(ts("2022-03-18T15:37:20+02:00"), ts("2022-03-18T13:37:20Z"));
        assert_eq!(ts("2022-03-18"), ts("2022-03-18T00:00:00Z"));
    }

    #[test]
    fn add_months_clamps_without_drift() {
        let jan31 = ts("2027-01-31T10:00:00Z");
        assert_eq!(format_rtr(add_months(jan31, 1)), "2027-02-28T10:00:00Z");
        assert_eq!(format_rtr(add_months(jan31, 2)), "2027-03-31T10:00:00Z");
        assert_eq!(
            format_rtr(add_months(ts("2028-01-31T00:00:00Z"), 1)),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(
            format_rtr(add_months(ts("2026-12-03T00:00:00Z"), 12)),
            "2027-12-03T00:00:00Z"
        );
        assert_eq!(
            format_rtr(add_months(ts("2026-12-03T00:00:00Z"), 25)),
            "2029-01-03T00:00:00Z"
        );
    }
}
