//! UTC calendar windows for budgets: days since the Unix epoch, and months of the proleptic Gregorian
//! calendar (civil-from-days conversion after Howard Hinnant's public-domain algorithms).

pub const NS_PER_SEC: u64 = 1_000_000_000;
pub const NS_PER_DAY: u64 = 86_400 * NS_PER_SEC;

/// The UTC day (days since 1970-01-01) containing `ns`.
pub fn day_of(ns: u64) -> u64 {
    ns / NS_PER_DAY
}

/// (year, month 1..=12, day 1..=31) of a day number.
pub fn civil(day: u64) -> (i64, u32, u32) {
    let z = i64::try_from(day).unwrap_or(i64::MAX / 2) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// The day number of a calendar date (`m` in 1..=12).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> u64 {
    let (m, d) = (i64::from(m), i64::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).unwrap_or(0)
}

/// A month number (year * 12 + month - 1) of a day number: equal for days of the same calendar month.
pub fn month_of(day: u64) -> u64 {
    let (y, m, _) = civil(day);
    u64::try_from(y * 12 + i64::from(m) - 1).unwrap_or(0)
}

/// The first day of the month containing `day`.
pub fn month_start(day: u64) -> u64 {
    let (y, m, _) = civil(day);
    days_from_civil(y, m, 1)
}

/// The first day of the month after the one containing `day`.
pub fn next_month_start(day: u64) -> u64 {
    let (y, m, _) = civil(day);
    if m == 12 {
        days_from_civil(y + 1, 1, 1)
    } else {
        days_from_civil(y, m + 1, 1)
    }
}

/// `YYYY-MM-DDT00:00:00Z` for the start of a day.
pub fn rfc3339(day: u64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}T00:00:00Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_and_knows_leap_years() {
        assert_eq!(civil(0), (1970, 1, 1));
        // 2024-02-29 exists; 2100-02-29 does not.
        let leap = days_from_civil(2024, 2, 29);
        assert_eq!(civil(leap), (2024, 2, 29));
        assert_eq!(civil(leap + 1), (2024, 3, 1));
        assert_eq!(civil(days_from_civil(2100, 2, 28) + 1), (2100, 3, 1));
        for day in (0..80_000).step_by(7) {
            let (y, m, d) = civil(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn months_roll_over_at_the_first() {
        let dec31 = days_from_civil(2026, 12, 31);
        assert_eq!(month_start(dec31), days_from_civil(2026, 12, 1));
        assert_eq!(next_month_start(dec31), days_from_civil(2027, 1, 1));
        assert_ne!(month_of(dec31), month_of(dec31 + 1));
        assert_eq!(month_of(dec31), month_of(dec31 - 30));
        assert_eq!(rfc3339(dec31 + 1), "2027-01-01T00:00:00Z");
    }
}
