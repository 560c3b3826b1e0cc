//! The response body on its way back: passed through frame by frame (so
//! streams are never buffered), counted against the size limit, cut at the
//! total timeout, and measured when it ends however it ends.

use crate::mirror::{Captured, Prefix};
use crate::stats::{Outcome, Series};
use crate::table::InFlight;
use crate::tokens::{End, TokenMeter};
use crate::upstream::Connection;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::time::Sleep;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the model's response exceeded the gateway's limit of {0} bytes")]
    TooLarge(u64),
    #[error("the model's response did not finish within the total timeout")]
    TimedOut,
}

/// Called once when the exchange is over, with its outcome.
pub struct Finish {
    pub series: Arc<Series>,
    pub started: Instant,
    /// The outcome if the body ends cleanly (from the status code).
    pub on_end: Outcome,
    /// Released when the exchange is over; `None` once it has been measured.
    pub in_flight: Option<InFlight>,
    /// The model server's connection, pooled again if the body is read to the end.
    pub connection: Option<Connection>,
}

impl Finish {
    fn done(&mut self, outcome: Outcome) {
        // Taking the guard releases the endpoint; only the first end is measured.
        if self.in_flight.take().is_some() {
            self.series.finished(outcome, self.started.elapsed());
        }
    }
}

/// A copy of the answer kept for the shadow comparison and traffic capture, sent when the body ends.
pub struct Capture {
    pub to: Vec<oneshot::Sender<Captured>>,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Prefix,
    pub started: Instant,
    pub first_byte: Duration,
}

impl Capture {
    fn send(self) {
        let (body, truncated) = self.body.finish();
        let captured = Captured {
            status: self.status,
            headers: self.headers,
            body,
            truncated,
            first_byte: self.first_byte,
            latency: self.started.elapsed(),
        };
        for to in self.to {
            let _ = to.send(captured.clone());
        }
    }
}

pub struct Measured<B> {
    inner: B,
    finish: Finish,
    sent: u64,
    limit: u64,
    deadline: Pin<Box<Sleep>>,
    capture: Option<Capture>,
    tokens: Option<TokenMeter>,
}

impl<B> Measured<B> {
    pub fn new(
        inner: B,
        finish: Finish,
        limit: u64,
        deadline: Pin<Box<Sleep>>,
        capture: Option<Capture>,
    ) -> Measured<B> {
        Measured { inner, finish, sent: 0, limit, deadline, capture, tokens: None }
    }

    /// Also reads the answer for its tokens as it passes (a chat model's).
    pub fn with_tokens(mut self, meter: TokenMeter) -> Measured<B> {
        self.tokens = Some(meter);
        self
    }

    /// Records the token measurements once, as the exchange ended.
    fn end_tokens(&mut self, end: End) {
        if let Some(meter) = self.tokens.take() {
            self.finish.series.tokens(&meter.finish(end));
        }
    }

    /// The body failed on the model's side: measured as `outcome`.
    fn failed(&mut self, outcome: Outcome) {
        self.end_tokens(End::ModelFailed);
        self.finish.done(outcome);
    }

    /// The body ended cleanly: measure it and hand the copy to the comparison.
    fn complete(&mut self) {
        let mut outcome = self.finish.on_end;
        // A chat stream that stops without a finish reason or `[DONE]` was cut
        // by the model: the user got half an answer, an error like any other.
        if self.tokens.as_ref().is_some_and(|m| !m.ended_properly()) && outcome == Outcome::Ok {
            outcome = Outcome::ServerError;
        }
        self.end_tokens(End::Complete);
        self.finish.done(outcome);
        if let Some(connection) = self.finish.connection.take() {
            connection.release();
        }
        if let Some(capture) = self.capture.take() {
            capture.send();
        }
    }
}

impl<B> Body for Measured<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.failed(Outcome::Timeout);
            return Poll::Ready(Some(Err(BodyError::TimedOut.into())));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.complete();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                self.failed(Outcome::ConnectionFailure);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(capture) = self.capture.as_mut() {
                        capture.body.keep(data);
                    }
                    if let Some(meter) = self.tokens.as_mut() {
                        meter.feed(data, Instant::now());
                    }
                    self.sent += data.len() as u64;
                    if self.sent > self.limit {
                        let limit = self.limit;
                        self.failed(Outcome::ServerError);
                        return Poll::Ready(Some(Err(BodyError::TooLarge(limit).into())));
                    }
                }
                // A server stops polling once a body says it has ended, so
                // the last frame may be the last this wrapper ever sees.
                if self.inner.is_end_stream() {
                    self.complete();
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Measured<B> {
    /// A client that goes away mid-stream still ends the exchange.
    fn drop(&mut self) {
        let outcome = self.finish.on_end;
        // The meter is still here only if the exchange had not ended.
        self.end_tokens(End::ClientGone);
        self.finish.done(outcome);
    }
}
