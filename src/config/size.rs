//! Sizes as people write them in config: `"512B"`, `"64KiB"`, `"10MiB"`, `"1GiB"` (and the
//! decimal `KB`, `MB`, `GB`).

pub fn parse(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (n, unit) = super::duration::number_and_unit(s)?;
    let bytes_per_unit: u64 = match unit.trim_start() {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(format!("{s:?} has an unknown unit {unit:?}")),
    };
    n.checked_mul(bytes_per_unit)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_and_decimal_units() {
        assert_eq!(parse("512B"), Ok(512));
        assert_eq!(parse("64KiB"), Ok(65_536));
        assert_eq!(parse("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse("1 GB"), Ok(1_000_000_000));
        assert_eq!(parse("2kB"), Ok(2_000));
    }

    #[test]
    fn refuses_missing_units_and_overflow() {
        assert_eq!(parse("100").unwrap_err(), "\"100\" has no unit");
        assert!(parse("1 megabyte").is_err());
        assert!(parse("99999999999999999999B").is_err());
        assert!(parse("18446744073709551615GiB").is_err());
    }
}
