//! Handler contracts: discovery under a directory, and agreement with each handler's
//! `describe()`.

use onex_host::contract::HandlerContractSource;
use onex_host::handler::HandlerType;
use onex_host::wiring;

use crate::support::fixture::Fixture;
use crate::support::process::repo;

#[test]
fn every_handler_has_a_shipped_contract_that_agrees_with_its_describe() {
    let contracts = HandlerContractSource::new(repo().join("contracts/handlers"))
        .discover()
        .unwrap_or_else(|error| panic!("{error}"));
    let types: Vec<HandlerType> = contracts
        .iter()
        .map(|c| c.description.handler_type)
        .collect();
    assert_eq!(
        types.len(),
        HandlerType::ALL.len(),
        "one contract per handler type"
    );
    for handler_type in HandlerType::ALL {
        let contract = contracts
            .iter()
            .find(|c| c.description.handler_type == handler_type)
            .unwrap_or_else(|| panic!("no handler contract for {handler_type}"));
        let described = wiring::build_handler(handler_type).describe();
        assert_eq!(
            contract.description,
            described,
            "{}",
            contract.path.display()
        );
    }
}

#[test]
fn discovery_reports_bad_and_duplicate_contracts() {
    let good = "schema_version: \"1.0.0\"\nhandler_type: \"local\"\nversion: \"1\"\nsupported_operations: [\"local.echo\"]\nrequired_payload_fields: []\nresponse_shape: {}\n";
    let fixture = Fixture::new()
        .with("a/handler_contract.yaml", good)
        .with("b/nested/handler_contract.yaml", good)
        .with("c/handler_contract.yaml", "schema_version: \"1.0.0\"\nhandler_type: \"http\"\nversion: \"1\"\nsupported_operations: [\"db.query\"]\n")
        .with("d/other.yaml", "ignored: true\n");
    let error = HandlerContractSource::new(fixture.root())
        .discover()
        .expect_err("two problems");
    let messages: Vec<&str> = error
        .problems()
        .iter()
        .map(|p| p.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [
            format!(
                "handler type 'local' is already declared by {}",
                fixture.path("a/handler_contract.yaml").display()
            )
            .as_str(),
            "missing required fields in the handler contract: required_payload_fields, response_shape",
            "operation 'db.query' does not belong to this handler",
        ]
    );
}

#[test]
fn a_handler_contract_at_schema_1_0_0_cannot_list_beta_operations() {
    let contract = |version: &str| {
        format!(
            "schema_version: \"{version}\"\nhandler_type: \"db\"\nversion: \"1\"\nsupported_operations: [\"db.query\", \"db.transaction\"]\nrequired_payload_fields: []\nresponse_shape: {{}}\n"
        )
    };
    let old = Fixture::new().with("db/handler_contract.yaml", &contract("1.0.0"));
    let error = HandlerContractSource::new(old.root())
        .discover()
        .expect_err("refused");
    let problem = &error.problems()[0];
    assert_eq!(
        (
            problem.line,
            problem.message.as_str(),
            problem.action.as_str()
        ),
        (
            Some(4),
            "operation 'db.transaction' is a schema 1.1.0 (Beta) operation, and this contract is 1.0.0",
            "set schema_version: \"1.1.0\""
        )
    );
    let new = Fixture::new().with("db/handler_contract.yaml", &contract("1.1.0"));
    let found = HandlerContractSource::new(new.root())
        .discover()
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        found[0].description.supported_operations,
        ["db.query", "db.transaction"]
    );
}

#[test]
fn a_handler_contract_with_an_embedded_password_is_refused_at_its_line() {
    // response_shape takes any string map, so only the credentials lint refuses this.
    let contract = "schema_version: \"1.0.0\"\nhandler_type: \"local\"\nversion: \"1\"\nsupported_operations: [\"local.echo\"]\nrequired_payload_fields: []\nresponse_shape: {\"echo\": \"the payload\",\n  \"db_password\": \"hunter2secret\"}\n";
    let fixture = Fixture::new().with("local/handler_contract.yaml", contract);
    let error = HandlerContractSource::new(fixture.root())
        .discover()
        .expect_err("refused");
    let shown = error.to_string();
    let file = fixture.path("local/handler_contract.yaml");
    assert!(
        shown.starts_with("ContractValidationError: Failed to load contract")
            && shown.contains(&format!("File: {}", file.display()))
            && shown.contains(
                "Error: the key 'db_password' looks like an embedded credential at line 7"
            )
            && shown.contains("Action: remove it;"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2secret"), "{shown}");
}
