//! When a delivery may be acknowledged (sans-IO): only after the PUBACKs of everything
//! published while handling it, and in the order the deliveries were handled (MQTT 3.1.1
//! requires PUBACKs in the order the PUBLISHes arrived).
//!
//! The client writes requests in the order they are made, so the n-th outgoing PUBLISH
//! is the n-th publish requested: that gives its packet id, and the PUBACK with that id
//! settles it. A QoS 1 packet id seen again before its PUBACK is a resend after a
//! reconnection, not a new publish. Deliveries of an earlier connection are never acked
//! (their packet ids may mean other messages now); the broker redelivers them.

use std::collections::{HashMap, VecDeque};
use std::vec::Vec;

/// A group of publishes made while handling one delivery (or a timer, or a restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupId(u64);

/// What an outgoing publish was requested for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Part of a group.
    Group(GroupId),
    /// Not awaited (discovery, verdicts).
    Untracked,
    /// A discovery message (QoS 0): written means sent.
    Discovery,
}

#[derive(Debug)]
struct Group {
    id: GroupId,
    /// (packet id, connection epoch) of the delivery to ack, if any.
    incoming: Option<(u16, u64)>,
    outstanding: usize,
    closed: bool,
}

/// The state: publishes requested, in flight, and groups in handling order.
#[derive(Debug, Default)]
pub struct Acks {
    requested: VecDeque<Slot>,
    inflight: HashMap<u16, Slot>,
    groups: VecDeque<Group>,
    next: u64,
    epoch: u64,
}

impl Acks {
    /// The current connection's number; deliveries carry the epoch they arrived in.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The connection was re-established: deliveries of earlier ones are not acked.
    pub fn reconnected(&mut self) {
        self.epoch += 1;
    }

    /// Opens a group for handling the delivery with packet id `pkid` received in
    /// connection `epoch` (`None`: nothing to ack, e.g. a timer call).
    pub fn begin(&mut self, incoming: Option<(u16, u64)>) -> GroupId {
        let id = GroupId(self.next);
        self.next += 1;
        self.groups.push_back(Group {
            id,
            incoming: incoming.filter(|(pkid, _)| *pkid != 0),
            outstanding: 0,
            closed: false,
        });
        id
    }

    /// A publish was requested (in this order) for `slot`.
    pub fn requested(&mut self, slot: Slot) {
        if let Slot::Group(id) = slot
            && let Some(g) = self.groups.iter_mut().find(|g| g.id == id)
        {
            g.outstanding += 1;
        }
        self.requested.push_back(slot);
    }

    /// A publish request failed before it was queued: forget the last one requested.
    pub fn unrequest(&mut self) {
        if let Some(Slot::Group(id)) = self.requested.pop_back()
            && let Some(g) = self.groups.iter_mut().find(|g| g.id == id)
        {
            g.outstanding = g.outstanding.saturating_sub(1);
        }
    }

    /// The group's publishes are all requested; returns the packet ids to ack now.
    pub fn close(&mut self, id: GroupId) -> Vec<u16> {
        if let Some(g) = self.groups.iter_mut().find(|g| g.id == id) {
            g.closed = true;
        }
        self.ready()
    }

    /// An outgoing PUBLISH with packet id `pkid` (0 at QoS 0) was written; returns
    /// what it was for, or `None` for a resend.
    pub fn written(&mut self, pkid: u16) -> Option<Slot> {
        if pkid != 0 && self.inflight.contains_key(&pkid) {
            return None;
        }
        let slot = self.requested.pop_front()?;
        if pkid != 0 {
            self.inflight.insert(pkid, slot);
        } else {
            self.settle(slot);
        }
        Some(slot)
    }

    /// The PUBACK of `pkid` arrived; returns the packet ids to ack now.
    pub fn puback(&mut self, pkid: u16) -> Vec<u16> {
        if let Some(slot) = self.inflight.remove(&pkid) {
            self.settle(slot);
        }
        self.ready()
    }

    /// Whether nothing is waiting for the broker.
    pub fn idle(&self) -> bool {
        self.groups.is_empty() && self.inflight.is_empty() && self.requested.is_empty()
    }

    fn settle(&mut self, slot: Slot) {
        if let Slot::Group(id) = slot
            && let Some(g) = self.groups.iter_mut().find(|g| g.id == id)
        {
            g.outstanding = g.outstanding.saturating_sub(1);
        }
    }

    fn ready(&mut self) -> Vec<u16> {
        let mut out = Vec::new();
        while let Some(g) = self.groups.front() {
            if !g.closed || g.outstanding > 0 {
                break;
            }
            if let Some((pkid, epoch)) = g.incoming
                && epoch == self.epoch
            {
                out.push(pkid);
            }
            self.groups.pop_front();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn acks_wait_for_every_puback_and_keep_delivery_order() {
        let mut a = Acks::default();
        let first = a.begin(Some((7, 0)));
        a.requested(Slot::Group(first));
        a.requested(Slot::Group(first));
        assert_eq!(a.close(first), Vec::<u16>::new());
        let second = a.begin(Some((8, 0)));
        a.requested(Slot::Group(second));
        a.requested(Slot::Discovery);
        assert_eq!(a.close(second), Vec::<u16>::new());
        let nothing = a.begin(Some((9, 0)));
        assert_eq!(a.close(nothing), Vec::<u16>::new(), "waits behind 7 and 8");
        assert_eq!(a.written(1), Some(Slot::Group(first)));
        assert_eq!(a.written(2), Some(Slot::Group(first)));
        assert_eq!(a.written(3), Some(Slot::Group(second)));
        assert_eq!(a.written(0), Some(Slot::Discovery));
        assert_eq!(a.puback(3), Vec::<u16>::new(), "8 waits for 7");
        assert_eq!(a.puback(1), Vec::<u16>::new());
        assert_eq!(a.written(2), None, "a resend");
        assert_eq!(a.puback(2), vec![7, 8, 9]);
        assert!(a.idle());
    }

    #[test]
    fn deliveries_of_an_earlier_connection_are_not_acked() {
        let mut a = Acks::default();
        let g = a.begin(Some((5, a.epoch())));
        a.requested(Slot::Group(g));
        a.close(g);
        a.reconnected();
        assert_eq!(a.written(1), Some(Slot::Group(g)));
        assert_eq!(a.puback(1), Vec::<u16>::new());
        let qos0 = a.begin(Some((0, a.epoch())));
        let timer = a.begin(None);
        a.requested(Slot::Group(timer));
        a.unrequest();
        assert_eq!(a.close(qos0), Vec::<u16>::new());
        assert_eq!(a.close(timer), Vec::<u16>::new());
        assert!(a.idle());
    }
}
