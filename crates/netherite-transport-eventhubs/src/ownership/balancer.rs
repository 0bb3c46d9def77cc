//! The balancing rule as pure code: records and the time in, claims out; claims' outcomes in,
//! proposals out.
//!
//! A record is *live* when it names an owner and was written less than the expiry ago;
//! partitions without a live record are *free*. The nodes a node can see are the owners of
//! live records, and itself. With `P` partitions and `N` such nodes, a fair share is between
//! `floor(P/N)` and `ceil(P/N)`. Each round a node:
//!
//! 1. renews every live record that names it;
//! 2. claims free partitions until it holds `ceil(P/N)`, preferring those it held before, then
//!    an order particular to the node (a hash of its id and the partition), so that nodes
//!    starting together reach for different partitions first;
//! 3. steals one partition from the node holding the most, when that node holds more than
//!    its share and this one less: below `floor(P/N)` against an owner above it, or below
//!    `ceil(P/N)` against an owner above that. One steal per round keeps partitions from
//!    moving back and forth while the nodes' views settle.
//!
//! A node that holds nothing is invisible to the others until it steals its first partition,
//! so a newcomer takes its share one round at a time, and the owners it takes from notice at
//! their next renewal (a conflict).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use netherite_core::PartitionId;
use netherite_core::transport::{NodeId, Ownership};

use super::{ETag, OwnershipRecord};

/// Why a partition is claimed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// This node owns it and keeps it alive.
    Renew,
    /// Nobody owns it (no record, released, or expired).
    Free,
    /// Its owner holds more than its share.
    Steal(NodeId),
}

/// One conditional write a round decided on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Claim {
    /// The partition.
    pub(crate) partition: PartitionId,
    /// The ETag the record must still have; `None`: no record may exist yet.
    pub(crate) expected: Option<ETag>,
    /// Why.
    pub(crate) reason: Reason,
}

/// What became of a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Written; the record as it is now.
    Won(OwnershipRecord),
    /// Someone else wrote first.
    Conflict,
    /// Unknown: the store failed.
    Failed,
}

/// A partition this node holds, and when its record was last written.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Holding {
    etag: ETag,
    written: SystemTime,
}

/// One node's side of the balancing: what it holds, and the rule.
#[derive(Debug)]
pub(crate) struct Balancer {
    me: NodeId,
    partitions: u32,
    expiry: Duration,
    held: BTreeMap<PartitionId, Holding>,
}

/// The partitions as one listing shows them, from this node's side.
#[derive(Debug, Default)]
struct View {
    mine: Vec<(PartitionId, ETag)>,
    free: Vec<(PartitionId, Option<ETag>)>,
    theirs: BTreeMap<NodeId, Vec<(PartitionId, ETag)>>,
}

impl Balancer {
    /// The balancer of node `me` over `partitions` partitions, with records living `expiry`.
    pub(crate) fn new(me: NodeId, partitions: u32, expiry: Duration) -> Balancer {
        Balancer {
            me,
            partitions,
            expiry,
            held: BTreeMap::new(),
        }
    }

    /// The node this balancer speaks for.
    pub(crate) fn node(&self) -> &NodeId {
        &self.me
    }

    /// The partitions held now, in order.
    #[cfg(test)]
    pub(crate) fn held(&self) -> Vec<PartitionId> {
        self.held.keys().copied().collect()
    }

    /// The claims of one round, given the records listed at `now`.
    pub(crate) fn plan(&self, records: &[OwnershipRecord], now: SystemTime) -> Vec<Claim> {
        let mut view = self.view(records, now);
        let renew = |(partition, etag): &(PartitionId, ETag)| Claim {
            partition: *partition,
            expected: Some(etag.clone()),
            reason: Reason::Renew,
        };
        let mut claims: Vec<Claim> = view.mine.iter().map(renew).collect();

        let (low, high) = share(self.partitions, view.theirs.len() + 1);
        let room = high.saturating_sub(count(&view.mine)) as usize;
        view.free
            .sort_by_key(|(p, _)| (!self.held.contains_key(p), spread(&self.me, *p)));
        let free = view
            .free
            .into_iter()
            .take(room)
            .map(|(partition, expected)| Claim {
                partition,
                expected,
                reason: Reason::Free,
            });
        claims.extend(free);

        let planned = u32::try_from(claims.len()).unwrap_or(u32::MAX);
        claims.extend(self.steal(&view.theirs, planned, (low, high)));
        claims
    }

    /// Takes in what became of a round's claims at `now`; returns the proposals, losses first.
    ///
    /// A partition won back under another ETag than the one this node held was written by
    /// someone else in between: it is proposed lost, then acquired, so that the host restarts.
    pub(crate) fn settle(
        &mut self,
        outcomes: Vec<(Claim, Outcome)>,
        now: SystemTime,
    ) -> Vec<Ownership> {
        let (mut next, mut kept) = (BTreeMap::new(), BTreeSet::new());
        for (claim, outcome) in outcomes {
            let held = self.held.get(&claim.partition);
            let unbroken = held.is_some_and(|h| claim.expected.as_ref() == Some(&h.etag));
            match outcome {
                Outcome::Won(record) if record.owner.as_ref() == Some(&self.me) => {
                    let holding = Holding {
                        etag: record.etag,
                        written: record.last_modified,
                    };
                    next.insert(claim.partition, holding);
                }
                Outcome::Won(_) | Outcome::Conflict => continue,
                Outcome::Failed => match held.filter(|h| !self.expired(h.written, now)) {
                    Some(holding) => {
                        next.insert(claim.partition, holding.clone());
                    }
                    None => continue,
                },
            }
            if unbroken {
                kept.insert(claim.partition);
            }
        }
        self.replace(next, &kept)
    }

    /// A round whose listing failed at `now`: keeps what has not expired yet.
    pub(crate) fn lapse(&mut self, now: SystemTime) -> Vec<Ownership> {
        let alive = |(_, h): &(&PartitionId, &Holding)| !self.expired(h.written, now);
        let next = self.held.iter().filter(alive);
        let next: BTreeMap<_, _> = next.map(|(p, h)| (*p, h.clone())).collect();
        let kept = next.keys().copied().collect();
        self.replace(next, &kept)
    }

    /// The writes that give every held partition back, and forgets them.
    pub(crate) fn release(&mut self) -> Vec<Claim> {
        let held = std::mem::take(&mut self.held);
        let release = |(partition, holding): (PartitionId, Holding)| Claim {
            partition,
            expected: Some(holding.etag),
            reason: Reason::Free,
        };
        held.into_iter().map(release).collect()
    }

    fn view(&self, records: &[OwnershipRecord], now: SystemTime) -> View {
        let mut view = View::default();
        let mut listed: BTreeMap<PartitionId, &OwnershipRecord> = BTreeMap::new();
        for record in records.iter().filter(|r| r.partition.0 < self.partitions) {
            listed.insert(record.partition, record);
        }
        for partition in (0..self.partitions).map(PartitionId) {
            let Some(record) = listed.get(&partition) else {
                view.free.push((partition, None));
                continue;
            };
            let etag = record.etag.clone();
            match &record.owner {
                Some(owner) if !self.expired(record.last_modified, now) => {
                    if *owner == self.me {
                        view.mine.push((partition, etag));
                    } else {
                        view.theirs
                            .entry(owner.clone())
                            .or_default()
                            .push((partition, etag));
                    }
                }
                _ => view.free.push((partition, Some(etag))),
            }
        }
        view
    }

    /// One partition to take from the most loaded owner, if the rule allows.
    fn steal(
        &self,
        theirs: &BTreeMap<NodeId, Vec<(PartitionId, ETag)>>,
        planned: u32,
        (low, high): (u32, u32),
    ) -> Option<Claim> {
        // The most partitions wins; among equals the first in id order, for every node alike.
        let (victim, owned) = theirs.iter().rev().max_by_key(|(_, owned)| owned.len())?;
        let load = count(owned);
        let wanted = (planned < low && load > low) || (planned < high && load > high);
        if !wanted {
            return None;
        }
        let (partition, etag) = owned.iter().min_by_key(|(p, _)| spread(&self.me, *p))?;
        Some(Claim {
            partition: *partition,
            expected: Some(etag.clone()),
            reason: Reason::Steal(victim.clone()),
        })
    }

    /// Holds `next` from now on, `kept` without a break; the proposals that take the watchers
    /// there.
    fn replace(
        &mut self,
        next: BTreeMap<PartitionId, Holding>,
        kept: &BTreeSet<PartitionId>,
    ) -> Vec<Ownership> {
        let lost = self.held.keys().filter(|p| !kept.contains(p));
        let mut proposals: Vec<Ownership> = lost.map(|p| Ownership::Lost(*p)).collect();
        let gained = next.keys().filter(|p| !kept.contains(p));
        proposals.extend(gained.map(|p| Ownership::Acquired(*p)));
        for proposal in &proposals {
            tracing::info!(node = %self.me, ?proposal, "ownership changed");
        }
        self.held = next;
        proposals
    }

    fn expired(&self, written: SystemTime, now: SystemTime) -> bool {
        now.duration_since(written)
            .is_ok_and(|age| age >= self.expiry)
    }
}

/// The fair share of `partitions` among `nodes`: at least the first, at most the second.
pub(crate) fn share(partitions: u32, nodes: usize) -> (u32, u32) {
    let nodes = u32::try_from(nodes.max(1)).unwrap_or(u32::MAX);
    let low = partitions / nodes;
    (low, low + u32::from(!partitions.is_multiple_of(nodes)))
}

fn count<T>(items: &[T]) -> u32 {
    u32::try_from(items.len()).unwrap_or(u32::MAX)
}

/// A node's own order of partitions: FNV-1a over its id and the partition number.
fn spread(node: &NodeId, partition: PartitionId) -> u32 {
    let bytes = node.0.bytes().chain(partition.0.to_le_bytes());
    bytes.fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn record(partition: u32, owner: Option<&str>, written: u64) -> OwnershipRecord {
        OwnershipRecord {
            partition: PartitionId(partition),
            owner: owner.map(NodeId::new),
            etag: ETag(format!("e{partition}")),
            last_modified: at(written),
        }
    }

    fn summary(claims: &[Claim]) -> Vec<(u32, Reason)> {
        claims
            .iter()
            .map(|c| (c.partition.0, c.reason.clone()))
            .collect()
    }

    /// Shares: P partitions over N nodes, between floor and ceiling.
    #[test]
    fn fair_shares() {
        assert_eq!(share(12, 1), (12, 12));
        assert_eq!(share(12, 5), (2, 3));
        assert_eq!(share(4, 4), (1, 1));
        assert_eq!(share(1, 2), (0, 1));
        assert_eq!(share(3, 0), (3, 3));
    }

    /// A round renews its own live records, takes free ones (expired or released count as
    /// free) up to its share, and leaves others' live records alone.
    #[test]
    fn a_round_renews_and_takes_free_partitions_up_to_its_share() {
        let me = Balancer::new(NodeId::new("a"), 6, Duration::from_secs(30));
        let records = [
            record(0, Some("a"), 90),
            record(1, Some("b"), 90),
            record(2, Some("b"), 50),
            record(3, None, 95),
        ];
        let claims = me.plan(&records, at(100));
        // Nodes seen: a and b (b's record 2 expired); a's share of 6 over 2 is 3.
        assert_eq!(summary(&claims[..1]), vec![(0, Reason::Renew)]);
        let free = &claims[1..];
        assert_eq!(free.len(), 2, "{claims:?}");
        for claim in free {
            let expected = match claim.partition.0 {
                2 => Some(ETag("e2".into())),
                3 => Some(ETag("e3".into())),
                4 | 5 => None,
                p => panic!("claimed partition {p}, which b holds"),
            };
            assert_eq!(claim.reason, Reason::Free);
            assert_eq!(claim.expected, expected);
        }
    }

    /// A node below its share steals one partition from the most loaded owner, and only one
    /// per round; an owner at its share is left alone.
    #[test]
    fn an_underloaded_node_steals_one_partition_per_round() {
        let me = Balancer::new(NodeId::new("c"), 4, Duration::from_secs(30));
        let loaded = [
            record(0, Some("a"), 99),
            record(1, Some("a"), 99),
            record(2, Some("a"), 99),
            record(3, Some("b"), 99),
        ];
        let claims = me.plan(&loaded, at(100));
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].reason, Reason::Steal(NodeId::new("a")));
        assert!(claims[0].partition.0 <= 2);

        let balanced = [
            record(0, Some("a"), 99),
            record(1, Some("a"), 99),
            record(2, Some("b"), 99),
            record(3, Some("c"), 99),
        ];
        assert_eq!(
            summary(&me.plan(&balanced, at(100))),
            vec![(3, Reason::Renew)]
        );
    }

    /// One partition between two nodes stays where it is: nobody is above a share of 0 to 1.
    #[test]
    fn a_single_partition_does_not_bounce() {
        let me = Balancer::new(NodeId::new("b"), 1, Duration::from_secs(30));
        assert!(me.plan(&[record(0, Some("a"), 99)], at(100)).is_empty());
    }
}
