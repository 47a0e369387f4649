//! Where a node's contract lets an HTTP operation go: anywhere, under one of its declared
//! targets, or nowhere. The node's own check (routing step 3) and the http handler (every
//! redirect hop) ask the same question, so it is answered here once.

use std::sync::Arc;

use super::node::NodeContract;
use super::target::HttpTarget;

/// Where a node's contract lets an operation reach a URL ([`NodeContract::reach`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Reach<'a> {
    /// Anywhere: an entry declaring the operation has no target.
    Anywhere,
    /// Under this target, the first declared one that admits the URL.
    Within(&'a HttpTarget),
    /// Outside every declared target (these).
    Outside(Vec<&'a Arc<HttpTarget>>),
}

impl NodeContract {
    /// Where the node's contract lets `operation` reach `url`: anywhere when an entry
    /// declaring the operation has no `target`, else under the first declared target that
    /// admits the URL, if any.
    pub fn reach(&self, operation: &str, url: &str) -> Reach<'_> {
        let declaring = self
            .io_operations
            .iter()
            .filter(|entry| entry.operations.iter().any(|op| op == operation));
        let mut targets = Vec::new();
        for entry in declaring {
            match &entry.target {
                None => return Reach::Anywhere,
                Some(target) => targets.push(target),
            }
        }
        match targets.iter().find(|target| target.admits(url)) {
            Some(target) => Reach::Within(target),
            None => Reach::Outside(targets),
        }
    }
}
