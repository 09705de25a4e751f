//! Completions a backend makes on the calling thread (a read the page cache answered, an
//! operation cancelled or refused before it reached the kernel or the pool), kept until the
//! next reap, and the quiet a `reap_follows` submit asks for.
//!
//! Nothing but the backend itself knows of such a completion, so nothing else signals the
//! [`Notifier`] for it: the backend must, or the event loop never comes to reap it. While a
//! [`Backend::submit`](crate::Backend::submit) with `reap_follows` is in force the caller
//! reaps right away, so the signal is saved until
//! [`Backend::signal_completions`](crate::Backend::signal_completions) ends the quiet.

use crate::{Completion, Notifier};

/// Completions made on the calling thread and not yet reaped, and whether a `reap_follows`
/// submit asked for them not to signal the notifier.
#[derive(Debug, Default)]
pub struct LocalCompletions {
  /// Made here, in the order they were made, not yet reaped.
  made: Vec<Completion>,
  /// From a `reap_follows` submit until [`LocalCompletions::end_quiet`].
  quiet: bool,
}

impl LocalCompletions {
  /// Room for `capacity` completions up front, for a backend that may complete all of its
  /// operations here and should not grow the list on the hot path.
  pub fn with_capacity(capacity: usize) -> LocalCompletions {
    LocalCompletions {
      made: Vec::with_capacity(capacity),
      quiet: false,
    }
  }

  /// Keeps one completion for the next reap. Call [`LocalCompletions::announce`] once the
  /// completions of a step are all in, so that a burst costs one signal.
  pub fn push(&mut self, completion: Completion) {
    self.made.push(completion);
  }

  /// The list itself, for code that settles operations into any `Vec<Completion>` (a slot
  /// table, a reap's output). What it adds is reaped like what [`LocalCompletions::push`]
  /// adds, and is announced the same way.
  pub fn list_mut(&mut self) -> &mut Vec<Completion> {
    &mut self.made
  }

  /// Whether no completion made here waits for a reap.
  pub fn is_empty(&self) -> bool {
    self.made.is_empty()
  }

  /// How many completions made here wait for a reap, for a backend that tells from it
  /// whether a step made any.
  pub fn len(&self) -> usize {
    self.made.len()
  }

  /// Whether a `reap_follows` submit asked for quiet and [`LocalCompletions::end_quiet`] has
  /// not ended it yet.
  pub fn is_quiet(&self) -> bool {
    self.quiet
  }

  /// Starts the quiet of a `reap_follows` submit: the caller reaps right after, so
  /// completions made here need no signal until [`LocalCompletions::end_quiet`]. Returns
  /// whether this started it (false: it was quiet already), for a backend that silences
  /// other signals of its own only once.
  pub fn begin_quiet(&mut self) -> bool {
    !std::mem::replace(&mut self.quiet, true)
  }

  /// Signals `notifier` for the completions made here, unless the backend is quiet (the
  /// caller reaps them anyway) or there are none (a signal would only wake the event loop
  /// to find nothing).
  pub fn announce(&self, notifier: &Notifier) {
    if !self.quiet && !self.made.is_empty() {
      notifier.signal();
    }
  }

  /// Ends the quiet and signals `notifier` if completions made here are still unreaped: the
  /// caller that meant to reap did not take them all, and nothing else would wake the event
  /// loop for them. Signals for leftovers even when it was not quiet, since the signal they
  /// had may have been consumed by a watcher that did not reap.
  pub fn end_quiet(&mut self, notifier: &Notifier) {
    self.quiet = false;
    if !self.made.is_empty() {
      notifier.signal();
    }
  }

  /// Moves every completion made here to the end of `out`, in the order they were made.
  /// Returns how many, for a backend that counts its outstanding operations.
  pub fn drain_into(&mut self, out: &mut Vec<Completion>) -> usize {
    let count = self.made.len();
    if count > 0 {
      out.append(&mut self.made);
    }
    count
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn done(token: u64, result: i64) -> Completion {
    Completion { token, result }
  }

  /// Whether `notifier` was signalled since the last look; clears it.
  fn signalled(notifier: &Notifier) -> bool {
    notifier.clear()
  }

  #[test]
  fn announces_completions_unless_quiet() {
    let notifier = Notifier::new().unwrap();
    let mut local = LocalCompletions::default();
    local.announce(&notifier);
    assert!(!signalled(&notifier), "nothing to announce");
    local.push(done(1, 0));
    local.announce(&notifier);
    assert!(signalled(&notifier), "not quiet: announced");
    assert!(local.begin_quiet(), "the first begin starts the quiet");
    assert!(!local.begin_quiet(), "a second finds it quiet already");
    local.push(done(2, 0));
    local.announce(&notifier);
    assert!(!signalled(&notifier), "quiet: the caller reaps");
  }

  #[test]
  fn ending_the_quiet_signals_for_what_is_left() {
    let notifier = Notifier::new().unwrap();
    let mut local = LocalCompletions::default();
    local.begin_quiet();
    local.list_mut().push(done(7, -1));
    local.end_quiet(&notifier);
    assert!(!local.is_quiet());
    assert!(signalled(&notifier), "a leftover must not be missed");
    local.list_mut().clear();
    local.begin_quiet();
    local.end_quiet(&notifier);
    assert!(!signalled(&notifier), "nothing left: no signal");
  }

  #[test]
  fn drains_in_order_and_counts() {
    let mut local = LocalCompletions::with_capacity(4);
    let mut out = vec![done(0, 0)];
    assert_eq!(local.drain_into(&mut out), 0);
    local.push(done(1, 1));
    local.list_mut().push(done(2, 2));
    assert!(!local.is_empty());
    assert_eq!(local.len(), 2);
    assert_eq!(local.drain_into(&mut out), 2);
    assert!(local.is_empty());
    assert_eq!(out, [done(0, 0), done(1, 1), done(2, 2)]);
  }
}
