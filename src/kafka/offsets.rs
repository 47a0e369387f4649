//! Where the host may commit in each partition it owns: up to the lowest offset not yet
//! answered, never past it.
//!
//! Records of one partition are handed out in offset order but may be answered in any
//! order (several in flight). Committing offset N tells the group that everything before
//! N is done, so N is the lowest offset still in flight, or one past the last one handed
//! out when none is. A partition revoked and assigned again starts a new generation:
//! receipts of the old one settle nothing.

use std::collections::{BTreeSet, HashMap};

/// The state of the partitions this host owns.
#[derive(Debug, Default)]
pub(super) struct Offsets {
    partitions: HashMap<i32, Partition>,
    /// Counts assignments, so that a receipt can tell whether its partition was revoked
    /// since it was handed out.
    generations: u64,
}

#[derive(Debug)]
struct Partition {
    generation: u64,
    in_flight: BTreeSet<i64>,
    /// One past the highest offset handed out.
    next: i64,
    /// The highest offset stored for commit so far.
    stored: i64,
}

impl Offsets {
    /// `partition` is this host's now.
    pub(super) fn assign(&mut self, partition: i32) {
        self.generations += 1;
        self.partitions.insert(
            partition,
            Partition {
                generation: self.generations,
                in_flight: BTreeSet::new(),
                next: -1,
                stored: -1,
            },
        );
    }

    /// `partition` is no longer this host's: what it has in flight will commit nothing.
    pub(super) fn revoke(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// The partitions this host owns, in order.
    pub(super) fn owned(&self) -> Vec<i32> {
        let mut owned: Vec<i32> = self.partitions.keys().copied().collect();
        owned.sort_unstable();
        owned
    }

    /// Record `offset` of `partition` handed out; returns its generation, or `None` if the
    /// partition is not this host's (a record fetched just before a revoke).
    pub(super) fn handed_out(&mut self, partition: i32, offset: i64) -> Option<u64> {
        let state = self.partitions.get_mut(&partition)?;
        if state.stored < 0 {
            // The group's committed position: where this partition's records began.
            state.stored = offset;
        }
        state.in_flight.insert(offset);
        state.next = state.next.max(offset + 1);
        Some(state.generation)
    }

    /// Record `offset` of `partition` (handed out in `generation`) answered; returns the
    /// offset to commit if it moved.
    pub(super) fn answered(&mut self, partition: i32, offset: i64, generation: u64) -> Option<i64> {
        let state = self.partitions.get_mut(&partition)?;
        if state.generation != generation || !state.in_flight.remove(&offset) {
            return None;
        }
        let commit = state.in_flight.first().copied().unwrap_or(state.next);
        (commit > state.stored).then(|| {
            state.stored = commit;
            commit
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_up_to_the_lowest_offset_in_flight() {
        let mut offsets = Offsets::default();
        offsets.assign(0);
        let generation = offsets.handed_out(0, 10).expect("owned");
        for offset in 11..=13 {
            offsets.handed_out(0, offset);
        }
        // 12 and 13 done first: 10 is still in flight, nothing moves.
        assert_eq!(offsets.answered(0, 12, generation), None);
        assert_eq!(offsets.answered(0, 13, generation), None);
        // 10 done: everything before 11 is.
        assert_eq!(offsets.answered(0, 10, generation), Some(11));
        // 11 done: nothing in flight, commit past the last handed out.
        assert_eq!(offsets.answered(0, 11, generation), Some(14));
        // Answering twice moves nothing.
        assert_eq!(offsets.answered(0, 11, generation), None);
    }

    #[test]
    fn partitions_are_independent() {
        let mut offsets = Offsets::default();
        offsets.assign(0);
        offsets.assign(1);
        let zero = offsets.handed_out(0, 5).expect("owned");
        let one = offsets.handed_out(1, 7).expect("owned");
        offsets.handed_out(0, 6);
        assert_eq!(offsets.answered(1, 7, one), Some(8));
        assert_eq!(offsets.answered(0, 6, zero), None);
        assert_eq!(offsets.answered(0, 5, zero), Some(7));
        assert_eq!(offsets.owned(), [0, 1]);
    }

    #[test]
    fn a_revoked_partition_commits_nothing_even_once_assigned_again() {
        let mut offsets = Offsets::default();
        offsets.assign(3);
        let old = offsets.handed_out(3, 100).expect("owned");
        offsets.revoke(3);
        assert_eq!(offsets.answered(3, 100, old), None);
        assert_eq!(offsets.handed_out(3, 101), None);
        offsets.assign(3);
        let new = offsets.handed_out(3, 100).expect("owned again");
        assert_ne!(old, new);
        // The old generation's receipt for the same offset settles nothing.
        assert_eq!(offsets.answered(3, 100, old), None);
        assert_eq!(offsets.answered(3, 100, new), Some(101));
        assert!(offsets.owned() == [3]);
    }
}
