//! Cron schedules in IANA time zones (pure Rust, unit-tested): when a registered database runs next.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// Parses `manual` (None), a 5-field pattern, a 6-field one with seconds first, or the seed's
/// business-hours form `s m */n a-b dom mon dow` (7 fields: hours `a-b` every `n` hours).
pub fn parse(expr: &str) -> Result<Option<Cron>, String> {
    let expr = expr.trim();
    if expr.eq_ignore_ascii_case("manual") {
        return Ok(None);
    }
    let mut fields: Vec<&str> = expr.split_whitespace().collect();
    let merged;
    if fields.len() == 7 {
        let (step, range) = (fields[2], fields[3]);
        if let (Some(n), true) = (step.strip_prefix("*/"), is_range(range)) {
            merged = format!("{range}/{n}");
            fields.remove(3);
            fields[2] = &merged;
        } else {
            return Err(format!(
                "schedule {expr:?} has 7 fields; use 5 (minute hour day month weekday), 6 (seconds first), \
                 or the business-hours form 's m */n a-b * * dow'"
            ));
        }
    }
    if !(5..=6).contains(&fields.len()) {
        return Err(format!(
            "schedule {expr:?} must be 'manual' or a cron expression of 5 fields (or 6 with seconds first)"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(&fields.join(" "))
        .map(Some)
        .map_err(|e| format!("schedule {expr:?} is not a valid cron expression: {e}"))
}

fn is_range(f: &str) -> bool {
    let mut parts = f.splitn(2, '-');
    matches!((parts.next(), parts.next()), (Some(a), Some(b))
        if a.parse::<u8>().is_ok() && b.parse::<u8>().is_ok())
}

pub fn zone(tz: &str) -> Result<Tz, String> {
    tz.trim().parse::<Tz>().map_err(|_| {
        format!("{tz:?} is not an IANA time zone (for example 'UTC' or 'America/New_York')")
    })
}

/// The first run strictly after `after`, or None for `manual`.
pub fn next_run(
    expr: &str,
    tz: &str,
    after: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, String> {
    let Some(cron) = parse(expr)? else {
        return Ok(None);
    };
    let local = after.with_timezone(&zone(tz)?);
    cron.find_next_occurrence(&local, false)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| format!("schedule {expr:?} has no next run: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    fn next(expr: &str, tz: &str, after: &str) -> String {
        next_run(expr, tz, at(after)).unwrap().unwrap().to_rfc3339()
    }

    #[test]
    fn five_and_six_fields() {
        assert_eq!(
            next("*/15 * * * *", "UTC", "2026-11-22T10:07:00Z"),
            "2026-11-22T10:15:00+00:00"
        );
        assert_eq!(
            next("30 * * * * *", "UTC", "2026-11-22T10:07:00Z"),
            "2026-11-22T10:07:30+00:00"
        );
        assert!(next_run("manual", "UTC", Utc::now()).unwrap().is_none());
        assert!(parse("* * *").is_err());
        assert!(parse("61 * * * *").is_err());
        assert!(zone("Mars/Olympus").is_err());
    }

    #[test]
    fn business_hours_in_new_york() {
        // The seed's form: every 2 hours from 9 to 18 on weekdays, New York time.
        let e = "0 0 */2 9-18 * * 1-5";
        // Friday 2026-11-20 17:30 EST (22:30Z) -> Monday 09:00 EST (14:00Z).
        assert_eq!(
            next(e, "America/New_York", "2026-11-20T22:30:00Z"),
            "2026-11-23T14:00:00+00:00"
        );
        assert_eq!(
            next(e, "America/New_York", "2026-11-23T14:00:00Z"),
            "2026-11-23T16:00:00+00:00"
        );
        assert!(parse("0 0 1 2 3 4 5").is_err());
    }

    #[test]
    fn daylight_saving_changes() {
        // Spring forward in New York on 2026-03-08: 02:30 does not exist, the run moves to 03:00 EDT.
        assert_eq!(
            next("30 2 * * *", "America/New_York", "2026-03-08T05:00:00Z"),
            "2026-03-08T07:00:00+00:00"
        );
        // Fall back on 2026-11-01: 01:30 happens twice; the job runs once.
        let first = next("30 1 * * *", "America/New_York", "2026-11-01T04:00:00Z");
        assert_eq!(first, "2026-11-01T05:30:00+00:00");
        assert_eq!(
            next("30 1 * * *", "America/New_York", &first),
            "2026-11-02T06:30:00+00:00"
        );
        // 9:00 local is 14:00Z in winter and 13:00Z in summer.
        assert_eq!(
            next("0 9 * * *", "America/New_York", "2026-07-01T00:00:00Z"),
            "2026-07-01T13:00:00+00:00"
        );
    }
}
