//! The queue's count of events waiting to be sequenced, kept by RAII: whoever holds events in
//! the queue holds [`QueueSlots`] for them, and the count goes down when those are dropped, on
//! whichever path that happens (sequenced, forwarded and answered, refused, shut down).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A number of events counted in the engine's queue depth; gives them back when dropped.
pub(super) struct QueueSlots {
    counter: Arc<AtomicUsize>,
    count: usize,
}

impl QueueSlots {
    /// Counts `count` events in, unless that would take the queue beyond `capacity` (`None`:
    /// overloaded). A request larger than the capacity is let into an empty queue.
    pub(super) fn take(counter: &Arc<AtomicUsize>, count: usize, capacity: usize) -> Option<QueueSlots> {
        let before = counter.fetch_add(count, Ordering::AcqRel);
        let slots = QueueSlots { counter: Arc::clone(counter), count };
        // Dropping `slots` gives them back.
        (before + count <= capacity || before == 0).then_some(slots)
    }

    /// Slots for no event: a request that was never counted here (another node's).
    pub(super) fn none(counter: &Arc<AtomicUsize>) -> QueueSlots {
        QueueSlots { counter: Arc::clone(counter), count: 0 }
    }

    /// Gives the events back now (the sequencer took them out of the queue); dropping then does
    /// nothing more.
    pub(super) fn release(&mut self) {
        let count = std::mem::take(&mut self.count);
        if count > 0 {
            self.counter.fetch_sub(count, Ordering::AcqRel);
        }
    }
}

impl Drop for QueueSlots {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_back_once_whatever_the_path() {
        let counter = Arc::new(AtomicUsize::new(0));
        let depth = || counter.load(Ordering::Acquire);
        let mut first = QueueSlots::take(&counter, 6, 10).expect("room");
        assert!(QueueSlots::take(&counter, 5, 10).is_none(), "beyond capacity");
        assert_eq!(depth(), 6, "a refused request holds nothing");
        let second = QueueSlots::take(&counter, 4, 10).expect("exactly full");
        first.release();
        assert_eq!(depth(), 4);
        drop(first);
        assert_eq!(depth(), 4, "released slots are not given back twice");
        drop(second);
        assert_eq!(depth(), 0);
        let big = QueueSlots::take(&counter, 50, 10).expect("an empty queue takes any request");
        drop(QueueSlots::none(&counter));
        assert_eq!(depth(), 50);
        drop(big);
        assert_eq!(depth(), 0);
    }
}
