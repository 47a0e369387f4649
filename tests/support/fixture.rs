//! Contract files in a temporary directory, laid out like the repository's `contracts/`.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// A temporary directory of contract files, removed when dropped.
pub struct Fixture {
    dir: TempDir,
}

impl Fixture {
    /// An empty fixture directory.
    pub fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// Writes `text` to `relative` (creating its directories) and returns the fixture.
    pub fn with(self, relative: &str, text: &str) -> Self {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("fixture directories");
        std::fs::write(&path, text).expect("a fixture file");
        self
    }

    /// The absolute path of `relative` inside the fixture.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The fixture's root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// A runtime contract named `name` with the given handler types and node slugs.
pub fn runtime(name: &str, handlers: &[&str], nodes: &[&str]) -> String {
    let list = |items: Vec<String>| {
        if items.is_empty() {
            " []\n".to_owned()
        } else {
            format!("\n{}", items.concat())
        }
    };
    let handlers = list(
        handlers
            .iter()
            .map(|h| format!("    - type: \"{h}\"\n"))
            .collect(),
    );
    let nodes = list(
        nodes
            .iter()
            .map(|n| format!("    - slug: \"{n}\"\n"))
            .collect(),
    );
    format!(
        "schema_version: \"1.0.0\"\nruntime:\n  name: \"{name}\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"inmemory\"\n  handlers:{handlers}  nodes:{nodes}"
    )
}

/// A node contract named `name` declaring `operations` of `handler_type`.
pub fn node(name: &str, handler_type: &str, operations: &[&str]) -> String {
    let operations: Vec<String> = operations.iter().map(|op| format!("\"{op}\"")).collect();
    format!(
        "schema_version: \"1.0.0\"\nnode_version: \"1.0.0\"\nname: \"{name}\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"{handler_type}\"\n    operations: [{}]\n",
        operations.join(", ")
    )
}

/// A fixture with a dev runtime contract (`runtime/dev.yaml`) hosting `echo_node`
/// (local.echo, local.error) and `upper_node` (local.transform).
pub fn dev_host() -> Fixture {
    Fixture::new()
        .with(
            "runtime/dev.yaml",
            &runtime("dev_host", &["local"], &["echo_node", "upper_node"]),
        )
        .with(
            "nodes/echo_node.yaml",
            &node("echo_node", "local", &["local.echo", "local.error"]),
        )
        .with(
            "nodes/upper_node.yaml",
            &node("upper_node", "local", &["local.transform"]),
        )
}
