//! Where `provisor serve` writes its log (events, the access log's line per request, the banner): one buffer that
//! every thread appends whole lines to, and one thread that writes it out, so a request never waits for a log write.
//!
//! The writer writes in batches: after each write it lets lines gather for [`GATHER`] before the next, so standard
//! error sees at most about 50 writes a second, not one per line at 80,000 requests/s, and no thread is woken per
//! line (a line wakes the writer only when it waits on an empty buffer). The first line after a quiet spell is
//! written at once; a line waits at most [`GATHER`]. When [`LIMIT`] bytes are waiting (a stalled log reader),
//! further lines are dropped and counted (`provisor_log_lines_dropped_total`) rather than stalling the server; the
//! audit log is the complete record. A stopping server writes what is queued, waiting at most [`FLUSH_WAIT`] for a
//! reader that no longer reads.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The most log text waiting to be written (about 100,000 access lines); lines beyond it are dropped and counted.
pub const LIMIT: usize = 16 << 20;

/// How long lines gather between writes (a writer that took every line as it came would be woken, and write, once
/// a line).
const GATHER: Duration = Duration::from_millis(20);

/// The lines waiting, and whether the writer sleeps until there are some.
struct Waiting {
    text: Vec<u8>,
    writer_asleep: bool,
    closed: bool,
}

struct Shared {
    waiting: Mutex<Waiting>,
    wake: Condvar,
    dropped: AtomicUsize,
    limit: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The queue's writing end: cheap to clone; every [`LogQueue::push`] is one whole line (or several).
#[derive(Clone)]
pub struct LogQueue {
    shared: Arc<Shared>,
}

/// Stops the writer thread when dropped, after it wrote everything queued.
pub struct Flush {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogQueue {
    /// Starts the writer thread (`provisor-log`) writing to `out`.
    pub fn start(out: impl Write + Send + 'static) -> (LogQueue, Flush) {
        LogQueue::start_with_limit(out, LIMIT)
    }

    fn start_with_limit(mut out: impl Write + Send + 'static, limit: usize) -> (LogQueue, Flush) {
        let shared = Arc::new(Shared {
            waiting: Mutex::new(Waiting { text: Vec::with_capacity(64 << 10), writer_asleep: false, closed: false }),
            wake: Condvar::new(),
            dropped: AtomicUsize::new(0),
            limit,
        });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("provisor-log".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(64 << 10);
                loop {
                    {
                        let mut w = theirs.lock();
                        while w.text.is_empty() && !w.closed {
                            w.writer_asleep = true;
                            w = theirs.wake.wait(w).unwrap_or_else(|p| p.into_inner());
                        }
                        w.writer_asleep = false;
                        if w.text.is_empty() {
                            return; // closed, and everything written
                        }
                        std::mem::swap(&mut w.text, &mut batch);
                    }
                    // A failed write (a closed pipe) is not reported: there is nowhere to report it.
                    let _ = out.write_all(&batch).and_then(|()| out.flush());
                    batch.clear();
                    if !theirs.lock().closed {
                        std::thread::sleep(GATHER);
                    }
                }
            })
            .expect("spawning the log writer thread");
        (LogQueue { shared: shared.clone() }, Flush { shared, thread: Some(thread) })
    }

    /// Queues `line` (one or more whole lines, each ending in a newline), or drops and counts it when the queue holds
    /// [`LIMIT`] bytes.
    pub fn push(&self, line: &[u8]) {
        let mut w = self.shared.lock();
        if w.text.len() + line.len() > self.shared.limit {
            drop(w);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        w.text.extend_from_slice(line);
        if w.writer_asleep {
            w.writer_asleep = false;
            drop(w);
            self.shared.wake.notify_one();
        }
    }

    /// Lines dropped so far because the queue was full.
    pub fn dropped(&self) -> usize {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

/// tracing-subscriber formats each event into one buffer and writes it with one `write_all`: one push per event.
impl Write for LogQueue {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogQueue {
    type Writer = LogQueue;

    fn make_writer(&'a self) -> LogQueue {
        self.clone()
    }
}

/// How long a stopping server waits for its log to be written: a reader that stopped reading (a stalled pipe) must
/// not keep the process from exiting.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

impl Drop for Flush {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        let Some(t) = self.thread.take() else { return };
        let deadline = std::time::Instant::now() + FLUSH_WAIT;
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read, counting the writes it got.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut s = self.0.lock().unwrap();
            s.0.extend_from_slice(buf);
            s.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_and_in_few_writes() {
        let sink = Sink::default();
        let (queue, flush) = LogQueue::start(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let q = queue.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        q.push(format!("thread {t} line {i:05} of the access log, about as long as one\n").as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(flush);
        let (text, writes) = sink.0.lock().unwrap().clone();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(text.lines().count(), 80_000);
        for t in 0..4 {
            let mine: Vec<&str> = text.lines().filter(|l| l.starts_with(&format!("thread {t} "))).collect();
            assert_eq!(mine.len(), 20_000);
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "thread {t}'s lines are out of order");
        }
        assert!(writes < 80_000 / 10, "{writes} writes for 80,000 lines: not batched");
        assert_eq!(queue.dropped(), 0);
    }

    #[test]
    fn a_quiet_servers_line_is_written_at_once() {
        let sink = Sink::default();
        let (queue, _flush) = LogQueue::start(sink.clone());
        for i in 0..3 {
            queue.push(format!("line {i}\n").as_bytes());
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !String::from_utf8_lossy(&sink.0.lock().unwrap().0).contains(&format!("line {i}\n")) {
                assert!(std::time::Instant::now() < deadline, "line {i} was not written");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    #[test]
    fn a_stalled_reader_costs_lines_not_memory() {
        /// A sink that blocks until the test lets it go.
        struct Stalled(Arc<Mutex<()>>, Sink);
        impl Write for Stalled {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let _held = self.0.lock().unwrap();
                self.1.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let sink = Sink::default();
        let (queue, flush) = LogQueue::start_with_limit(Stalled(gate.clone(), sink.clone()), 1000);
        queue.push(b"first line, taken by the writer and stuck in its write\n");
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..100 {
            queue.push(b"a line of twenty b\n");
        }
        assert!(queue.dropped() > 0 && queue.dropped() < 100, "dropped {}", queue.dropped());
        let kept = 100 - queue.dropped();
        assert!(kept * 19 <= 1000, "{kept} lines kept past the limit");
        drop(held);
        drop(flush);
        assert_eq!(String::from_utf8(sink.0.lock().unwrap().0.clone()).unwrap().lines().count(), 1 + kept);
    }

    #[test]
    fn a_stalled_reader_does_not_hold_up_the_stop() {
        /// A sink whose reader never reads again.
        struct Stuck;
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_secs(3600));
                Ok(0)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (queue, flush) = LogQueue::start(Stuck);
        queue.push(b"a line that is never read\n");
        std::thread::sleep(Duration::from_millis(20));
        queue.push(b"and one more\n");
        let started = std::time::Instant::now();
        drop(flush);
        let took = started.elapsed();
        assert!(took >= FLUSH_WAIT && took < FLUSH_WAIT * 3, "the stop took {took:?}");
    }
}
