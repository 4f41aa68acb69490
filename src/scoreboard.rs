//! The scoreboard: a page of counters shared by the master and every
//! worker, in the manner of php-fpm's scoreboard and Apache's.
//!
//! The master maps it (shared, anonymous) before forking, so every worker
//! inherits the same memory. Each worker writes only its own slot: its
//! state, a heartbeat, and counts of the requests it answered. The master
//! reads the slots to know when workers are ready, to kill one stuck on a
//! request, and to report pool counts to systemd; the status page, served
//! by whichever worker takes the request, reads them all. Every cell is an
//! atomic, so readers see whole values without locks; a reader may see
//! one slot a moment older than another, which a status page can bear.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::sys;

/// Slots for workers, current and retiring after a reload.
pub const MAX_SLOTS: usize = 512;

/// Cells of one held URI, eight bytes each; longer URIs are cut.
const URI_CELLS: usize = 32;

/// Requests a worker may have rendered and not yet answered: one in each
/// of its finisher threads, which flush, name and answer them while the
/// next one renders (see the worker module), and one waiting for a free
/// finisher. More than its number of finishers.
pub const COMMITTING: usize = 4;

/// A held URI's length while a writer fills it in.
const CLAIMED: u64 = u64::MAX;

/// The URI of one request in hand. The master names it when it kills a
/// worker stuck on it, finds one killed, or kills one at a stop's
/// deadline: each is a request lost.
#[repr(C)]
#[derive(Default)]
struct HeldUri {
    /// Bytes of `cells` in use; 0 when free, [`CLAIMED`] while written.
    len: AtomicU64,
    cells: [AtomicU64; URI_CELLS],
}

impl HeldUri {
    /// A reader racing the write may see part of it; the master reads it
    /// seconds later, if ever.
    fn store(&self, uri: &[u8]) {
        let bytes = &uri[..uri.len().min(URI_CELLS * 8)];
        self.len.store(CLAIMED, Relaxed);
        for (cell, chunk) in self.cells.iter().zip(bytes.chunks(8)) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            cell.store(u64::from_le_bytes(word), Relaxed);
        }
        self.len.store(bytes.len() as u64, Relaxed);
    }

    fn load(&self) -> Option<String> {
        let len = self.len.load(Relaxed);
        if len == 0 || len == CLAIMED {
            return None;
        }
        let bytes: Vec<u8> = self
            .cells
            .iter()
            .flat_map(|cell| cell.load(Relaxed).to_le_bytes())
            .take((len as usize).min(URI_CELLS * 8))
            .collect();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Takes the cell if it is free.
    fn claim(&self) -> bool {
        self.len.compare_exchange(0, CLAIMED, Relaxed, Relaxed).is_ok()
    }

    fn clear(&self) {
        self.len.store(0, Relaxed);
    }
}

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No worker in this slot.
    Empty = 0,
    /// Forked, starting libvips.
    Starting = 1,
    /// Waiting for a connection.
    Idle = 2,
    /// Reading, rendering or answering a request.
    Busy = 3,
}

impl State {
    fn from_cell(value: u64) -> State {
        match value {
            1 => State::Starting,
            2 => State::Idle,
            3 => State::Busy,
            _ => State::Empty,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "empty",
            State::Starting => "starting",
            State::Idle => "idle",
            State::Busy => "busy",
        }
    }
}

/// One worker's cells.
#[repr(C)]
#[derive(Default)]
pub struct Slot {
    pid: AtomicU64,
    state: AtomicU64,
    /// Milliseconds since the epoch.
    started_ms: AtomicU64,
    /// When the state last changed, or the idle loop last went round.
    heartbeat_ms: AtomicU64,
    /// When the request in hand began; 0 when idle.
    busy_since_ms: AtomicU64,
    requests: AtomicU64,
    /// Of `requests`: derivatives made and stored (cache misses).
    rendered: AtomicU64,
    slow: AtomicU64,
    last_duration_ms: AtomicU64,
    generation: AtomicU64,
    /// The request the worker's main thread reads and renders.
    rendering: HeldUri,
    /// Requests its finisher threads are flushing and answering.
    committing: [HeldUri; COMMITTING],
}

impl Slot {
    fn clear_uris(&self) {
        self.rendering.clear();
        self.committing.iter().for_each(HeldUri::clear);
    }
}

/// Counts for the pool as a whole, kept across worker restarts.
#[repr(C)]
#[derive(Default)]
pub struct PoolCells {
    started_ms: AtomicU64,
    accepted: AtomicU64,
    rendered: AtomicU64,
    slow: AtomicU64,
    max_active: AtomicU64,
    reloads: AtomicU64,
}

#[repr(C)]
struct Layout {
    pool: PoolCells,
    slots: [Slot; MAX_SLOTS],
}

/// The shared page. Cloning it in a forked child is what sharing means
/// here: the mapping is inherited, never unmapped.
#[derive(Clone, Copy)]
pub struct Scoreboard {
    layout: NonNull<Layout>,
}

// SAFETY: the layout is only ever accessed through atomics.
unsafe impl Send for Scoreboard {}
unsafe impl Sync for Scoreboard {}

/// What one slot said when it was read.
#[derive(Debug, Clone)]
pub struct SlotView {
    pub index: usize,
    pub pid: u32,
    pub state: State,
    pub started_ms: u64,
    pub heartbeat_ms: u64,
    pub busy_since_ms: u64,
    pub requests: u64,
    pub rendered: u64,
    pub slow: u64,
    pub last_duration_ms: u64,
    pub generation: u64,
}

/// What the pool's cells said when they were read.
#[derive(Debug, Clone)]
pub struct PoolView {
    pub started_ms: u64,
    pub accepted: u64,
    pub rendered: u64,
    pub slow: u64,
    pub max_active: u64,
    pub reloads: u64,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Scoreboard {
    /// Maps a zeroed, shared page; call in the master before any fork.
    pub fn create() -> std::io::Result<Scoreboard> {
        let layout = sys::shared_zeroed(std::mem::size_of::<Layout>())?;
        let board = Scoreboard { layout: layout.cast() };
        board.pool().started_ms.store(now_ms(), Relaxed);
        Ok(board)
    }

    fn pool(&self) -> &PoolCells {
        // SAFETY: the mapping lives for the whole process and is zeroed,
        // which is a valid value for every atomic in it.
        unsafe { &self.layout.as_ref().pool }
    }

    fn slot(&self, index: usize) -> &Slot {
        // SAFETY: as in `pool`; the index is checked by the array access.
        unsafe { &self.layout.as_ref().slots[index] }
    }

    /// A free slot for a new worker, if any.
    pub fn free_slot(&self, taken: impl Fn(usize) -> bool) -> Option<usize> {
        (0..MAX_SLOTS).find(|&i| !taken(i))
    }

    /// The master readies a slot for the worker it is about to fork.
    pub fn claim(&self, index: usize, generation: u64) {
        let slot = self.slot(index);
        let now = now_ms();
        slot.pid.store(0, Relaxed);
        slot.state.store(State::Starting as u64, Relaxed);
        slot.started_ms.store(now, Relaxed);
        slot.heartbeat_ms.store(now, Relaxed);
        slot.busy_since_ms.store(0, Relaxed);
        slot.requests.store(0, Relaxed);
        slot.rendered.store(0, Relaxed);
        slot.slow.store(0, Relaxed);
        slot.last_duration_ms.store(0, Relaxed);
        slot.generation.store(generation, Relaxed);
        slot.clear_uris();
    }

    /// The master frees the slot of a worker that has exited.
    pub fn release(&self, index: usize) {
        let slot = self.slot(index);
        slot.state.store(State::Empty as u64, Relaxed);
        slot.pid.store(0, Relaxed);
        slot.busy_since_ms.store(0, Relaxed);
        slot.clear_uris();
    }

    /// A worker says it has started and waits for connections.
    pub fn ready(&self, index: usize, pid: u32) {
        let slot = self.slot(index);
        slot.pid.store(pid as u64, Relaxed);
        self.set_state(index, State::Idle);
    }

    /// A worker says it is alive (its idle loop went round).
    pub fn beat(&self, index: usize) {
        self.slot(index).heartbeat_ms.store(now_ms(), Relaxed);
    }

    /// A worker took a connection.
    pub fn begin_request(&self, index: usize) {
        let slot = self.slot(index);
        slot.busy_since_ms.store(now_ms(), Relaxed);
        self.set_state(index, State::Busy);
        self.pool().accepted.fetch_add(1, Relaxed);
        let active = (0..MAX_SLOTS)
            .filter(|&i| self.state(i) == State::Busy)
            .count() as u64;
        self.pool().max_active.fetch_max(active, Relaxed);
    }

    /// A worker has read its request's URI.
    pub fn set_uri(&self, index: usize, uri: &[u8]) {
        self.slot(index).rendering.store(uri);
    }

    /// The URI of the request the slot's worker is rendering, if any.
    pub fn uri(&self, index: usize) -> Option<String> {
        self.slot(index).rendering.load()
    }

    /// A worker hands the request it rendered to a finisher thread: its
    /// URI moves to a cell of its own until [`Scoreboard::committed`],
    /// which is given the cell's number. `None` if every cell is taken.
    pub fn commit_uri(&self, index: usize) -> Option<usize> {
        let slot = self.slot(index);
        let uri = slot.rendering.load()?;
        let cell = slot.committing.iter().position(HeldUri::claim)?;
        slot.committing[cell].store(uri.as_bytes());
        slot.rendering.clear();
        Some(cell)
    }

    /// A finisher thread has answered the request in `cell`.
    pub fn committed(&self, index: usize, cell: usize) {
        self.slot(index).committing[cell].clear();
    }

    /// Every request the slot's worker holds: the one rendering and those
    /// being committed. What its death loses.
    pub fn uris_in_hand(&self, index: usize) -> Vec<String> {
        let slot = self.slot(index);
        std::iter::once(&slot.rendering)
            .chain(&slot.committing)
            .filter_map(HeldUri::load)
            .collect()
    }

    /// A worker finished a request that took `ms`.
    pub fn end_request(
        &self,
        index: usize,
        ms: u64,
        rendered: bool,
        slow: bool,
    ) {
        let slot = self.slot(index);
        slot.requests.fetch_add(1, Relaxed);
        slot.last_duration_ms.store(ms, Relaxed);
        slot.busy_since_ms.store(0, Relaxed);
        slot.rendering.clear();
        if rendered {
            slot.rendered.fetch_add(1, Relaxed);
            self.pool().rendered.fetch_add(1, Relaxed);
        }
        if slow {
            slot.slow.fetch_add(1, Relaxed);
            self.pool().slow.fetch_add(1, Relaxed);
        }
        self.set_state(index, State::Idle);
    }

    pub fn count_reload(&self) {
        self.pool().reloads.fetch_add(1, Relaxed);
    }

    fn set_state(&self, index: usize, state: State) {
        let slot = self.slot(index);
        slot.state.store(state as u64, Relaxed);
        slot.heartbeat_ms.store(now_ms(), Relaxed);
    }

    pub fn state(&self, index: usize) -> State {
        State::from_cell(self.slot(index).state.load(Relaxed))
    }

    /// Reads one slot.
    pub fn view(&self, index: usize) -> SlotView {
        let slot = self.slot(index);
        SlotView {
            index,
            pid: slot.pid.load(Relaxed) as u32,
            state: State::from_cell(slot.state.load(Relaxed)),
            started_ms: slot.started_ms.load(Relaxed),
            heartbeat_ms: slot.heartbeat_ms.load(Relaxed),
            busy_since_ms: slot.busy_since_ms.load(Relaxed),
            requests: slot.requests.load(Relaxed),
            rendered: slot.rendered.load(Relaxed),
            slow: slot.slow.load(Relaxed),
            last_duration_ms: slot.last_duration_ms.load(Relaxed),
            generation: slot.generation.load(Relaxed),
        }
    }

    /// Every slot that holds a worker.
    pub fn workers(&self) -> Vec<SlotView> {
        (0..MAX_SLOTS)
            .filter(|&i| self.state(i) != State::Empty)
            .map(|i| self.view(i))
            .collect()
    }

    pub fn pool_view(&self) -> PoolView {
        let pool = self.pool();
        PoolView {
            started_ms: pool.started_ms.load(Relaxed),
            accepted: pool.accepted.load(Relaxed),
            rendered: pool.rendered.load(Relaxed),
            slow: pool.slow.load(Relaxed),
            max_active: pool.max_active.load(Relaxed),
            reloads: pool.reloads.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_moves_a_slot_through_its_states_and_counts() {
        let board = Scoreboard::create().unwrap();
        board.claim(3, 1);
        assert_eq!(board.state(3), State::Starting);
        board.ready(3, 4242);
        assert_eq!(board.state(3), State::Idle);
        board.begin_request(3);
        assert_eq!(board.state(3), State::Busy);
        assert!(board.view(3).busy_since_ms > 0);
        board.end_request(3, 12, true, false);
        let view = board.view(3);
        assert_eq!((view.pid, view.requests, view.rendered), (4242, 1, 1));
        assert_eq!(view.state, State::Idle);
        let pool = board.pool_view();
        assert_eq!((pool.accepted, pool.rendered, pool.max_active), (1, 1, 1));
        board.release(3);
        assert!(board.workers().is_empty());
    }

    #[test]
    fn a_slot_holds_the_uri_in_hand_until_the_request_ends() {
        let board = Scoreboard::create().unwrap();
        board.claim(1, 1);
        assert_eq!(board.uri(1), None);
        board.begin_request(1);
        board.set_uri(1, b"/img/w_300,f_webp/photos/a.jpg");
        assert_eq!(
            board.uri(1).as_deref(),
            Some("/img/w_300,f_webp/photos/a.jpg")
        );
        // A long one is cut, never spilt into the next slot.
        let long = format!("/img/w_1/{}", "x".repeat(1000));
        board.set_uri(1, long.as_bytes());
        assert_eq!(board.uri(1).unwrap(), long[..URI_CELLS * 8]);
        assert_eq!(board.uri(2), None);
        board.end_request(1, 5, false, false);
        assert_eq!(board.uri(1), None);
    }

    #[test]
    fn a_request_handed_to_a_finisher_stays_in_hand_until_answered() {
        let board = Scoreboard::create().unwrap();
        board.claim(0, 1);
        board.set_uri(0, b"/img/w_1/a.jpg");
        let cell = board.commit_uri(0).unwrap();
        assert_eq!(board.uri(0), None, "moved, not copied");
        board.end_request(0, 5, true, false);
        // The next one renders while the first is flushed.
        board.set_uri(0, b"/img/w_2/a.jpg");
        assert_eq!(
            board.uris_in_hand(0),
            ["/img/w_2/a.jpg", "/img/w_1/a.jpg"]
        );
        board.committed(0, cell);
        assert_eq!(board.uris_in_hand(0), ["/img/w_2/a.jpg"]);
        board.end_request(0, 5, false, false);
        // As many as there are cells, then none is named.
        let cells: Vec<_> = (0..COMMITTING)
            .map(|_| {
                board.set_uri(0, b"/img/w_3/a.jpg");
                board.commit_uri(0).unwrap()
            })
            .collect();
        board.set_uri(0, b"/img/w_3/a.jpg");
        assert_eq!(board.commit_uri(0), None);
        assert_eq!(cells, (0..COMMITTING).collect::<Vec<_>>());
        board.release(0);
        assert!(board.uris_in_hand(0).is_empty());
    }

    #[test]
    fn a_forked_child_writes_what_the_parent_reads() {
        let board = Scoreboard::create().unwrap();
        board.claim(0, 1);
        match crate::sys::fork().unwrap() {
            crate::sys::Forked::Child => {
                board.ready(0, 7);
                // SAFETY: leave the forked test process without running
                // the test harness's exit path.
                unsafe { libc::_exit(0) };
            }
            crate::sys::Forked::Parent(pid) => {
                nix::sys::wait::waitpid(pid, None).unwrap();
                assert_eq!(board.view(0).pid, 7);
                assert_eq!(board.state(0), State::Idle);
            }
        }
    }
}
