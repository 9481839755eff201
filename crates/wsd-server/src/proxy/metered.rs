//! A request's meter from admission to its end, and the answer's body through it: the
//! request's one ledger row is written when the meter finishes — at the answer's end, at a
//! fault, at wsd's own refusal — or, if none of those came, when it is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

use super::Proxy;
use super::meter::{Fault, Meter};
use super::silence::Silence;

/// A meter while the request waits for upstream's answer. If the wait is abandoned — the
/// client went away and the server dropped the request — the row is still written (499).
pub struct PendingMeter {
    meter: Option<Meter>,
    proxy: Arc<Proxy>,
}

impl PendingMeter {
    pub fn new(meter: Meter, proxy: Arc<Proxy>) -> Self {
        Self { meter: Some(meter), proxy }
    }

    /// The answer came (or failed): the meter goes on with it.
    pub fn take(mut self) -> Meter {
        self.meter.take().expect("a pending meter is taken once")
    }

    /// The meter, to name the provider and model once they are known.
    pub fn meter(&mut self) -> &mut Meter {
        self.meter.as_mut().expect("a pending meter is taken once")
    }

    /// Ends the request with an answer of wsd's own (a refusal, or one wsd gives itself):
    /// its row carries that status.
    pub fn answered(mut self, status: u16) {
        if let Some(mut meter) = self.meter.take() {
            meter.status = i64::from(status);
            if let Some(record) = meter.finish(None) {
                self.proxy.record(record);
            }
        }
    }
}

impl Drop for PendingMeter {
    fn drop(&mut self) {
        if let Some(record) = self.meter.as_mut().and_then(|meter| meter.finish(Some(Fault::ClientGone))) {
            self.proxy.record(record);
        }
    }
}

/// The upstream body on its way back, metered as it passes. The row is written at its end,
/// when it breaks, or when the client goes away early (the body is dropped, which also
/// drops, and so cancels, the upstream request).
pub struct Metered {
    pub inner: Incoming,
    pub silence: Silence,
    pub meter: Meter,
    pub proxy: Arc<Proxy>,
    /// Upstream's `content-length` of a plain answer, passed on so the client gets the same
    /// framing (and the answer goes out in as few writes as it came in).
    pub length: Option<u64>,
    /// Bytes passed on so far.
    pub sent: u64,
    /// Nothing more to send.
    pub done: bool,
}

impl Metered {
    fn finish(&mut self, fault: Option<Fault>) {
        if let Some(record) = self.meter.finish(fault) {
            self.proxy.record(record);
        }
    }

    fn fail(&mut self, fault: Fault) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.done = true;
        let event = self.meter.sse.then(|| self.meter.error_event(fault));
        self.finish(Some(fault));
        if let Some(event) = event {
            Poll::Ready(Some(Ok(Frame::data(event))))
        } else {
            // A plain answer cannot carry an error after its status: abort the body, so the
            // client sees it incomplete rather than a valid-looking truncated document.
            Poll::Ready(Some(Err(std::io::Error::other(fault.code()))))
        }
    }
}

impl http_body::Body for Metered {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let bytes = loop {
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(bytes) => break bytes,
                    // Trailers: nothing of the answer's body.
                    Err(_) => continue,
                },
                Poll::Ready(Some(Err(_))) => return self.fail(Fault::Broken),
                Poll::Ready(None) if !self.meter.complete() => return self.fail(Fault::Truncated),
                Poll::Ready(None) => {
                    self.done = true;
                    self.finish(None);
                    return Poll::Ready(None);
                }
                Poll::Pending if self.silence.poll_expired(cx).is_ready() => return self.fail(Fault::Timeout),
                Poll::Pending => return Poll::Pending,
            }
        };
        self.silence.heard();
        self.meter.feed(&bytes);
        if self.meter.overlong() {
            return self.fail(Fault::Protocol);
        }
        self.sent += bytes.len() as u64;
        // With a known length the server stops asking once it has it all: that is the end.
        if self.length == Some(self.sent) {
            self.done = true;
            self.finish(None);
        }
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.length.map(SizeHint::with_exact).unwrap_or_default()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // An answer whose every byte went out is complete (an empty one is never polled).
        let fault = (self.length != Some(self.sent)).then_some(Fault::ClientGone);
        self.finish(fault);
    }
}
