//! The fuzz input as a stream of bytes, shared by the targets: once the fuzzer's bytes run
//! out, every read is 0, so any input is a whole, valid script.

pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
  pub fn byte(&mut self) -> u8 {
    match self.0.split_first() {
      Some((b, rest)) => {
        self.0 = rest;
        *b
      }
      None => 0,
    }
  }

  #[allow(dead_code)]
  pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
    let mut out = [0; N];
    for b in &mut out {
      *b = self.byte();
    }
    out
  }

  #[allow(dead_code)]
  pub fn is_empty(&self) -> bool {
    self.0.is_empty()
  }
}
