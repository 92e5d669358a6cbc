//! File-name templates and UTC time stamps.
//!
//! A template is a path relative to the media root with placeholders:
//! `{camera}` (the camera the packets come from), `{node}` (the recording
//! node), `{date}` (`2026-11-21`), `{time}` (`103000`), `{utc}`
//! (`20261121T103000Z`) and `{n}` (the segment number, from 0). The
//! container's extension is added by the writer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const PLACEHOLDERS: [&str; 6] = ["camera", "node", "date", "time", "utc", "n"];

/// Checks that every `{…}` in `template` is a known placeholder.
pub fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("`{template}`: a `{{` without its `}}`"));
        };
        let name = &rest[open + 1..open + close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "`{template}`: unknown placeholder `{{{name}}}` (expected one of {})",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    if template.trim().is_empty() {
        return Err("the template is empty".into());
    }
    Ok(())
}

/// What a template's placeholders stand for.
pub struct Fill<'a> {
    /// The camera.
    pub camera: &'a str,
    /// The node writing.
    pub node: &'a str,
    /// When the file starts.
    pub utc: SystemTime,
    /// The segment number.
    pub n: u64,
}

/// `template` with its placeholders filled in (see [`check_template`]).
pub fn expand(template: &str, fill: &Fill<'_>) -> String {
    let c = Civil::of(fill.utc);
    template
        .replace("{camera}", fill.camera)
        .replace("{node}", fill.node)
        .replace("{date}", &format!("{:04}-{:02}-{:02}", c.year, c.month, c.day))
        .replace("{time}", &format!("{:02}{:02}{:02}", c.hour, c.minute, c.second))
        .replace(
            "{utc}",
            &format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                c.year, c.month, c.day, c.hour, c.minute, c.second
            ),
        )
        .replace("{n}", &fill.n.to_string())
}

/// RFC 3339 UTC with milliseconds: `2026-11-21T10:30:00.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let c = Civil::of(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// Milliseconds since the Unix epoch (negative before it).
pub fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// The time `ms` milliseconds after the Unix epoch.
pub fn from_unix_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// A UTC calendar date and time.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
}

impl Civil {
    fn of(t: SystemTime) -> Civil {
        let ms = unix_ms(t);
        let days = ms.div_euclid(86_400_000);
        let in_day = ms.rem_euclid(86_400_000) as u32;
        // Days to the proleptic Gregorian calendar, counted in 400-year eras from 0000-03-01.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: in_day / 3_600_000,
            minute: in_day / 60_000 % 60,
            second: in_day / 1000 % 60,
            millis: in_day % 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2026-11-21T10:30:05.250Z
        let t = from_unix_ms(1_795_257_005_250);
        assert_eq!(rfc3339(t), "2026-11-21T10:30:05.250Z");
        assert_eq!(rfc3339(from_unix_ms(951_782_400_000)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(from_unix_ms(-1)), "1969-12-31T23:59:59.999Z");
        assert_eq!(unix_ms(t), 1_795_257_005_250);
    }

    #[test]
    fn templates() {
        let fill = Fill {
            camera: "cam0",
            node: "rec",
            utc: from_unix_ms(1_795_257_005_250),
            n: 3,
        };
        assert_eq!(
            expand("recordings/{camera}/{date}/{node}-{utc}-{time}-{n}", &fill),
            "recordings/cam0/2026-11-21/rec-20261121T103005Z-103005-3"
        );
        assert!(check_template("a/{camera}-{utc}").is_ok());
        let e = check_template("a/{cam}").unwrap_err();
        assert!(e.contains("unknown placeholder `{cam}`"), "{e}");
        assert!(check_template("a/{camera").is_err());
        assert!(check_template(" ").is_err());
    }
}
