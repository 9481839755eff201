//! Upstream's silence, watched by one timer per request.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// How long upstream has been silent, watched by one timer: it may stay silent at most
/// `limit` before its answer starts and between two pieces of it. A piece only notes when it
/// came; the timer is armed at the first wait and moved only when it fires, so an answer
/// that keeps coming costs no timer updates.
#[derive(Debug)]
pub struct Silence {
    limit: Duration,
    last: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Silence {
    pub fn new(limit: Duration) -> Self {
        Self { limit, last: Instant::now(), timer: None }
    }

    /// Upstream spoke.
    pub fn heard(&mut self) {
        self.last = Instant::now();
    }

    /// Ready once upstream has been silent for the limit; until then the waker is woken
    /// when it may have been.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.last + self.limit;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        while timer.as_mut().poll(cx).is_ready() {
            // It fired at the deadline it was set to; upstream may have spoken since.
            let deadline = self.last + self.limit;
            if deadline <= Instant::now() {
                return Poll::Ready(());
            }
            timer.as_mut().reset(deadline);
        }
        Poll::Pending
    }

    /// `future`'s output, or `None` if upstream stayed silent for the limit first.
    pub async fn watch<F: Future>(&mut self, future: F) -> Option<F::Output> {
        let mut future = pin!(future);
        let output = std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            Poll::Pending => self.poll_expired(cx).map(|()| None),
        })
        .await;
        self.heard();
        output
    }
}
