#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// An IO whose rest state the test sets.
struct Fake {
    io: DuplexStream,
    rest: Option<u64>,
}

impl AtRest for Fake {
    fn at_rest(&self) -> Option<u64> {
        self.rest
    }
}

impl AsyncRead for Fake {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Fake {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A Parkable over a fake IO at rest after `dispatched` requests, `ended` of them answered.
fn parkable(
    rest: Option<u64>,
    dispatched: u64,
    ended: u64,
) -> (Parkable<Fake>, Arc<Counters>, Slot<Fake>, DuplexStream) {
    let (ours, peer) = tokio::io::duplex(1024);
    let counters = Arc::new(Counters::default());
    counters.dispatched.store(dispatched, Ordering::Relaxed);
    counters.ended.store(ended, Ordering::Relaxed);
    let slot: Slot<Fake> = Arc::default();
    let p = Parkable::new(Fake { io: ours, rest }, counters.clone(), slot.clone());
    (p, counters, slot, peer)
}

/// Polls a read once: it must find nothing.
fn read_pending(p: &mut Parkable<Fake>) {
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut buf = [0u8; 16];
    let mut rb = ReadBuf::new(&mut buf);
    assert!(Pin::new(p).poll_read(&mut cx, &mut rb).is_pending());
}

#[tokio::test]
async fn parks_after_the_delay_at_rest_and_hands_the_io_back_open() {
    let (mut p, counters, slot, mut peer) = parkable(Some(1), 1, 1);
    let started = Instant::now();
    // Waits for the park timer (an event): each wake-up polls the read again, as hyper does.
    let parked = tokio::time::timeout(
        Duration::from_secs(5),
        std::future::poll_fn(|cx| {
            let mut buf = [0u8; 16];
            let mut rb = ReadBuf::new(&mut buf);
            match Pin::new(&mut p).poll_read(cx, &mut rb) {
                Poll::Pending if counters.wants_park() => Poll::Ready(()),
                Poll::Pending => Poll::Pending,
                Poll::Ready(r) => panic!("read returned {r:?}"),
            }
        }),
    )
    .await;
    assert!(parked.is_ok(), "not parked within 5 s");
    assert!(started.elapsed() >= PARK_AFTER);
    // hyper's shutdown of the parked connection keeps the socket: the IO goes to the slot.
    std::future::poll_fn(|cx| Pin::new(&mut p).poll_shutdown(cx))
        .await
        .unwrap();
    let (mut io, since) = slot.lock().unwrap().take().expect("the IO was handed back");
    assert!(since <= started + PARK_AFTER);
    io.io.write_all(b"still open").await.unwrap();
    let mut got = [0u8; 10];
    peer.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"still open");
}

#[test]
fn never_parks_away_from_rest() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // No request yet, inside a head or body, a request in the service, a head not yet
        // dispatched, a response still being written: no timer is even armed.
        for (rest, dispatched, ended) in [(Some(0), 0, 0), (None, 1, 1), (Some(1), 1, 0), (Some(2), 1, 1)] {
            let (mut p, counters, _slot, _peer) = parkable(rest, dispatched, ended);
            read_pending(&mut p);
            assert!(p.timer.is_none(), "{rest:?} {dispatched} {ended}");
            assert!(!counters.wants_park());
        }
        // Written but not flushed yet.
        let (mut p, _counters, _slot, _peer) = parkable(Some(1), 1, 1);
        std::future::poll_fn(|cx| Pin::new(&mut p).poll_write(cx, b"x"))
            .await
            .unwrap();
        read_pending(&mut p);
        assert!(p.timer.is_none());
        std::future::poll_fn(|cx| Pin::new(&mut p).poll_flush(cx))
            .await
            .unwrap();
        read_pending(&mut p);
        assert!(p.timer.is_some(), "flushed: at rest again");
    });
}

#[tokio::test]
async fn an_unparked_shutdown_closes() {
    let (mut p, _counters, slot, mut peer) = parkable(Some(1), 1, 1);
    std::future::poll_fn(|cx| Pin::new(&mut p).poll_shutdown(cx))
        .await
        .unwrap();
    assert!(slot.lock().unwrap().is_none());
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "the peer saw the end");
}
