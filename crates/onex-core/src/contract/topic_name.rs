//! The rule for the names of the topics a host reads and writes on a shared bus:
//! `onex.<tenant>.<domain>.<direction>.v<N>`, where the direction says what travels there.
//!
//! Tenants and domains are lowercase letters, digits, `-` and `_`, starting with a letter
//! or digit; some tenants are the platform's own and refused. One rule, and a reason for
//! every refusal, so that a contract error says exactly which part is wrong.

/// What a topic carries, and so the direction segment its name must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Requests to the host: `cmd`.
    Command,
    /// The host's responses: `evt`.
    Event,
    /// Records the host could not answer: `dlq`.
    DeadLetter,
}

impl Direction {
    /// The direction segment, e.g. `cmd`.
    pub fn segment(self) -> &'static str {
        match self {
            Direction::Command => "cmd",
            Direction::Event => "evt",
            Direction::DeadLetter => "dlq",
        }
    }

    fn role(self) -> &'static str {
        match self {
            Direction::Command => "an input topic",
            Direction::Event => "an output topic",
            Direction::DeadLetter => "a dead-letter topic",
        }
    }
}

/// Tenants the platform keeps for itself.
pub const RESERVED_TENANTS: [&str; 5] = ["internal", "debug", "metrics", "health", "admin"];

/// Checks `name` as a topic carrying `direction`; the error says which part is wrong and why.
pub fn check(name: &str, direction: Direction) -> Result<(), String> {
    let shape = format!(
        "a topic name is onex.<tenant>.<domain>.{}.v<N>",
        direction.segment()
    );
    let segments: Vec<&str> = name.split('.').collect();
    if segments[0] != "onex" {
        return Err(format!("it must start with 'onex.' ({shape})"));
    }
    if segments.len() != 5 {
        return Err(format!(
            "it has {} dot-separated parts, not 5 ({shape})",
            segments.len()
        ));
    }
    let (tenant, domain, found, version) = (segments[1], segments[2], segments[3], segments[4]);
    check_word("tenant", tenant)?;
    if RESERVED_TENANTS.contains(&tenant) {
        return Err(format!(
            "the tenant '{tenant}' is reserved for the platform ({})",
            RESERVED_TENANTS.join(", ")
        ));
    }
    check_word("domain", domain)?;
    if found != direction.segment() {
        return Err(format!(
            "the direction is '{found}', but {} has '{}' ({shape})",
            direction.role(),
            direction.segment()
        ));
    }
    let digits = version.strip_prefix('v').unwrap_or_default();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the version is '{version}', not 'v' and a number such as v1"
        ));
    }
    Ok(())
}

fn check_word(what: &str, word: &str) -> Result<(), String> {
    let Some(first) = word.bytes().next() else {
        return Err(format!("the {what} is empty"));
    };
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_';
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) || !word.bytes().all(allowed) {
        return Err(format!(
            "the {what} '{word}' may hold only lowercase letters, digits, '-' and '_', and \
             starts with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issues_valid_names_pass() {
        for name in [
            "onex.acme.orders.cmd.v1",
            "onex.acme.user-service.cmd.v1",
            "onex.acme.user_service.cmd.v1",
            "onex.acme.orders.cmd.v12",
        ] {
            assert_eq!(check(name, Direction::Command), Ok(()), "{name}");
        }
        assert_eq!(check("onex.acme.orders.evt.v1", Direction::Event), Ok(()));
        assert_eq!(
            check("onex.acme.orders.dlq.v1", Direction::DeadLetter),
            Ok(())
        );
    }

    #[test]
    fn names_the_contract_tests_do_not_cover_are_refused_with_their_reason() {
        // The issue's examples are refused in tests/kafka_contract.rs, through a contract.
        let cases = [
            (
                "onex.acme.orders.evt.v1",
                "the direction is 'evt', but an input topic has 'cmd'",
            ),
            (
                "onex.acme.-orders.cmd.v1",
                "the domain '-orders' may hold only",
            ),
            (
                "onex.acme.orders.cmd.v",
                "the version is 'v', not 'v' and a number",
            ),
            (
                "onex.acme.orders.cmd.v1.x",
                "it has 6 dot-separated parts, not 5",
            ),
        ];
        for (name, reason) in cases {
            let error = check(name, Direction::Command).expect_err(name);
            assert!(error.starts_with(reason), "{name}: {error}");
        }
        let error = check("onex.admin.x.dlq.v1", Direction::DeadLetter).expect_err("reserved");
        assert!(error.contains("reserved for the platform"), "{error}");
    }
}
