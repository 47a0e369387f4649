//! Consuming the input topic: up to `max_in_flight` requests at once, each answered on
//! the output topic, and a clean end when the input ends or the shutdown grace runs out.
//!
//! With one request in flight (the default) responses leave in the order requests
//! arrived; with more, in the order they complete, matched to requests by `causation_id`.
//! A new message is taken only when a slot is free, so memory stays bounded.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_lite::{StreamExt, future};
use smol::LocalExecutor;

use super::{RuntimeHost, Ticket};
use crate::bus::{BusError, Message, Subscription};
use crate::envelope::{Envelope, RequestContext};
use crate::error::RuntimeHostError;
use crate::latch::Latch;

/// Why the consuming loop stopped.
enum Ended {
    /// The input ended and every request finished.
    Done,
    /// The deadline passed, maybe with a message taken but not yet started.
    Deadline(Option<Message>),
}

/// Requests being handled, by sequence number, kept so that the deadline can answer them.
type Pending = Mutex<HashMap<u64, RequestContext>>;

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
    ) -> Result<u64, RuntimeHostError> {
        // Declared before the executor, whose tasks borrow them.
        let pending: Pending = Mutex::new(HashMap::new());
        let lost: Mutex<Option<BusError>> = Mutex::new(None);
        let answered = Mutex::new(0u64);
        let tasks = LocalExecutor::new();
        let ended = tasks
            .run(async {
                let mut sequence = 0u64;
                // A response that cannot be published stops the loop: nothing after it could be.
                while lock(&lost).is_none() {
                    // Take input only when there is room, without holding the room while
                    // waiting: API requests share the slots.
                    if or_deadline(self.room(), deadline).await.is_none() {
                        return Ended::Deadline(None);
                    }
                    let Some(next) = or_deadline(inputs.next(), deadline).await else {
                        return Ended::Deadline(None);
                    };
                    let Some(message) = next else { break };
                    let Some(ticket) = or_deadline(self.admit(), deadline).await else {
                        return Ended::Deadline(Some(message));
                    };
                    sequence += 1;
                    let task = self.answer(sequence, message, ticket, &pending, &lost, &answered);
                    if self.max_in_flight == 1 {
                        // One at a time: the loop answers it itself; spawning a task
                        // per message doubled the cost of an envelope.
                        if or_deadline(task, deadline).await.is_none() {
                            return Ended::Deadline(None);
                        }
                    } else {
                        tasks.spawn(task).detach();
                    }
                }
                match or_deadline(self.idle(), deadline).await {
                    Some(()) => Ended::Done,
                    None => Ended::Deadline(None),
                }
            })
            .await;
        // Dropping the executor cancels whatever is still running.
        drop(tasks);
        let mut answered = *lock(&answered);
        if let Some(error) = lock(&lost).take() {
            return Err(error.into());
        }
        if let Ended::Deadline(held) = ended {
            answered += self.answer_unfinished(held, inputs, pending).await?;
        }
        Ok(answered)
    }

    /// Handles one message: parse, route, publish; the pending entry lives until the
    /// response is published, so the deadline answers exactly the unanswered.
    async fn answer(
        &self,
        sequence: u64,
        message: Message,
        ticket: Ticket,
        pending: &Pending,
        lost: &Mutex<Option<BusError>>,
        answered: &Mutex<u64>,
    ) {
        let response = match self.parse(&message) {
            Ok(request) => {
                lock(pending).insert(sequence, RequestContext::of(&request));
                self.route(request).await
            }
            Err(response) => *response,
        };
        match self.bus.publish_envelope(&response, &self.output).await {
            Ok(()) => *lock(answered) += 1,
            Err(error) => {
                log::error!(
                    correlation_id = response.correlation_id.to_string().as_str();
                    "response {} could not be published: {error}", response.envelope_id
                );
                lock(lost).get_or_insert(error);
            }
        }
        lock(pending).remove(&sequence);
        drop(ticket);
    }

    /// At the deadline: a failure for every request still running, the message in hand
    /// (`held`), and every message still queued. Returns how many were answered so.
    async fn answer_unfinished(
        &self,
        held: Option<Message>,
        mut inputs: Subscription,
        pending: Pending,
    ) -> Result<u64, RuntimeHostError> {
        let running = pending
            .into_inner()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut responses: Vec<Envelope> = running
            .into_values()
            .map(|context| self.refuse(context, true))
            .collect();
        let mut not_started = held;
        loop {
            let message = match not_started.take() {
                Some(message) => message,
                None => match future::poll_once(inputs.next()).await {
                    Some(Some(message)) => message,
                    _ => break,
                },
            };
            responses.push(match self.parse(&message) {
                Ok(request) => self.refuse(RequestContext::of(&request), false),
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

async fn or_deadline<T>(work: impl Future<Output = T>, deadline: &Latch) -> Option<T> {
    future::or(async { Some(work.await) }, async {
        deadline.wait().await;
        None
    })
    .await
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
