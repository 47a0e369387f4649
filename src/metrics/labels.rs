//! The request series' label values, as indices into closed sets fixed when the host is
//! built: the handler types, the operations the registered handlers describe, the
//! bindings, the outcomes.
//!
//! This module owns which values exist and which ones a request gets; the families and
//! the handles to their series are the `metrics` module's. A request's own text is only
//! ever looked up in these sets, never copied into a label, so a caller cannot grow the
//! registry. A request's binding is the one routing picks for its node and operation
//! ([`NodeRuntime::binding_for`]), found in a table built at start-up: each hosted node's
//! declared operations with all their labels, so a request costs a search of its node and
//! its operation there, not a hash.

use crate::envelope::operation_domain;
use crate::error::ErrorCode;
use crate::handler::HandlerType;
use crate::runtime::NodeRuntime;

/// Handler type label values: the known types, then `unknown`.
pub(super) const HANDLER_TYPES: usize = HandlerType::ALL.len() + 1;
/// Outcome label values: `success`, then every error code.
pub(super) const OUTCOMES: usize = ErrorCode::ALL.len() + 1;

/// The label values one envelope is counted under: the combination's index among every
/// combination of the closed sets, which names each value's index in its set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Labels {
    pub(super) series: usize,
}

/// The closed sets, and the labels of each hosted node's operations.
#[derive(Debug)]
pub(super) struct LabelSets {
    /// Every operation a registered handler supports, each once.
    operations: Vec<String>,
    /// Every binding's name (an unnamed one's is its type's), in the runtime's order.
    bindings: Vec<String>,
    /// Each hosted node's slug, in order, with its declared operations' labels.
    routes: Vec<(String, Vec<(String, Labels)>)>,
}

impl LabelSets {
    /// The sets of a host that runs `runtime`, whose handlers and nodes are all
    /// registered.
    pub(super) fn new(runtime: &NodeRuntime) -> Self {
        let mut operations: Vec<String> = Vec::new();
        for handler in runtime.handlers() {
            for operation in handler.describe().supported_operations {
                if !operations.contains(&operation) {
                    operations.push(operation);
                }
            }
        }
        let bindings = runtime
            .bindings()
            .map(|(name, _)| name.to_owned())
            .collect();
        let mut sets = LabelSets {
            operations,
            bindings,
            routes: Vec::new(),
        };
        // The runtime lists its nodes in slug order, which the search relies on.
        let routes = runtime
            .nodes()
            .map(|node| {
                let mut declared = node.contract().operations_of(None);
                declared.sort_unstable();
                declared.dedup();
                let labels = declared
                    .into_iter()
                    .map(|operation| {
                        let binding = runtime.binding_for(node.slug(), &operation);
                        let labels = sets.labels(
                            sets.handler_type(None, Some(&operation)),
                            binding.unwrap_or(sets.bindings.len()),
                            sets.operation(&operation),
                        );
                        (operation, labels)
                    })
                    .collect();
                (node.slug().to_owned(), labels)
            })
            .collect();
        sets.routes = routes;
        sets
    }

    /// How many label combinations there are (outcomes aside).
    pub(super) fn combinations(&self) -> usize {
        HANDLER_TYPES * (self.bindings.len() + 1) * (self.operations.len() + 1)
    }

    /// The labels of a request for `operation` of `handler_type` on the node `node`; with
    /// `node` `None` (input that was not a routable request), binding `none`.
    pub(super) fn of(
        &self,
        node: Option<&str>,
        handler_type: Option<&str>,
        operation: Option<&str>,
    ) -> Labels {
        // A routable request's handler type is its operation's (routing step 1), so the
        // node and the operation find its labels.
        if let (Some(node), Some(operation)) = (node, operation) {
            let routed = self
                .routes
                .binary_search_by(|(slug, _)| slug.as_str().cmp(node))
                .ok()
                .and_then(|at| self.routes[at].1.iter().find(|(op, _)| op == operation));
            if let Some((_, labels)) = routed {
                return *labels;
            }
        }
        let operation_at = operation.map_or(self.operations.len(), |op| self.operation(op));
        self.labels(
            self.handler_type(handler_type, operation),
            self.bindings.len(),
            operation_at,
        )
    }

    /// The label values `at` stands for: handler type, binding, operation.
    pub(super) fn names(&self, at: Labels) -> (&'static str, &str, &str) {
        let operations = self.operations.len() + 1;
        let (operation, rest) = (at.series % operations, at.series / operations);
        let (handler_type, binding) = (rest % HANDLER_TYPES, rest / HANDLER_TYPES);
        let handler_type = HandlerType::ALL
            .get(handler_type)
            .map_or("unknown", |t| t.as_str());
        let binding = self.bindings.get(binding).map_or("none", String::as_str);
        let operation = self
            .operations
            .get(operation)
            .map_or("other", String::as_str);
        (handler_type, binding, operation)
    }

    fn labels(&self, handler_type: usize, binding: usize, operation: usize) -> Labels {
        Labels {
            series: (binding * HANDLER_TYPES + handler_type) * (self.operations.len() + 1)
                + operation,
        }
    }

    fn handler_type(&self, given: Option<&str>, operation: Option<&str>) -> usize {
        given
            .or_else(|| operation.and_then(operation_domain))
            .and_then(HandlerType::from_name)
            .and_then(|known| HandlerType::ALL.iter().position(|t| *t == known))
            .unwrap_or(HandlerType::ALL.len())
    }

    fn operation(&self, operation: &str) -> usize {
        self.operations
            .iter()
            .position(|known| known == operation)
            .unwrap_or(self.operations.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::*;
    use crate::contract::NodeContract;
    use crate::envelope::Stamp;
    use crate::handlers::local::LocalHandler;
    use crate::runtime::NodeInstance;

    /// Two local bindings, `alpha` and `beta`, the unnamed one, and nodes `a` (on
    /// alpha), `b` (on beta) and `u` (on the unnamed one), each declaring local.echo.
    fn sets() -> LabelSets {
        let mut runtime = NodeRuntime::new(Stamp::deterministic(0));
        for binding in ["beta", "local", "alpha"] {
            let handler = Box::new(LocalHandler::new());
            runtime
                .register_binding(binding, handler)
                .expect("registers");
        }
        for (slug, binding) in [("b", Some("beta")), ("a", Some("alpha")), ("u", None)] {
            let binding = binding.map_or(String::new(), |b| format!("    binding: \"{b}\"\n"));
            let text = format!(
                "schema_version: \"1.1.0\"\nnode_version: \"1.0.0\"\nname: \"{slug}\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"local\"\n{binding}    operations: [\"local.echo\"]\n"
            );
            let contract = NodeContract::parse(&text, Path::new("n.yaml")).expect("valid");
            runtime
                .register_node(NodeInstance::new(contract))
                .expect("registers");
        }
        LabelSets::new(&runtime)
    }

    fn names(sets: &LabelSets, node: Option<&str>, handler_type: Option<&str>, op: &str) -> String {
        let (handler_type, binding, operation) = sets.names(sets.of(node, handler_type, Some(op)));
        format!("{handler_type} {binding} {operation}")
    }

    #[test]
    fn a_request_is_labelled_with_the_binding_routing_picks_for_its_node() {
        let sets = sets();
        assert_eq!(
            names(&sets, Some("a"), None, "local.echo"),
            "local alpha local.echo"
        );
        assert_eq!(
            names(&sets, Some("b"), Some("local"), "local.echo"),
            "local beta local.echo"
        );
        assert_eq!(
            names(&sets, Some("u"), None, "local.echo"),
            "local local local.echo"
        );
        // Operations are labelled once, though three bindings describe them.
        assert_eq!(sets.operations.len(), 3);
    }

    #[test]
    fn requests_no_binding_runs_are_labelled_none_and_values_come_from_closed_sets() {
        let sets = sets();
        let none = [
            (Some("ghost"), None, "local.echo", "local none local.echo"),
            (
                Some("a"),
                None,
                "local.transform",
                "local none local.transform",
            ),
            (Some("a"), None, "vault.read", "unknown none other"),
            (None, None, "local.echo", "local none local.echo"),
        ];
        for (node, handler_type, op, expected) in none {
            assert_eq!(
                names(&sets, node, handler_type, op),
                expected,
                "{node:?} {op}"
            );
        }
        let (handler_type, binding, operation) = sets.names(sets.of(None, None, None));
        assert_eq!(
            (handler_type, binding, operation),
            ("unknown", "none", "other")
        );
    }

    #[test]
    fn every_combination_has_its_own_series_which_names_its_values() {
        let sets = sets();
        let mut seen = HashSet::new();
        for handler_type in 0..HANDLER_TYPES {
            for binding in 0..=sets.bindings.len() {
                for operation in 0..=sets.operations.len() {
                    let at = sets.labels(handler_type, binding, operation);
                    assert!(at.series < sets.combinations());
                    seen.insert(at.series);
                    let names = sets.names(at);
                    let handler_types: Vec<&str> =
                        HandlerType::ALL.iter().map(|t| t.as_str()).collect();
                    assert_eq!(
                        handler_types.get(handler_type).copied(),
                        Some(names.0).filter(|n| *n != "unknown")
                    );
                    assert_eq!(
                        sets.bindings.get(binding).map(String::as_str),
                        Some(names.1).filter(|n| *n != "none")
                    );
                    assert_eq!(
                        sets.operations.get(operation).map(String::as_str),
                        Some(names.2).filter(|n| *n != "other")
                    );
                }
            }
        }
        assert_eq!(seen.len(), sets.combinations());
    }
}
