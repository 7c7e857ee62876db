//! Prometheus metrics of the API server, rendered as text on the admin port. Labels are route
//! classes and status codes only: never an id, a key or a token.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use sealpod_util::metrics::{Exposition, Kind};

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    responses: [AtomicU64; 5],
    events_appended: AtomicU64,
    sse_streams: AtomicI64,
    sse_streams_total: AtomicU64,
    sessions_adopted: AtomicU64,
    sessions_refused: AtomicU64,
    sessions_retired: AtomicU64,
    long_polls: AtomicI64,
    schedule_runs: [AtomicU64; 3],
}

/// A request waiting in a long poll (a runtime claim or signal wait); counted while it lives.
#[derive(Debug)]
pub struct LongPoll<'a>(&'a Metrics);

impl Drop for LongPoll<'_> {
    fn drop(&mut self) {
        self.0.long_polls.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts a response by status class.
    pub fn response(&self, status: u16) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts appended events.
    pub fn appended(&self, n: usize) {
        self.events_appended.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A Session object was adopted (its store row written from the object).
    pub fn adopted(&self) {
        self.sessions_adopted.fetch_add(1, Ordering::Relaxed);
    }

    /// A session's row was retired: its object was replaced by another of the same name.
    pub fn retired(&self) {
        self.sessions_retired.fetch_add(1, Ordering::Relaxed);
    }

    /// A Session object of a served namespace could not be adopted.
    pub fn adoption_refused(&self) {
        self.sessions_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A schedule's run was recorded by this replica, with its outcome.
    pub fn schedule_run(&self, outcome: crate::store::Outcome) {
        use crate::store::Outcome;
        let i = match outcome {
            Outcome::Enacted => 0,
            Outcome::Skipped => 1,
            Outcome::Failed => 2,
            // Not an outcome a run is recorded with.
            Outcome::Pending => return,
        };
        self.schedule_runs[i].fetch_add(1, Ordering::Relaxed);
    }

    /// A request starts waiting in a long poll until the returned guard is dropped.
    pub fn long_poll(&self) -> LongPoll<'_> {
        self.long_polls.fetch_add(1, Ordering::Relaxed);
        LongPoll(self)
    }

    /// How many requests wait in a long poll now.
    pub fn long_polls(&self) -> i64 {
        self.long_polls.load(Ordering::Relaxed)
    }

    /// A stream opened.
    pub fn stream_opened(&self) {
        self.sse_streams.fetch_add(1, Ordering::Relaxed);
        self.sse_streams_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A stream closed.
    pub fn stream_closed(&self) {
        self.sse_streams.fetch_sub(1, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self, live_tails: usize) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = Exposition::default();
        let name = "sealpod_api_server_http_responses_total";
        out.family(name, "Responses by status class.", Kind::Counter);
        for (class, c) in ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .iter()
            .zip(&self.responses)
        {
            out.sample(name, &[("class", class)], get(c));
        }
        out.single(
            "sealpod_api_server_events_appended_total",
            "Events appended.",
            Kind::Counter,
            get(&self.events_appended),
        )
        .single(
            "sealpod_api_server_sse_streams",
            "SSE streams open.",
            Kind::Gauge,
            self.sse_streams.load(Ordering::Relaxed),
        )
        .single(
            "sealpod_api_server_sse_streams_total",
            "SSE streams opened.",
            Kind::Counter,
            get(&self.sse_streams_total),
        )
        .single(
            "sealpod_api_server_sse_tails",
            "Sessions with a live event tail.",
            Kind::Gauge,
            live_tails,
        )
        .single(
            "sealpod_api_server_sessions_adopted_total",
            "Session objects adopted.",
            Kind::Counter,
            get(&self.sessions_adopted),
        )
        .single(
            "sealpod_api_server_sessions_not_adopted_total",
            "Session objects that could not be adopted.",
            Kind::Counter,
            get(&self.sessions_refused),
        )
        .single(
            "sealpod_api_server_sessions_retired_total",
            "Sessions retired because their Session object was deleted and applied again under \
             the same name.",
            Kind::Counter,
            get(&self.sessions_retired),
        )
        .single(
            "sealpod_api_server_long_polls",
            "Runtime requests waiting in a long poll.",
            Kind::Gauge,
            self.long_polls.load(Ordering::Relaxed),
        );
        let name = "sealpod_api_server_schedule_runs_total";
        out.family(
            name,
            "Schedule runs this replica recorded, by outcome.",
            Kind::Counter,
        );
        for (outcome, c) in ["enacted", "skipped", "failed"]
            .iter()
            .zip(&self.schedule_runs)
        {
            out.sample(name, &[("outcome", outcome)], get(c));
        }
        out.finish()
    }
}
