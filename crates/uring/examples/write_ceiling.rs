//! What the kernel alone can do with buffered random writes of 64 KiB into one file, with no
//! JavaScript and no ring: `pwrite(2)` of 64 KiB and `pwritev(2)` of 16 × 4 KiB in a loop, on
//! one thread and on two. io_uring runs every buffered write to one regular file in a single
//! io-wq worker at a time (it hashes them by inode), so the one-thread loop bounds what any
//! ring can do there; the bench's `randwrite-64k-qd16` and `writev-16x4k-qd16` rows live
//! under it. `docs/ARCHITECTURE.md` quotes a run.
//!
//! ```sh
//! cargo run --release -p caio-uring --example write_ceiling [-- <file> [<seconds>]]
//! ```
//! The file (default: a 256 MiB one made in the temp directory and removed after) is
//! written whole first, so that every later write lands on allocated blocks.

#[cfg(target_os = "linux")]
mod linux {
  use std::fs::{File, OpenOptions};
  use std::io::{self, Write};
  use std::os::fd::AsRawFd;
  use std::path::PathBuf;
  use std::time::{Duration, Instant};

  const WRITE: usize = 64 * 1024;
  const PIECE: usize = 4096;
  const PIECES: usize = WRITE / PIECE;

  #[derive(Clone, Copy)]
  enum Shape {
    Pwrite,
    Pwritev,
  }

  /// Writes at random 64 KiB-aligned offsets for `seconds`; returns writes per second.
  fn write_loop(file: &File, shape: Shape, seed: u64, seconds: Duration) -> f64 {
    let blocks = file.metadata().expect("stat").len() / WRITE as u64;
    let buffer = vec![7u8; WRITE];
    let pieces: Vec<libc::iovec> = (0..PIECES)
      .map(|i| libc::iovec {
        iov_base: buffer[i * PIECE..].as_ptr() as *mut libc::c_void,
        iov_len: PIECE,
      })
      .collect();
    let mut state = seed;
    let start = Instant::now();
    let mut writes = 0u64;
    while start.elapsed() < seconds {
      for _ in 0..64 {
        // xorshift64: the same offsets every run.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let offset = ((state % blocks) * WRITE as u64) as i64;
        let fd = file.as_raw_fd();
        let n = match shape {
          // SAFETY: `buffer` is WRITE bytes of our own memory, only read by the call.
          Shape::Pwrite => unsafe { libc::pwrite(fd, buffer.as_ptr().cast(), WRITE, offset) },
          // SAFETY: `pieces` describes PIECES slices of `buffer`, alive for the call.
          Shape::Pwritev => unsafe { libc::pwritev(fd, pieces.as_ptr(), PIECES as i32, offset) },
        };
        assert_eq!(n, WRITE as isize, "write");
        writes += 1;
      }
    }
    writes as f64 / start.elapsed().as_secs_f64()
  }

  /// The loop on `threads` threads at once, each with its own offsets; their sum.
  fn run(path: &PathBuf, shape: Shape, threads: u64, seconds: Duration) -> f64 {
    std::thread::scope(|scope| {
      let runs: Vec<_> = (0..threads)
        .map(|t| {
          scope.spawn(move || {
            let file = OpenOptions::new().write(true).open(path).expect("open");
            write_loop(&file, shape, 0x9e37_79b9_7f4a_7c15 ^ (t + 1), seconds)
          })
        })
        .collect();
      runs.into_iter().map(|run| run.join().unwrap()).sum()
    })
  }

  pub fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds = Duration::from_secs_f64(args.get(1).map_or(2.0, |s| s.parse().unwrap()));
    let (path, made) = match args.first() {
      Some(path) => (PathBuf::from(path), false),
      None => {
        let path = std::env::temp_dir().join(format!("caio-write-ceiling-{}", std::process::id()));
        let mut file = File::create(&path)?;
        let chunk = vec![1u8; 1 << 20];
        for _ in 0..256 {
          file.write_all(&chunk)?;
        }
        file.sync_all()?;
        (path, true)
      }
    };
    println!(
      "buffered random 64 KiB writes into {}, {seconds:?} each",
      path.display()
    );
    for (shape, name) in [
      (Shape::Pwrite, "pwrite 64 KiB"),
      (Shape::Pwritev, "pwritev 16 × 4 KiB"),
    ] {
      for threads in [1, 2] {
        let rate = run(&path, shape, threads, seconds);
        println!(
          "  {name:<20} {threads} thread(s): {:>8.1} k writes/s",
          rate / 1e3
        );
      }
    }
    if made {
      std::fs::remove_file(&path)?;
    }
    Ok(())
  }
}

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
  linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
  eprintln!("write_ceiling: Linux only");
}
