//! Secrets (schema 1.1.0): the credentials lint, `dsn_env` and `dsn_file` on a db
//! binding, the start-up errors that name the source but never the value, and a real
//! PostgreSQL reached through each, with the password searched for in the host's logs,
//! its handler report and its envelopes.

use std::path::Path;

use serde_json::Value;

use crate::api::{http, json_of};
use crate::support::daemon::Daemon;
use crate::support::fixture::Fixture;
use crate::support::postgres::PgCluster;
use crate::support::process::{PRODUCTION, run};
use crate::support::request_line;
use onex_host::contract::{ContractError, DsnSource, RuntimeHostContract};

/// A 1.1.0 runtime contract hosting `db_node` (db.query, db.execute), its db binding's
/// `config` the YAML lines `config` (indented under `config:`).
fn runtime(config: &str) -> String {
    format!(
        "schema_version: \"1.1.0\"\nruntime:\n  name: \"secrets_host\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"inmemory\"\n  handlers:\n    - type: \"db\"\n      config:\n{config}  nodes:\n    - slug: \"db_node\"\n"
    )
}

fn host(config: &str) -> Fixture {
    Fixture::new()
        .with("runtime/r.yaml", &runtime(config))
        .with(
            "runtime/nodes/db_node.yaml",
            &crate::support::fixture::node("db_node", "db", &["db.query", "db.execute"]),
        )
}

/// `text` parsed without its node (no node contract file beside it).
fn parse(text: &str) -> Result<RuntimeHostContract, ContractError> {
    let text = text.replace("  nodes:\n    - slug: \"db_node\"\n", "  nodes: []\n");
    RuntimeHostContract::parse(&text, Path::new("r.yaml"))
}

fn problems(text: &str) -> Vec<(Option<u64>, String)> {
    parse(text)
        .expect_err("the contract must be refused")
        .into_problems()
        .into_iter()
        .map(|problem| (problem.line, problem.message))
        .collect()
}

#[test]
fn the_lint_refuses_embedded_credentials_with_their_line_but_not_their_value() {
    let refused = problems(&runtime("        password: \"hunter2secret\"\n"));
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, Some(10));
    assert!(refused[0].1.contains("'password'"), "{refused:?}");

    let refused = problems(&runtime(
        "        dsn_env: \"X\"\n    - type: \"http\"\n      config: {timeout_ms: 5, url: \"postgresql://u:hunter2secret@10.0.0.1/db\"}\n",
    ));
    assert_eq!(refused[0].0, Some(12), "{refused:?}");
    assert!(refused[0].1.contains("connection string"), "{refused:?}");

    let node = "schema_version: \"1.0.0\"\nnode_version: \"1.0.0\"\nname: \"n\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"http\"\n    operations: [\"http.get\"]\n    target: \"https://bot:hunter2secret@api.example.com/v1\"\n";
    let error =
        onex_host::contract::NodeContract::parse(node, Path::new("n.yaml")).expect_err("refused");
    let shown = error.to_string();
    assert!(
        shown.contains("n.yaml") && shown.contains("at line 8"),
        "{shown}"
    );
    assert!(shown.contains("URL here carries a password"), "{shown}");
    for text in [shown, format!("{refused:?}")] {
        assert!(!text.contains("hunter2secret"), "{text}");
    }
}

#[test]
fn dsn_env_and_dsn_file_are_read_and_checked() {
    let loaded = parse(&runtime("        dsn_env: \"ORDERS_DB_URL\"\n")).expect("valid");
    let config = loaded.handlers[0].config.clone().expect("a config");
    assert_eq!(config.dsn, Some(DsnSource::Env("ORDERS_DB_URL".into())));
    let loaded = parse(&runtime("        dsn_file: \"/run/secrets/orders_db\"\n")).expect("valid");
    let config = loaded.handlers[0].config.clone().expect("a config");
    assert_eq!(
        config.dsn,
        Some(DsnSource::File("/run/secrets/orders_db".into()))
    );

    let both = problems(&runtime(
        "        dsn_env: \"A\"\n        dsn_file: \"/run/secrets/a\"\n",
    ));
    assert_eq!(
        both[0],
        (Some(11), "config sets both dsn_env and dsn_file".into())
    );
    let bad_name = problems(&runtime("        dsn_env: \"orders-db\"\n"));
    assert_eq!(bad_name[0].0, Some(10));
    assert!(bad_name[0].1.contains("not an environment variable's name"));
    let empty = problems(&runtime("        dsn_file: \"\"\n"));
    assert_eq!(empty[0], (Some(10), "config.dsn_file is empty".into()));
    let on_http = problems(
        &runtime("        timeout_ms: 5\n")
            .replace("type: \"db\"", "type: \"http\"")
            .replace("timeout_ms: 5", "dsn_env: \"A\""),
    );
    assert!(on_http[0].1.contains("db settings"), "{on_http:?}");
}

/// `--dry-run` of `fixture` with `env`: it must fail saying `expected`.
fn dry_run_fails(fixture: &Fixture, env: &[(&str, &str)], expected: &str) -> String {
    let ran = run(
        PRODUCTION,
        &["--dry-run", "runtime/r.yaml"],
        fixture.root(),
        b"",
        env,
    );
    ran.assert_failed_with(expected);
    ran.stderr
}

#[test]
fn an_unset_variable_or_a_missing_or_empty_file_stops_the_start_naming_it() {
    dry_run_fails(
        &host("        dsn_env: \"ONEX_TEST_UNSET_DB_URL\"\n"),
        &[],
        "binding 'db': the environment variable ONEX_TEST_UNSET_DB_URL (config.dsn_env) is not set",
    );
    dry_run_fails(
        &host("        dsn_file: \"secrets/none\"\n"),
        &[],
        "binding 'db': cannot read the file secrets/none (config.dsn_file)",
    );
    dry_run_fails(
        &host("        dsn_file: \"secrets/empty\"\n").with("secrets/empty", "\n"),
        &[],
        "binding 'db': the file secrets/empty (config.dsn_file) is empty",
    );
    // A malformed string is refused without being echoed.
    let stderr = dry_run_fails(
        &host("        dsn_env: \"ONEX_TEST_DB_URL\"\n"),
        &[("ONEX_TEST_DB_URL", "host=h sslmode=hunter2secret")],
        "binding 'db': the environment variable ONEX_TEST_DB_URL",
    );
    assert!(!stderr.contains("hunter2secret"), "{stderr}");
}

#[test]
fn the_host_starts_with_prose_about_passwords_and_refuses_a_credential_in_any_style() {
    let described = |description: &str| {
        let node = crate::support::fixture::node("db_node", "db", &["db.query", "db.execute"]);
        host("        dsn_env: \"ONEX_TEST_DB_URL\"\n").with(
            "runtime/nodes/db_node.yaml",
            &format!("{node}description{description}"),
        )
    };
    // Prose that names the words but holds no credential: the lint used to refuse it.
    let prose = described(
        ": |\n  Orders. The password comes from dsn_env:\n  password: never written here\n  postgresql://user@host/db is its shape.\n",
    );
    let ran = run(
        PRODUCTION,
        &["--dry-run", "runtime/r.yaml"],
        prose.root(),
        b"",
        &[("ONEX_TEST_DB_URL", "postgresql://u@127.0.0.1/db")],
    );
    assert_eq!(ran.status, Some(0), "{}", ran.stderr);
    // A folded connection string, and one spelt with a YAML escape.
    for (description, line) in [
        (": >-\n  postgresql://u:hunter2secret@10.0.0.1\n  /db\n", 9),
        (": \"postgres\\x3a//u:hunter2secret@10.0.0.1/db\"\n", 8),
    ] {
        let stderr = dry_run_fails(
            &described(description),
            &[("ONEX_TEST_DB_URL", "postgresql://u@127.0.0.1/db")],
            &format!("Error: a value here is a PostgreSQL connection string at line {line}"),
        );
        assert!(stderr.contains("db_node.yaml"), "{stderr}");
        assert!(!stderr.contains("hunter2secret"), "{stderr}");
    }
}

/// The node contract of `name`, running db.query and db.execute on the binding `binding`.
fn db_node(name: &str, binding: &str) -> String {
    format!(
        "schema_version: \"1.1.0\"\nnode_version: \"1.0.0\"\nname: \"{name}\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"db\"\n    binding: \"{binding}\"\n    operations: [\"db.query\", \"db.execute\"]\n"
    )
}

/// Two named db bindings, `orders_db` from a file and `billing_db` from a variable, each
/// used by a node of its own.
fn two_databases(orders_dsn: &str) -> Fixture {
    Fixture::new()
        .with(
            "runtime/r.yaml",
            "schema_version: \"1.1.0\"\nruntime:\n  name: \"secrets_host\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"inmemory\"\n  handlers:\n    - type: \"db\"\n      name: \"orders_db\"\n      config:\n        dsn_file: \"secrets/orders_db\"\n    - type: \"db\"\n      name: \"billing_db\"\n      config:\n        dsn_env: \"BILLING_DB_URL\"\n  nodes:\n    - slug: \"orders_node\"\n    - slug: \"billing_node\"\n",
        )
        .with("runtime/nodes/orders_node.yaml", &db_node("orders_node", "orders_db"))
        .with(
            "runtime/nodes/billing_node.yaml",
            &db_node("billing_node", "billing_db"),
        )
        .with("secrets/orders_db", &format!("{orders_dsn}\n"))
}

#[test]
fn two_named_db_bindings_reach_their_own_database_and_the_password_stays_hidden() {
    let cluster = PgCluster::start();
    let mut admin = cluster.admin();
    for database in ["orders", "billing"] {
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .expect("a database");
    }
    let dsn = |database: &str| cluster.url().replace("/postgres", &format!("/{database}"));
    let secret = cluster.password.as_str();
    let fixture = two_databases(&dsn("orders"));
    let billing = dsn("billing");
    let daemon = Daemon::start(
        PRODUCTION,
        &["--listen", "127.0.0.1:0", "runtime/r.yaml"],
        fixture.root(),
        &[("BILLING_DB_URL", &billing)],
    );
    let post = |n: u32, node: &str, operation: &str, payload: &str| -> Value {
        let request = request_line(n, node, operation, payload);
        let (_, _, body) = http("POST", &daemon.url("/v1/envelopes"), request.into_bytes());
        assert!(
            !body.contains(secret),
            "an envelope carries the secret: {body}"
        );
        json_of(&body)
    };
    let which = r#"{"sql": "SELECT current_database() AS db"}"#;
    for (n, node, database) in [(1, "orders_node", "orders"), (2, "billing_node", "billing")] {
        let reached = post(n, node, "db.query", which);
        assert_eq!(reached["payload"]["rows"][0]["db"], database, "{reached}");
    }
    let failures = [
        post(
            3,
            "orders_node",
            "db.query",
            r#"{"sql": "SELECT * FROM no_such_table"}"#,
        ),
        post(
            4,
            "billing_node",
            "db.execute",
            r#"{"sql": "SELECT $1", "parameters": []}"#,
        ),
        post(5, "no_node", "db.query", r#"{"sql": "SELECT 1"}"#),
    ];
    for failure in &failures {
        assert_eq!(failure["success"], false, "{failure}");
    }

    let (status, _, report) = http("GET", &daemon.url("/health/handlers"), vec![]);
    assert_eq!(status, 200);
    assert!(
        !report.contains(secret),
        "the handler report carries the secret: {report}"
    );
    let report = json_of(&report);
    let bindings: Vec<(Value, Value)> = report["handlers"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|h| (h["binding"].clone(), h["health"]["database"].clone()))
        .collect();
    let at = |database: &str| Value::from(format!("127.0.0.1:{}/{database}", cluster.port));
    assert_eq!(
        bindings,
        [
            (Value::from("billing_db"), at("billing")),
            (Value::from("orders_db"), at("orders"))
        ]
    );
    let (_, _, ready) = http("GET", &daemon.url("/health/ready"), vec![]);
    assert_eq!(
        json_of(&ready)["components"],
        serde_json::json!({"bus": true, "billing_db": true, "orders_db": true})
    );
    daemon.signal("TERM");
    let (_, _, stderr) = daemon.exit();
    assert!(
        stderr.contains("Registering handler: HandlerDb (binding orders_db)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(secret),
        "the log carries the secret:\n{stderr}"
    );
}
