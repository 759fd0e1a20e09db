//! What the process lets in: a bound on the resizes it runs at once, and a short memory of
//! terminal refusals, so that neither a flood of misses nor one hostile key repeated can make
//! it read and decode without end.
//!
//! - **Resize slots** (MAX_CONCURRENT_RESIZES): a resize holds a slot from before it reads the
//!   original until its encoder returns, even when the request stopped waiting for it (the
//!   budget ran out): the bytes a process holds for resizes are at most that many times one
//!   resize's (docs/RELIABILITY.md measures one at the default limits).
//! - **Remembered refusals** (ERROR_CACHE_SECONDS): a 404 original-not-found, 413 or 422 for a
//!   derivative key is answered again from memory within the window, with the original's
//!   [`Version`] it was given for: the caller checks that version with one HEAD instead of
//!   reading and decoding the original again, so a replaced (or newly uploaded) original is
//!   never refused for what its predecessor was. At most [`Admission::REMEMBERED`] keys, the
//!   oldest forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// The process's bounds. Cloning shares them.
#[derive(Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    refusals: Arc<Mutex<Refusals>>,
    window: Duration,
}

/// Which original a refusal was given for: its ETag, or `None` when it did not exist.
pub type Version = Option<String>;

#[derive(Default)]
struct Refusals {
    order: VecDeque<(String, Instant)>,
    by_key: HashMap<String, (ApiError, Version, Instant)>,
}

impl Admission {
    /// How many refused keys are remembered at most.
    pub const REMEMBERED: usize = 4096;

    /// `slots` resizes at once; terminal refusals remembered for `window` (zero: never).
    pub fn new(slots: usize, window: Duration) -> Self {
        Self { slots: Arc::new(Semaphore::new(slots.max(1))), refusals: Arc::default(), window }
    }

    /// Waits for a resize slot. The slot is free again when the permit is dropped.
    pub async fn resize_slot(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed.
        match Arc::clone(&self.slots).acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => unreachable!("the resize semaphore is never closed"),
        }
    }

    /// Resize slots free now.
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// The terminal refusal answered for `key` within the window, if any, and the version of
    /// the original it was given for.
    pub fn remembered(&self, key: &str) -> Option<(ApiError, Version)> {
        self.remembered_at(key, Instant::now())
    }

    /// [`Admission::remembered`] as of `now`.
    fn remembered_at(&self, key: &str, now: Instant) -> Option<(ApiError, Version)> {
        let mut refusals = lock(&self.refusals);
        match refusals.by_key.get(key) {
            Some((err, version, at)) if now.saturating_duration_since(*at) < self.window => {
                Some((err.clone(), version.clone()))
            }
            Some(_) => {
                refusals.by_key.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers `err` for `key`, given for the original's `version`, when it is terminal
    /// and the window is not zero.
    pub fn remember(&self, key: &str, err: &ApiError, version: Version) {
        if !err.is_terminal() || self.window.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut refusals = lock(&self.refusals);
        refusals.by_key.insert(key.to_owned(), (err.clone(), version, now));
        refusals.order.push_back((key.to_owned(), now));
        while refusals.order.len() > Self::REMEMBERED {
            if let Some((oldest, at)) = refusals.order.pop_front() {
                // Only if it was not refused again since.
                if refusals.by_key.get(&oldest).is_some_and(|(_, _, last)| *last == at) {
                    refusals.by_key.remove(&oldest);
                }
            }
        }
    }

    /// Forgets the refusal for `key` (its original changed).
    pub fn forget(&self, key: &str) {
        lock(&self.refusals).by_key.remove(key);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt as _;

    #[test]
    fn terminal_refusals_are_remembered_for_the_window_only() {
        let admission = Admission::new(1, Duration::from_millis(200));
        let missing = ApiError::OriginalNotFound("a.jpg".into());
        admission.remember("300x/a.jpg", &missing, None);
        admission.remember("300x/b.jpg", &ApiError::StorageUnavailable("slow down".into()), None);
        let (err, version) = admission.remembered("300x/a.jpg").unwrap();
        assert_eq!((err.code(), version), (missing.code(), None));
        assert!(admission.remembered("300x/b.jpg").is_none(), "a storage failure may heal");
        assert!(admission.remembered("200x/a.jpg").is_none(), "per derivative key");
        let later = Instant::now() + Duration::from_millis(200);
        assert!(admission.remembered_at("300x/a.jpg", later).is_none(), "the window is over");
    }

    #[test]
    fn a_zero_window_remembers_nothing() {
        let admission = Admission::new(1, Duration::ZERO);
        admission.remember("300x/a.jpg", &ApiError::UnsupportedImage("no".into()), None);
        assert!(admission.remembered("300x/a.jpg").is_none());
    }

    #[test]
    fn memory_is_bounded_and_forgets_the_oldest_first() {
        let admission = Admission::new(1, Duration::from_secs(60));
        let err = ApiError::SourceTooLarge("big".into());
        for i in 0..Admission::REMEMBERED + 10 {
            admission.remember(&format!("300x/{i}.jpg"), &err, Some(format!("etag{i}")));
        }
        assert!(admission.remembered("300x/0.jpg").is_none());
        assert!(admission.remembered("300x/9.jpg").is_none());
        assert_eq!(lock(&admission.refusals).by_key.len(), Admission::REMEMBERED);
        assert_eq!(admission.remembered("300x/10.jpg").unwrap().1.as_deref(), Some("etag10"));
        admission.forget("300x/10.jpg");
        assert!(admission.remembered("300x/10.jpg").is_none());
    }

    #[tokio::test]
    async fn slots_bound_the_resizes_at_once() {
        let admission = Admission::new(2, Duration::ZERO);
        let first = admission.resize_slot().await;
        let _second = admission.resize_slot().await;
        assert_eq!(admission.free_slots(), 0);
        let mut third = Box::pin(admission.resize_slot());
        assert!((&mut third).now_or_never().is_none(), "a third resize waits");
        drop(first);
        assert!(third.now_or_never().is_some(), "and gets the slot given back");
    }
}
