//! Serialised scrapes: one collection at a time, in one worker thread that owns the
//! collector. A scrape that arrives while a collection runs waits for that collection's
//! result instead of starting another (never a second libvirt storm); a scrape waits at
//! most the timeout, then gets the last result (or `kvmtune_up 0` when there is none).

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use crate::model::Collection;

/// Something that collects: the libvirt collector in the product, a fake in tests.
pub trait Collect: Send + 'static {
    fn collect(&mut self) -> Collection;
}

#[derive(Default)]
struct State {
    running: bool,
    /// Collections finished so far.
    done: u64,
    last: Option<Arc<Collection>>,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

/// Serialises scrapes onto one collector.
pub struct Scraper {
    shared: Arc<Shared>,
    tx: Mutex<Sender<()>>,
    timeout: Duration,
}

impl Scraper {
    /// Start the worker thread that owns `collector`.
    pub fn new<C: Collect>(mut collector: C, timeout: Duration) -> std::io::Result<Scraper> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        });
        let (tx, rx) = channel::<()>();
        let sh = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("kvmtune-collect".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    let c = std::panic::catch_unwind(AssertUnwindSafe(|| collector.collect()))
                        .unwrap_or_else(|_| {
                            Collection::down("internal error: the collection panicked")
                        });
                    let mut st = sh.state.lock().unwrap_or_else(PoisonError::into_inner);
                    st.last = Some(Arc::new(c));
                    st.done += 1;
                    st.running = false;
                    sh.cv.notify_all();
                }
            })?;
        Ok(Scraper {
            shared,
            tx: Mutex::new(tx),
            timeout,
        })
    }

    /// The result of a collection that starts no earlier than this call, or, after the
    /// timeout, the last result.
    pub fn scrape(&self) -> Arc<Collection> {
        let mut st = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let target = st.done + 1;
        if !st.running {
            st.running = true;
            let sent = self
                .tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .send(())
                .is_ok();
            if !sent {
                st.running = false;
                return Arc::new(Collection::down("internal error: the collector stopped"));
            }
        }
        let (st, _) = self
            .shared
            .cv
            .wait_timeout_while(st, self.timeout, |s| s.done < target)
            .unwrap_or_else(PoisonError::into_inner);
        let timed_out = st.done < target;
        match &st.last {
            Some(c) if !timed_out => Arc::clone(c),
            // the last result, saying that it is an old one; `kvmtune_up` 0: libvirt did not
            // answer this scrape (an alert on it must fire while libvirt or a QEMU monitor
            // hangs, not see the frozen figures as fresh)
            Some(c) => {
                let mut old = Collection::clone(c);
                old.up = false;
                old.last_error = Some(format!(
                    "the collection did not finish within {} s (libvirt not answering?): the previous result is served",
                    self.timeout.as_secs_f64()
                ));
                Arc::new(old)
            }
            None => Arc::new(Collection::down(&format!(
                "the first collection did not finish within {} s",
                self.timeout.as_secs_f64()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    struct Slow {
        calls: Arc<AtomicUsize>,
        running: Arc<AtomicUsize>,
        max_parallel: Arc<AtomicUsize>,
        delay: Duration,
    }
    impl Collect for Slow {
        fn collect(&mut self) -> Collection {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_parallel.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(self.delay);
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            self.running.fetch_sub(1, Ordering::SeqCst);
            Collection {
                up: true,
                version: n.to_string(),
                ..Collection::default()
            }
        }
    }

    fn slow(delay: Duration) -> (Slow, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        (
            Slow {
                calls: Arc::clone(&calls),
                running: Arc::new(AtomicUsize::new(0)),
                max_parallel: Arc::clone(&max),
                delay,
            },
            calls,
            max,
        )
    }

    #[test]
    fn concurrent_scrapes_share_one_collection() {
        let (c, calls, max) = slow(Duration::from_millis(300));
        let s = Arc::new(Scraper::new(c, Duration::from_secs(10)).unwrap());
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || s.scrape())
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(results.iter().all(|r| r.up));
        // one collection at a time, and far fewer collections than scrapes
        assert_eq!(max.load(Ordering::SeqCst), 1);
        assert!(calls.load(Ordering::SeqCst) <= 2, "{calls:?}");
        // a later scrape gets a fresh collection
        let before = calls.load(Ordering::SeqCst);
        let r = s.scrape();
        assert_eq!(r.version, (before + 1).to_string());
    }

    #[test]
    fn a_slow_collection_times_out_to_the_last_result() {
        let (c, _, _) = slow(Duration::from_millis(600));
        let s = Scraper::new(c, Duration::from_millis(100)).unwrap();
        let t = Instant::now();
        let first = s.scrape();
        assert!(t.elapsed() < Duration::from_millis(500));
        assert!(!first.up, "nothing collected yet: up 0");
        assert!(
            first
                .last_error
                .as_deref()
                .unwrap_or("")
                .contains("did not finish")
        );
        std::thread::sleep(Duration::from_millis(700));
        // the first collection finished meanwhile; this scrape starts the next and times
        // out to the first's result
        let second = s.scrape();
        assert!(!second.up, "a timed-out scrape is up 0");
        assert_eq!(second.version, "1");
        assert!(
            second
                .last_error
                .as_deref()
                .unwrap_or("")
                .contains("previous result")
        );
    }

    struct Panics;
    impl Collect for Panics {
        fn collect(&mut self) -> Collection {
            panic!("boom")
        }
    }

    #[test]
    fn a_panicking_collector_is_up_0_not_a_dead_exporter() {
        let s = Scraper::new(Panics, Duration::from_secs(5)).unwrap();
        assert!(!s.scrape().up);
        assert!(!s.scrape().up);
    }
}
