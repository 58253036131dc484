//! The response body mtlscope sends the client: either its own (a diagnosis page) or the
//! upstream's, streamed, with the bounded excerpt read ahead put back in front. A relayed body
//! hands its exchange record to the sink when it ends, so the record knows whether the body
//! arrived whole.

use super::request_excerpt::Excerpt;
use crate::capture::LegRecorder;
use crate::record::{Emitted, Sink};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A response body on the client leg.
pub struct RelayBody {
    /// What the body is.
    kind: Kind,
}

enum Kind {
    /// Produced by mtlscope; taken on first poll.
    Full(Option<Bytes>),
    /// Relayed from upstream.
    Relayed {
        /// Frames read ahead for the excerpt, sent first.
        prefix: VecDeque<Frame<Bytes>>,
        /// The rest of the upstream body.
        inner: Incoming,
        /// The exchange record (diagnosed already for an error response's header), emitted
        /// once when the body ends or is dropped.
        record: Option<(Box<Emitted>, Sink)>,
        /// The upstream leg, re-read into the record if the body fails.
        upstream: Option<LegRecorder>,
        /// The client's request body, whose end the record waits for (to carry its excerpt).
        request_body: Option<Excerpt>,
    },
}

impl RelayBody {
    /// A body mtlscope produced.
    pub fn full(bytes: Bytes) -> RelayBody {
        RelayBody {
            kind: Kind::Full(Some(bytes)),
        }
    }

    /// A relayed upstream body whose end emits `flow` to `sink`, once the client's request
    /// body behind `request_body` has ended too.
    pub fn relayed(
        prefix: VecDeque<Frame<Bytes>>,
        inner: Incoming,
        flow: Emitted,
        sink: Sink,
        upstream: Option<LegRecorder>,
        request_body: Option<Excerpt>,
    ) -> RelayBody {
        RelayBody {
            kind: Kind::Relayed {
                prefix,
                inner,
                record: Some((Box::new(flow), sink)),
                upstream,
                request_body,
            },
        }
    }

    fn finish(&mut self, error: Option<String>) {
        if let Kind::Relayed {
            record,
            upstream,
            request_body,
            ..
        } = &mut self.kind
        {
            if let Some((record, sink)) = record.take() {
                let record = match (*record, error) {
                    (record, None) => record,
                    // The body ended badly: the record's facts change, so a diagnosis made
                    // for the header (which has gone out) no longer describes them.
                    (record, Some(error)) => {
                        let mut flow = match record {
                            Emitted::Facts(flow) => flow,
                            Emitted::Diagnosed(d) => d.into_facts(),
                        };
                        flow.error = Some(error);
                        if let Some(up) = upstream {
                            flow.upstream_leg = Some(up.snapshot());
                        }
                        Emitted::Facts(flow)
                    }
                };
                match request_body.take() {
                    Some(excerpt) => excerpt.emit_when_ended(record, sink),
                    None => sink.emit_detached(record),
                }
            }
        }
    }
}

impl Body for RelayBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = match &mut self.kind {
            Kind::Full(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Relayed { prefix, inner, .. } => match prefix.pop_front() {
                Some(frame) => return Poll::Ready(Some(Ok(frame))),
                None => Pin::new(inner).poll_frame(cx),
            },
        };
        match &polled {
            Poll::Ready(None) => self.finish(None),
            Poll::Ready(Some(Err(e))) => {
                let words = format!("the upstream response body failed mid-way: {e}");
                self.finish(Some(words));
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Relayed { prefix, inner, .. } => prefix.is_empty() && inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Relayed { prefix, inner, .. } => {
                let ahead: u64 = prefix
                    .iter()
                    .filter_map(|f| f.data_ref())
                    .map(|d| d.len() as u64)
                    .sum();
                let rest = inner.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + ahead);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + ahead);
                }
                hint
            }
        }
    }
}

impl Drop for RelayBody {
    fn drop(&mut self) {
        let complete = self.is_end_stream();
        let error =
            (!complete).then(|| "the client stopped reading before the body ended".to_string());
        self.finish(error);
    }
}
