//! Consuming the input topic: up to `max_in_flight` requests at once, each answered on
//! the output topic, and a clean end when the input ends or the shutdown grace runs out.
//!
//! With one request in flight (the default) responses leave in the order requests
//! arrived; with more, in the order they complete, matched to requests by `causation_id`.
//! A new message is taken only when a slot is free, and handled only once what it will
//! hold is charged to the host's memory budget ([`weight`]): so memory stays bounded in
//! messages and in bytes. Its charge is given back once its response is published.
//!
//! A message's receipt travels with its response and is settled once the response is
//! published (a networked bus commits only past settled messages); a response that cannot
//! be published sets its request aside on the bus's dead-letter topic if it has one, and
//! is settled then; else the host stops, and the message is delivered again later.
//!
//! With one in flight, a request's slot frees once its response is computed, and the
//! response is published while the next request waits on its handler (or at once, if no
//! request waits): its JSON is then written during the handler's round trip, not between
//! a reply and the next request. If publishing fails, that next request has already run;
//! it stays unanswered, as everything after a failed publish must.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use futures_lite::{StreamExt, future};
use smol::LocalExecutor;
use uuid::Uuid;

use super::{RuntimeHost, Ticket};
use crate::budget::Charge;
use crate::bus::{BusError, Delivery, Message, Receipt, Subscription};
use crate::envelope::parse::parse_request;
use crate::envelope::weight::weight;
use crate::envelope::{Envelope, EnvelopeError, RequestContext};
use crate::error::HostError;
use crate::latch::Latch;

/// Messages being handled, by sequence number: the message as read and the correlation
/// id it was given, so that the deadline can answer them (a message that is not a
/// request too: its error response may still be waiting for room in the output topic).
/// The message is moved here, not copied; a copy of every request's context cost each
/// envelope a handful of allocations.
///
/// The consumer and its tasks share one thread (a `LocalExecutor`), so its shared state
/// is in cells, not mutexes: a mutex is an atomic operation to lock and one to unlock,
/// and the consumer's mutexes cost twelve per envelope. No borrow of a cell is held
/// across an `await`.
type Pending = RefCell<BTreeMap<u64, (Message, Uuid)>>;

/// A computed response on its way out, with what its request holds until it has left.
struct Answer {
    sequence: u64,
    response: Box<Envelope>,
    charge: Option<Charge>,
    receipt: Receipt,
}

impl RuntimeHost {
    /// Answers the messages of `inputs` until it ends (the input topic was closed and
    /// drained) and every request is finished, or until `deadline` is set: then every
    /// request still running, and every message still queued, is answered with a failure.
    /// Returns how many requests were answered (failures at the deadline included;
    /// [`RuntimeHost::cut_short`] counts those). Fails only if a response cannot be
    /// published.
    pub async fn consume(
        &self,
        mut inputs: Subscription,
        deadline: &Latch,
    ) -> Result<u64, HostError> {
        // Declared before the executor, whose tasks borrow them.
        let pending: Pending = RefCell::new(BTreeMap::new());
        let lost: RefCell<Option<BusError>> = RefCell::new(None);
        let answered = Cell::new(0u64);
        // A message taken from the input while it waits for a slot.
        let held: Cell<Option<Delivery>> = Cell::new(None);
        let tasks = LocalExecutor::new();
        let answering = async {
            let mut sequence = 0u64;
            // With one in flight: the last response, computed and not yet published, and
            // its request's charge and receipt.
            let mut unpublished: Option<Answer> = None;
            // A response that cannot be published stops the loop: nothing after it could be.
            while lost.borrow().is_none() {
                // Take input only when there is room, without holding the room while
                // waiting: API requests share the slots. With room and input waiting (a
                // busy host) that is two quick checks; otherwise wait for each in turn.
                let next = if self.has_room() {
                    future::poll_once(inputs.next()).await
                } else {
                    None
                };
                let next = match next {
                    Some(next) => next,
                    None => {
                        // Nothing to overlap the last response with: publish it, look again.
                        if let Some(last) = unpublished.take() {
                            self.publish_answer(last, &pending, &lost, &answered).await;
                            continue;
                        }
                        self.room().await;
                        inputs.next().await
                    }
                };
                let Some(delivery) = next else { break };
                let weight = weight(&delivery.message);
                held.set(Some(delivery));
                // Room in the budget before a slot: whoever holds a slot never waits for
                // the budget, so no request waits on one that waits for it (API requests
                // take their charge first too).
                let charge = match self.budget.try_take(weight) {
                    Some(charge) => Some(charge),
                    None => {
                        // The last response's charge may be what is missing.
                        if let Some(last) = unpublished.take() {
                            self.publish_answer(last, &pending, &lost, &answered).await;
                        }
                        self.budget.take(weight).await
                    }
                };
                let ticket = self.admit().await;
                // Only the deadline takes a held message, and it ends this loop first.
                let Some(Delivery { message, receipt }) = held.take() else {
                    break;
                };
                sequence += 1;
                if self.max_in_flight > 1 {
                    let task = self.answer(
                        (sequence, message, charge, receipt),
                        ticket,
                        &pending,
                        &lost,
                        &answered,
                    );
                    tasks.spawn(task).detach();
                    continue;
                }
                // One at a time, answered by the loop itself (a task per message would
                // double the cost of an envelope). The previous response is published
                // while this request waits on its handler, so its JSON is written during
                // the handler's round trip, not between a reply and the next request.
                let handled = async {
                    let response = self.handle(sequence, message, charge.clone(), &pending);
                    let response = response.await;
                    drop(ticket);
                    response
                };
                let response = match unpublished.take() {
                    None => handled.await,
                    Some(last) => {
                        let publish = self.publish_answer(last, &pending, &lost, &answered);
                        future::zip(handled, publish).await.0
                    }
                };
                unpublished = Some(Answer {
                    sequence,
                    response,
                    charge,
                    receipt,
                });
            }
            if let Some(last) = unpublished.take() {
                if lost.borrow().is_none() {
                    self.publish_answer(last, &pending, &lost, &answered).await;
                }
            }
            self.idle().await;
        };
        // One race with the deadline for the whole loop: a race per step cost each
        // envelope several listener registrations.
        let finished = tasks
            .run(future::or(
                async {
                    answering.await;
                    true
                },
                async {
                    deadline.wait().await;
                    false
                },
            ))
            .await;
        // Dropping the executor cancels whatever is still running.
        drop(tasks);
        let mut answered = answered.get();
        if let Some(error) = lost.take() {
            return Err(error.into());
        }
        if !finished {
            let held = held.take().map(|delivery| delivery.message);
            answered += self.answer_unfinished(held, inputs, pending).await?;
        }
        Ok(answered)
    }

    /// Handles one message: parse, route, publish; the pending entry lives until the
    /// response is published, so the deadline answers exactly the unanswered. The ticket
    /// is held until then, so responses waiting for room count against the slots.
    async fn answer(
        &self,
        (sequence, message, charge, receipt): (u64, Message, Option<Charge>, Receipt),
        ticket: Ticket<'_>,
        pending: &Pending,
        lost: &RefCell<Option<BusError>>,
        answered: &Cell<u64>,
    ) {
        let response = self
            .handle(sequence, message, charge.clone(), pending)
            .await;
        let answer = Answer {
            sequence,
            response,
            charge,
            receipt,
        };
        self.publish_answer(answer, pending, lost, answered).await;
        drop(ticket);
    }

    /// Parses and routes one message, registered as pending under `sequence`; returns
    /// its response. Without a `charge` the message could never fit the memory budget:
    /// it is answered with an error, unread.
    async fn handle(
        &self,
        sequence: u64,
        message: Message,
        charge: Option<Charge>,
        pending: &Pending,
    ) -> Box<Envelope> {
        let Some(charge) = charge else {
            let weight = weight(&message);
            let budget = self.budget.total();
            let response = self.reject(EnvelopeError::TooHeavy { weight, budget });
            pending
                .borrow_mut()
                .insert(sequence, (message, response.correlation_id));
            return Box::new(response);
        };
        match self.parse(&message) {
            Ok(request) => {
                pending
                    .borrow_mut()
                    .insert(sequence, (message, request.correlation_id));
                self.route(request, charge).await
            }
            Err(response) => {
                pending
                    .borrow_mut()
                    .insert(sequence, (message, response.correlation_id));
                response
            }
        }
    }

    /// Publishes the response to pending message `sequence`, which is then answered (its
    /// receipt settled) and its charge given back. A response that cannot be published
    /// sets the message aside on the dead-letter topic, if the bus has one; else it is
    /// recorded in `lost`, and the message stays unsettled.
    async fn publish_answer(
        &self,
        answer: Answer,
        pending: &Pending,
        lost: &RefCell<Option<BusError>>,
        answered: &Cell<u64>,
    ) {
        let Answer {
            sequence,
            response,
            charge,
            receipt,
        } = answer;
        let published = self
            .bus
            .publish_reply(&response, &self.output, &receipt)
            .await;
        let settled = match published {
            Ok(()) => Ok(()),
            Err(error) => {
                self.set_aside(sequence, &response, &receipt, error, pending)
                    .await
            }
        };
        match settled {
            Ok(()) => {
                receipt.settle();
                answered.set(answered.get() + 1);
            }
            Err(error) => {
                lost.borrow_mut().get_or_insert(error);
            }
        }
        pending.borrow_mut().remove(&sequence);
        drop(charge);
    }

    /// After `response` could not be published (`error`): sets its request aside on the
    /// dead-letter topic. Fails with the publishing error if that fails too.
    async fn set_aside(
        &self,
        sequence: u64,
        response: &Envelope,
        receipt: &Receipt,
        error: BusError,
        pending: &Pending,
    ) -> Result<(), BusError> {
        let origin = receipt.origin().unwrap_or_default();
        let correlation_id = response.correlation_id.to_string();
        log::error!(
            correlation_id = correlation_id.as_str(), origin = origin.as_str();
            "response {} could not be published: {error}", response.envelope_id
        );
        let message = pending
            .borrow()
            .get(&sequence)
            .map(|(message, _)| message.clone());
        let reason = format!("the response could not be published: {error}");
        let set_aside = self
            .bus
            .dead_letter(&message.unwrap_or_default(), receipt, &reason)
            .await;
        match set_aside {
            Ok(()) => {
                log::warn!(
                    correlation_id = correlation_id.as_str(), origin = origin.as_str();
                    "request set aside on the dead-letter topic"
                );
                Ok(())
            }
            Err(BusError::NoDeadLetterTopic) => Err(error),
            Err(dead) => {
                log::error!(
                    correlation_id = correlation_id.as_str(), origin = origin.as_str();
                    "the request could not be set aside either: {dead}"
                );
                Err(error)
            }
        }
    }

    /// At the deadline: a failure for every request still running, the message in hand
    /// (`held`), and every message still queued. Returns how many were answered so.
    async fn answer_unfinished(
        &self,
        held: Option<Message>,
        mut inputs: Subscription,
        pending: Pending,
    ) -> Result<u64, HostError> {
        let running = pending.into_inner();
        let stamp = self.runtime.stamp();
        let mut responses: Vec<Envelope> = running
            .into_values()
            // Read once already: each keeps the correlation id it was given; a request is
            // answered as cut short, any other message with its error once more.
            .map(
                |(message, correlation_id)| match parse_request(&message, stamp) {
                    Ok(request) => {
                        let mut context = RequestContext::split(request.into_envelope()).0;
                        context.correlation_id = correlation_id;
                        self.refuse(context, true)
                    }
                    Err(mut rejected) => {
                        rejected.context.correlation_id = correlation_id;
                        rejected.respond(stamp)
                    }
                },
            )
            .collect();
        let mut not_started = held;
        loop {
            // Not settled: a bus that keeps its place delivers them again.
            let message = match not_started.take() {
                Some(message) => message,
                None => match future::poll_once(inputs.next()).await {
                    Some(Some(delivery)) => delivery.message,
                    _ => break,
                },
            };
            responses.push(match self.parse(&message) {
                Ok(received) => {
                    let request = received.into_request().into_envelope();
                    self.refuse(RequestContext::split(request).0, false)
                }
                Err(response) => *response,
            });
        }
        for response in &responses {
            log::warn!(
                correlation_id = response.correlation_id.to_string().as_str();
                "unfinished at the shutdown deadline: answered with a failure"
            );
            self.bus.publish_envelope(response, &self.output).await?;
        }
        let count = responses.len() as u64;
        self.note_cut_short(count);
        Ok(count)
    }
}
