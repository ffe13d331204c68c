//! `limits.max_buffered_bytes`: the request bytes held for inspection across all requests.
//! Without it, `max_concurrent_requests × max_body_bytes` bounds memory (hundreds of GB at the
//! defaults); with it, a burst of large inspected bodies is refused with 503 rather than
//! taking the process down.

use crate::error::ProxyError;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The process-wide budget, one permit per byte.
pub struct BufferBudget {
    bytes: Arc<Semaphore>,
}

/// The bytes one request holds; they return to the budget when it is dropped.
#[derive(Default)]
pub struct Charge(Option<OwnedSemaphorePermit>);

impl BufferBudget {
    pub fn new(max_bytes: u64) -> BufferBudget {
        let permits = usize::try_from(max_bytes)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        BufferBudget {
            bytes: Arc::new(Semaphore::new(permits)),
        }
    }

    /// Adds `n` bytes to `charge`, or refuses (never waits: a client that cannot be served
    /// now is told to retry rather than queued behind bodies that may be slow to arrive).
    pub fn take(&self, charge: &mut Charge, n: usize) -> Result<(), ProxyError> {
        if n == 0 {
            return Ok(());
        }
        let n = u32::try_from(n).map_err(|_| ProxyError::BufferFull)?;
        let permit = self
            .bytes
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| ProxyError::BufferFull)?;
        match &mut charge.0 {
            Some(held) => held.merge(permit),
            None => charge.0 = Some(permit),
        }
        Ok(())
    }

    /// Bytes currently held by all requests.
    #[cfg(test)]
    pub fn held(&self, max_bytes: u64) -> u64 {
        max_bytes.saturating_sub(self.bytes.available_permits() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_held_until_the_charge_is_dropped() {
        let budget = BufferBudget::new(100);
        let mut a = Charge::default();
        budget.take(&mut a, 60).unwrap();
        budget.take(&mut a, 30).unwrap();
        assert_eq!(budget.held(100), 90);
        let mut b = Charge::default();
        assert_eq!(budget.take(&mut b, 11), Err(ProxyError::BufferFull));
        budget.take(&mut b, 10).unwrap();
        drop(a);
        assert_eq!(budget.held(100), 10);
        budget.take(&mut b, 90).unwrap();
        assert_eq!(budget.held(100), 100);
    }
}
