//! Durations as people write them in config: `"500ms"`, `"30s"`, `"20m"`, `"12h"`, `"7d"`.

use std::time::Duration;

/// A quantity as people write it in config: a whole number, then a unit (`"30s"`, `"1MiB"`).
pub(super) fn number_and_unit(s: &str) -> Result<(u64, &str), String> {
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit"))?;
    let (digits, unit) = s.split_at(split);
    let n = digits
        .parse()
        .map_err(|_| format!("{s:?} does not start with a whole number"))?;
    Ok((n, unit))
}

pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (n, unit) = number_and_unit(s)?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{s:?} has an unknown unit {unit:?}")),
    };
    n.checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// The shortest exact spelling, so `check` prints what a user would write.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_round_trips() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("20m", 1_200_000),
            ("12h", 43_200_000),
            ("7d", 604_800_000),
        ] {
            let d = parse(text).unwrap();
            assert_eq!(d.as_millis(), ms);
            assert_eq!(format(d), text);
        }
        assert_eq!(format(Duration::from_millis(90_000)), "90s");
    }

    #[test]
    fn rejects_missing_or_unknown_units() {
        assert_eq!(parse("30").unwrap_err(), "\"30\" has no unit");
        assert_eq!(
            parse("5 minutes").unwrap_err(),
            "\"5 minutes\" has an unknown unit \" minutes\""
        );
        assert!(parse("s").is_err());
    }
}
