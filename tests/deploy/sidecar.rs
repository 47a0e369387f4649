//! The host beside an app: the Kubernetes pod with a native sidecar and the compose
//! sidecar profile listen on loopback only, keep the standalone host's budget, probes,
//! hardening and flags, and their probes work against the host they describe.

use std::net::SocketAddr;

use onex_host::contract::RuntimeHostContract;
use onex_host::envelope::Stamp;
use onex_host::wiring::{self, Profile};
use serde_json::Value;

use super::{args, mounted, mounted_contract, option, pre_stop_sleep, seconds, yaml};
use crate::support::daemon::Daemon;
use crate::support::process::{PRODUCTION, repo, run};

/// The loopback address `args` listen on (panics if they listen elsewhere).
fn loopback_listener(args: &[&str]) -> SocketAddr {
    let listen: SocketAddr = option(args, "--listen").parse().expect("an address");
    assert!(listen.ip().is_loopback(), "{listen} is not loopback");
    listen
}

/// `args` with the value of `--listen` replaced by `with`.
fn relisten<'a>(args: &[&'a str], with: &'a str) -> Vec<&'a str> {
    let at = args
        .iter()
        .position(|a| *a == "--listen")
        .expect("--listen");
    let mut args = args.to_vec();
    args[at + 1] = with;
    args
}

/// The URL an exec probe of `[PROGRAM, "healthcheck", URL]` checks.
fn probe_url(probe: &Value) -> &str {
    match args(&probe["exec"]["command"])[..] {
        ["omnibase-runtime-host", "healthcheck", url] => url,
        ref other => panic!("not a healthcheck of the image's own binary: {other:?}"),
    }
}

#[test]
fn the_sidecar_pod_keeps_the_host_on_loopback_in_the_standalone_budget() {
    let deployment = yaml("deploy/k8s/sidecar-deployment.yaml");
    let configmap = yaml("deploy/k8s/sidecar-configmap.yaml");
    let service = yaml("deploy/k8s/sidecar-service.yaml");
    let standalone = yaml("deploy/k8s/deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let standalone_pod = &standalone["spec"]["template"]["spec"];
    let standalone_host = &standalone_pod["containers"][0];
    let host = &pod["initContainers"][0];
    let app = &pod["containers"][0];
    // A native sidecar: started before the app, stopped after it.
    assert_eq!(host["restartPolicy"], "Always");
    assert_eq!(host["image"], standalone_host["image"]);

    // The standalone host's flags, but on loopback, with no port a Service could name.
    let host_args = args(&host["args"]);
    let listen = loopback_listener(&host_args);
    assert_eq!(listen.port(), 8085);
    let standalone_args = args(&standalone_host["args"]);
    assert_eq!(
        relisten(&standalone_args, option(&host_args, "--listen")),
        host_args
    );
    assert!(host["ports"].is_null(), "a loopback listener has no port");

    for field in ["resources", "securityContext", "volumeMounts"] {
        assert_eq!(host[field], standalone_host[field], "{field}");
    }
    assert_eq!(pod["securityContext"], standalone_pod["securityContext"]);

    // The standalone probes' paths and timing, run by the binary inside the container.
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = standalone_host[probe]["httpGet"]["path"]
            .as_str()
            .expect("a path");
        assert_eq!(
            probe_url(&host[probe]),
            format!("http://{listen}{path}"),
            "{probe}"
        );
        for timing in ["periodSeconds", "timeoutSeconds"] {
            assert_eq!(
                host[probe][timing], standalone_host[probe][timing],
                "{probe}.{timing}"
            );
        }
    }
    assert_eq!(
        probe_url(&host["startupProbe"]),
        format!("http://{listen}/health/live")
    );

    // The app calls the host there, and only the app is behind the Service.
    let env = app["env"].as_array().expect("the app's environment");
    assert!(
        env.iter()
            .any(|var| var["name"] == "ONEX_HOST_URL" && var["value"] == format!("http://{listen}")),
        "{env:?}"
    );
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    let app_port = &app["ports"][0];
    for port in service["spec"]["ports"].as_array().expect("ports") {
        assert_eq!(port["targetPort"], app_port["name"]);
        assert_ne!(port["targetPort"], listen.port());
    }

    // Stopping: the app's hook, then the host's drain, within the pod's one grace period
    // (and never less than the standalone host gets alone).
    let period = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("a period");
    assert!(period > pre_stop_sleep(app) + seconds(&host_args, "--shutdown-grace"));
    assert!(
        period
            >= standalone_pod["terminationGracePeriodSeconds"]
                .as_u64()
                .unwrap_or(0)
    );

    let contract = mounted_contract(pod, host, &configmap);
    wiring::build_host(&contract, Profile::Production, Stamp::deterministic(0), 1)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_sidecar_pods_exec_probes_pass_against_the_host_they_describe() {
    let deployment = yaml("deploy/k8s/sidecar-deployment.yaml");
    let configmap = yaml("deploy/k8s/sidecar-configmap.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let host = &pod["initContainers"][0];
    let (fixture, contract) = mounted(pod, host, &configmap);
    let contract = contract.to_str().expect("a UTF-8 path");
    // The pod's own arguments, on a free loopback port (8085 may be taken here), with text
    // logs (the test reads the address from them) and the contract where the fixture is.
    let pod_args = args(&host["args"]);
    let mut host_args = relisten(&pod_args, "127.0.0.1:0");
    host_args.retain(|a| *a != "--log-format" && *a != "json");
    if let Some(last) = host_args.last_mut() {
        *last = contract;
    }
    let daemon = Daemon::start(PRODUCTION, &host_args, fixture.root(), &[]);
    let pod_listen = option(&pod_args, "--listen");
    // A proxy the container inherits must not come between the probe and the host.
    let dead_proxy = "http://127.0.0.1:1";
    let proxies = [("http_proxy", dead_proxy), ("ALL_PROXY", dead_proxy)];
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let url = probe_url(&host[probe]).replace(pod_listen, daemon.addr());
        let checked = run(PRODUCTION, &["healthcheck", &url], repo(), b"", &proxies);
        assert_eq!(checked.status, Some(0), "{probe}: {}", checked.stderr);
    }
    daemon.signal("TERM");
    assert_eq!(daemon.exit().0, Some(0));
}

#[test]
fn the_compose_sidecar_joins_the_apps_network_and_publishes_nothing() {
    let compose = yaml("compose.yaml");
    let services = &compose["services"];
    let app = &services["app"];
    let host = &services["runtime-host-sidecar"];
    let standalone = &services["runtime-host"];
    for service in [app, host] {
        assert_eq!(service["profiles"][0], "sidecar");
    }
    assert_eq!(host["network_mode"], "service:app");
    assert!(host["ports"].is_null() && host["networks"].is_null());
    // The app's ports are the namespace's: none of them may publish the host's.
    let command = args(&host["command"]);
    let listen = loopback_listener(&command);
    if let Some(ports) = app["ports"].as_array() {
        for port in ports {
            let port = port.as_str().unwrap_or_default();
            assert!(!port.ends_with(&format!(":{}", listen.port())), "{port}");
        }
    }
    assert_eq!(
        app["environment"]["ONEX_HOST_URL"],
        format!("http://{listen}")
    );
    let test = args(&host["healthcheck"]["test"]);
    assert_eq!(
        test[1..],
        [
            "omnibase-runtime-host",
            "healthcheck",
            &format!("http://{listen}/health/ready")
        ]
    );
    for field in [
        "image",
        "mem_limit",
        "cpus",
        "read_only",
        "user",
        "stop_grace_period",
    ] {
        assert_eq!(host[field], standalone[field], "{field}");
    }
    assert_eq!(
        option(&command, "--max-in-flight"),
        option(&args(&standalone["command"]), "--max-in-flight")
    );
    let in_container = command.last().expect("a contract");
    let on_host = repo().join(in_container.replace("/etc/onex/contracts", "contracts"));
    let contract = RuntimeHostContract::load(&on_host).unwrap_or_else(|e| panic!("{e}"));
    wiring::build_host(&contract, Profile::Production, Stamp::deterministic(0), 1)
        .unwrap_or_else(|e| panic!("{e}"));
}
