//! A scripted backend, for the scheduler's tests and fuzzers (the `fake` feature).
//!
//! [`fake`] makes a backend for a [`Scheduler`](crate::Scheduler) and a [`Fake`] handle
//! that shares its state: the handle records every call the scheduler makes
//! ([`Call`]), holds the operations pushed until the test completes them, in any order and
//! with any result ([`Fake::complete`], [`Fake::complete_all_with`]), and decides what the
//! backend declares ([`Traits`]) and answers ([`Submitted`], cancels that work or come too
//! late, pushes refused with [`Full`], submits that fail).
//!
//! It makes no system call, except that [`Backend::notifier`] creates the eventfd that it
//! must return a reference to — lazily, on the first call (the scheduler calls it only in
//! `on_ready`), so tests that never call `on_ready` make no system call at all. Miri runs
//! eventfds (read, write, close) without `-Zmiri-disable-isolation`.
//!
//! What a real backend promises, the fake checks, and panics with the broken promise:
//! a linked operation pushed to a backend without [`Traits::links`], or a linked chain cut
//! by a submit. Pushes beyond `capacity` are refused with [`Full`], as the contract says,
//! and counted ([`Fake::pushes_over_capacity`]), since the scheduler should never try.
//!
//! With `links`, the fake models the kernel's links: an operation behind an unfinished
//! linked predecessor cannot complete ([`Fake::runnable`] leaves it out; completing it
//! panics), and once an operation completes with a negative result (a cancellation
//! included), the rest of its chain completes with `-ECANCELED` (125) right after it.
//! A short read or write does not break a chain here.
//!
//! A submit can also complete what it hands over ([`OnSubmit`]), at once as cached reads
//! do, or staged as another thread's completions, which only polling `ready()` (a flush's
//! spin) or [`Fake::post_staged`] brings to `reap`.
//!
//! Completions reach [`Backend::reap`] in the order they were made. When a completion is
//! made and the backend is not in a `reap_follows` quiet, the fake counts a notification
//! ([`Fake::notifications`]); it never writes to its notifier.
//!
//! Memory: when a read or write with a positive result and a non-null buffer is reaped,
//! the first `min(result, len)` bytes of its buffer are overwritten with `0xA5`, so that a
//! buffer freed too early shows under Miri, valgrind and the fuzzers' AddressSanitizer.
//! Give the fake real buffers, or none.

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::rc::Rc;

use caio_core::{Backend, Completion, Full, Notifier, Operation, Place, Submitted, Traits};

/// `-ECANCELED`, the result of a cancelled operation and of the rest of a failed chain.
pub const ECANCELED: i64 = -125;

/// One call the scheduler made, in order.
#[derive(Clone, Debug)]
pub enum Call {
  /// `push(op)` and its answer.
  Push {
    /// The operation as pushed.
    op: Operation,
    /// Where it was put, or `Full`.
    result: Result<Place, Full>,
  },
  /// `submit(reap_follows)`; `ok` is false when the script made it fail.
  Submit {
    /// What the scheduler passed.
    reap_follows: bool,
    /// Whether it succeeded.
    ok: bool,
  },
  /// `reap`: the completions handed out, in order (possibly none).
  Reap(Vec<Completion>),
  /// `cancel(token, place)`; `hit` when it named an operation without a completion yet.
  Cancel {
    /// The token passed.
    token: u64,
    /// The place passed.
    place: Place,
    /// Whether the token was at that place and still running.
    hit: bool,
  },
  /// `signal_completions()`.
  SignalCompletions,
}

/// What a cancel of a running operation does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CancelMode {
  /// The operation completes with `-ECANCELED` at once.
  #[default]
  Succeed,
  /// Too late: the operation runs on, and completes however the test says.
  TooLate,
}

/// What a submit does to the operations it hands over, besides submitting them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnSubmit {
  /// Nothing: they run until the test completes them.
  #[default]
  Run,
  /// They complete inside the submit with this result, as cached reads do.
  Complete(i64),
  /// They complete with this result once `ready()` has been polled this many more times
  /// (as if another thread posted them then); a `reap` before that does not find them.
  CompleteOnPoll(i64, usize),
}

#[derive(Debug)]
struct Held {
  op: Operation,
  place: Place,
  submitted: bool,
  /// The completion was made (it waits in `ready` or `staged`).
  completed: bool,
  /// The token of the linked predecessor this one waits for, while it runs.
  behind: Option<u64>,
  /// The token of the operation linked behind this one.
  follower: Option<u64>,
}

#[derive(Debug)]
struct State {
  traits: Traits,
  /// An opcode this linking backend does not link (as `Offload` its pool's).
  unlinkable: Option<caio_core::Opcode>,
  submitted: Submitted,
  refuse: bool,
  fail_submits: bool,
  cancel_mode: CancelMode,
  on_submit: OnSubmit,
  /// Pushed and not reaped, by push number (so in push order).
  held: BTreeMap<u64, Held>,
  /// The push number of each held token.
  by_token: HashMap<u64, u64>,
  pushes: u64,
  /// The token of the last accepted push.
  last_token: Option<u64>,
  ready: VecDeque<Completion>,
  /// Completions "another thread" posts once `ready()` has been polled `stage_polls` times.
  staged: VecDeque<Completion>,
  stage_polls: usize,
  polls: usize,
  places: Vec<Option<u64>>,
  free_places: Vec<Place>,
  calls: Vec<Call>,
  /// Every operation ever accepted, in order.
  pushed: Vec<Operation>,
  quiet: bool,
  notifications: usize,
  /// The last accepted push linked on: its chain is not whole yet.
  chain_open: bool,
  over_capacity: usize,
  dropped: bool,
  held_at_drop: Vec<Operation>,
}

impl State {
  fn get(&self, token: u64) -> Option<&Held> {
    self.by_token.get(&token).and_then(|seq| self.held.get(seq))
  }

  fn get_mut(&mut self, token: u64) -> Option<&mut Held> {
    self
      .by_token
      .get(&token)
      .and_then(|seq| self.held.get_mut(seq))
  }

  /// Makes the completion of held operation `token`, and with links the rest of its chain's
  /// after a failure. `staged` puts them where only polling `ready()` finds them.
  fn make(&mut self, token: u64, result: i64, staged: bool) {
    let mut next = Some((token, result));
    while let Some((token, result)) = next.take() {
      let Some(held) = self.get_mut(token) else {
        return;
      };
      held.completed = true;
      let follower = held.follower;
      let completion = Completion { token, result };
      if staged {
        self.staged.push_back(completion);
      } else {
        self.post(completion);
      }
      if let Some(follower) = follower.and_then(|f| self.get_mut(f)) {
        follower.behind = None;
        if result < 0 && !follower.completed {
          next = Some((follower.op.token, ECANCELED));
        }
      }
    }
  }

  fn post(&mut self, completion: Completion) {
    self.ready.push_back(completion);
    if !self.quiet {
      self.notifications += 1;
    }
  }
}

/// The backend half: give it to [`Scheduler::new`](crate::Scheduler::new).
pub struct FakeBackend {
  state: Rc<RefCell<State>>,
  notifier: Rc<OnceCell<Notifier>>,
}

/// The test's half: scripts the backend and reads what happened to it.
#[derive(Clone)]
pub struct Fake {
  state: Rc<RefCell<State>>,
  notifier: Rc<OnceCell<Notifier>>,
}

/// A fake backend declaring `traits`, and its handle.
pub fn fake(traits: Traits) -> (Box<dyn Backend>, Fake) {
  let state = Rc::new(RefCell::new(State {
    traits,
    unlinkable: None,
    submitted: Submitted::default(),
    refuse: false,
    fail_submits: false,
    cancel_mode: CancelMode::default(),
    on_submit: OnSubmit::default(),
    held: BTreeMap::new(),
    by_token: HashMap::new(),
    pushes: 0,
    last_token: None,
    ready: VecDeque::new(),
    staged: VecDeque::new(),
    stage_polls: 0,
    polls: 0,
    places: Vec::new(),
    free_places: Vec::new(),
    calls: Vec::new(),
    pushed: Vec::new(),
    quiet: false,
    notifications: 0,
    chain_open: false,
    over_capacity: 0,
    dropped: false,
    held_at_drop: Vec::new(),
  }));
  let notifier = Rc::new(OnceCell::new());
  let backend = FakeBackend {
    state: state.clone(),
    notifier: notifier.clone(),
  };
  (Box::new(backend), Fake { state, notifier })
}

impl Fake {
  fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
    f(&mut self.state.borrow_mut())
  }

  /// What every later submit answers.
  pub fn set_submitted(&self, submitted: Submitted) {
    self.with(|s| s.submitted = submitted);
  }

  /// Makes [`Backend::links_itself`] say no for `opcode` (as `Offload` does for what its
  /// pool runs): a chain with such an operation must then come one operation at a time.
  pub fn refuse_to_link(&self, opcode: caio_core::Opcode) {
    self.with(|s| s.unlinkable = Some(opcode));
  }

  /// While set, every push is refused with [`Full`].
  pub fn refuse_pushes(&self, refuse: bool) {
    self.with(|s| s.refuse = refuse);
  }

  /// While set, every submit fails (and leaves what was pushed unsubmitted).
  pub fn fail_submits(&self, fail: bool) {
    self.with(|s| s.fail_submits = fail);
  }

  /// What later cancels of running operations do.
  pub fn set_cancel(&self, mode: CancelMode) {
    self.with(|s| s.cancel_mode = mode);
  }

  /// What later submits do to the operations they hand over.
  pub fn on_submit(&self, on_submit: OnSubmit) {
    self.with(|s| s.on_submit = on_submit);
  }

  /// Completes the held, submitted operation `token` with `result` (with links, a
  /// negative result fails the rest of its chain).
  ///
  /// # Panics
  /// When `token` is not held, not submitted yet, already completed, or behind an
  /// unfinished linked predecessor: no backend could complete it now.
  pub fn complete(&self, token: u64, result: i64) {
    self.complete_into(token, result, false);
  }

  /// Completes `token` as [`Fake::complete`] does, but the completion shows only once
  /// `ready()` has been polled `polls` more times, as if another thread posted it then:
  /// a `reap` before that does not find it.
  pub fn complete_on_poll(&self, token: u64, result: i64, polls: usize) {
    self.with(|s| s.stage_polls = s.polls + polls);
    self.complete_into(token, result, true);
  }

  /// Posts every staged completion now (see [`OnSubmit::CompleteOnPoll`]), as the other
  /// thread does in the end whether or not anybody polls: `reap` finds them from now on.
  /// Returns how many it posted.
  pub fn post_staged(&self) -> usize {
    self.with(|s| {
      let count = s.staged.len();
      while let Some(completion) = s.staged.pop_front() {
        s.post(completion);
      }
      count
    })
  }

  fn complete_into(&self, token: u64, result: i64, staged: bool) {
    self.with(|s| {
      let Some(held) = s.get(token) else {
        panic!("fake: completing {token:#x}, which the backend does not hold");
      };
      assert!(
        held.submitted,
        "fake: completing {token:#x} before it was submitted"
      );
      assert!(!held.completed, "fake: completing {token:#x} twice");
      assert!(
        held.behind.is_none(),
        "fake: completing {token:#x} before its linked predecessor"
      );
      s.make(token, result, staged);
    });
  }

  /// Completes every runnable operation with `result(op)`, again and again as chains move
  /// on, until none is runnable. Returns how many it completed.
  pub fn complete_all_with(&self, mut result: impl FnMut(&Operation) -> i64) -> usize {
    let mut count = 0;
    loop {
      let runnable = self.runnable();
      if runnable.is_empty() {
        return count;
      }
      for op in runnable {
        // An earlier one's failure may have completed this one already.
        if self.with(|s| s.get(op.token).is_some_and(|held| !held.completed)) {
          self.complete(op.token, result(&op));
          count += 1;
        }
      }
    }
  }

  /// Completes every runnable operation with `result`; see [`Fake::complete_all_with`].
  pub fn complete_all(&self, result: i64) -> usize {
    self.complete_all_with(|_| result)
  }

  /// The held operations a backend could complete now: submitted, without a completion,
  /// not behind an unfinished linked predecessor. In push order.
  pub fn runnable(&self) -> Vec<Operation> {
    self.with(|s| {
      s.held
        .values()
        .filter(|h| h.submitted && !h.completed && h.behind.is_none())
        .map(|h| h.op)
        .collect()
    })
  }

  /// The operations pushed and not reaped yet, in push order.
  pub fn held(&self) -> Vec<Operation> {
    self.with(|s| s.held.values().map(|h| h.op).collect())
  }

  /// The tokens of [`Fake::held`].
  pub fn held_tokens(&self) -> Vec<u64> {
    self.with(|s| s.held.values().map(|h| h.op.token).collect())
  }

  /// How many operations are pushed and not reaped.
  pub fn outstanding(&self) -> usize {
    self.with(|s| s.held.len())
  }

  /// Held operations not submitted yet.
  pub fn unsubmitted(&self) -> usize {
    self.with(|s| s.held.values().filter(|h| !h.submitted).count())
  }

  /// Where the held operation `token` is.
  pub fn place_of(&self, token: u64) -> Option<Place> {
    self.with(|s| s.get(token).map(|held| held.place))
  }

  /// Every operation the backend ever accepted, in order.
  pub fn pushed(&self) -> Vec<Operation> {
    self.with(|s| s.pushed.clone())
  }

  /// The tokens of [`Fake::pushed`].
  pub fn pushed_tokens(&self) -> Vec<u64> {
    self.with(|s| s.pushed.iter().map(|op| op.token).collect())
  }

  /// Every call so far.
  pub fn calls(&self) -> Vec<Call> {
    self.with(|s| s.calls.clone())
  }

  /// Every call since the last `take_calls`.
  pub fn take_calls(&self) -> Vec<Call> {
    self.with(|s| std::mem::take(&mut s.calls))
  }

  /// The `reap_follows` of every submit so far (failed ones included).
  pub fn submits(&self) -> Vec<bool> {
    self.with(|s| {
      s.calls
        .iter()
        .filter_map(|c| match c {
          Call::Submit { reap_follows, .. } => Some(*reap_follows),
          _ => None,
        })
        .collect()
    })
  }

  /// Every `cancel(token, place)` so far.
  pub fn cancels(&self) -> Vec<(u64, Place)> {
    self.with(|s| {
      s.calls
        .iter()
        .filter_map(|c| match c {
          Call::Cancel { token, place, .. } => Some((*token, *place)),
          _ => None,
        })
        .collect()
    })
  }

  /// How many times `signal_completions` was called.
  pub fn signals(&self) -> usize {
    self.count(|c| matches!(c, Call::SignalCompletions))
  }

  /// How many `reap` calls there were.
  pub fn reaps(&self) -> usize {
    self.count(|c| matches!(c, Call::Reap(_)))
  }

  fn count(&self, f: impl Fn(&Call) -> bool) -> usize {
    self.with(|s| s.calls.iter().filter(|c| f(c)).count())
  }

  /// How many times `ready()` was polled.
  pub fn polls(&self) -> usize {
    self.with(|s| s.polls)
  }

  /// How many times the backend would have woken the event loop.
  pub fn notifications(&self) -> usize {
    self.with(|s| s.notifications)
  }

  /// Whether a submit asked for quiet and no `signal_completions` ended it yet.
  pub fn quiet(&self) -> bool {
    self.with(|s| s.quiet)
  }

  /// Pushes the scheduler made while the backend held `capacity` operations.
  pub fn pushes_over_capacity(&self) -> usize {
    self.with(|s| s.over_capacity)
  }

  /// Whether the scheduler dropped the backend.
  pub fn dropped(&self) -> bool {
    self.with(|s| s.dropped)
  }

  /// The operations the backend still held when it was dropped.
  pub fn held_at_drop(&self) -> Vec<Operation> {
    self.with(|s| s.held_at_drop.clone())
  }

  /// Whether the backend's notifier was made (by a call to `notifier()`).
  pub fn notifier_made(&self) -> bool {
    self.notifier.get().is_some()
  }
}

impl Backend for FakeBackend {
  fn traits(&self) -> Traits {
    self.state.borrow().traits
  }

  fn links_itself(&self, op: &Operation) -> bool {
    let s = self.state.borrow();
    s.traits.links && s.unlinkable != Some(op.opcode)
  }

  unsafe fn push(&mut self, op: Operation) -> Result<Place, Full> {
    let linkable = self.links_itself(&op);
    let mut s = self.state.borrow_mut();
    assert!(
      !op.link || linkable,
      "fake: linked operation {:#x} pushed to a backend that does not link it",
      op.token
    );
    let result = if s.refuse {
      Err(Full)
    } else if s.held.len() >= s.traits.capacity {
      s.over_capacity += 1;
      Err(Full)
    } else {
      let place = match s.free_places.pop() {
        Some(place) => place,
        None => {
          s.places.push(None);
          (s.places.len() - 1) as Place
        }
      };
      s.places[place as usize] = Some(op.token);
      let behind = if s.chain_open { s.last_token } else { None };
      if let Some(before) = behind.and_then(|b| s.get_mut(b)) {
        before.follower = Some(op.token);
      }
      let seq = s.pushes;
      s.pushes += 1;
      s.by_token.insert(op.token, seq);
      s.last_token = Some(op.token);
      s.held.insert(
        seq,
        Held {
          op,
          place,
          submitted: false,
          completed: false,
          behind,
          follower: None,
        },
      );
      s.pushed.push(op);
      s.chain_open = op.link;
      Ok(place)
    };
    s.calls.push(Call::Push { op, result });
    result
  }

  fn submit(&mut self, reap_follows: bool) -> io::Result<Submitted> {
    let mut s = self.state.borrow_mut();
    assert!(
      !s.chain_open,
      "fake: submit in the middle of a linked chain"
    );
    let ok = !s.fail_submits;
    s.calls.push(Call::Submit { reap_follows, ok });
    if !ok {
      return Err(io::Error::other("fake: scripted submit failure"));
    }
    let handed: Vec<u64> = s
      .held
      .values_mut()
      .filter(|held| !held.submitted)
      .map(|held| {
        held.submitted = true;
        held.op.token
      })
      .collect();
    s.quiet |= reap_follows;
    let (result, staged) = match s.on_submit {
      OnSubmit::Run => return Ok(s.submitted),
      OnSubmit::Complete(result) => (result, false),
      OnSubmit::CompleteOnPoll(result, polls) => {
        s.stage_polls = s.polls + polls;
        (result, true)
      }
    };
    // In push order, so that a chain's operations run one after the other.
    for token in handed {
      let runnable = s
        .get(token)
        .is_some_and(|held| !held.completed && held.behind.is_none());
      if runnable {
        s.make(token, result, staged);
      }
    }
    Ok(s.submitted)
  }

  fn reap(&mut self, out: &mut Vec<Completion>) {
    let mut s = self.state.borrow_mut();
    let ready: Vec<Completion> = s.ready.drain(..).collect();
    for completion in &ready {
      if let Some(seq) = s.by_token.remove(&completion.token) {
        let held = s.held.remove(&seq).expect("fake: held by token");
        if held.op.opcode.uses_buffer() && !held.op.buf.is_null() && completion.result > 0 {
          let count = (completion.result as u64).min(u64::from(held.op.len)) as usize;
          // SAFETY: the buffer rule (caio_core): the pusher keeps `len` bytes at `buf`
          // valid and unused by others until this completion has been reaped.
          unsafe { std::ptr::write_bytes(held.op.buf, 0xA5, count) };
        }
        s.places[held.place as usize] = None;
        s.free_places.push(held.place);
      }
    }
    out.extend_from_slice(&ready);
    s.calls.push(Call::Reap(ready));
  }

  fn ready(&self) -> bool {
    let mut s = self.state.borrow_mut();
    s.polls += 1;
    if !s.staged.is_empty() && s.polls >= s.stage_polls {
      while let Some(completion) = s.staged.pop_front() {
        s.post(completion);
      }
    }
    !s.ready.is_empty()
  }

  fn cancel(&mut self, token: u64, place: Place) {
    let mut s = self.state.borrow_mut();
    let running = s.places.get(place as usize).copied().flatten() == Some(token)
      && s.get(token).is_some_and(|held| !held.completed);
    s.calls.push(Call::Cancel {
      token,
      place,
      hit: running,
    });
    if running && s.cancel_mode == CancelMode::Succeed {
      s.make(token, ECANCELED, false);
    }
  }

  fn signal_completions(&mut self) {
    let mut s = self.state.borrow_mut();
    s.calls.push(Call::SignalCompletions);
    s.quiet = false;
    if !s.ready.is_empty() {
      s.notifications += 1;
    }
  }

  fn notifier(&self) -> &Notifier {
    self
      .notifier
      .get_or_init(|| Notifier::new().expect("fake: cannot make the notifier"))
  }
}

impl Drop for FakeBackend {
  fn drop(&mut self) {
    let mut s = self.state.borrow_mut();
    s.dropped = true;
    s.held_at_drop = s.held.values().map(|h| h.op).collect();
  }
}
