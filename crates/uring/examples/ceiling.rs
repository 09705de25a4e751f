//! What the kernel alone can do with 4 KiB random reads from the page cache, on one thread
//! and without JavaScript: a `pread(2)` loop, and this crate's ring fed 64 reads per submit
//! with two such batches in it (default ring and SQPOLL). These are the ceilings the
//! benchmark's cached-read rows live under; `docs/ARCHITECTURE.md` quotes a run.
//!
//! ```sh
//! cargo run --release -p caio-uring --example ceiling [-- <file> [<seconds>]]
//! ```
//! The file (default: a 256 MiB one made in the temp directory and removed after) is read
//! once first to bring it into the page cache.

#[cfg(target_os = "linux")]
mod linux {
  use std::fs::File;
  use std::io::{self, Read, Write};
  use std::os::fd::AsRawFd;
  use std::path::PathBuf;
  use std::time::{Duration, Instant};

  use caio_core::{Backend, Completion, Opcode, Operation, Share};
  use caio_uring::{UringBackend, UringOptions};

  const BLOCK: usize = 4096;
  const BATCH: usize = 64;

  /// xorshift64: offsets spread over the whole file, the same sequence every run.
  struct Offsets {
    state: u64,
    blocks: u64,
  }

  impl Offsets {
    fn next(&mut self) -> u64 {
      self.state ^= self.state << 13;
      self.state ^= self.state >> 7;
      self.state ^= self.state << 17;
      (self.state % self.blocks) * BLOCK as u64
    }
  }

  fn pread_loop(file: &File, offsets: &mut Offsets, buffer: &mut [u8], seconds: Duration) -> f64 {
    let start = Instant::now();
    let mut reads = 0u64;
    while start.elapsed() < seconds {
      for _ in 0..BATCH {
        // SAFETY: `buffer` is BLOCK bytes of our own memory, written by this call only.
        let n = unsafe {
          libc::pread(
            file.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            BLOCK,
            offsets.next() as i64,
          )
        };
        assert_eq!(n, BLOCK as isize, "pread");
        reads += 1;
      }
    }
    reads as f64 / start.elapsed().as_secs_f64()
  }

  fn ring_batches(
    file: &File,
    offsets: &mut Offsets,
    buffers: &mut [u8],
    sqpoll: bool,
    seconds: Duration,
  ) -> io::Result<(f64, bool)> {
    // Two batches in the ring: while one is read, the other's completions are reaped and it
    // is refilled, so the kernel never waits for this thread.
    let mut ring = UringBackend::new(2 * BATCH, UringOptions { sqpoll })?;
    let mut completions: Vec<Completion> = Vec::with_capacity(2 * BATCH);
    let mut free: Vec<usize> = (0..2 * BATCH).collect();
    let start = Instant::now();
    let mut reads = 0u64;
    while start.elapsed() < seconds {
      while free.len() >= BATCH {
        for _ in 0..BATCH {
          let Some(slot) = free.pop() else { break };
          let op = Operation {
            opcode: Opcode::Read,
            fd: file.as_raw_fd(),
            offset: offsets.next(),
            buf: buffers[slot * BLOCK..].as_mut_ptr(),
            len: BLOCK as u32,
            token: slot as u64,
            priority: 0,
            link: false,
            share: Share::Alone,
          };
          // SAFETY: the buffer rule: each chunk belongs to one operation at a time, and goes
          // back on the free list only once that operation's completion was reaped.
          unsafe { ring.push(op) }.map_err(|_| io::Error::other("ring full"))?;
        }
        ring.submit(false)?;
      }
      completions.clear();
      ring.reap(&mut completions);
      if completions.is_empty() {
        if sqpoll {
          // The kernel thread is doing the reads right now: sleeping would only add a
          // wake-up to its rate, which is what this measures.
          std::hint::spin_loop();
        } else {
          // The eventfd is signalled for every completion the kernel posts.
          caio_core::sys::wait_readable(ring.notifier().fd(), Duration::from_millis(10));
          ring.notifier().clear();
        }
      }
      for completion in &completions {
        assert_eq!(completion.result, BLOCK as i64, "read");
        free.push(completion.token as usize);
      }
      reads += completions.len() as u64;
    }
    Ok((
      reads as f64 / start.elapsed().as_secs_f64(),
      ring.sqpoll_active(),
    ))
  }

  pub fn run() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let given = args.next().map(PathBuf::from);
    let seconds = Duration::from_secs_f64(args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0));
    let path = match &given {
      Some(path) => path.clone(),
      None => {
        let path = std::env::temp_dir().join(format!("caio-ceiling-{}", std::process::id()));
        let mut out = File::create(&path)?;
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..256 {
          out.write_all(&chunk)?;
        }
        path
      }
    };
    let mut file = File::open(&path)?;
    let mut sink = Vec::new();
    file.read_to_end(&mut sink)?;
    let blocks = (sink.len() / BLOCK) as u64;
    drop(sink);
    if blocks == 0 {
      return Err(io::Error::other("the file is smaller than one block"));
    }
    let mut offsets = Offsets {
      state: 0x9e37_79b9_7f4a_7c15,
      blocks,
    };
    let mut buffers = vec![0u8; 2 * BLOCK * BATCH];
    println!(
      "4 KiB random reads from the page cache, one thread, no JavaScript ({:.1} s each):",
      seconds.as_secs_f64()
    );
    let pread = pread_loop(&file, &mut offsets, &mut buffers[..BLOCK], seconds);
    println!(
      "  pread(2) loop                      {:>7.0} k/s",
      pread / 1e3
    );
    for sqpoll in [false, true] {
      let (rate, active) = ring_batches(&file, &mut offsets, &mut buffers, sqpoll, seconds)?;
      let name = match (sqpoll, active) {
        (false, _) => "io_uring, 64 per submit",
        (true, true) => "io_uring SQPOLL, 64 per submit",
        (true, false) => "io_uring (SQPOLL refused), 64 per submit",
      };
      println!(
        "  {name:<34} {:>7.0} k/s  ({:.2}x the pread loop)",
        rate / 1e3,
        rate / pread
      );
    }
    if given.is_none() {
      std::fs::remove_file(&path)?;
    }
    Ok(())
  }
}

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
  linux::run()
}

#[cfg(not(target_os = "linux"))]
fn main() {
  eprintln!("io_uring is Linux-only");
}
