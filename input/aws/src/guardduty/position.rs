//! Where the findings of one detector are read next: `since` (the `updatedAt` the next ListFindings starts at,
//! inclusive) and the versions already sent at or after it (finding id -> its `updatedAt`), so that a finding is
//! sent again only when it was updated.
//!
//! `since` moves only to an `updatedAt` that cannot hide an unread finding: ListFindings is sorted by `updatedAt`
//! when it is listed, but GetFindings returns the finding as it is when asked, so a finding updated during the
//! listing shows a newer `updatedAt` than its place in the list. Only the versions not newer than the listing's
//! start move `since`; a newer one is remembered (not sent twice) and read again from the list later.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Position of one detector's findings (stored in the puller's state).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorPosition {
    /// The ListFindings filter: `updatedAt >= since` (epoch milliseconds).
    pub since: i64,
    /// Versions sent with `updatedAt >= since`: finding id -> `updatedAt` (epoch milliseconds).
    pub sent: BTreeMap<String, i64>,
}

impl DetectorPosition {
    pub fn starting_at(since: i64) -> DetectorPosition {
        DetectorPosition {
            since,
            sent: BTreeMap::new(),
        }
    }

    /// True when this version of the finding was sent before (then it is not sent again).
    pub fn already_sent(&self, id: &str, updated_at: i64) -> bool {
        updated_at < self.since || self.sent.get(id).is_some_and(|t| *t >= updated_at)
    }

    /// Records a version as sent.
    pub fn record(&mut self, id: &str, updated_at: i64) {
        self.sent.insert(id.to_owned(), updated_at);
    }

    /// After a batch is in Redis: `since` moves to the newest `updatedAt` of the batch that is not newer than
    /// the listing's start (`listed_at`), and the versions older than it are forgotten.
    pub fn advance(&mut self, batch: &[i64], listed_at: i64) {
        if let Some(newest) = batch.iter().copied().filter(|t| *t <= listed_at).max() {
            self.since = self.since.max(newest);
        }
        let since = self.since;
        self.sent.retain(|_, t| *t >= since);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_sent_once_and_an_update_again() {
        let mut p = DetectorPosition::starting_at(1_000);
        assert!(!p.already_sent("a", 1_000), "since is inclusive");
        assert!(p.already_sent("a", 999));
        p.record("a", 1_000);
        assert!(p.already_sent("a", 1_000));
        assert!(
            !p.already_sent("a", 1_500),
            "updated later: its new version"
        );
        p.record("a", 1_500);
        p.record("b", 1_200);
        p.advance(&[1_200, 1_500], 2_000);
        assert_eq!(p.since, 1_500);
        assert_eq!(
            p.sent.keys().collect::<Vec<_>>(),
            ["a"],
            "b is older than since"
        );
        assert!(
            p.already_sent("a", 1_500),
            "the edge version is not sent twice"
        );
    }

    #[test]
    fn a_version_newer_than_the_listing_does_not_move_since() {
        let mut p = DetectorPosition::starting_at(0);
        p.record("a", 100);
        p.record("b", 9_000);
        p.advance(&[100, 9_000], 5_000);
        assert_eq!(
            p.since, 100,
            "b was updated while listed: findings between may be unread"
        );
        assert!(
            p.already_sent("b", 9_000),
            "b is remembered, not sent twice"
        );
        p.advance(&[], 5_000);
        assert_eq!(p.since, 100, "an empty batch moves nothing");
    }
}
