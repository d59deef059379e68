//! The registry's state as published to readers: an [`ArcSwap`] for every path, plus a
//! per-thread cache for the hot-path check.
//!
//! `ArcSwap::load` costs two locked instructions per read (taking a debt slot, paying it back
//! on drop): about a third of a cached check's CPU in a perf profile of `portlog-check-bench`.
//! The check instead keeps, per thread, the `Arc` of the state it last read, with the
//! generation it was read at. A check compares the generation (one plain load) and uses its
//! copy when nothing was published since: no atomic read-modify-write at all. Every
//! [`Published::store`] bumps the generation after the swap, so a reader that sees the new
//! generation reloads and gets the new state (or a newer one): the same freshness as `load`.
//!
//! The cost: a thread keeps the last state it read alive (its ledger view and reject table)
//! until it checks again, checks another registry, or exits; one state per thread at most.
//! The state holds no file or database handle, so this never keeps a registry's files open.

use super::State;
use arc_swap::{ArcSwap, Guard};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Source of [`Published`] ids: never reused within a process, so a thread's cached copy can
/// never be taken for the state of a later registry opened at the same address.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A thread's copy: (registry id, generation, state).
type Cached = Option<(u64, u64, Arc<State>)>;

thread_local! {
    static CACHE: RefCell<Cached> = const { RefCell::new(None) };
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Published {
    cell: ArcSwap<State>,
    /// Bumped after every store.
    generation: AtomicU64,
    id: u64,
}

impl Published {
    pub(crate) fn new(state: State) -> Self {
        Published {
            cell: ArcSwap::from_pointee(state),
            generation: AtomicU64::new(0),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The current state, for every path but the check's.
    pub(crate) fn load(&self) -> Guard<Arc<State>> {
        self.cell.load()
    }

    /// The current state, owned.
    pub(crate) fn load_full(&self) -> Arc<State> {
        self.cell.load_full()
    }

    /// Publishes `state`: readers that start after this returns see it (or a later one).
    pub(crate) fn store(&self, state: Arc<State>) {
        self.cell.store(state);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Runs `f` on the current state through this thread's cached copy (see the module docs).
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        let generation = self.generation.load(Ordering::Acquire);
        let mut f = Some(f);
        let cached = CACHE.try_with(|cache| {
            // Re-entered from inside `f` (not done today): the plain path, below.
            let mut cached = cache.try_borrow_mut().ok()?;
            let fresh = matches!(&*cached, Some((id, g, _)) if *id == self.id && *g == generation);
            if !fresh {
                // The generation was read before the state: a store in between leaves a newer
                // state under an older generation, reloaded at the next call.
                *cached = Some((self.id, generation, self.cell.load_full()));
            }
            let (_, _, state) = cached.as_ref()?;
            f.take().map(|f| f(state))
        });
        match (cached, f) {
            (Ok(Some(r)), _) => r,
            // No cache (re-entered, or this thread's locals already destroyed): one `ArcSwap`
            // load, as every other path reads the state.
            (_, Some(f)) => f(&self.cell.load()),
            (_, None) => unreachable!("`f` ran but gave no answer"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::rejecttable::RejectTable;
    use super::super::view::LedgerView;
    use super::*;

    fn state() -> Arc<State> {
        Arc::new(State {
            view: Arc::new(LedgerView::new(Default::default())),
            slots: Vec::new(),
            providers: Default::default(),
            rejects: Arc::new(RejectTable::with_capacity(0, 1).unwrap()),
        })
    }

    /// The address of the state `with` hands out.
    fn seen(p: &Published) -> usize {
        p.with(|s| std::ptr::from_ref(s) as usize)
    }

    fn addr(s: &Arc<State>) -> usize {
        Arc::as_ptr(s) as usize
    }

    fn published(s: &Arc<State>) -> Published {
        let p = Published::new(State::clone(s));
        p.store(s.clone());
        p
    }

    #[test]
    fn a_store_is_seen_by_the_next_with_on_every_thread() {
        let (s1, s2, s3) = (state(), state(), state());
        let p = Arc::new(published(&s1));
        assert_eq!(seen(&p), addr(&s1));
        assert_eq!(seen(&p), addr(&s1));
        p.store(s2.clone());
        assert_eq!(seen(&p), addr(&s2));
        let other = {
            let (p, s3) = (p.clone(), s3.clone());
            std::thread::spawn(move || {
                let first = seen(&p);
                p.store(s3);
                (first, seen(&p))
            })
            .join()
            .unwrap()
        };
        assert_eq!(other, (addr(&s2), addr(&s3)));
        // This thread's copy is of an older generation: it must reload.
        assert_eq!(seen(&p), addr(&s3));
    }

    #[test]
    fn two_registries_never_share_a_cached_state() {
        let (sa, sb, sc) = (state(), state(), state());
        let a = published(&sa);
        let b = published(&sb);
        for _ in 0..3 {
            assert_eq!(seen(&a), addr(&sa));
            assert_eq!(seen(&b), addr(&sb));
        }
        // A registry dropped and another made in its place at the same generation: a new id.
        drop(a);
        let c = published(&sc);
        assert_eq!(seen(&c), addr(&sc));
    }

    #[test]
    fn a_nested_with_takes_the_plain_path() {
        let s = state();
        let p = published(&s);
        assert_eq!(p.with(|_| seen(&p)), addr(&s));
    }
}
