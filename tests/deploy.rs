//! The deployment files: Kubernetes manifests, compose file and Containerfiles are valid,
//! consistent with each other, within the 128 MiB / 250m budget, and carry a contract the
//! production host accepts.

use std::path::Path;

use onex_host::contract::RuntimeHostContract;
use onex_host::envelope::Stamp;
use onex_host::wiring::{self, Profile};
use serde_json::Value;

use crate::support::fixture::Fixture;
use crate::support::process::repo;

fn yaml(relative: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn mebibytes(quantity: &str) -> u64 {
    quantity
        .strip_suffix("Mi")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a Mi quantity: {quantity}"))
}

fn millicores(quantity: &str) -> u64 {
    quantity
        .strip_suffix('m')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a millicore quantity: {quantity}"))
}

#[test]
fn the_kubernetes_manifests_fit_the_budget_and_agree_with_each_other() {
    let deployment = yaml("k8s/deployment.yaml");
    let service = yaml("k8s/service.yaml");
    let configmap = yaml("k8s/configmap.yaml");
    let secret = yaml("k8s/secret.template.yaml");
    assert_eq!(deployment["kind"], "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];

    let limits = &container["resources"]["limits"];
    assert!(mebibytes(limits["memory"].as_str().unwrap_or_default()) <= 128);
    assert!(millicores(limits["cpu"].as_str().unwrap_or_default()) <= 250);
    let requests = &container["resources"]["requests"];
    assert!(mebibytes(requests["memory"].as_str().unwrap_or_default()) <= 128);
    assert!(millicores(requests["cpu"].as_str().unwrap_or_default()) <= 250);

    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"],
        "/health/live"
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"],
        "/health/ready"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );

    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let grace: u64 = args[args
        .iter()
        .position(|a| *a == "--shutdown-grace")
        .expect("a grace")
        + 1]
    .parse()
    .expect("seconds");
    assert!(
        pod["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("a period")
            > grace,
        "Kubernetes must wait for the drain"
    );

    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(
        container["env"][0]["valueFrom"]["secretKeyRef"]["name"],
        secret["metadata"]["name"]
    );
    assert!(secret["stringData"]["DATABASE_URL"].is_string());
    let volume = &pod["volumes"][0];
    assert_eq!(volume["configMap"]["name"], configmap["metadata"]["name"]);

    // Lay the ConfigMap out as the pod sees it and load it as the production host would.
    let mount = container["volumeMounts"][0]["mountPath"]
        .as_str()
        .expect("a mount path");
    let contract = args.last().expect("a contract path");
    let relative = contract
        .strip_prefix(mount)
        .expect("the contract lies in the mount")
        .trim_start_matches('/');
    let mut fixture = Fixture::new();
    for item in volume["configMap"]["items"].as_array().expect("items") {
        let key = item["key"].as_str().expect("a key");
        let text = configmap["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("no ConfigMap key {key}"));
        fixture = fixture.with(item["path"].as_str().expect("a path"), text);
    }
    let loaded =
        RuntimeHostContract::load(&fixture.path(relative)).unwrap_or_else(|e| panic!("{e}"));
    wiring::build_host(&loaded, Profile::Production, Stamp::deterministic(0), 1)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_compose_file_runs_the_host_beside_postgres_with_health_checks() {
    let compose = yaml("compose.yaml");
    let services = &compose["services"];
    let host = &services["runtime-host"];
    assert!(services["postgres"]["healthcheck"]["test"].is_array());
    assert!(host["healthcheck"]["test"].is_array());
    assert_eq!(
        host["depends_on"]["postgres"]["condition"],
        "service_healthy"
    );
    assert_eq!(host["mem_limit"], "128m");
    assert!(host["cpus"].as_f64().is_some_and(|cpus| cpus <= 0.25));
    assert!(host["environment"]["DATABASE_URL"].is_string());
    // The contract it names is one of ours, mounted from ./contracts.
    let command: Vec<&str> = host["command"]
        .as_array()
        .expect("a command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let in_container = command.last().expect("a contract");
    let on_host = in_container.replace("/etc/onex/contracts", "contracts");
    RuntimeHostContract::load(&repo().join(on_host)).unwrap_or_else(|e| panic!("{e}"));
    for service in services.as_object().expect("services").values() {
        let image = service["image"].as_str().expect("an image");
        assert!(
            !image.ends_with(":latest") && image.contains(':'),
            "{image} must be pinned"
        );
    }
}

#[test]
fn the_containerfiles_pin_their_bases_and_run_as_non_root() {
    for file in ["Containerfile", "Containerfile.build"] {
        let text = std::fs::read_to_string(repo().join(file)).expect("a Containerfile");
        assert!(!text.contains(":latest"), "{file} uses latest");
        for from in text.lines().filter(|line| line.starts_with("FROM ")) {
            let base = from.split_whitespace().nth(1).expect("a base");
            assert!(
                base == "scratch"
                    || base
                        .rsplit(':')
                        .next()
                        .is_some_and(|tag| tag.chars().next().is_some_and(|c| c.is_ascii_digit())),
                "{file}: {from}"
            );
        }
        assert!(text.contains("USER 65532:65532"), "{file}");
        assert!(
            text.contains(r#"ENTRYPOINT ["omnibase-runtime-host"]"#),
            "{file}"
        );
        assert!(
            text.contains(r#"CMD ["omnibase-runtime-host", "healthcheck""#),
            "{file}"
        );
    }
    assert!(Path::new(&repo().join(".ci/containers.conf")).is_file());
}
