//! Durations as they are written in policy files.

use jiff::{SignedDuration, Span, SpanRelativeTo, Timestamp};

use crate::Error;

/// The longest duration a policy accepts (100 years of 24-hour days).
///
/// Anything longer is a typo rather than a retention period, and keeping
/// durations bounded keeps every `instant ± duration` inside jiff's range.
pub const MAX_DURATION: SignedDuration = SignedDuration::from_hours(100 * 366 * 24);

/// Why a text is not a duration: one sentence, without the text's key
/// (the caller names it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(String);

/// Parses a duration written in jiff's friendly form (`"72h"`, `"7 days"`,
/// `"1w 2d"`, `"90m"`, `"1h30m"`) or in ISO 8601 (`"PT72H"`, `"P7D"`): the
/// one duration syntax of Cairn's policies, schedules and configuration.
///
/// Days and weeks count as 24 hours and 7 days. Months and years are refused:
/// their length depends on the date they start from, and a period must mean
/// the same thing every time it is read. Negative durations and durations
/// over [`MAX_DURATION`] are refused, so nothing overflows later.
///
/// ```
/// use cairn_retention::parse_duration;
/// use jiff::SignedDuration;
///
/// assert_eq!(parse_duration("1w")?, SignedDuration::from_hours(168));
/// assert_eq!(parse_duration("1h30m")?, SignedDuration::from_mins(90));
/// assert!(parse_duration("1 month").is_err());
/// assert!(parse_duration("1000000000h").is_err());
/// # Ok::<(), cairn_retention::DurationError>(())
/// ```
///
/// # Errors
///
/// [`DurationError`] saying what is wrong with the text.
pub fn parse_duration(text: &str) -> Result<SignedDuration, DurationError> {
    let span: Span = text.trim().parse().map_err(|e: jiff::Error| {
        DurationError(format!(
            "{text:?} is not a duration ({e}); write it like \"72h\", \"7 days\" or \"PT72H\""
        ))
    })?;
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(DurationError(format!(
            "{text:?}: months and years have no fixed length; use days or weeks"
        )));
    }
    let duration = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|e| DurationError(format!("{text:?}: {e}")))?;
    if duration.is_negative() {
        return Err(DurationError(format!(
            "{text:?}: a duration cannot be negative"
        )));
    }
    if duration > MAX_DURATION {
        return Err(DurationError(format!("{text:?} is longer than 100 years")));
    }
    Ok(duration)
}

/// A duration as a policy file writes it: parsed (and refused, naming the
/// text) as the value is read, so that the error is the key's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Text(pub(crate) SignedDuration);

impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(self.0))
    }
}

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Text)
            .map_err(serde::de::Error::custom)
    }
}

/// [`parse_duration`] for the policy key `field`.
pub(crate) fn parse(field: &'static str, text: &str) -> Result<SignedDuration, Error> {
    parse_duration(text).map_err(|e| Error::InvalidValue {
        field,
        value: text.to_owned(),
        reason: e.0,
    })
}

/// Checks a duration given in code rather than text.
pub(crate) fn check(
    field: &'static str,
    text: &str,
    duration: SignedDuration,
) -> Result<SignedDuration, Error> {
    if duration.is_negative() {
        return Err(Error::InvalidValue {
            field,
            value: text.to_owned(),
            reason: "a duration cannot be negative".to_owned(),
        });
    }
    if duration > MAX_DURATION {
        return Err(Error::InvalidValue {
            field,
            value: text.to_owned(),
            reason: "longer than 100 years".to_owned(),
        });
    }
    Ok(duration)
}

/// Formats a duration the way [`parse`] reads it back (`"72h"`, `"1h 30m"`).
pub(crate) fn format(duration: SignedDuration) -> String {
    format!("{duration:#}")
}

/// `at + duration`, saturating at the end of time.
pub(crate) fn after(at: Timestamp, duration: SignedDuration) -> Timestamp {
    at.checked_add(duration).unwrap_or(Timestamp::MAX)
}

/// `at - duration`, saturating at the start of time.
pub(crate) fn before(at: Timestamp, duration: SignedDuration) -> Timestamp {
    at.checked_sub(duration).unwrap_or(Timestamp::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_and_iso_forms() {
        for (text, hours) in [
            ("72h", 72),
            ("3 days", 72),
            ("3d", 72),
            ("1w", 168),
            ("P1D", 24),
            ("PT72H", 72),
            ("0s", 0),
        ] {
            assert_eq!(
                parse("f", text).unwrap(),
                SignedDuration::from_hours(hours),
                "{text}"
            );
        }
        assert_eq!(parse("f", "1h 30m").unwrap(), SignedDuration::from_mins(90));
    }

    #[test]
    fn refuses_calendar_units_negative_and_huge() {
        for text in [
            "1 month",
            "1y",
            "P1M",
            "-1h",
            "1000 years",
            "2000000h",
            "soon",
            "",
        ] {
            let err = parse("keep_within", text).unwrap_err().to_string();
            assert!(err.contains("keep_within"), "{text}: {err}");
        }
    }

    #[test]
    fn format_round_trips() {
        for d in [
            SignedDuration::from_hours(72),
            SignedDuration::from_mins(90),
            SignedDuration::ZERO,
        ] {
            assert_eq!(parse("f", &format(d)).unwrap(), d);
        }
    }
}
