//! The modes that stand in for the tools an image without a shell lacks: `healthcheck`
//! (curl, for probes and HEALTHCHECK) and `sleep` (sleep, for a `preStop` hook). They
//! take positional arguments only; running them is the boot script's business.

use std::ffi::OsString;
use std::time::Duration;

use super::{Command, UsageError};

/// The URL `healthcheck` probes unless told otherwise.
pub const DEFAULT_HEALTH_URL: &str = "http://127.0.0.1:8085/health/live";

/// The longest `sleep`: a pod's whole termination grace rarely passes minutes, so more
/// than an hour is a typo, not a hook.
pub const MAX_SLEEP_SECS: u64 = 3600;

/// The mode `args` names (with the mode's own arguments after it), if they name one.
pub fn parse(args: &[OsString]) -> Option<Result<Command, UsageError>> {
    let (mode, rest) = args.split_first()?;
    if mode == "healthcheck" {
        Some(healthcheck(rest))
    } else if mode == "sleep" {
        Some(sleep(rest))
    } else {
        None
    }
}

/// `healthcheck [URL]`.
fn healthcheck(rest: &[OsString]) -> Result<Command, UsageError> {
    if let Some(extra) = rest.get(1) {
        return Err(unexpected(extra));
    }
    let url = rest.first().map_or_else(
        || DEFAULT_HEALTH_URL.to_owned(),
        |url| url.to_string_lossy().into_owned(),
    );
    Ok(Command::Healthcheck { url })
}

/// `sleep SECONDS`.
fn sleep(rest: &[OsString]) -> Result<Command, UsageError> {
    let Some(seconds) = rest.first() else {
        return Err(UsageError::MissingSeconds);
    };
    if let Some(extra) = rest.get(1) {
        return Err(unexpected(extra));
    }
    let seconds = seconds.to_string_lossy();
    match seconds.parse::<u64>() {
        Ok(whole) if whole <= MAX_SLEEP_SECS => Ok(Command::Sleep(Duration::from_secs(whole))),
        _ => Err(UsageError::InvalidValue {
            option: "sleep",
            value: seconds.into_owned(),
            expected: "a whole number of seconds, at most 3600",
        }),
    }
}

fn unexpected(extra: &OsString) -> UsageError {
    UsageError::Unexpected(extra.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Option<Result<Command, UsageError>> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&args)
    }

    #[test]
    fn healthcheck_takes_an_optional_url() {
        assert_eq!(
            parse_strs(&["healthcheck"]),
            Some(Ok(Command::Healthcheck {
                url: DEFAULT_HEALTH_URL.into()
            }))
        );
        assert_eq!(
            parse_strs(&["healthcheck", "http://127.0.0.1:9/health/live"]),
            Some(Ok(Command::Healthcheck {
                url: "http://127.0.0.1:9/health/live".into()
            }))
        );
        assert_eq!(
            parse_strs(&["healthcheck", "a", "b"]),
            Some(Err(UsageError::Unexpected("b".into())))
        );
    }

    #[test]
    fn sleep_takes_whole_seconds_up_to_an_hour() {
        assert_eq!(
            parse_strs(&["sleep", "5"]),
            Some(Ok(Command::Sleep(Duration::from_secs(5))))
        );
        assert_eq!(
            parse_strs(&["sleep", "3600"]),
            Some(Ok(Command::Sleep(Duration::from_secs(3600))))
        );
        assert_eq!(
            parse_strs(&["sleep"]),
            Some(Err(UsageError::MissingSeconds))
        );
        for bad in ["3601", "-1", "1.5", "5s", ""] {
            assert!(
                matches!(
                    parse_strs(&["sleep", bad]),
                    Some(Err(UsageError::InvalidValue {
                        option: "sleep",
                        ..
                    }))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_strs(&["sleep", "5", "6"]),
            Some(Err(UsageError::Unexpected("6".into())))
        );
    }

    #[test]
    fn anything_else_is_a_run() {
        assert_eq!(parse_strs(&[]), None);
        assert_eq!(parse_strs(&["--listen", "127.0.0.1:8085", "sleep"]), None);
        assert_eq!(parse_strs(&["c.yaml"]), None);
    }
}
