//! The deployment files under `deploy/` and at the top (compose, Containerfiles) are valid,
//! consistent with each other, within the 128 MiB / 250m budget, and carry a contract the
//! production host accepts. This file holds the standalone shapes and the helpers;
//! `deploy/sidecar.rs` the host beside an app, `deploy/edge.rs` the systemd unit.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use onex_host::contract::RuntimeHostContract;
use onex_host::envelope::Stamp;
use onex_host::wiring::{self, Profile};
use serde_json::Value;

use crate::support::fixture::Fixture;
use crate::support::process::{PRODUCTION, repo, run};

mod edge;
mod sidecar;

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

/// A container's (or a compose service's command's) arguments.
fn args(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list of arguments")
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

/// The value after `option` in `args`.
fn option<'a>(args: &[&'a str], option: &str) -> &'a str {
    args.iter()
        .position(|a| *a == option)
        .and_then(|at| args.get(at + 1))
        .unwrap_or_else(|| panic!("no {option} in {args:?}"))
}

/// The whole seconds after `option` in `args`.
fn seconds(args: &[&str], name: &str) -> u64 {
    option(args, name)
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The seconds a `preStop` hook of `command` waits, if it is `[PROGRAM, "sleep", N]` or
/// `["sleep", N]`.
fn pre_stop_sleep(container: &Value) -> u64 {
    let command = args(&container["lifecycle"]["preStop"]["exec"]["command"]);
    let at = command
        .iter()
        .position(|word| *word == "sleep")
        .unwrap_or_else(|| panic!("no sleep in the preStop hook {command:?}"));
    command
        .get(at + 1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no whole seconds in {command:?}"))
}

#[test]
fn the_kubernetes_manifests_fit_the_budget_and_agree_with_each_other() {
    let deployment = yaml("deploy/k8s/deployment.yaml");
    let service = yaml("deploy/k8s/service.yaml");
    let configmap = yaml("deploy/k8s/configmap.yaml");
    let secret = yaml("deploy/k8s/secret.template.yaml");
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

    let grace = seconds(&args(&container["args"]), "--shutdown-grace");
    // The hook and the drain both come out of the pod's grace period.
    let pre_stop = pre_stop_sleep(container);
    assert_eq!(
        args(&container["lifecycle"]["preStop"]["exec"]["command"])[0],
        "omnibase-runtime-host",
        "the image has no sleep of its own"
    );
    assert!(
        pod["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("a period")
            > pre_stop + grace,
        "Kubernetes must wait for the hook and the drain"
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
    // Lay the ConfigMap out as the pod sees it and load it as the production host would.
    let loaded = mounted_contract(pod, container, &configmap);
    wiring::build_host(&loaded, Profile::Production, Stamp::deterministic(0), 1)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The contract `container` names, laid out from `configmap` as the pod sees it and
/// loaded with the container's literal environment.
fn mounted_contract(pod: &Value, container: &Value, configmap: &Value) -> RuntimeHostContract {
    let (_fixture, path) = mounted(pod, container, configmap);
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|var| {
            Some((
                var["name"].as_str()?.to_owned(),
                var["value"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let text = std::fs::read_to_string(&path).expect("the contract");
    RuntimeHostContract::parse_with_env(&text, &path, &|name| {
        env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The `configmap` volume `container` mounts, laid out in a fixture as the pod sees it,
/// and the path there of the contract the container's last argument names.
fn mounted(pod: &Value, container: &Value, configmap: &Value) -> (Fixture, PathBuf) {
    let mount = &container["volumeMounts"][0];
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|volume| volume["name"] == mount["name"])
        .expect("the mounted volume");
    assert_eq!(volume["configMap"]["name"], configmap["metadata"]["name"]);
    let mount = mount["mountPath"].as_str().expect("a mount path");
    let contract = args(&container["args"])
        .last()
        .copied()
        .expect("a contract path");
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
    let path = fixture.path(relative);
    (fixture, path)
}

#[test]
fn the_kafka_deployment_runs_replicas_of_one_group_within_the_same_budget() {
    let standalone = yaml("deploy/k8s/deployment.yaml");
    let deployment = yaml("deploy/k8s/kafka-deployment.yaml");
    let configmap = yaml("deploy/k8s/kafka-configmap.yaml");
    assert!(
        deployment["spec"]["replicas"]
            .as_u64()
            .is_some_and(|n| n >= 2)
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let standalone_pod = &standalone["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let standalone_container = &standalone_pod["containers"][0];
    // The same budget, probes, hardening and drain as the standalone host.
    for field in [
        "resources",
        "livenessProbe",
        "readinessProbe",
        "securityContext",
    ] {
        assert_eq!(container[field], standalone_container[field], "{field}");
    }
    for field in ["securityContext", "terminationGracePeriodSeconds"] {
        assert_eq!(pod[field], standalone_pod[field], "{field}");
    }
    let contract = mounted_contract(pod, container, &configmap);
    let onex_host::contract::EventBusConfig::Kafka(kafka) = &contract.event_bus else {
        panic!(
            "the kafka deployment's contract is on {:?}",
            contract.event_bus
        );
    };
    assert!(kafka.bootstrap_servers.contains(":9092"));
    wiring::build_host(&contract, Profile::Production, Stamp::deterministic(0), 1)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_compose_kafka_profile_runs_two_hosts_of_one_group_beside_a_broker() {
    let compose = yaml("compose.yaml");
    let services = &compose["services"];
    let broker = &services["kafka"];
    let hosts = &services["runtime-host-kafka"];
    assert_eq!(broker["profiles"][0], "kafka");
    assert_eq!(hosts["profiles"][0], "kafka");
    assert!(broker["healthcheck"]["test"].is_array());
    assert_eq!(hosts["deploy"]["replicas"], 2);
    assert_eq!(hosts["depends_on"]["kafka"]["condition"], "service_healthy");
    // The same limits as the standalone host.
    for field in [
        "mem_limit",
        "cpus",
        "read_only",
        "user",
        "stop_grace_period",
    ] {
        assert_eq!(hosts[field], services["runtime-host"][field], "{field}");
    }
    let command = hosts["command"].as_array().expect("a command");
    let in_container = command.last().and_then(Value::as_str).expect("a contract");
    let on_host = repo().join(in_container.replace("/etc/onex/contracts", "contracts"));
    let text = std::fs::read_to_string(&on_host).expect("the contract");
    let environment = &hosts["environment"];
    let contract = RuntimeHostContract::parse_with_env(&text, &on_host, &|name| {
        environment[name].as_str().map(str::to_owned)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let onex_host::contract::EventBusConfig::Kafka(kafka) = &contract.event_bus else {
        panic!(
            "the kafka profile's contract is on {:?}",
            contract.event_bus
        );
    };
    assert_eq!(kafka.bootstrap_servers, "kafka:9092");
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

#[test]
fn the_sleep_mode_waits_then_exits_0_for_a_pre_stop_hook() {
    let started = Instant::now();
    let slept = run(PRODUCTION, &["sleep", "1"], repo(), b"", &[]);
    assert_eq!(slept.status, Some(0), "{}", slept.stderr);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let zero = run(PRODUCTION, &["sleep", "0"], repo(), b"", &[]);
    assert_eq!(zero.status, Some(0), "{}", zero.stderr);
    for (args, says) in [
        (&["sleep"][..], "missing SECONDS"),
        (&["sleep", "5s"][..], "invalid value '5s' for sleep"),
        (&["sleep", "3601"][..], "at most 3600"),
        (&["sleep", "1", "2"][..], "unexpected argument '2'"),
    ] {
        let refused = run(PRODUCTION, args, repo(), b"", &[]);
        assert_eq!(refused.status, Some(2), "{args:?}");
        assert!(
            refused.stderr.contains(says),
            "{args:?}: {}",
            refused.stderr
        );
    }
}
