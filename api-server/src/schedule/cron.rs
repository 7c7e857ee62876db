//! Five-field cron schedules evaluated in an IANA time zone.
//!
//! # Syntax
//!
//! An expression has five fields separated by runs of spaces or tabs:
//! `minute hour day-of-month month day-of-week`.
//!
//! | field        | values                                   |
//! |--------------|------------------------------------------|
//! | minute       | 0-59                                     |
//! | hour         | 0-23                                     |
//! | day-of-month | 1-31                                     |
//! | month        | 1-12 or `JAN`-`DEC`                      |
//! | day-of-week  | 0-7 (0 and 7 are Sunday) or `SUN`-`SAT`  |
//!
//! Each field is a comma-separated list of items. An item is `*` (every
//! value), a single value `a`, a range `a-b`, or one of those followed by a
//! step: `*/n`, `a-b/n`, or `a/n` (which means `a-max/n`). Names are
//! case-insensitive and may be used in ranges (`MON-FRI`).
//!
//! The macros `@yearly` (or `@annually`), `@monthly`, `@weekly`, `@daily`
//! (or `@midnight`) and `@hourly` stand for the usual expressions.
//! `@reboot` is rejected because a schedule here is a set of clock times.
//!
//! Days follow the classic Vixie cron rule: when both day-of-month and
//! day-of-week are restricted (neither field starts with `*`), a day matches
//! when either field matches. Otherwise a day must match both.
//!
//! An expression that can never fire, such as `0 0 30 2 *`, is rejected.
//!
//! # Time zones and daylight saving time
//!
//! Schedules describe wall-clock times in a time zone. Every matching local
//! time fires at exactly one instant:
//!
//! - a local time that happens once fires at that instant;
//! - a local time skipped by a forward clock change (for example 02:30 on a
//!   spring-forward day in `America/New_York`) fires once, at the instant
//!   the clock change happens (03:00 local time). Several skipped times, and
//!   a scheduled time right at the end of the gap, fire as a single instant;
//! - a local time that happens twice because of a backward clock change
//!   (for example 01:30 on a fall-back day) fires only the first time.
//!
//! Searches look at most fifty years ahead (or behind), which covers the
//! sparsest possible schedule: February 29 restricted to one weekday.

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{Timestamp, ToSpan};

/// How far a search looks for the next firing. The longest possible wait
/// between firings is forty years (February 29 on a given weekday, across
/// a century year that is not a leap year).
const SEARCH_HORIZON_YEARS: i64 = 50;

/// The most days each month can have, counting February 29.
const MAX_DAYS_IN_MONTH: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// The rules for one of the five fields.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names accepted in place of numbers, starting at `min`.
    names: &'static [&'static str],
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};

const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};

const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};

const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};

const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

/// A parsed cron schedule.
///
/// Each field is stored as a bit set: bit `n` is set when value `n` is
/// selected. Day-of-week uses bits 0 (Sunday) to 6 (Saturday).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    day_rule: DayRule,
}

/// How day-of-month and day-of-week combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DayRule {
    /// At least one of the two fields starts with `*`: both must match.
    BothMustMatch,
    /// Both fields are restricted: either one matching is enough.
    EitherMatches,
}

/// Why a cron expression or time zone name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The expression does not have exactly five fields.
    #[error("expected 5 fields (minute hour day-of-month month day-of-week), got {got}")]
    FieldCount {
        /// How many fields the expression had.
        got: usize,
    },
    /// A list has an empty item, as in `1,,2` or `5,`.
    #[error("{field}: empty item in `{text}`")]
    EmptyItem {
        /// The field's name, such as `minute`.
        field: &'static str,
        /// The whole field as written.
        text: String,
    },
    /// A value lies outside the field's range.
    #[error("{field}: {value} is out of range {min}-{max}")]
    OutOfRange {
        /// The field's name, such as `minute`.
        field: &'static str,
        /// The value as written.
        value: u32,
        /// The smallest value the field accepts.
        min: u32,
        /// The largest value the field accepts.
        max: u32,
    },
    /// A range ends before it starts, as in `5-2`.
    #[error("{field}: range {start}-{end} is reversed")]
    ReversedRange {
        /// The field's name, such as `minute`.
        field: &'static str,
        /// The first value of the range.
        start: u32,
        /// The last value of the range.
        end: u32,
    },
    /// A step of zero, as in `*/0`.
    #[error("{field}: step must be at least 1 in `{item}`")]
    ZeroStep {
        /// The field's name, such as `minute`.
        field: &'static str,
        /// The item holding the step.
        item: String,
    },
    /// An item that is neither a number, a known name, a range nor a step.
    #[error("{field}: `{item}` is not a valid value")]
    InvalidItem {
        /// The field's name, such as `minute`.
        field: &'static str,
        /// The item as written.
        item: String,
    },
    /// An `@` macro that does not exist.
    #[error("unknown macro `{0}`")]
    UnknownMacro(String),
    /// `@reboot`, which has no clock time.
    #[error("`@reboot` is not supported: a schedule must name clock times")]
    RebootUnsupported,
    /// The selected days of month occur in none of the selected months.
    #[error("never fires: no selected month has any of the selected days of month")]
    NeverFires,
    /// The time zone name is not in the time zone database.
    #[error("unknown time zone `{0}`")]
    UnknownTimeZone(String),
}

impl Cron {
    /// Parses a five-field cron expression or an `@` macro.
    ///
    /// Fails when the expression is malformed, when a value is out of range,
    /// or when the schedule can never fire.
    pub fn parse(expr: &str) -> Result<Cron, CronError> {
        let trimmed = expr.trim();
        let fields_text = if trimmed.starts_with('@') {
            expand_macro(trimmed)?
        } else {
            trimmed
        };
        let fields: Vec<&str> = fields_text.split_ascii_whitespace().collect();
        let [minute, hour, day_of_month, month, day_of_week] = fields.as_slice() else {
            return Err(CronError::FieldCount { got: fields.len() });
        };
        let cron = Cron {
            minutes: parse_field(minute, &MINUTE)?,
            hours: parse_field(hour, &HOUR)?,
            days_of_month: parse_field(day_of_month, &DAY_OF_MONTH)?,
            months: parse_field(month, &MONTH)?,
            days_of_week: fold_sunday(parse_field(day_of_week, &DAY_OF_WEEK)?),
            day_rule: if day_of_month.starts_with('*') || day_of_week.starts_with('*') {
                DayRule::BothMustMatch
            } else {
                DayRule::EitherMatches
            },
        };
        cron.ensure_fires()?;
        Ok(cron)
    }

    /// The first scheduled instant strictly after `after`, in `tz`; None when there is none within the search bound.
    ///
    /// The search looks fifty years ahead. Every schedule that `parse`
    /// accepts fires at least once in any forty years, so None only comes
    /// back near the end of the supported date range (year 9999).
    pub fn next_after(&self, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        // Mapping local times to instants never goes backwards in time, and
        // the local time of `after` maps to `after` or earlier, so no local
        // time before it can fire after `after`.
        let start = tz.to_datetime(after);
        let last_day = start.date().saturating_add(SEARCH_HORIZON_YEARS.years());
        let mut day = self.first_matching_day(start.date(), last_day)?;
        loop {
            let (hour, minute) = if day == start.date() {
                (start.hour(), start.minute())
            } else {
                (0, 0)
            };
            let found = self
                .times_from(hour, minute)
                .filter_map(|(hour, minute)| fire_instant(tz, day.at(hour, minute, 0, 0)))
                .find(|instant| *instant > after);
            if found.is_some() {
                return found;
            }
            day = self.first_matching_day(day.tomorrow().ok()?, last_day)?;
        }
    }

    /// The latest scheduled instant at or before `at` and strictly after `since`; None when there is none.
    ///
    /// Scans backwards from `at`, so its cost does not grow with the
    /// distance to `since`. Agrees with repeated [`Cron::next_after`].
    pub fn latest_between(
        &self,
        tz: &TimeZone,
        since: Timestamp,
        at: Timestamp,
    ) -> Option<Timestamp> {
        if at <= since {
            return None;
        }
        let ceiling = local_scan_ceiling(tz, at);
        let horizon = ceiling.date().saturating_sub(SEARCH_HORIZON_YEARS.years());
        let since_day = tz.to_datetime(since).date();
        let first_day = since_day.yesterday().unwrap_or(since_day).max(horizon);
        let mut day = self.last_matching_day(ceiling.date(), first_day)?;
        loop {
            let (hour, minute) = if day == ceiling.date() {
                (ceiling.hour(), ceiling.minute())
            } else {
                (23, 59)
            };
            let found = self
                .times_down_from(hour, minute)
                .filter_map(|(hour, minute)| fire_instant(tz, day.at(hour, minute, 0, 0)))
                .find(|instant| *instant <= at);
            if let Some(instant) = found {
                return (instant > since).then_some(instant);
            }
            day = self.last_matching_day(day.yesterday().ok()?, first_day)?;
        }
    }

    /// Rejects a schedule whose days of month exist in none of its months.
    ///
    /// When either day field may match alone, the day-of-week field fires
    /// every week, so only the other rule needs checking. Under that rule
    /// any month and day that exist together eventually fall on every
    /// weekday, so the day-of-week field cannot prevent firing.
    fn ensure_fires(&self) -> Result<(), CronError> {
        if self.day_rule == DayRule::EitherMatches {
            return Ok(());
        }
        let some_month_has_a_day = (1..=12u32).zip(MAX_DAYS_IN_MONTH).any(|(month, max_days)| {
            contains(self.months, month) && self.days_of_month & days_up_to(max_days) != 0
        });
        if some_month_has_a_day {
            Ok(())
        } else {
            Err(CronError::NeverFires)
        }
    }

    /// Whether the schedule fires on some time of `date`.
    fn matches_day(&self, date: Date) -> bool {
        if !contains(self.months, date.month()) {
            return false;
        }
        let day_of_month = contains(self.days_of_month, date.day());
        let day_of_week = contains(self.days_of_week, date.weekday().to_sunday_zero_offset());
        match self.day_rule {
            DayRule::BothMustMatch => day_of_month && day_of_week,
            DayRule::EitherMatches => day_of_month || day_of_week,
        }
    }

    /// The first day from `from` through `last` that the schedule fires on.
    fn first_matching_day(&self, from: Date, last: Date) -> Option<Date> {
        let mut day = from;
        while day <= last {
            if self.matches_day(day) {
                return Some(day);
            }
            day = if contains(self.months, day.month()) {
                day.tomorrow().ok()?
            } else {
                day.last_of_month().tomorrow().ok()?
            };
        }
        None
    }

    /// The last day from `from` back to `first` that the schedule fires on.
    fn last_matching_day(&self, from: Date, first: Date) -> Option<Date> {
        let mut day = from;
        while day >= first {
            if self.matches_day(day) {
                return Some(day);
            }
            day = if contains(self.months, day.month()) {
                day.yesterday().ok()?
            } else {
                day.first_of_month().yesterday().ok()?
            };
        }
        None
    }

    /// Scheduled `(hour, minute)` pairs at or after the given time of day, in
    /// increasing order.
    fn times_from(&self, hour: i8, minute: i8) -> impl Iterator<Item = (i8, i8)> + '_ {
        (hour..=23)
            .filter(|candidate| contains(self.hours, *candidate))
            .flat_map(move |candidate_hour| {
                let first_minute = if candidate_hour == hour { minute } else { 0 };
                (first_minute..=59)
                    .filter(|candidate| contains(self.minutes, *candidate))
                    .map(move |candidate_minute| (candidate_hour, candidate_minute))
            })
    }

    /// Scheduled `(hour, minute)` pairs at or before the given time of day,
    /// in decreasing order.
    fn times_down_from(&self, hour: i8, minute: i8) -> impl Iterator<Item = (i8, i8)> + '_ {
        (0..=hour)
            .rev()
            .filter(|candidate| contains(self.hours, *candidate))
            .flat_map(move |candidate_hour| {
                let last_minute = if candidate_hour == hour { minute } else { 59 };
                (0..=last_minute)
                    .rev()
                    .filter(|candidate| contains(self.minutes, *candidate))
                    .map(move |candidate_minute| (candidate_hour, candidate_minute))
            })
    }
}

/// Parses an IANA time zone name (None / empty => UTC). Error message: "unknown time zone `X`".
///
/// Whitespace around the name is ignored.
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, CronError> {
    match name.map(str::trim).filter(|name| !name.is_empty()) {
        None => Ok(TimeZone::UTC),
        Some(name) => TimeZone::get(name).map_err(|_| CronError::UnknownTimeZone(name.to_string())),
    }
}

/// The instant at which a matching local time fires, following the rules in
/// the module documentation. None only when the instant is out of range.
fn fire_instant(tz: &TimeZone, local: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(local).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(local).ok(),
        AmbiguousOffset::Gap { before, after } => {
            gap_end(tz, local, after).or_else(|| before.to_timestamp(local).ok())
        }
    }
}

/// The instant a clock change ends the gap that contains `local`.
///
/// Read with the offset in force after the gap, a local time inside the gap
/// names an instant before the change, so the change is the next transition.
fn gap_end(tz: &TimeZone, local: DateTime, after: Offset) -> Option<Timestamp> {
    let before_change = after.to_timestamp(local).ok()?;
    tz.following(before_change)
        .next()
        .map(|transition| transition.timestamp())
}

/// A local time no earlier than any local time whose firing instant is at or
/// before `at`.
///
/// This is the local time of `at`, except inside a repeated hour: there, the
/// first pass of the hour may have shown later local times than the second
/// pass shows at `at`, and those earlier-firing times must be considered too.
fn local_scan_ceiling(tz: &TimeZone, at: Timestamp) -> DateTime {
    let local = tz.to_datetime(at);
    match tz.to_ambiguous_timestamp(local).offset() {
        AmbiguousOffset::Fold { before, .. } => before.to_datetime(at).max(local),
        _ => local,
    }
}

/// Expands an `@` macro to its five fields.
fn expand_macro(name: &str) -> Result<&'static str, CronError> {
    match name.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => Ok("0 0 1 1 *"),
        "@monthly" => Ok("0 0 1 * *"),
        "@weekly" => Ok("0 0 * * 0"),
        "@daily" | "@midnight" => Ok("0 0 * * *"),
        "@hourly" => Ok("0 * * * *"),
        "@reboot" => Err(CronError::RebootUnsupported),
        _ => Err(CronError::UnknownMacro(name.to_string())),
    }
}

/// Parses one field (a comma-separated list) into a bit set.
fn parse_field(text: &str, spec: &FieldSpec) -> Result<u64, CronError> {
    text.split(',').try_fold(0, |bits, item| {
        if item.is_empty() {
            return Err(CronError::EmptyItem {
                field: spec.name,
                text: text.to_string(),
            });
        }
        Ok(bits | parse_item(item, spec)?)
    })
}

/// Parses one list item: `*`, `a`, `a-b`, optionally followed by `/step`.
fn parse_item(item: &str, spec: &FieldSpec) -> Result<u64, CronError> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(step, item, spec)?)),
        None => (item, None),
    };
    let (start, end) = parse_range(range, item, step.is_some(), spec)?;
    let bits = (start..=end)
        .step_by(step.unwrap_or(1))
        .fold(0, |bits, value| bits | (1u64 << value));
    Ok(bits)
}

/// Parses the step after `/`, which must be a positive number.
fn parse_step(text: &str, item: &str, spec: &FieldSpec) -> Result<usize, CronError> {
    match parse_number(text) {
        Some(0) => Err(CronError::ZeroStep {
            field: spec.name,
            item: item.to_string(),
        }),
        Some(step) => Ok(step as usize),
        None => Err(invalid_item(item, spec)),
    }
}

/// Parses the part of an item before any step into an inclusive range.
///
/// A single value followed by a step runs to the field's maximum.
fn parse_range(
    text: &str,
    item: &str,
    has_step: bool,
    spec: &FieldSpec,
) -> Result<(u32, u32), CronError> {
    if text == "*" {
        return Ok((spec.min, spec.max));
    }
    match text.split_once('-') {
        Some((start, end)) => {
            let start = parse_value(start, item, spec)?;
            let end = parse_value(end, item, spec)?;
            if end < start {
                return Err(CronError::ReversedRange {
                    field: spec.name,
                    start,
                    end,
                });
            }
            Ok((start, end))
        }
        None => {
            let value = parse_value(text, item, spec)?;
            Ok((value, if has_step { spec.max } else { value }))
        }
    }
}

/// Parses a single number or name and checks it against the field's range.
fn parse_value(text: &str, item: &str, spec: &FieldSpec) -> Result<u32, CronError> {
    let value = parse_number(text)
        .or_else(|| parse_name(text, spec))
        .ok_or_else(|| invalid_item(item, spec))?;
    if value < spec.min || value > spec.max {
        return Err(CronError::OutOfRange {
            field: spec.name,
            value,
            min: spec.min,
            max: spec.max,
        });
    }
    Ok(value)
}

/// Parses a non-empty run of ASCII digits.
fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Looks up a month or weekday name, ignoring case.
fn parse_name(text: &str, spec: &FieldSpec) -> Option<u32> {
    let position = spec
        .names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))?;
    u32::try_from(position).ok().map(|offset| spec.min + offset)
}

fn invalid_item(item: &str, spec: &FieldSpec) -> CronError {
    CronError::InvalidItem {
        field: spec.name,
        item: item.to_string(),
    }
}

/// Moves day-of-week 7 (Sunday) onto 0.
fn fold_sunday(days_of_week: u64) -> u64 {
    let sunday_as_seven = 1 << 7;
    if days_of_week & sunday_as_seven == 0 {
        days_of_week
    } else {
        (days_of_week & !sunday_as_seven) | 1
    }
}

/// The bit set of days 1 through `last`.
fn days_up_to(last: u32) -> u64 {
    ((1u64 << (last + 1)) - 1) & !1
}

/// Whether bit `value` is set in `set`.
fn contains<T: Into<i64>>(set: u64, value: T) -> bool {
    let value = value.into();
    (0..64).contains(&value) && set & (1u64 << value) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn cron(expr: &str) -> Cron {
        Cron::parse(expr).unwrap_or_else(|err| panic!("`{expr}` should parse: {err}"))
    }

    fn parse_error(expr: &str) -> String {
        match Cron::parse(expr) {
            Ok(parsed) => panic!("`{expr}` should be rejected, got {parsed:?}"),
            Err(err) => err.to_string(),
        }
    }

    fn members(set: u64) -> Vec<u32> {
        (0..64).filter(|bit| set & (1u64 << bit) != 0).collect()
    }

    fn tz(name: &str) -> TimeZone {
        time_zone(Some(name)).expect("time zone is in the database")
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("valid timestamp literal")
    }

    /// Every firing in `(from, until]`, by repeated `next_after`.
    fn firings(expr: &str, tz: &TimeZone, from: &str, until: &str) -> Vec<String> {
        let schedule = cron(expr);
        let until = ts(until);
        std::iter::successors(schedule.next_after(tz, ts(from)), |previous| {
            schedule.next_after(tz, *previous)
        })
        .take_while(|instant| *instant <= until)
        .map(|instant| instant.to_string())
        .collect()
    }

    fn next(expr: &str, tz: &TimeZone, after: &str) -> String {
        cron(expr)
            .next_after(tz, ts(after))
            .expect("schedule fires")
            .to_string()
    }

    // ---- parsing ----

    #[test]
    fn star_selects_the_whole_range() {
        let parsed = cron("* * * * *");
        assert_eq!(members(parsed.minutes), (0..=59).collect::<Vec<_>>());
        assert_eq!(members(parsed.hours), (0..=23).collect::<Vec<_>>());
        assert_eq!(members(parsed.days_of_month), (1..=31).collect::<Vec<_>>());
        assert_eq!(members(parsed.months), (1..=12).collect::<Vec<_>>());
        assert_eq!(members(parsed.days_of_week), (0..=6).collect::<Vec<_>>());
        assert_eq!(parsed.day_rule, DayRule::BothMustMatch);
    }

    #[test]
    fn lists_ranges_and_steps() {
        let parsed = cron("1,2,40 8-11 */10 2-10/3 5/1");
        assert_eq!(members(parsed.minutes), [1, 2, 40]);
        assert_eq!(members(parsed.hours), [8, 9, 10, 11]);
        assert_eq!(members(parsed.days_of_month), [1, 11, 21, 31]);
        assert_eq!(members(parsed.months), [2, 5, 8]);
        assert_eq!(members(parsed.days_of_week), [0, 5, 6]);
    }

    #[test]
    fn single_value_with_step_runs_to_the_maximum() {
        assert_eq!(members(cron("50/4 * * * *").minutes), [50, 54, 58]);
        assert_eq!(members(cron("0 20/2 * * *").hours), [20, 22]);
    }

    #[test]
    fn step_larger_than_the_range_keeps_the_start() {
        assert_eq!(members(cron("*/90 * * * *").minutes), [0]);
    }

    #[test]
    fn month_and_weekday_names_ignore_case() {
        let parsed = cron("0 0 * jan,Mar,DEC mon-fri");
        assert_eq!(members(parsed.months), [1, 3, 12]);
        assert_eq!(members(parsed.days_of_week), [1, 2, 3, 4, 5]);
        assert_eq!(members(cron("0 0 * FEB-APR SAT,sun").months), [2, 3, 4]);
        assert_eq!(members(cron("0 0 * * SAT,sun").days_of_week), [0, 6]);
        assert_eq!(members(cron("0 0 * * fri-7").days_of_week), [0, 5, 6]);
    }

    #[test]
    fn sunday_is_both_zero_and_seven() {
        assert_eq!(members(cron("0 0 * * 7").days_of_week), [0]);
        assert_eq!(members(cron("0 0 * * 0").days_of_week), [0]);
        assert_eq!(members(cron("0 0 * * 0,7").days_of_week), [0]);
        assert_eq!(members(cron("0 0 * * */2").days_of_week), [0, 2, 4, 6]);
    }

    #[test]
    fn whitespace_runs_and_padding_are_accepted() {
        assert_eq!(cron(" \t0\t\t9  * *   1-5 \n"), cron("0 9 * * 1-5"));
    }

    #[test]
    fn day_rule_depends_on_leading_star() {
        assert_eq!(cron("0 0 13 * 5").day_rule, DayRule::EitherMatches);
        assert_eq!(cron("0 0 13 * *").day_rule, DayRule::BothMustMatch);
        assert_eq!(cron("0 0 * * 5").day_rule, DayRule::BothMustMatch);
        assert_eq!(cron("0 0 */2 * 5").day_rule, DayRule::BothMustMatch);
        assert_eq!(cron("0 0 13 * */2").day_rule, DayRule::BothMustMatch);
    }

    #[test]
    fn macros_expand_to_their_expressions() {
        assert_eq!(cron("@yearly"), cron("0 0 1 1 *"));
        assert_eq!(cron("@annually"), cron("0 0 1 1 *"));
        assert_eq!(cron("@monthly"), cron("0 0 1 * *"));
        assert_eq!(cron("@weekly"), cron("0 0 * * 0"));
        assert_eq!(cron("@daily"), cron("0 0 * * *"));
        assert_eq!(cron("@midnight"), cron("0 0 * * *"));
        assert_eq!(cron(" @HOURLY "), cron("0 * * * *"));
    }

    #[test]
    fn rejects_wrong_field_counts() {
        let expected = "expected 5 fields (minute hour day-of-month month day-of-week), got";
        assert_eq!(parse_error("* * *"), format!("{expected} 3"));
        assert_eq!(parse_error(""), format!("{expected} 0"));
        assert_eq!(parse_error("   "), format!("{expected} 0"));
        assert_eq!(parse_error("0 0 * * * *"), format!("{expected} 6"));
    }

    #[test]
    fn rejects_out_of_range_values_naming_the_field() {
        assert_eq!(parse_error("61 * * * *"), "minute: 61 is out of range 0-59");
        assert_eq!(parse_error("0 24 * * *"), "hour: 24 is out of range 0-23");
        assert_eq!(
            parse_error("0 0 0 * *"),
            "day-of-month: 0 is out of range 1-31"
        );
        assert_eq!(
            parse_error("0 0 32 * *"),
            "day-of-month: 32 is out of range 1-31"
        );
        assert_eq!(parse_error("0 0 * 13 *"), "month: 13 is out of range 1-12");
        assert_eq!(parse_error("0 0 * 0 *"), "month: 0 is out of range 1-12");
        assert_eq!(
            parse_error("0 0 * * 8"),
            "day-of-week: 8 is out of range 0-7"
        );
        assert_eq!(
            parse_error("0-60 * * * *"),
            "minute: 60 is out of range 0-59"
        );
        assert_eq!(
            parse_error("0 5/2,30 * * *"),
            "hour: 30 is out of range 0-23"
        );
    }

    #[test]
    fn rejects_empty_items() {
        assert_eq!(parse_error("1,,2 * * * *"), "minute: empty item in `1,,2`");
        assert_eq!(parse_error("0 5, * * *"), "hour: empty item in `5,`");
        assert_eq!(
            parse_error("0 0 ,1 * *"),
            "day-of-month: empty item in `,1`"
        );
    }

    #[test]
    fn rejects_zero_steps() {
        assert_eq!(
            parse_error("*/0 * * * *"),
            "minute: step must be at least 1 in `*/0`"
        );
        assert_eq!(
            parse_error("0 0 * 1-6/0 *"),
            "month: step must be at least 1 in `1-6/0`"
        );
    }

    #[test]
    fn rejects_reversed_ranges() {
        assert_eq!(parse_error("0 5-2 * * *"), "hour: range 5-2 is reversed");
        assert_eq!(
            parse_error("0 0 * * FRI-MON"),
            "day-of-week: range 5-1 is reversed"
        );
    }

    #[test]
    fn rejects_garbage() {
        let cases = [
            ("x * * * *", "minute: `x` is not a valid value"),
            (
                "0 0 * * MONDAY",
                "day-of-week: `MONDAY` is not a valid value",
            ),
            ("-5 * * * *", "minute: `-5` is not a valid value"),
            ("5- * * * *", "minute: `5-` is not a valid value"),
            ("1-2-3 * * * *", "minute: `1-2-3` is not a valid value"),
            ("*/ * * * *", "minute: `*/` is not a valid value"),
            ("/5 * * * *", "minute: `/5` is not a valid value"),
            ("*/x * * * *", "minute: `*/x` is not a valid value"),
            ("*/2/2 * * * *", "minute: `*/2/2` is not a valid value"),
            ("+5 * * * *", "minute: `+5` is not a valid value"),
            ("0 0 * JAN/FEB *", "month: `JAN/FEB` is not a valid value"),
            (
                "0 0 1 * SUN/MON",
                "day-of-week: `SUN/MON` is not a valid value",
            ),
            ("0 0 JAN * *", "day-of-month: `JAN` is not a valid value"),
            ("** * * * *", "minute: `**` is not a valid value"),
            (
                "99999999999 * * * *",
                "minute: `99999999999` is not a valid value",
            ),
        ];
        for (expr, expected) in cases {
            assert_eq!(parse_error(expr), expected, "for `{expr}`");
        }
    }

    #[test]
    fn rejects_reboot_and_unknown_macros() {
        assert_eq!(
            parse_error("@reboot"),
            "`@reboot` is not supported: a schedule must name clock times"
        );
        assert_eq!(parse_error("@fortnightly"), "unknown macro `@fortnightly`");
        assert_eq!(parse_error("@daily 5"), "unknown macro `@daily 5`");
        assert_eq!(parse_error("@"), "unknown macro `@`");
    }

    #[test]
    fn rejects_schedules_that_never_fire() {
        let never = "never fires: no selected month has any of the selected days of month";
        assert_eq!(parse_error("0 0 30 2 *"), never);
        assert_eq!(parse_error("0 0 31 4 *"), never);
        assert_eq!(parse_error("0 0 31 2,4,6,9,11 *"), never);
        assert_eq!(parse_error("0 0 30,31 FEB */2"), never);
        assert!(Cron::parse("0 0 29 2 *").is_ok());
        assert!(Cron::parse("0 0 31 4,5 *").is_ok());
        assert!(
            Cron::parse("0 0 30 2 MON").is_ok(),
            "Mondays in February fire"
        );
    }

    #[test]
    fn time_zone_names() {
        assert_eq!(time_zone(None), Ok(TimeZone::UTC));
        assert_eq!(time_zone(Some("")), Ok(TimeZone::UTC));
        assert_eq!(
            time_zone(Some("Mars/Olympus_Mons")).map_err(|err| err.to_string()),
            Err("unknown time zone `Mars/Olympus_Mons`".to_string())
        );
        assert_eq!(
            time_zone(Some("America/New_York")).map(|zone| zone.iana_name().map(String::from)),
            Ok(Some("America/New_York".to_string()))
        );
    }

    #[test]
    fn bundled_time_zone_data_is_available() {
        let bundled = jiff::tz::TimeZoneDatabase::bundled();
        assert!(bundled.get("America/New_York").is_ok());
        assert!(bundled.get("Australia/Lord_Howe").is_ok());
    }

    // ---- firing times ----

    #[test]
    fn every_five_minutes() {
        assert_eq!(
            firings(
                "*/5 * * * *",
                &TimeZone::UTC,
                "2027-01-01T23:52:10Z",
                "2027-01-02T00:10:00Z"
            ),
            [
                "2027-01-01T23:55:00Z",
                "2027-01-02T00:00:00Z",
                "2027-01-02T00:05:00Z",
                "2027-01-02T00:10:00Z",
            ]
        );
    }

    #[test]
    fn next_after_is_strictly_after() {
        let utc = TimeZone::UTC;
        assert_eq!(
            next("*/5 * * * *", &utc, "2027-01-01T10:05:00Z"),
            "2027-01-01T10:10:00Z"
        );
        assert_eq!(
            next("*/5 * * * *", &utc, "2027-01-01T10:04:59.999Z"),
            "2027-01-01T10:05:00Z"
        );
    }

    #[test]
    fn daily_at_nine_utc() {
        assert_eq!(
            firings(
                "0 9 * * *",
                &TimeZone::UTC,
                "2027-12-30T09:00:00Z",
                "2028-01-02T00:00:00Z"
            ),
            ["2027-12-31T09:00:00Z", "2028-01-01T09:00:00Z"]
        );
    }

    #[test]
    fn weekdays_at_nine() {
        // 2027-01-01 is a Friday.
        assert_eq!(date(2027, 1, 1).weekday(), jiff::civil::Weekday::Friday);
        assert_eq!(
            firings(
                "0 9 * * 1-5",
                &TimeZone::UTC,
                "2027-01-01T10:00:00Z",
                "2027-01-06T00:00:00Z"
            ),
            ["2027-01-04T09:00:00Z", "2027-01-05T09:00:00Z"]
        );
    }

    #[test]
    fn first_of_the_month() {
        assert_eq!(
            firings(
                "0 0 1 * *",
                &TimeZone::UTC,
                "2027-01-01T00:00:00Z",
                "2027-04-01T00:00:00Z"
            ),
            [
                "2027-02-01T00:00:00Z",
                "2027-03-01T00:00:00Z",
                "2027-04-01T00:00:00Z"
            ]
        );
    }

    #[test]
    fn vixie_rule_fires_on_the_thirteenth_or_a_friday() {
        // January 2027: Fridays are the 1st, 8th, 15th, 22nd, 29th; the 13th
        // is a Wednesday.
        assert_eq!(
            firings(
                "0 0 13 * 5",
                &TimeZone::UTC,
                "2027-01-01T00:00:00Z",
                "2027-01-23T00:00:00Z"
            ),
            [
                "2027-01-08T00:00:00Z",
                "2027-01-13T00:00:00Z",
                "2027-01-15T00:00:00Z",
                "2027-01-22T00:00:00Z",
            ]
        );
    }

    #[test]
    fn starred_day_field_requires_both_days() {
        // Odd days that are Fridays: 2027-01-01, 15, 29.
        assert_eq!(
            firings(
                "0 0 */2 * 5",
                &TimeZone::UTC,
                "2026-12-31T00:00:00Z",
                "2027-02-01T00:00:00Z"
            ),
            [
                "2027-01-01T00:00:00Z",
                "2027-01-15T00:00:00Z",
                "2027-01-29T00:00:00Z",
            ]
        );
    }

    #[test]
    fn leap_day_waits_for_the_next_leap_year() {
        assert_eq!(
            next("0 0 29 2 *", &TimeZone::UTC, "2027-03-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", &TimeZone::UTC, "2097-01-01T00:00:00Z"),
            "2104-02-29T00:00:00Z"
        );
    }

    #[test]
    fn sparsest_schedule_is_within_the_search_horizon() {
        // February 29 on a Sunday: 2088, then 2128 because 2100 is not a
        // leap year.
        assert_eq!(
            next("0 0 29 2 */7", &TimeZone::UTC, "2088-03-01T00:00:00Z"),
            "2128-02-29T00:00:00Z"
        );
    }

    #[test]
    fn nothing_past_the_end_of_time() {
        let schedule = cron("0 0 1 1 *");
        assert_eq!(
            schedule.next_after(&TimeZone::UTC, ts("9999-06-01T00:00:00Z")),
            None
        );
    }

    // ---- daylight saving time ----

    #[test]
    fn spring_forward_skipped_time_fires_when_the_gap_ends() {
        let new_york = tz("America/New_York");
        assert_eq!(
            firings(
                "30 2 * * *",
                &new_york,
                "2027-03-13T00:00:00Z",
                "2027-03-16T00:00:00Z"
            ),
            [
                "2027-03-13T07:30:00Z", // 02:30 EST
                "2027-03-14T07:00:00Z", // 03:00 EDT, the end of the gap
                "2027-03-15T06:30:00Z", // 02:30 EDT
            ]
        );
    }

    #[test]
    fn spring_forward_several_skipped_times_fire_once() {
        let new_york = tz("America/New_York");
        assert_eq!(
            firings(
                "0,30 2 * * *",
                &new_york,
                "2027-03-14T00:00:00Z",
                "2027-03-15T00:00:00Z"
            ),
            ["2027-03-14T07:00:00Z"]
        );
        assert_eq!(
            firings(
                "*/30 * * * *",
                &new_york,
                "2027-03-14T06:00:00Z",
                "2027-03-14T08:00:00Z"
            ),
            [
                "2027-03-14T06:30:00Z", // 01:30 EST
                "2027-03-14T07:00:00Z", // 02:00, 02:30 and 03:00 local
                "2027-03-14T07:30:00Z", // 03:30 EDT
                "2027-03-14T08:00:00Z", // 04:00 EDT
            ]
        );
    }

    #[test]
    fn spring_forward_first_valid_time_fires_normally() {
        assert_eq!(
            next("0 3 * * *", &tz("America/New_York"), "2027-03-14T00:00:00Z"),
            "2027-03-14T07:00:00Z"
        );
    }

    #[test]
    fn fall_back_repeated_time_fires_once() {
        let new_york = tz("America/New_York");
        assert_eq!(
            firings(
                "30 1 * * *",
                &new_york,
                "2027-11-06T00:00:00Z",
                "2027-11-09T00:00:00Z"
            ),
            [
                "2027-11-06T05:30:00Z", // 01:30 EDT
                "2027-11-07T05:30:00Z", // 01:30 EDT, not 06:30Z (01:30 EST)
                "2027-11-08T06:30:00Z", // 01:30 EST
            ]
        );
    }

    #[test]
    fn fall_back_half_hourly_skips_the_second_pass() {
        assert_eq!(
            firings(
                "*/30 * * * *",
                &tz("America/New_York"),
                "2027-11-07T04:00:00Z",
                "2027-11-07T07:00:00Z"
            ),
            [
                "2027-11-07T04:30:00Z", // 00:30 EDT
                "2027-11-07T05:00:00Z", // 01:00 EDT
                "2027-11-07T05:30:00Z", // 01:30 EDT
                "2027-11-07T07:00:00Z", // 02:00 EST
            ]
        );
    }

    #[test]
    fn fall_back_during_the_second_pass_waits_for_new_times() {
        // At 01:10 EST (06:10Z) the 01:30 of this day has already fired.
        assert_eq!(
            next(
                "30 1 * * *",
                &tz("America/New_York"),
                "2027-11-07T06:10:00Z"
            ),
            "2027-11-08T06:30:00Z"
        );
    }

    #[test]
    fn london_spring_forward() {
        // 2027-03-28: 01:00 GMT becomes 02:00 BST.
        assert_eq!(
            firings(
                "30 1 * * *",
                &tz("Europe/London"),
                "2027-03-27T00:00:00Z",
                "2027-03-29T12:00:00Z"
            ),
            [
                "2027-03-27T01:30:00Z",
                "2027-03-28T01:00:00Z",
                "2027-03-29T00:30:00Z",
            ]
        );
    }

    #[test]
    fn lord_howe_half_hour_shifts() {
        let lord_howe = tz("Australia/Lord_Howe");
        // 2027-10-03: 02:00 (+10:30) becomes 02:30 (+11).
        assert_eq!(
            next("15 2 * * *", &lord_howe, "2027-10-02T12:00:00Z"),
            "2027-10-02T15:30:00Z"
        );
        // 2027-04-04: 02:00 (+11) becomes 01:30 (+10:30); 01:45 repeats,
        // and its second pass (2027-04-03T15:15Z) does not fire.
        assert_eq!(
            firings(
                "45 1 * * *",
                &lord_howe,
                "2027-04-03T12:00:00Z",
                "2027-04-04T16:00:00Z"
            ),
            ["2027-04-03T14:45:00Z", "2027-04-04T15:15:00Z"]
        );
    }

    #[test]
    fn utc_has_no_shifts() {
        assert_eq!(
            firings(
                "30 2 * * *",
                &TimeZone::UTC,
                "2027-03-14T00:00:00Z",
                "2027-03-15T00:00:00Z"
            ),
            ["2027-03-14T02:30:00Z"]
        );
    }

    // ---- latest_between ----

    #[test]
    fn latest_between_basic_cases() {
        let utc = TimeZone::UTC;
        let every_minute = cron("* * * * *");
        assert_eq!(
            every_minute.latest_between(
                &utc,
                ts("2026-01-01T00:00:00Z"),
                ts("2027-01-01T10:05:30Z")
            ),
            Some(ts("2027-01-01T10:05:00Z"))
        );
        assert_eq!(
            every_minute.latest_between(
                &utc,
                ts("2027-01-01T10:05:00Z"),
                ts("2027-01-01T10:05:59Z")
            ),
            None,
            "since is exclusive"
        );
        assert_eq!(
            every_minute.latest_between(
                &utc,
                ts("2027-01-01T10:04:59Z"),
                ts("2027-01-01T10:05:00Z")
            ),
            Some(ts("2027-01-01T10:05:00Z")),
            "at is inclusive"
        );
        assert_eq!(
            every_minute.latest_between(
                &utc,
                ts("2027-01-01T10:06:00Z"),
                ts("2027-01-01T10:05:00Z")
            ),
            None
        );
        assert_eq!(
            cron("0 0 29 2 *").latest_between(
                &utc,
                ts("2000-01-01T00:00:00Z"),
                ts("2027-06-01T00:00:00Z")
            ),
            Some(ts("2024-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn latest_between_in_the_second_pass_of_a_repeated_hour() {
        let new_york = tz("America/New_York");
        // At 01:10 EST (06:10Z), 01:45 EDT (05:45Z) is the latest firing
        // even though 01:45 is later on the clock than 01:10.
        assert_eq!(
            cron("45 1 * * *").latest_between(
                &new_york,
                ts("2027-11-06T00:00:00Z"),
                ts("2027-11-07T06:10:00Z")
            ),
            Some(ts("2027-11-07T05:45:00Z"))
        );
    }

    #[test]
    fn latest_between_at_a_gap_end() {
        let new_york = tz("America/New_York");
        assert_eq!(
            cron("30 2 * * *").latest_between(
                &new_york,
                ts("2027-03-14T06:59:59Z"),
                ts("2027-03-14T07:00:00Z")
            ),
            Some(ts("2027-03-14T07:00:00Z"))
        );
        assert_eq!(
            cron("30 2 * * *").latest_between(
                &new_york,
                ts("2027-03-14T07:00:00Z"),
                ts("2027-03-14T12:00:00Z")
            ),
            None
        );
    }

    // ---- properties ----

    /// A small deterministic pseudo-random generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }

        fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
            choices[self.below(choices.len() as u64) as usize]
        }
    }

    fn random_cron(rng: &mut Rng) -> String {
        let minute = rng.pick(&["*", "*/7", "0,30", "15", "0-10/5", "59", "*/30", "45"]);
        let hour = rng.pick(&["*", "1", "2", "1-3", "0,2,4", "*/5", "23", "0"]);
        let day_of_month = rng.pick(&["*", "1-10", "13", "*/3", "3-9"]);
        let month = rng.pick(&["*", "3,4,10,11", "*/2", "3-11"]);
        let day_of_week = rng.pick(&["*", "0", "1-5", "SAT,SUN", "*/2"]);
        format!("{minute} {hour} {day_of_month} {month} {day_of_week}")
    }

    /// Instants near clock changes in the zones used by the property tests.
    const INTERESTING_DAYS: [&str; 7] = [
        "2027-03-14T00:00:00Z",
        "2027-11-07T00:00:00Z",
        "2027-03-28T00:00:00Z",
        "2027-10-31T00:00:00Z",
        "2027-04-03T12:00:00Z",
        "2027-10-02T12:00:00Z",
        "2027-06-15T00:00:00Z",
    ];

    const ZONES: [&str; 5] = [
        "America/New_York",
        "Europe/London",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "UTC",
    ];

    fn random_instant_near_a_clock_change(rng: &mut Rng) -> Timestamp {
        let base = ts(rng.pick(&INTERESTING_DAYS));
        let seconds = rng.below(4 * 86_400) as i64 - 2 * 86_400;
        let seconds = if rng.below(2) == 0 {
            seconds - seconds % 60
        } else {
            seconds
        };
        base + seconds.seconds()
    }

    /// Whether the schedule selects this local time, ignoring time zones.
    fn selects(schedule: &Cron, local: DateTime) -> bool {
        schedule.matches_day(local.date())
            && contains(schedule.hours, local.hour())
            && contains(schedule.minutes, local.minute())
            && local.second() == 0
            && local.subsec_nanosecond() == 0
    }

    /// Whether the schedule fires at `instant`, judged from the clock alone:
    /// the instant shows a selected local time for the first time, or it
    /// ends a gap that skipped a selected local time.
    fn fires_at(schedule: &Cron, tz: &TimeZone, instant: Timestamp) -> bool {
        let local = tz.to_datetime(instant);
        let first_pass = tz.to_ambiguous_timestamp(local).earlier().ok() == Some(instant);
        if first_pass && selects(schedule, local) {
            return true;
        }
        let clock_before = tz.to_offset(instant - 1.nanosecond()).to_datetime(instant);
        let mut skipped = clock_before;
        while skipped < local {
            if selects(schedule, skipped) {
                return true;
            }
            skipped += 1.minute();
        }
        false
    }

    #[test]
    fn next_after_matches_a_minute_by_minute_scan() {
        let mut rng = Rng(0x5EA1_90D5_C0FF_EE01);
        for _ in 0..150 {
            let expr = random_cron(&mut rng);
            let schedule = cron(&expr);
            let zone = tz(rng.pick(&ZONES));
            let after = random_instant_near_a_clock_change(&mut rng);
            let first_minute = after.checked_add(60.seconds()).expect("in range");
            let first_minute =
                Timestamp::from_second(first_minute.as_second() - first_minute.as_second() % 60)
                    .expect("in range");
            let limit = after + (3 * 24).hours();
            let expected =
                std::iter::successors(Some(first_minute), |instant| Some(*instant + 1.minute()))
                    .take_while(|instant| *instant <= limit)
                    .find(|instant| fires_at(&schedule, &zone, *instant));
            let actual = schedule
                .next_after(&zone, after)
                .filter(|instant| *instant <= limit);
            assert_eq!(actual, expected, "`{expr}` in {zone:?} after {after}");
        }
    }

    #[test]
    fn latest_between_agrees_with_next_after() {
        let mut rng = Rng(0x0DDB_A11C_AFE5_7EAD);
        for _ in 0..300 {
            let expr = random_cron(&mut rng);
            let schedule = cron(&expr);
            let zone = tz(rng.pick(&ZONES));
            let since = random_instant_near_a_clock_change(&mut rng);
            let window_end = since + (3 * 24).hours();
            let fired: Vec<Timestamp> =
                std::iter::successors(schedule.next_after(&zone, since), |previous| {
                    schedule.next_after(&zone, *previous)
                })
                .take_while(|instant| *instant <= window_end)
                .collect();
            let last_fired_by = |at: Timestamp| fired.iter().rev().find(|i| **i <= at).copied();
            let random_probes = (0..20).map(|_| since + (rng.below(3 * 86_400) as i64).seconds());
            let firing_probes = fired
                .iter()
                .flat_map(|instant| [*instant, *instant - 1.nanosecond()]);
            for at in random_probes.chain(firing_probes) {
                assert_eq!(
                    schedule.latest_between(&zone, since, at),
                    last_fired_by(at),
                    "`{expr}` in {zone:?} between {since} and {at}"
                );
            }
        }
    }
}
