//! One SQLite writer at a time inside this process, served in arrival order.
//!
//! SQLite admits one writer; a connection that finds the lock taken sleeps in its busy handler
//! (1, 2, 5 … 100 ms) and retries. Against a writer that commits batch after batch (see
//! `group_commit`) a sleeping retry can keep missing the short gaps between batches. Taking this
//! ticket gate before `BEGIN IMMEDIATE` makes writers of this process wait their turn on a
//! condition variable instead, first come first served; other processes still meet SQLite's own
//! lock and busy handler.

use std::cell::Cell;
use std::sync::{Condvar, Mutex, PoisonError};

struct Tickets {
    next: u64,
    serving: u64,
}

static TICKETS: Mutex<Tickets> = Mutex::new(Tickets {
    next: 0,
    serving: 0,
});
static TURN: Condvar = Condvar::new();

thread_local! {
    static HELD: Cell<bool> = const { Cell::new(false) };
}

/// The gate, held until dropped. `None` from [`enter`] when this thread already holds it.
pub struct Turn(());

/// Waits for this thread's turn. A thread that already holds the gate (a write transaction
/// opened inside another on the same thread) passes through without a new ticket.
pub fn enter() -> Option<Turn> {
    if HELD.with(Cell::get) {
        return None;
    }
    let mut tickets = TICKETS.lock().unwrap_or_else(PoisonError::into_inner);
    let mine = tickets.next;
    tickets.next += 1;
    while tickets.serving != mine {
        tickets = TURN.wait(tickets).unwrap_or_else(PoisonError::into_inner);
    }
    HELD.with(|h| h.set(true));
    Some(Turn(()))
}

/// Whether this thread holds the gate now.
pub fn held_here() -> bool {
    HELD.with(Cell::get)
}

impl Drop for Turn {
    fn drop(&mut self) {
        HELD.with(|h| h.set(false));
        let mut tickets = TICKETS.lock().unwrap_or_else(PoisonError::into_inner);
        tickets.serving += 1;
        drop(tickets);
        TURN.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn turns_are_exclusive_and_reentrant() {
        let inside = Arc::new(Mutex::new(0u32));
        let most = Arc::new(Mutex::new(0u32));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (inside, most) = (inside.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let turn = enter().expect("first entry takes a ticket");
                        assert!(enter().is_none(), "a nested entry passes through");
                        let now = {
                            let mut n = inside.lock().unwrap();
                            *n += 1;
                            *n
                        };
                        let mut m = most.lock().unwrap();
                        *m = (*m).max(now);
                        drop(m);
                        *inside.lock().unwrap() -= 1;
                        drop(turn);
                        assert!(!held_here());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*most.lock().unwrap(), 1, "never two holders at once");
    }
}
