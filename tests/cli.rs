//! The binaries as users run them: `--stdin`, `--dry-run`, `--help`, `--version`, exit codes.

use serde_json::Value;

use crate::support::fixture::dev_host;
use crate::support::process::{DEVELOPMENT, PRODUCTION, dry_run, repo, run, serve_stdin};
use crate::support::{correlation_of, request_line};

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"))
}

#[test]
fn every_input_line_gets_one_response_line_in_order_even_garbage() {
    let fixture = dev_host();
    let mut input = String::new();
    let mut expected = Vec::new();
    for n in 0..300u32 {
        match n % 5 {
            0 => {
                input.push_str("garbage that is not JSON\n");
                expected.push((None, "ENVELOPE_VALIDATION_ERROR"));
            }
            1 => {
                input.push_str(&request_line(
                    n,
                    "echo_node",
                    "local.echo",
                    &format!("{{\"n\":{n}}}"),
                ));
                input.push('\n');
                expected.push((Some(n), "ok"));
            }
            2 => {
                input.push_str(&request_line(n, "nowhere", "local.echo", "null"));
                input.push('\n');
                expected.push((Some(n), "NODE_NOT_FOUND"));
            }
            3 => {
                input.push('\n');
                expected.push((None, "ENVELOPE_VALIDATION_ERROR"));
            }
            _ => {
                input.push_str(&request_line(
                    n,
                    "upper_node",
                    "local.transform",
                    "{\"s\":\"abc\"}",
                ));
                input.push_str("\r\n");
                expected.push((Some(n), "ok"));
            }
        }
    }
    let run = serve_stdin(
        DEVELOPMENT,
        fixture.root(),
        "runtime/dev.yaml",
        input.as_bytes(),
    );
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines.len(), expected.len());
    for (line, (n, outcome)) in lines.iter().zip(expected) {
        let response = parse(line);
        assert_eq!(response["is_response"], true);
        if let Some(n) = n {
            assert_eq!(response["correlation_id"], correlation_of(n), "{line}");
        }
        match outcome {
            "ok" => assert_eq!(response["success"], true, "{line}"),
            code => assert_eq!(response["error"]["code"], code, "{line}"),
        }
    }
}

#[test]
fn the_quick_start_example_runs_with_only_the_expected_warning() {
    let input =
        std::fs::read(repo().join("examples/requests.jsonl")).expect("the example requests");
    let run = serve_stdin(
        DEVELOPMENT,
        repo(),
        "contracts/runtime/dev_runtime_host.yaml",
        &input,
    );
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let input_lines = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(run.lines().len(), input_lines);
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].contains("LocalHandler initialised: it is for development and tests only"));
    assert!(
        run.stderr
            .starts_with("WARNING: omninode-runtime-host-dev is for development and tests only")
    );
}

#[test]
fn start_up_logs_follow_the_specification() {
    let fixture = dev_host();
    let run = serve_stdin(DEVELOPMENT, fixture.root(), "runtime/dev.yaml", b"");
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let expected = [
        "INFO  Runtime host initializing...",
        "INFO  Loading contract: runtime/dev.yaml",
        "INFO  Registering handler: LocalHandler",
        "INFO  Loading node: echo_node",
        "INFO  Loading node: upper_node",
        "INFO  Starting event bus: inmemory",
        "INFO  Runtime host 'dev_host' ready. Listening on topic: onex.dev_host.cmd.v1",
        "INFO  Shutting down handler: LocalHandler",
    ];
    let mut rest = run.stderr.as_str();
    for line in expected {
        let at = rest
            .find(line)
            .unwrap_or_else(|| panic!("missing, or out of order: {line}\n{}", run.stderr));
        rest = &rest[at + line.len()..];
    }
}

#[test]
fn dry_run_prints_the_wiring_and_starts_nothing() {
    let fixture = dev_host();
    let run = dry_run(DEVELOPMENT, fixture.root(), "runtime/dev.yaml");
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "runtime: dev_host\n\
         event bus: inmemory\n  \
         input topic:  onex.dev_host.cmd.v1\n  \
         output topic: onex.dev_host.res.v1\n\
         handlers:\n  \
         local (LocalHandler): local.echo, local.transform, local.error\n\
         nodes:\n  \
         echo_node (EFFECT_GENERIC)\n    \
         local: local.echo, local.error\n  \
         upper_node (EFFECT_GENERIC)\n    \
         local: local.transform\n"
    );
    assert!(
        !run.stderr.contains("initialised"),
        "dry run must not initialise handlers"
    );
    assert!(
        !run.stderr.contains("ready"),
        "dry run must not start the bus"
    );
}

#[test]
fn help_and_version_exit_0() {
    for binary in [PRODUCTION, DEVELOPMENT] {
        let help = run(binary, &["--help"], repo(), b"", &[]);
        assert_eq!(help.status, Some(0));
        assert!(help.stdout.contains("Usage: ") && help.stdout.contains("--stdin"));
        let version = run(binary, &["-V"], repo(), b"", &[]);
        assert_eq!(version.status, Some(0));
        assert!(
            version
                .stdout
                .trim_end()
                .ends_with(env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn usage_errors_exit_2_with_a_pointer_to_help() {
    for args in [
        &[][..],
        &["--stdin"],
        // An in-memory contract alone: nothing to serve.
        &["contracts/runtime/infra_runtime_host.yaml"],
        &["--stdin", "contract.yaml", "--frobnicate"],
        &["--stdin", "--log-level", "loud", "contract.yaml"],
        &["--stdin", "--log-format", "xml", "contract.yaml"],
        &["--stdin", "--busy-poll", "soon", "contract.yaml"],
        &["--stdin", "--busy-poll", "2000000", "contract.yaml"],
    ] {
        let run = run(PRODUCTION, args, repo(), b"", &[]);
        assert_eq!(run.status, Some(2), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("Run 'omnibase-runtime-host --help' for usage."),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn the_dev_binary_refuses_to_start_in_production() {
    let fixture = dev_host();
    for value in ["prod", "PRODUCTION", " prod", "PROD ", "\tProduction\n"] {
        let run = run(
            DEVELOPMENT,
            &["--stdin", "runtime/dev.yaml"],
            fixture.root(),
            b"",
            &[("ENVIRONMENT", value)],
        );
        run.assert_failed_with(&format!("refusing to start with ENVIRONMENT={value:?}"));
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn contract_paths_that_are_not_small_regular_files_are_refused_unread() {
    let fixture = dev_host();
    let run = dry_run(DEVELOPMENT, fixture.root(), "/dev/zero");
    run.assert_failed_with("this is not a regular file (a device, a FIFO or a socket)");
    let fifo = fixture.path("runtime/fifo.yaml");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|status| status.success()));
    // Nothing ever writes to the FIFO: opening it to read would wait forever.
    let run = dry_run(DEVELOPMENT, fixture.root(), "runtime/fifo.yaml");
    run.assert_failed_with("this is not a regular file");
    let big = format!("{}\n", "# padding\n".repeat(120_000));
    let fixture = fixture.with("runtime/big.yaml", &big);
    let run = dry_run(DEVELOPMENT, fixture.root(), "runtime/big.yaml");
    run.assert_failed_with("the file is larger than 1048576 bytes");
}

#[test]
fn a_contract_with_thousands_of_problems_lists_the_first_hundred() {
    let operations: String = (0..5_000).map(|_| "\"local.echo\", ").collect();
    let node = format!(
        "schema_version: \"1.0.0\"\nnode_version: \"1.0.0\"\nname: \"echo_node\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"local\"\n    operations: [{operations}]\n"
    );
    let fixture = dev_host().with("nodes/echo_node.yaml", &node);
    let run = dry_run(DEVELOPMENT, fixture.root(), "runtime/dev.yaml");
    run.assert_failed_with("... and 4900 more problem(s) not listed");
    assert_eq!(
        run.stderr.matches("  Error: ").count(),
        100,
        "{}",
        run.stderr
    );
}

#[test]
fn log_level_error_silences_information() {
    let fixture = dev_host();
    let run = run(
        DEVELOPMENT,
        &["--stdin", "--log-level", "error", "runtime/dev.yaml"],
        fixture.root(),
        b"x\n",
        &[],
    );
    assert_eq!(run.status, Some(0));
    assert_eq!(run.lines().len(), 1);
    assert!(
        !run.stderr.contains(" INFO ") && !run.stderr.contains(" WARN "),
        "{}",
        run.stderr
    );
}

#[test]
fn large_lines_behind_a_slow_reader_hold_bounded_memory_and_are_all_answered() {
    use std::io::{Read, Write};
    let fixture = dev_host();
    let mut child = crate::support::process::spawn(
        DEVELOPMENT,
        &["--stdin", "--log-level", "warn", "runtime/dev.yaml"],
        fixture.root(),
        &[],
    );
    let mut input = child.stdin.take().expect("stdin");
    let lines = 100;
    let feeder = std::thread::spawn(move || {
        let payload = format!(r#"{{"s":"{}"}}"#, "x".repeat(1024 * 1024));
        for n in 0..lines {
            let line = request_line(n, "echo_node", "local.echo", &payload);
            input.write_all(line.as_bytes()).expect("a line");
            input.write_all(b"\n").expect("a line end");
        }
    });
    let mut output = child.stdout.take().expect("stdout");
    let (mut read, mut buffer) = (Vec::new(), vec![0u8; 256 * 1024]);
    let (mut peak_kib, mut answered) = (0u64, 0);
    // A slow reader: a small read, a pause, until every answer has come.
    while answered < lines {
        let n = output.read(&mut buffer).expect("reads the answers");
        assert!(n > 0, "the host stopped before answering every line");
        answered += buffer[..n].iter().filter(|&&b| b == b'\n').count() as u32;
        read.extend_from_slice(&buffer[..n]);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()));
        if let Some(kib) = status.ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            peak_kib = peak_kib.max(kib);
        }
    }
    feeder.join().expect("the feeder");
    let status = child.wait().expect("the host exits");
    assert!(status.success());
    let answers: Vec<Value> = String::from_utf8_lossy(&read)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON answer"))
        .collect();
    assert!(answers.iter().all(|a| a["success"] == true));
    assert!(peak_kib < 96 * 1024, "peak RSS {peak_kib} KiB");
}

#[test]
fn numbers_in_a_payload_pass_through_as_they_were_written() {
    let fixture = dev_host();
    // Keys in order: a payload's keys come back sorted.
    let numbers = r#"{"big":18446744073709551616,"exact":0.30000000000000004,"float":2.50,"huge":1e+400,"int":7,"negative":-9223372036854775809}"#;
    let mut input = request_line(1, "echo_node", "local.echo", numbers).into_bytes();
    input.push(b'\n');
    let run = serve_stdin(DEVELOPMENT, fixture.root(), "runtime/dev.yaml", &input);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!(r#""payload":{numbers}"#)),
        "{}",
        run.stdout
    );
}

#[test]
fn lines_that_fit_the_memory_budget_only_one_at_a_time_are_all_answered() {
    let fixture = dev_host();
    // Each line is charged about 6 MiB of the 8: the next waits for the last response
    // to leave, which must not wait for the next.
    let payload = format!(r#"{{"s":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let mut input = Vec::new();
    for n in 0..3 {
        input.extend_from_slice(request_line(n, "echo_node", "local.echo", &payload).as_bytes());
        input.push(b'\n');
    }
    let run = run(
        DEVELOPMENT,
        &["--stdin", "--memory-budget", "8", "runtime/dev.yaml"],
        fixture.root(),
        &input,
        &[],
    );
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    assert_eq!(run.lines().len(), 3);
    assert!(
        run.lines()
            .iter()
            .all(|line| line.contains(r#""success":true"#))
    );
}

#[test]
fn a_line_heavier_than_the_whole_memory_budget_is_answered_unread() {
    let fixture = dev_host();
    // Half a million numbers: some 32 MiB once parsed, from 1 MiB of text.
    let numbers = format!(r#"{{"a":[{}0]}}"#, "0,".repeat(512 * 1024));
    let mut input = request_line(1, "echo_node", "local.echo", &numbers).into_bytes();
    input.push(b'\n');
    input.extend_from_slice(request_line(2, "echo_node", "local.echo", "{}").as_bytes());
    input.push(b'\n');
    let run = run(
        DEVELOPMENT,
        &["--stdin", "--memory-budget", "16", "runtime/dev.yaml"],
        fixture.root(),
        &input,
        &[],
    );
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines.len(), 2);
    let refused: Value = serde_json::from_str(lines[0]).expect("JSON");
    assert_eq!(refused["error"]["code"], "ENVELOPE_VALIDATION_ERROR");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("more than this host's memory budget of 16777216 bytes"),
        "{message}"
    );
    let next: Value = serde_json::from_str(lines[1]).expect("JSON");
    assert_eq!(next["success"], true);
}

#[test]
fn an_oversized_line_is_answered_and_the_next_line_still_served() {
    let fixture = dev_host();
    let mut input = vec![b'x'; 9 * 1024 * 1024];
    input.push(b'\n');
    input.extend_from_slice(request_line(1, "echo_node", "local.echo", "{}").as_bytes());
    input.push(b'\n');
    let run = serve_stdin(DEVELOPMENT, fixture.root(), "runtime/dev.yaml", &input);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        parse(lines[0])["error"]["message"],
        "invalid envelope: the envelope is larger than the limit of 8388608 bytes"
    );
    assert_eq!(parse(lines[1])["success"], true);
}

/// Pipes are read and written on the host's reactor, through descriptions the host opens
/// for itself: the pipes it was handed stay blocking for everyone sharing them (the shell
/// that made them, its own stderr under `2>&1`), and hold 1 MiB instead of Linux's
/// 64 KiB, so the host and the programs at the other ends do not take turns. A file
/// reads through a helper thread; both give the same answers.
#[test]
fn pipes_handed_to_the_host_stay_blocking_and_grow_and_a_file_gives_the_same_answers() {
    use rustix::fs::{OFlags, fcntl_getfl};
    use rustix::pipe::fcntl_getpipe_size;
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    let fixture = dev_host();
    let count = 200u32;
    let input: String = (0..count)
        .map(|n| request_line(n, "echo_node", "local.echo", &format!("{{\"n\":{n}}}")) + "\n")
        .collect();
    let answers = |lines: Vec<String>| -> Vec<(Value, Value)> {
        lines
            .iter()
            .map(|line| {
                let response = parse(line);
                (
                    response["correlation_id"].clone(),
                    response["payload"].clone(),
                )
            })
            .collect()
    };
    let args = ["--stdin", "--log-level", "warn", "runtime/dev.yaml"];

    let (stdin_read, mut stdin_write) = std::io::pipe().expect("a pipe");
    let (stdout_read, stdout_write) = std::io::pipe().expect("a pipe");
    let mut child = Command::new(DEVELOPMENT)
        .args(args)
        .current_dir(fixture.root())
        .stdin(stdin_read.try_clone().expect("a copy"))
        .stdout(stdout_write.try_clone().expect("a copy"))
        .stderr(Stdio::null())
        .spawn()
        .expect("the host starts");
    stdin_write.write_all(input.as_bytes()).expect("written");
    drop(stdin_write);
    // This test keeps a copy of the write end, so the answers are read by count, not to
    // EOF, on a thread: a host that answered fewer must fail the test, not hang it.
    let (answered, answers_read) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(stdout_read)
            .lines()
            .take(count as usize)
            .map_while(Result::ok)
            .collect();
        let _ = answered.send(lines);
    });
    let Ok(from_pipes) = answers_read.recv_timeout(std::time::Duration::from_secs(60)) else {
        let _ = child.kill();
        panic!("the host did not answer {count} lines within 60 s");
    };
    assert!(child.wait().expect("the host exits").success());
    for (end, flags) in [
        ("stdin", fcntl_getfl(&stdin_read)),
        ("stdout", fcntl_getfl(&stdout_write)),
    ] {
        let flags = flags.expect("the flags");
        assert!(
            !flags.contains(OFlags::NONBLOCK),
            "{end} was left non-blocking"
        );
    }
    for (end, size) in [
        ("stdin", fcntl_getpipe_size(&stdin_read)),
        ("stdout", fcntl_getpipe_size(&stdout_write)),
    ] {
        assert_eq!(size.expect("the pipe's size"), 1 << 20, "{end}");
    }

    let file = fixture.root().join("requests.jsonl");
    std::fs::write(&file, &input).expect("the request file");
    let output = Command::new(DEVELOPMENT)
        .args(args)
        .current_dir(fixture.root())
        .stdin(std::fs::File::open(&file).expect("the request file"))
        .stderr(Stdio::null())
        .output()
        .expect("the host runs");
    assert!(output.status.success());
    let from_file: Vec<String> = String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(from_pipes.len(), count as usize);
    assert_eq!(answers(from_pipes), answers(from_file));
}
