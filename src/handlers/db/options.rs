//! What the db handler reads from the connection string's `options` (the server settings
//! sent at connect, `-c name=value`): the `statement_timeout` the user set, if any, since
//! the host's own deadline for a statement follows it.

use std::time::Duration;

/// The `statement_timeout` set in `options` (`-c statement_timeout=…`, `-cstatement_timeout=…`
/// or `--statement_timeout=…`; the last one wins, as on the server): `Ok(None)` when unset,
/// `Ok(Some(ZERO))` when set to 0 (no timeout).
pub(super) fn statement_timeout(options: &str) -> Result<Option<Duration>, String> {
    let mut found = None;
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let setting = match word.strip_prefix("--") {
            Some(setting) => setting,
            None => match word.strip_prefix("-c") {
                Some("") => words.next().unwrap_or_default(),
                Some(setting) => setting,
                None => continue,
            },
        };
        let Some((name, value)) = setting.split_once('=') else {
            continue;
        };
        // The server accepts dashes for underscores in names, and any case.
        if name
            .replace('-', "_")
            .eq_ignore_ascii_case("statement_timeout")
        {
            found = Some(duration(value).ok_or_else(|| {
                format!(
                    "statement_timeout in the connection string's options is not a duration: {value}"
                )
            })?);
        }
    }
    Ok(found)
}

/// A PostgreSQL time setting: a number with an optional unit, milliseconds by default.
fn duration(value: &str) -> Option<Duration> {
    let value = value.trim_matches('\'').trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(number * millis / 1_000.0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_the_setting_is_read_with_its_unit() {
        let ms = |n| Ok(Some(Duration::from_millis(n)));
        assert_eq!(statement_timeout("-c statement_timeout=500"), ms(500));
        assert_eq!(statement_timeout("-cstatement_timeout=2s"), ms(2_000));
        assert_eq!(statement_timeout("--statement-timeout=1min"), ms(60_000));
        assert_eq!(statement_timeout("-c STATEMENT_TIMEOUT=1.5s"), ms(1_500));
        assert_eq!(
            statement_timeout(
                "-c search_path=x -c statement_timeout=1s -c statement_timeout=250ms"
            ),
            ms(250)
        );
        assert_eq!(statement_timeout("-c statement_timeout=0"), ms(0));
    }

    #[test]
    fn other_settings_leave_it_unset_and_a_bad_value_is_refused() {
        assert_eq!(statement_timeout(""), Ok(None));
        assert_eq!(statement_timeout("-c lock_timeout=5s"), Ok(None));
        assert_eq!(
            statement_timeout("-c statement_timeout=soon"),
            Err(
                "statement_timeout in the connection string's options is not a duration: soon"
                    .to_owned()
            )
        );
        assert!(statement_timeout("-c statement_timeout=5weeks").is_err());
    }
}
