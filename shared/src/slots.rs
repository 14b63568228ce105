//! A bound on concurrent work shared by two lanes, serving urgent waiters
//! first. A consumer cannot prefer one queue over another, so two queues
//! (urgent, normal) with a consumer each share this gate: the convert
//! bulkhead stays at `CONVERT_PREFETCH` conversions however the lanes fill,
//! and a freed slot goes to an urgent document before a normal one.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::oneshot;

#[derive(Clone)]
pub struct Slots(Arc<Mutex<Inner>>);

struct Inner {
    free: usize,
    urgent: VecDeque<oneshot::Sender<()>>,
    normal: VecDeque<oneshot::Sender<()>>,
}

/// One slot, given back when dropped.
pub struct Slot(Slots);

impl Slots {
    pub fn new(size: usize) -> Slots {
        Slots(Arc::new(Mutex::new(Inner { free: size, urgent: VecDeque::new(), normal: VecDeque::new() })))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this short lock leaves the counts consistent.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a slot; urgent waiters are served before normal ones.
    pub async fn acquire(&self, urgent: bool) -> Slot {
        let waiting = {
            let mut inner = self.lock();
            if inner.free > 0 && (urgent || inner.urgent.is_empty()) {
                inner.free -= 1;
                return Slot(self.clone());
            }
            let (tx, rx) = oneshot::channel();
            if urgent {
                inner.urgent.push_back(tx)
            } else {
                inner.normal.push_back(tx)
            }
            rx
        };
        // The sender lives in the queue until a release hands the slot over;
        // it is never dropped unsent while the gate exists.
        let _ = waiting.await;
        Slot(self.clone())
    }

    /// Slots free now (for tests and metrics).
    pub fn available(&self) -> usize {
        self.lock().free
    }

    fn release(&self) {
        let mut inner = self.lock();
        // Hand the slot to the first waiter still waiting: urgent, then normal.
        while let Some(next) = inner.urgent.pop_front().or_else(|| inner.normal.pop_front()) {
            if next.send(()).is_ok() {
                return;
            }
        }
        inner.free += 1;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_urgent_waiter_first() {
        let slots = Slots::new(1);
        let held = slots.acquire(false).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let normal = {
            let (slots, order) = (slots.clone(), order.clone());
            tokio::spawn(async move {
                let _s = slots.acquire(false).await;
                order.lock().expect("not poisoned").push("normal");
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let urgent = {
            let (slots, order) = (slots.clone(), order.clone());
            tokio::spawn(async move {
                let _s = slots.acquire(true).await;
                order.lock().expect("not poisoned").push("urgent");
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        urgent.await.expect("the urgent waiter ran");
        normal.await.expect("the normal waiter ran");
        assert_eq!(*order.lock().expect("not poisoned"), ["urgent", "normal"]);
        assert_eq!(slots.available(), 1);
    }

    #[tokio::test]
    async fn a_waiter_that_gave_up_does_not_lose_the_slot() {
        let slots = Slots::new(1);
        let held = slots.acquire(false).await;
        let gave_up = tokio::time::timeout(Duration::from_millis(10), slots.acquire(true)).await;
        assert!(gave_up.is_err());
        drop(held);
        assert_eq!(slots.available(), 1);
        let _again = slots.acquire(false).await;
        assert_eq!(slots.available(), 0);
    }
}
