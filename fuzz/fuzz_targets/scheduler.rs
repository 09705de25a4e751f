//! Random sequences of scheduler calls over the scripted backend, against a model.
//!
//! The input picks the backend's traits, then a run of actions: starts, batches (linked,
//! over capacity), cancels of live and stale tokens, close, completions in any order with
//! any result, flushes and `on_ready`, deliveries taken and finished with other calls in
//! between, and changes to the backend's script (refused pushes, failed submits, cancels
//! that come too late, completions inside the submit or posted "by another thread"). At
//! the end everything is completed and the context closed (or torn down).
//!
//! The model follows every backend call and checks: every operation and batch is delivered
//! exactly once, with its own result (a completion's, ABORTED/CLOSED/-ECANCELED where they
//! must be), batch results in their own positions; deliveries hold exactly what settled; no
//! slot is handed out or delivered while another operation owns it; the closed pair comes
//! after every other pair, only once nothing is outstanding; the backend never holds more
//! than its capacity, never gets a linked operation without links (or one it does not link
//! itself, nor any of a chain holding one) or a chain's next operation before the one before
//! it succeeded, and everything it got was reaped (or
//! cancelled, on tear-down) before it was dropped.

#![no_main]

use std::collections::HashMap;
use std::ops::Range;

use caio_core::{Opcode, Operation, Share, Submitted, Traits};
use caio_scheduler::fake::{fake, Call, CancelMode, Fake, OnSubmit, ECANCELED};
use caio_scheduler::token::{self, INDEX_MASK};
use caio_scheduler::wire::result::{ABORTED, CLOSED};
use caio_scheduler::wire::CLOSED_SLOT;
use caio_scheduler::{Refused, Scheduler};
use libfuzzer_sys::fuzz_target;

#[path = "input.rs"]
mod input;
use input::Input;

const RESULTS: &[i64] = &[0, 1, 7, 4096, -5, -4, ECANCELED, -22, 0, 512];

impl Input<'_> {
  fn result(&mut self) -> i64 {
    RESULTS[self.byte() as usize % RESULTS.len()]
  }
}

/// One operation as the model sees it.
#[derive(Debug)]
struct Op {
  opcode: Opcode,
  len: u32,
  /// Linked to the next one (after the scheduler's rule that the last never links).
  link: bool,
  /// Its chain is fed to the backend one operation at a time by the scheduler: the
  /// backend has no links, or does not link one of the chain's operations.
  fed: bool,
  /// Where the backend put it, once pushed.
  place: Option<u32>,
  reaped: bool,
  /// Its result, once it has one.
  fate: Option<f64>,
}

/// A started operation or batch, from its start until its delivery is finished.
struct Entry {
  token: u64,
  batch: bool,
  ops: Vec<Op>,
  abort: bool,
  taken: bool,
  /// Vecs, which can be moved while the scheduler holds pointers into them.
  results: Option<Vec<f64>>,
  results_ptr: *mut f64,
  buffers: Vec<Vec<u8>>,
}

impl Entry {
  fn settled(&self) -> bool {
    self.ops.iter().all(|op| op.fate.is_some())
  }

  fn chain(&self, first: usize) -> Range<usize> {
    let mut end = first;
    while end + 1 < self.ops.len() && self.ops[end].link {
      end += 1;
    }
    first..end + 1
  }

  fn is_head(&self, position: usize) -> bool {
    position == 0 || !self.ops[position - 1].link
  }

  fn op_token(&self, position: usize) -> u64 {
    if !self.batch {
      return self.token;
    }
    let parts = token::decode(self.token);
    token::batch_op_token(parts.index as u32, parts.generation, position)
  }
}

struct Model {
  s: Scheduler,
  f: Fake,
  traits: Traits,
  /// An opcode the linking backend does not link (`Backend::links_itself`).
  unlinkable: Option<Opcode>,
  live: HashMap<usize, Entry>,
  on_wire: Vec<usize>,
  wire_busy: bool,
  closing: bool,
  dropped: bool,
  torn_down: bool,
  closed_expected: usize,
  closed_received: usize,
  stale: Vec<u64>,
  loop_time: u64,
}

fn same(a: f64, b: f64) -> bool {
  a == b || (a.is_nan() && b.is_nan())
}

impl Model {
  fn locate(&self, token: u64) -> (usize, usize) {
    let parts = token::decode(token);
    let entry = self
      .live
      .get(&parts.index)
      .unwrap_or_else(|| panic!("backend call for {token:#x}, of no live entry"));
    let position = parts.position.unwrap_or(0);
    assert_eq!(
      parts.position.is_some(),
      entry.batch,
      "token kind of {token:#x}"
    );
    assert!(position < entry.ops.len(), "position of {token:#x}");
    assert_eq!(
      entry.op_token(position),
      token,
      "{token:#x} is not its entry's"
    );
    (parts.index, position)
  }

  /// Follows what the scheduler did to the backend during the last call.
  fn follow(&mut self) {
    for call in self.f.take_calls() {
      match call {
        Call::Push {
          op,
          result: Ok(place),
        } => self.pushed(op, place),
        Call::Push { result: Err(_), .. } => {}
        Call::Reap(completions) => {
          for c in completions {
            self.reaped(c.token, c.result);
          }
        }
        Call::Cancel { token, place, .. } => {
          let (index, position) = self.locate(token);
          let entry = &self.live[&index];
          assert!(
            entry.abort || self.torn_down,
            "cancel of {token:#x} without an abort"
          );
          let op = &entry.ops[position];
          assert_eq!(
            op.place,
            Some(place),
            "cancel of {token:#x} at the wrong place"
          );
          assert!(
            !op.reaped,
            "cancel of {token:#x} after its completion was reaped"
          );
        }
        Call::Submit { .. } | Call::SignalCompletions => {}
      }
    }
    assert_eq!(self.f.pushes_over_capacity(), 0, "pushed beyond capacity");
    assert!(self.f.outstanding() <= self.traits.capacity);
    if !self.dropped && self.f.dropped() {
      self.dropped = true;
      if !self.torn_down {
        assert!(self.closing, "backend dropped without a close");
        assert!(
          self.f.held_at_drop().is_empty(),
          "dropped holding operations"
        );
        for entry in self.live.values() {
          assert!(
            entry.settled(),
            "backend dropped with {:#x} outstanding",
            entry.token
          );
        }
        self.closed_expected += 1;
      }
    }
    if !self.torn_down {
      let unsettled = self.live.values().filter(|e| !e.settled()).count();
      assert_eq!(self.s.outstanding(), unsettled, "outstanding");
      assert_eq!(
        self.s.has_deliveries(),
        self.pending() > 0,
        "has_deliveries"
      );
      assert_eq!(
        self.s.busy(),
        unsettled > 0 || self.pending() > 0 || self.wire_busy,
        "busy"
      );
    }
  }

  fn pushed(&mut self, op: Operation, place: u32) {
    let (index, position) = self.locate(op.token);
    let closing = self.closing;
    let entry = self.live.get_mut(&index).unwrap();
    assert!(!entry.settled(), "push of {:#x}, already settled", op.token);
    let head = entry.is_head(position);
    let before = position.checked_sub(1).map(|p| (p, entry.ops[p].fate));
    let model = &mut entry.ops[position];
    assert!(model.place.is_none(), "{:#x} pushed twice", op.token);
    assert!(
      model.fate.is_none(),
      "{:#x} pushed after it had its result",
      op.token
    );
    assert_eq!(op.opcode, model.opcode);
    assert_eq!(op.len, model.len);
    let fed = model.fed;
    assert_eq!(op.link, model.link && !fed, "link flag of {:#x}", op.token);
    if !entry.batch {
      assert_eq!(op.share, Share::Alone);
    }
    model.place = Some(place);
    if !head {
      let (p, fate) = before.unwrap();
      if !fed {
        assert!(entry.ops[p].place.is_some(), "a chain pushed out of order");
      } else {
        assert!(
          fate.is_some_and(|v| v >= 0.0) && entry.ops[p].reaped,
          "{:#x} pushed before the one before it succeeded",
          op.token
        );
      }
    } else {
      assert!(!closing, "{:#x} pushed after close", op.token);
    }
  }

  fn reaped(&mut self, token: u64, result: i64) {
    let (index, position) = self.locate(token);
    let entry = self.live.get_mut(&index).unwrap();
    let abort = entry.abort;
    let op = &mut entry.ops[position];
    assert!(op.place.is_some(), "completion of {token:#x}, never pushed");
    assert!(!op.reaped, "two completions of {token:#x}");
    assert!(op.fate.is_none());
    op.reaped = true;
    op.fate = Some(if abort && result == ECANCELED {
      ABORTED
    } else {
      result as f64
    });
    if op.fed && op.link && result < 0 {
      let rest = entry.chain(position + 1);
      for next in rest {
        let op = &mut entry.ops[next];
        assert!(op.place.is_none());
        if op.fate.is_none() {
          op.fate = Some(if abort { ABORTED } else { ECANCELED as f64 });
        }
      }
    }
  }

  fn pending(&self) -> usize {
    let settled = self
      .live
      .values()
      .filter(|e| e.settled() && !e.taken)
      .count();
    settled + self.closed_expected - self.closed_received
  }

  fn new_entry(
    &mut self,
    token: u64,
    batch: bool,
    ops: Vec<Op>,
    buffers: Vec<Vec<u8>>,
  ) -> &mut Entry {
    let index = (token & INDEX_MASK) as usize;
    assert!(
      !self.live.contains_key(&index),
      "slot {index} handed out while another operation owns it"
    );
    self.live.insert(
      index,
      Entry {
        token,
        batch,
        ops,
        abort: false,
        taken: false,
        results: None,
        results_ptr: std::ptr::null_mut(),
        buffers,
      },
    );
    self.live.get_mut(&index).unwrap()
  }

  fn make_op(input: &mut Input, buffers: &mut Vec<Vec<u8>>) -> (Operation, Op) {
    let b = input.byte();
    let opcode = match b % 4 {
      0 | 1 => Opcode::Read,
      2 => Opcode::Write,
      _ => [Opcode::Fsync, Opcode::Fdatasync][usize::from(b & 0x10 != 0)],
    };
    let mut op = Operation::sync(opcode, 3, 0);
    if opcode.uses_buffer() {
      let len = u32::from(b >> 5) * 3; // 0..=21 bytes
      let mut buffer = vec![0u8; len as usize];
      op.buf = buffer.as_mut_ptr();
      op.len = len;
      op.offset = u64::from(b);
      buffers.push(buffer);
    }
    op.link = b & 4 != 0;
    let model = Op {
      opcode,
      len: op.len,
      link: op.link,
      fed: true,
      place: None,
      reaped: false,
      fate: None,
    };
    (op, model)
  }

  fn start(&mut self, input: &mut Input) {
    let mut buffers = Vec::new();
    let (op, mut model) = Model::make_op(input, &mut buffers);
    model.link = false;
    // SAFETY: the buffer lives in the model's entry until the operation's delivery is
    // taken (or the scheduler is gone), after its completion was reaped.
    let started = unsafe { self.s.start(op) };
    if self.closing || self.dropped {
      assert_eq!(started, Err(Refused::Closed));
      self.follow();
      return;
    }
    let token = started.expect("start refused");
    assert!(
      !self.stale.contains(&token),
      "token {token:#x} handed out again"
    );
    self.new_entry(token, false, vec![model], buffers);
    self.follow();
  }

  fn start_batch(&mut self, input: &mut Input) {
    let count = input.byte() as usize % (2 * self.traits.capacity + 3);
    let mut buffers = Vec::new();
    let mut ops = Vec::new();
    let mut models = Vec::new();
    for _ in 0..count {
      let (op, model) = Model::make_op(input, &mut buffers);
      ops.push(op);
      models.push(model);
    }
    if let Some(last) = models.last_mut() {
      last.link = false;
    }
    let mut first = 0;
    while first < models.len() {
      let mut end = first;
      while end + 1 < models.len() && models[end].link {
        end += 1;
      }
      let fed = !self.traits.links
        || models[first..=end]
          .iter()
          .any(|model| Some(model.opcode) == self.unlinkable);
      for model in &mut models[first..=end] {
        model.fed = fed;
      }
      first = end + 1;
    }
    let mut too_long = false;
    let mut run = 0;
    for model in &models {
      run += 1;
      too_long |= run > self.traits.capacity;
      if !model.link {
        run = 0;
      }
    }
    let mut results = vec![f64::NAN; count];
    let ptr = results.as_mut_ptr();
    // SAFETY: buffers and results live in the model's entry until the batch's delivery
    // is taken (or the scheduler is gone); a refused batch keeps neither.
    let started = unsafe { self.s.start_batch(ops, ptr) };
    if self.closing || self.dropped {
      assert_eq!(started, Err(Refused::Closed));
    } else if too_long && self.traits.links {
      assert_eq!(started, Err(Refused::ChainTooLong));
    } else {
      let token = started.expect("batch refused");
      assert!(
        !self.stale.contains(&token),
        "token {token:#x} handed out again"
      );
      let entry = self.new_entry(token, true, models, buffers);
      entry.results = Some(results);
      entry.results_ptr = ptr;
    }
    self.follow();
  }

  fn cancel_live(&mut self, pick: u8) {
    let mut indices: Vec<usize> = self.live.keys().copied().collect();
    if indices.is_empty() {
      return;
    }
    indices.sort_unstable();
    let index = indices[pick as usize % indices.len()];
    let entry = self.live.get_mut(&index).unwrap();
    let token = entry.token;
    let stale = entry.settled();
    if !stale {
      entry.abort = true;
      for op in &mut entry.ops {
        if op.place.is_none() && op.fate.is_none() {
          op.fate = Some(ABORTED);
        }
      }
    }
    self.s.cancel(token);
    if stale {
      // `follow` empties the log after every call: a stale cancel must add nothing to it.
      assert!(
        self.f.calls().is_empty(),
        "cancel of a settled entry reached the backend"
      );
    }
    self.follow();
  }

  fn cancel_stale(&mut self, pick: u8) {
    let token = match pick % 4 {
      0 if !self.stale.is_empty() => self.stale[pick as usize % self.stale.len()],
      1 => {
        // A token of an operation inside a batch, which JavaScript never holds.
        match self.live.values().find(|e| e.batch && !e.ops.is_empty()) {
          Some(entry) => entry.op_token(0),
          None => return,
        }
      }
      2 => (u64::from(pick) << 40) | 0xff_ffff,
      _ => return,
    };
    if self.live.values().any(|e| e.token == token) {
      return;
    }
    self.s.cancel(token);
    assert!(
      self.f.calls().is_empty(),
      "a stale token {token:#x} reached the backend"
    );
    self.follow();
  }

  fn close(&mut self) {
    if self.dropped {
      self.closed_expected += 1;
    } else if !self.closing {
      self.closing = true;
      for entry in self.live.values_mut() {
        let mut first = 0;
        while first < entry.ops.len() {
          let chain = entry.chain(first);
          let head = &entry.ops[first];
          if head.place.is_none() && head.fate.is_none() {
            for position in chain.clone() {
              entry.ops[position].fate = Some(CLOSED);
            }
          }
          first = chain.end;
        }
      }
    }
    self.s.close();
    self.follow();
  }

  fn take(&mut self, pairs: usize) {
    let mut wire = vec![f64::NAN; pairs * 2];
    let count = self.s.take_deliveries(&mut wire);
    if self.wire_busy || self.torn_down {
      assert_eq!(
        count, 0,
        "a delivery while the last is unfinished, or after tear-down"
      );
      return;
    }
    assert_eq!(count, pairs.min(self.pending()), "pairs delivered");
    for pair in wire[..count * 2].chunks(2) {
      let (slot, value) = (pair[0], pair[1]);
      if slot == CLOSED_SLOT {
        assert_eq!(value, 0.0);
        assert!(self.dropped, "closed pair with the backend alive");
        assert!(
          self.closed_received < self.closed_expected,
          "closed pair too many"
        );
        assert!(
          self.live.values().all(|e| e.taken),
          "closed pair before every other pair"
        );
        self.closed_received += 1;
        continue;
      }
      assert!(slot >= 0.0 && slot.fract() == 0.0, "slot {slot}");
      let index = slot as usize;
      let entry = self
        .live
        .get_mut(&index)
        .unwrap_or_else(|| panic!("delivery for slot {index}, which nothing owns"));
      assert!(!entry.taken, "slot {index} delivered twice");
      assert!(entry.settled(), "slot {index} delivered before it settled");
      if entry.batch {
        assert_eq!(value, 0.0, "a batch's result");
        let results = entry.results.take().unwrap();
        for (position, op) in entry.ops.iter().enumerate() {
          // SAFETY: the array lives in the entry (taken out just now, freed below).
          let seen = unsafe { *entry.results_ptr.add(position) };
          let expected = op.fate.unwrap();
          assert!(
            same(seen, expected),
            "batch {:#x} position {position}: {seen}, not {expected}",
            entry.token
          );
        }
        // Freed now: the scheduler may not write it after the delivery was taken.
        drop(results);
      } else {
        let expected = entry.ops[0].fate.unwrap();
        assert!(
          same(value, expected),
          "op {:#x}: delivered {value}, not {expected}",
          entry.token
        );
      }
      entry.taken = true;
      entry.buffers.clear();
      self.on_wire.push(index);
    }
    self.wire_busy = count > 0;
    self.follow();
  }

  fn finish(&mut self) {
    self.s.finish_delivery();
    for index in self.on_wire.drain(..) {
      let entry = self.live.remove(&index).unwrap();
      self.stale.push(entry.token);
      if self.stale.len() > 16 {
        self.stale.remove(0);
      }
    }
    self.wire_busy = false;
    self.follow();
  }

  fn complete(&mut self, pick: u8, result: i64) {
    let runnable = self.f.runnable();
    if let Some(op) = runnable.get(pick as usize % runnable.len().max(1)) {
      self.f.complete(op.token, result);
    }
  }

  fn flush(&mut self, advance: bool) {
    self.loop_time += u64::from(advance);
    self.s.flush(self.loop_time);
    self.follow();
  }

  fn on_ready(&mut self) {
    self.s.on_ready();
    self.follow();
  }

  /// The state of the run, for a failure's message.
  fn dump(&self) -> String {
    let mut live: Vec<_> = self.live.iter().collect();
    live.sort_by_key(|(index, _)| **index);
    let entries: Vec<String> = live
      .iter()
      .map(|(index, e)| {
        let ops: Vec<String> = e
          .ops
          .iter()
          .map(|op| {
            format!(
              "{}{}{}{}",
              if op.link { "L" } else { "" },
              op.place.map_or("q".to_string(), |p| format!("@{p}")),
              if op.reaped { "r" } else { "" },
              op.fate.map_or(String::new(), |v| format!("={v}"))
            )
          })
          .collect();
        format!(
          "slot {index} {:#x}{}{} [{}]",
          e.token,
          if e.abort { " aborted" } else { "" },
          if e.taken { " taken" } else { "" },
          ops.join(" ")
        )
      })
      .collect();
    format!(
      "{:?}; closing {} dropped {}; scheduler outstanding {}; backend holds {:?}, runnable {:?}, unsubmitted {}; entries:\n  {}",
      self.traits,
      self.closing,
      self.dropped,
      self.s.outstanding(),
      self.f.held_tokens(),
      self.f.runnable().iter().map(|op| op.token).collect::<Vec<_>>(),
      self.f.unsubmitted(),
      entries.join("\n  ")
    )
  }

  /// Completes everything and closes (or tears down); checks what must hold at the end.
  fn finish_run(&mut self, input: &mut Input) {
    self.f.refuse_pushes(false);
    self.f.fail_submits(false);
    self.f.on_submit(OnSubmit::Run);
    self.f.set_submitted(Submitted::default());
    if input.byte().is_multiple_of(4) {
      let held: Vec<(u64, u32)> = self
        .f
        .held_tokens()
        .into_iter()
        .map(|t| (t, self.f.place_of(t).unwrap()))
        .collect();
      self.torn_down = true;
      self.s.tear_down();
      let cancels = self.f.cancels();
      for h in &held {
        assert!(cancels.contains(h), "tear_down left {:#x} uncancelled", h.0);
      }
      self.follow();
      assert!(self.f.dropped());
      self.finish();
      self.take(8);
      return;
    }
    let mut rounds = 0;
    loop {
      self.finish();
      while self.pending() > 0 {
        self.take(4);
        self.finish();
      }
      if self.dropped && self.live.is_empty() && self.closed_received == self.closed_expected {
        break;
      }
      rounds += 1;
      assert!(rounds < 10_000, "never finished closing: {}", self.dump());
      if !self.closing && (rounds > 3 || input.byte().is_multiple_of(2)) {
        self.close();
        continue;
      }
      let mut results = Vec::new();
      for _ in 0..4 {
        results.push(input.result());
      }
      self.f.post_staged();
      let mut turn = 0;
      self.f.complete_all_with(|_| {
        turn += 1;
        results[turn % results.len()]
      });
      self.flush(true);
      self.on_ready();
    }
    assert!(self.closed_received >= 1);
    assert!(self.f.held_at_drop().is_empty());
  }
}

fuzz_target!(|data: &[u8]| {
  let mut input = Input(data);
  let config = input.byte();
  let traits = Traits {
    capacity: 1 + (input.byte() % 6) as usize,
    links: config & 1 != 0,
    cheap_submit: config & 2 != 0,
  };
  let (backend, f) = fake(traits);
  let unlinkable = (config & 4 != 0).then_some(Opcode::Fdatasync);
  if let Some(opcode) = unlinkable {
    f.refuse_to_link(opcode);
  }
  let mut m = Model {
    s: Scheduler::new(backend),
    f,
    traits,
    unlinkable,
    live: HashMap::new(),
    on_wire: Vec::new(),
    wire_busy: false,
    closing: false,
    dropped: false,
    torn_down: false,
    closed_expected: 0,
    closed_received: 0,
    stale: Vec::new(),
    loop_time: 1,
  };
  let mut steps = 0;
  while !input.is_empty() && steps < 400 {
    steps += 1;
    let action = input.byte();
    match action % 20 {
      0..=2 => m.start(&mut input),
      3 | 4 => m.start_batch(&mut input),
      5 => {
        let pick = input.byte();
        m.cancel_live(pick)
      }
      6 => {
        let pick = input.byte();
        m.cancel_stale(pick)
      }
      7 => {
        if input.byte() % 4 == 0 {
          m.close()
        }
      }
      8 | 9 => {
        let pick = input.byte();
        let result = input.result();
        m.complete(pick, result)
      }
      10 => {
        let result = input.result();
        if result == 0 {
          // The other thread posts what it had staged.
          m.f.post_staged();
        } else {
          m.f.complete_all(result);
        }
      }
      11 | 12 => {
        let advance = input.byte() % 2 == 0;
        m.flush(advance)
      }
      13 => m.on_ready(),
      14 | 15 => {
        let pairs = input.byte() as usize % 4;
        m.take(pairs)
      }
      16 => m.finish(),
      17 => {
        let b = input.byte();
        match b % 5 {
          0 => m.f.refuse_pushes(b & 8 != 0),
          1 => m.f.fail_submits(b & 8 != 0),
          2 => m.f.set_cancel(if b & 8 != 0 {
            CancelMode::TooLate
          } else {
            CancelMode::Succeed
          }),
          3 => m.f.set_submitted(Submitted {
            completions_soon: b & 8 != 0,
          }),
          _ => {
            let result = input.result();
            m.f.on_submit(match b % 3 {
              0 => OnSubmit::Run,
              1 => OnSubmit::Complete(result),
              _ => OnSubmit::CompleteOnPoll(result, usize::from(b >> 6)),
            })
          }
        }
      }
      _ => {
        // Two deliveries with calls in between: take, re-enter, finish.
        let pairs = 1 + input.byte() as usize % 3;
        m.take(pairs);
        match input.byte() % 4 {
          0 => m.start(&mut input),
          1 => {
            let pick = input.byte();
            m.cancel_live(pick)
          }
          2 => m.close(),
          _ => m.start_batch(&mut input),
        }
        m.finish();
      }
    }
  }
  m.finish_run(&mut input);
});
