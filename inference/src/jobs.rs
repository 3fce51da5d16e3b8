//! The jobs the workers run: a chat generation (one prompt chunk or one token per turn, its events sent to
//! the request as they come) and an embedding request (one input per turn).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::chat::{ChatError, ChatMessage, ChatModel, Finish, Generation, Sampling, Step};
use super::embedder::{Embedder, Embedding};
use super::worker::{Job, Turn};

/// Events of one generation, in order: `Started`, then `Text`s, then `Finished`; or `Failed` at any point.
#[derive(Debug)]
pub enum ChatEvent {
    /// The prompt fits and generation began.
    Started {
        prompt_tokens: usize,
    },
    Text(String),
    Finished {
        text: String,
        finish: Finish,
        completion_tokens: usize,
    },
    Failed(Failure),
}

/// The stage of a request that timed out before generation began (its start deadline).
pub const WAITING: &str = "waiting for the local model";

/// Why local inference did not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// The request cannot be served by this model (a prompt longer than its context, ...).
    #[error("{0}")]
    Invalid(String),
    /// The request waited in the queue past its start deadline, or ran past its total deadline.
    #[error("{stage} took longer than allowed")]
    TimedOut { stage: &'static str },
    #[error("local inference failed: {0}")]
    Internal(String),
}

impl From<ChatError> for Failure {
    fn from(e: ChatError) -> Failure {
        match e {
            ChatError::PromptTooLong { .. } | ChatError::InvalidSampling(_) => {
                Failure::Invalid(e.to_string())
            }
            other => Failure::Internal(other.to_string()),
        }
    }
}

/// Counters of one model, read by `/metrics`.
#[derive(Debug, Default)]
pub struct ModelStats {
    /// Tokens generated (chat) or inputs embedded (embeddings).
    pub generated: AtomicU64,
    /// Requests stopped because their client went away.
    pub cancelled: AtomicU64,
    pub timed_out: AtomicU64,
    pub completed: AtomicU64,
}

/// Events a generation may have buffered for a reader that is not keeping up, before it pauses.
pub const EVENT_BUFFER: usize = 32;

/// Tokens one generation makes in a turn before the next tenant's turn (a prompt chunk is a turn of its
/// own). A few tokens per turn keep the switching cost low; at ~40 tokens/s a turn stays near 200 ms.
pub const TOKENS_PER_TURN: usize = 8;

enum ChatState {
    Waiting {
        messages: Vec<ChatMessage>,
        sampling: Sampling,
    },
    Running(Box<Generation>),
}

/// One chat generation in a worker's queue.
pub struct ChatJob {
    model: Arc<ChatModel>,
    state: Option<ChatState>,
    events: mpsc::Sender<ChatEvent>,
    /// Generation must have begun by then (time in the queue).
    start_by: Instant,
    deadline: Instant,
    stats: Arc<ModelStats>,
}

impl ChatJob {
    pub fn new(
        model: Arc<ChatModel>,
        messages: Vec<ChatMessage>,
        sampling: Sampling,
        (start_by, deadline): (Instant, Instant),
        stats: Arc<ModelStats>,
    ) -> (ChatJob, mpsc::Receiver<ChatEvent>) {
        let (events, rx) = mpsc::channel(EVENT_BUFFER);
        let job = ChatJob {
            model,
            state: Some(ChatState::Waiting { messages, sampling }),
            events,
            start_by,
            deadline,
            stats,
        };
        (job, rx)
    }

    fn fail(&self, failure: Failure) -> Turn {
        if matches!(failure, Failure::TimedOut { .. }) {
            self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self.events.try_send(ChatEvent::Failed(failure));
        Turn::Done
    }

    fn begin(&mut self, messages: &[ChatMessage], sampling: Sampling) -> Turn {
        if Instant::now() > self.start_by {
            return self.fail(Failure::TimedOut { stage: WAITING });
        }
        match self.model.start(messages, sampling) {
            Err(e) => self.fail(e.into()),
            Ok(generation) => {
                let prompt_tokens = generation.prompt_tokens();
                let _ = self.events.try_send(ChatEvent::Started { prompt_tokens });
                self.state = Some(ChatState::Running(Box::new(generation)));
                Turn::Again
            }
        }
    }

    /// One prompt chunk, or up to `TOKENS_PER_TURN` tokens, then the turn passes on. The turn that ends
    /// the prompt goes on to the first tokens (sampled from the prompt's last logits), so a request's first
    /// token does not wait for a round of other tenants' turns.
    fn advance(&mut self, mut generation: Box<Generation>) -> Turn {
        for step in 0..TOKENS_PER_TURN {
            if Instant::now() > self.deadline {
                return self.fail(Failure::TimedOut {
                    stage: "generation",
                });
            }
            if self.events.is_closed() {
                self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                return Turn::Done;
            }
            // Each step sends at most one event: pause while the reader has no room.
            if self.events.capacity() == 0 {
                self.state = Some(ChatState::Running(generation));
                return if step == 0 {
                    Turn::Blocked
                } else {
                    Turn::Again
                };
            }
            match self.step(&mut generation) {
                Stepped::Token => {}
                Stepped::Prefilled if !generation.is_prefilled() => break,
                Stepped::Prefilled => {}
                Stepped::Over(turn) => return turn,
            }
        }
        self.state = Some(ChatState::Running(generation));
        Turn::Again
    }

    fn step(&mut self, generation: &mut Generation) -> Stepped {
        let before = generation.completion_tokens();
        let step = generation.step();
        let made = generation.completion_tokens().saturating_sub(before);
        self.stats
            .generated
            .fetch_add(made as u64, Ordering::Relaxed);
        match step {
            Err(e) => Stepped::Over(self.fail(e.into())),
            Ok(Step::Prefilled) => Stepped::Prefilled,
            Ok(Step::Text(text)) => {
                if !text.is_empty() {
                    let _ = self.events.try_send(ChatEvent::Text(text));
                }
                Stepped::Token
            }
            Ok(Step::Finished { text, reason }) => {
                self.stats.completed.fetch_add(1, Ordering::Relaxed);
                let _ = self.events.try_send(ChatEvent::Finished {
                    text,
                    finish: reason,
                    completion_tokens: generation.completion_tokens(),
                });
                Stepped::Over(Turn::Done)
            }
        }
    }
}

/// What one step of a generation came to.
enum Stepped {
    Token,
    Prefilled,
    Over(Turn),
}

impl Job for ChatJob {
    fn turn(&mut self) -> Turn {
        if self.events.is_closed() {
            // The request is gone (its client hung up): stop generating for it.
            self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            return Turn::Done;
        }
        match self.state.take() {
            None => Turn::Done,
            Some(ChatState::Waiting { messages, sampling }) => self.begin(&messages, sampling),
            Some(ChatState::Running(generation)) => self.advance(generation),
        }
    }
}

/// One embeddings request in a worker's queue: one input per turn.
pub struct EmbedJob {
    embedder: Arc<Embedder>,
    inputs: Vec<String>,
    done: Vec<Embedding>,
    reply: Option<oneshot::Sender<Result<Vec<Embedding>, Failure>>>,
    deadline: Instant,
    stats: Arc<ModelStats>,
}

impl EmbedJob {
    pub fn new(
        embedder: Arc<Embedder>,
        inputs: Vec<String>,
        deadline: Instant,
        stats: Arc<ModelStats>,
    ) -> (EmbedJob, oneshot::Receiver<Result<Vec<Embedding>, Failure>>) {
        let (reply, rx) = oneshot::channel();
        let job = EmbedJob {
            embedder,
            done: Vec::with_capacity(inputs.len()),
            inputs,
            reply: Some(reply),
            deadline,
            stats,
        };
        (job, rx)
    }

    fn answer(&mut self, result: Result<Vec<Embedding>, Failure>) -> Turn {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(result);
        }
        Turn::Done
    }
}

impl Job for EmbedJob {
    fn turn(&mut self) -> Turn {
        if self.reply.as_ref().is_none_or(oneshot::Sender::is_closed) {
            self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            return Turn::Done;
        }
        if Instant::now() > self.deadline {
            self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
            return self.answer(Err(Failure::TimedOut { stage: "embedding" }));
        }
        let Some(input) = self.inputs.get(self.done.len()) else {
            let all = std::mem::take(&mut self.done);
            return self.answer(Ok(all));
        };
        match self.embedder.embed(&[input.as_str()]) {
            Err(e) => self.answer(Err(Failure::Internal(e.to_string()))),
            Ok(mut one) => {
                self.stats.generated.fetch_add(1, Ordering::Relaxed);
                self.done.append(&mut one);
                if self.done.len() == self.inputs.len() {
                    self.stats.completed.fetch_add(1, Ordering::Relaxed);
                    let all = std::mem::take(&mut self.done);
                    return self.answer(Ok(all));
                }
                Turn::Again
            }
        }
    }
}
