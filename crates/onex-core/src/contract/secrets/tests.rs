use super::*;

/// The line and message of each problem the lint finds in `text`.
fn refused(text: &str) -> Vec<(Option<u64>, String)> {
    match refuse_credentials(text, Path::new("c.yaml")) {
        Ok(()) => Vec::new(),
        Err(error) => error
            .into_problems()
            .into_iter()
            .map(|p| (p.line, p.message))
            .collect(),
    }
}

fn refused_lines(text: &str) -> Vec<u64> {
    refused(text)
        .into_iter()
        .filter_map(|(line, _)| line)
        .collect()
}

const KEY: &str = "looks like an embedded credential";
const DSN: &str = "PostgreSQL connection string";
const URL: &str = "URL here carries a password";

/// `text` is refused once, at `line`, with a message containing `what`.
fn refused_once(text: &str, line: u64, what: &str) {
    let found = refused(text);
    assert_eq!(found.len(), 1, "{text:?}: {found:?}");
    assert_eq!(found[0].0, Some(line), "{text:?}: {found:?}");
    assert!(found[0].1.contains(what), "{text:?}: {found:?}");
}

#[test]
fn a_password_key_is_refused_in_every_style() {
    refused_once("a: 1\npassword: x\n", 2, "'password'");
    refused_once("- db_password: 7\n", 1, "'db_password'");
    refused_once("{user: u,\n  PassWD: z}\n", 2, "'PassWD'");
    refused_once("\"password\": x\n", 1, KEY);
    refused_once("'Admin_Password': x\n", 1, KEY);
    // An escape in a double-quoted key spells the name only once the YAML is read.
    refused_once("\"pass\\x77ord\": x\n", 1, "'password'");
    refused_once("? password\n: x\n", 1, KEY);
    refused_once("a:\n  b: [1, {password:\n    x}]\n", 2, KEY);
}

#[test]
fn a_password_key_with_a_collection_value_is_reported_at_the_key() {
    refused_once("a: 1\npassword:\n  - x\n", 2, KEY);
    refused_once("password: {k: v}\n", 1, KEY);
}

#[test]
fn a_password_key_without_a_value_passes() {
    for text in [
        "password:\n",
        "password: \"\"\n",
        "password: ~\n",
        "password: null\n",
        "password: []\n",
        "{password}\n",
    ] {
        assert_eq!(refused(text), [], "{text:?}");
    }
}

#[test]
fn anchors_and_aliases_are_followed_without_reporting_twice() {
    // An alias key naming a password, and a password key whose value is an alias.
    refused_once("k: &k password\n*k : x\n", 2, "'password'");
    refused_once("v: &v hunter2\npassword: *v\n", 2, KEY);
    assert_eq!(refused("e: &e \"\"\npassword: *e\n"), []);
    // A credential under an anchor is reported where it is written, not at each alias.
    let text = "base: &b {password: x}\nuse: *b\nmerged:\n  <<: *b\n  dsn: &d postgres://h/db\nagain: *d\n";
    assert_eq!(refused_lines(text), [1, 5]);
}

#[test]
fn a_connection_string_is_refused_whatever_its_style() {
    refused_once("dsn: postgresql://h/db\n", 1, DSN);
    refused_once("a: [1, \"POSTGRES://u:p@h/db\"]\n", 1, DSN);
    // YAML escapes are resolved before the rule looks.
    refused_once("dsn: \"postgres\\x3a//h/db\"\n", 1, DSN);
    refused_once("dsn: \"postgres\\u003A//h/db\"\n", 1, DSN);
    refused_once("kw: host=h password=p\n", 1, DSN);
    // A literal or folded scalar is reported where its text starts.
    refused_once("kw: >-\n  host=h\n  password='p q'\n", 2, DSN);
    refused_once("dsn: |\n  postgres://h/db\n", 2, DSN);
    // A double-quoted string broken over lines with an escaped line break.
    refused_once("dsn: \"postgres:\\\n  //h/db\"\n", 1, DSN);
    refused_once("postgres://h/db: 1\n", 1, DSN);
}

#[test]
fn a_url_with_a_password_is_refused_wherever_it_is() {
    refused_once("url: \"https://u:p@h/x\"\n", 1, URL);
    refused_once("t: {url: 'http://u:p@h'}\n", 1, URL);
    // Folding a URL over lines leaves white space in it, after the authority.
    refused_once("url: >\n  https://u:p@h/x\n  /y\n", 2, URL);
    refused_once("d: \"https://u:\\\n  p@h\"\n", 1, URL);
    refused_once(
        "description: calls https://bot:tok@api.example.com daily\n",
        1,
        URL,
    );
}

#[test]
fn prose_that_mentions_credentials_passes() {
    let text = "\
description: |
  Reads orders. The password comes from dsn_env:
  password: never written here
  postgres://user@host/db is the shape of DATABASE_URL,
  host=h password=... its keyword form.
note: >
  password: folded prose,
  postgresql://h/db too.
title: \"resets a password: kindly\"
# password: in a comment
url: http://127.0.0.1:80/a # postgresql://x
target: \"https://user@h:8080/x\"
passwords_total: 3
password_file: /run/secrets/db
";
    assert_eq!(refused(text), []);
}

#[test]
fn problems_come_in_line_order_and_never_carry_the_value() {
    let text = "a:\n  password:\n    - hunter2secret\n  url: https://u:hunter2secret@h\nkw: password=hunter2secret\n";
    let found = refused(text);
    assert_eq!(
        found.iter().map(|(line, _)| *line).collect::<Vec<_>>(),
        [2, 4, 5].map(Some)
    );
    let Err(error) = refuse_credentials(text, Path::new("c.yaml")) else {
        panic!("refused");
    };
    assert!(!error.to_string().contains("hunter2secret"), "{error}");
}

#[test]
fn a_key_is_shown_escaped_and_cut_short() {
    let found = refused("\"\\e[2J_password\": x\n");
    assert!(found[0].1.contains("'\\u{1b}[2J_password'"), "{found:?}");
    let long = format!("{}_password: x\n", "k".repeat(100));
    let found = refused(&long);
    assert!(
        found[0].1.contains(&format!("'{}…'", "k".repeat(64))),
        "{found:?}"
    );
}

#[test]
fn invalid_yaml_is_linted_up_to_its_error() {
    assert_eq!(refused("a: [1\n"), []);
    refused_once("password: x\nb: [1\n", 1, KEY);
}

#[test]
fn a_multi_byte_character_before_a_key_is_not_cut() {
    // Found by the contract fuzz target when the lint read lines: the key's start was
    // taken one byte past a two-byte character, inside it, and slicing there panicked.
    assert_eq!(refused_lines(" ۍetry_policy: 1\n password: x\n"), [2]);
    assert_eq!(refused_lines("{ۍ: 1, ۍ_password: x}\n"), [1]);
}
