//! The interactive pump's state, and its transitions as plain functions of
//! the state and one event — no sockets, no clocks of their own (the time is
//! an argument) — so every path is unit-tested without a server.
//!
//! The driver ([`super::Pump::run`]) asks the state what to send next
//! ([`State::next_poll`], [`State::next_side`]), waits for whichever event
//! comes first, feeds it back (`on_*`), writes the replies it is handed in
//! the order given, and stops when [`State::verdict`] says so.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use super::{Backoff, Mode, OnSignal, Outcome, Reply};
use super::{DRAIN_AFTER, INPUT_OPEN_MAX_WAIT_MS, MAX_SEND};
use crate::client::error::ClientError;

/// Input read ahead in [`Mode::Concurrent`] while a send is in flight.
const MAX_PENDING_CONCURRENT: usize = 1024 * 1024;
/// After a local signal stopped the remote process, how long to wait for it
/// before escalating to KILL, and then before giving up.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(2);

/// Our standard input, as the remote process will see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Input {
    /// Still being read.
    Open,
    /// Read to its end; the end (`edt`) has not been sent yet.
    EofPending,
    /// Never forwarded, or its end was sent.
    Closed,
}

/// The remote process, as far as its answers told us.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Remote {
    /// Running (or not known to have ended).
    Running,
    /// The server no longer knows it (`not_found`), and its result was not
    /// seen (yet: an answer in flight may still carry it).
    Gone,
    /// Ended; all its output was delivered.
    Finished(crate::ops::icm::ProcResult),
}

/// A local signal's request to stop the remote process
/// ([`OnSignal::Stop`]); `signo` is the local signal, our exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// No stop asked.
    None,
    /// The stop signal was sent; KILL follows at `deadline`.
    Asked { signo: i32, deadline: Instant },
    /// KILL was sent; we give up waiting at `deadline`.
    Escalated { signo: i32, deadline: Instant },
    /// The process did not end in time: we end without its result.
    GaveUp { signo: i32 },
}

impl Stop {
    fn signo(self) -> Option<i32> {
        match self {
            Stop::None => None,
            Stop::Asked { signo, .. } | Stop::Escalated { signo, .. } | Stop::GaveUp { signo } => {
                Some(signo)
            }
        }
    }
}

/// The main poll (`idt`, or `edt` carrying the end of input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Poll {
    /// None in flight: one is started at the next turn.
    Idle,
    /// In flight; `carries_since` is set when it carries input
    /// ([`Mode::Ordered`]), for the drain.
    InFlight { carries_since: Option<Instant> },
}

/// The request beside the main poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// None in flight.
    Idle,
    /// [`Mode::Concurrent`]: input sent at once, `wait_ms` 0.
    Sending,
    /// [`Mode::Ordered`]: an output-only poll that unblocks a poll stuck
    /// on input the process does not read.
    Draining,
}

/// One `idt`/`edt` to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Exchange {
    /// `edt` (the end of our input) rather than `idt`.
    pub close: bool,
    /// How long the server may hold the answer for output.
    pub wait_ms: u64,
    /// Input to deliver.
    pub data: Option<Bytes>,
    /// Keep the answer's output in the reply, to be written in order later.
    pub hold: bool,
}

/// An answer to an `idt`/`edt`, as far as the state is concerned.
#[derive(Debug)]
pub(super) enum Answer {
    /// The server answered.
    Reply(Reply),
    /// The server no longer knows the process (`not_found`).
    Gone,
}

/// Input read but not sent yet.
#[derive(Debug, Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl Queue {
    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.chunks.push_back(b);
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes up to `max` bytes as one buffer.
    fn take(&mut self, max: usize) -> Bytes {
        let mut out = BytesMut::new();
        while let Some(front) = self.chunks.front_mut() {
            let room = max.saturating_sub(out.len());
            if room == 0 {
                break;
            }
            if front.len() <= room {
                out.extend_from_slice(front);
                self.chunks.pop_front();
            } else {
                out.extend_from_slice(&front.split_to(room));
            }
        }
        self.len = self.len.saturating_sub(out.len());
        out.freeze()
    }
}

/// Everything the pump knows between two events.
#[derive(Debug)]
pub(super) struct State {
    mode: Mode,
    pub(super) input: Input,
    queue: Queue,
    max_queue: usize,
    backoff: Backoff,
    pub(super) poll: Poll,
    pub(super) side: Side,
    /// [`Mode::Ordered`]: a main poll's answer held back until the drain in
    /// flight has been written (the drain is what unblocked it).
    held: Option<Reply>,
    /// [`Mode::Concurrent`]: the stream offset of the next output byte to
    /// write, when the server numbers output (`offset`); `None`: arrival
    /// order.
    next: Option<u64>,
    /// [`Mode::Concurrent`]: answers waiting for the output before them,
    /// by (offset, arrival).
    waiting: BTreeMap<(u64, u64), Reply>,
    arrivals: u64,
    pub(super) remote: Remote,
    pub(super) stop: Stop,
    /// Local signals passed on so far ([`OnSignal::Forward`]).
    forwarded: u32,
}

impl State {
    /// The state of a process just started, with our input forwarded or not.
    /// `next`: the stream offset after the `icm` answer's output
    /// ([`super::Reply::output_end`]).
    pub(super) fn new(mode: Mode, input: bool, next: Option<u64>) -> State {
        State {
            mode,
            input: if input { Input::Open } else { Input::Closed },
            queue: Queue::default(),
            max_queue: match mode {
                Mode::Ordered => MAX_SEND,
                Mode::Concurrent => MAX_PENDING_CONCURRENT,
            },
            backoff: Backoff::default(),
            poll: Poll::Idle,
            side: Side::Idle,
            held: None,
            next,
            waiting: BTreeMap::new(),
            arrivals: 0,
            remote: Remote::Running,
            stop: Stop::None,
            forwarded: 0,
        }
    }

    /// How the pump ends, once it does: the process's result, or the local
    /// stop that gave up on it, or an error when the process vanished
    /// without its result.
    pub(super) fn verdict(&self) -> Option<Result<Outcome, ClientError>> {
        let interrupted = self.stop.signo();
        if let Remote::Finished(result) = &self.remote {
            return Some(Ok(Outcome {
                result: Some(result.clone()),
                interrupted,
            }));
        }
        if let Stop::GaveUp { .. } = self.stop {
            return Some(Ok(Outcome {
                result: None,
                interrupted,
            }));
        }
        let quiet = self.poll == Poll::Idle
            && self.side == Side::Idle
            && self.held.is_none()
            && self.waiting.is_empty();
        if self.remote == Remote::Gone && quiet {
            return Some(Err(ClientError::Protocol(
                "the remote process is gone and its result was not received".into(),
            )));
        }
        None
    }

    /// Takes the next input to send: up to [`MAX_SEND`] bytes, and whether
    /// this send also closes our input (all of it sent, its end read).
    fn take_input(&mut self) -> (Option<Bytes>, bool) {
        let data = self.queue.take(MAX_SEND);
        let close = self.input == Input::EofPending && self.queue.is_empty();
        if close {
            self.input = Input::Closed;
        }
        ((!data.is_empty()).then_some(data), close)
    }

    /// The main poll to start now, if one is due: always one in flight while
    /// the process runs (in [`Mode::Ordered`] it carries the input).
    pub(super) fn next_poll(&mut self, now: Instant) -> Option<Exchange> {
        // In Mode::Concurrent, not while its last answer waits to be written
        // (as in Mode::Ordered with `held`): what waits stays bounded.
        if self.remote != Remote::Running
            || self.poll != Poll::Idle
            || self.held.is_some()
            || !self.waiting.is_empty()
        {
            return None;
        }
        match self.mode {
            Mode::Ordered => {
                let (data, close) = self.take_input();
                let carries = data.is_some() || close;
                if carries {
                    self.backoff.reset();
                }
                let mut wait_ms = self.backoff.next_wait();
                // Input that arrives while a poll waits is delayed by the wait.
                if self.input != Input::Closed || close {
                    wait_ms = wait_ms.min(INPUT_OPEN_MAX_WAIT_MS);
                }
                self.poll = Poll::InFlight {
                    carries_since: carries.then_some(now),
                };
                Some(Exchange {
                    close,
                    wait_ms,
                    data,
                    hold: true,
                })
            }
            Mode::Concurrent => {
                self.poll = Poll::InFlight {
                    carries_since: None,
                };
                Some(Exchange {
                    close: false,
                    wait_ms: self.backoff.next_wait(),
                    data: None,
                    hold: self.next.is_some(),
                })
            }
        }
    }

    /// [`Mode::Concurrent`]: the input send to start now, if input waits and
    /// no send is in flight.
    pub(super) fn next_side(&mut self) -> Option<Exchange> {
        let waiting = !self.queue.is_empty() || self.input == Input::EofPending;
        if self.mode != Mode::Concurrent
            || self.remote != Remote::Running
            || self.side != Side::Idle
            || !waiting
        {
            return None;
        }
        let (data, close) = self.take_input();
        self.side = Side::Sending;
        Some(Exchange {
            close,
            wait_ms: 0,
            data,
            hold: self.next.is_some(),
        })
    }

    /// [`Mode::Ordered`]: when a poll carrying input has waited long enough
    /// for a drain to be started beside it.
    pub(super) fn drain_at(&self) -> Option<Instant> {
        match (self.mode, self.poll, self.side, &self.remote) {
            (
                Mode::Ordered,
                Poll::InFlight {
                    carries_since: Some(t),
                },
                Side::Idle,
                Remote::Running,
            ) => Some(t + DRAIN_AFTER),
            _ => None,
        }
    }

    /// The drain is due: an output-only poll, its answer held for ordering.
    pub(super) fn on_drain_due(&mut self, now: Instant) -> Exchange {
        // Another drain follows if this one does not unblock the poll.
        if let Poll::InFlight { .. } = self.poll {
            self.poll = Poll::InFlight {
                carries_since: Some(now),
            };
        }
        self.side = Side::Draining;
        Exchange {
            close: false,
            wait_ms: 0,
            data: None,
            hold: true,
        }
    }

    /// Whether to read more of our input now (it is open and the queue has
    /// room: a process that does not read holds us back, not our memory).
    pub(super) fn wants_input(&self) -> bool {
        self.input == Input::Open && self.queue.len < self.max_queue
    }

    /// A chunk of our input, or (`None`) its end.
    pub(super) fn on_input(&mut self, chunk: Option<Bytes>) {
        match chunk {
            Some(b) => self.queue.push(b),
            None => self.input = Input::EofPending,
        }
    }

    /// Takes note of a reply whose output is being written.
    fn note(&mut self, rep: &Reply) {
        if rep.output {
            self.backoff.reset();
        }
        if !rep.running {
            self.remote = Remote::Finished(rep.result.clone());
        }
    }

    fn gone(&mut self) {
        if self.remote == Remote::Running {
            self.remote = Remote::Gone;
        }
    }

    /// The main poll answered; returns the replies to write, in order.
    pub(super) fn on_poll(&mut self, answer: Answer) -> Vec<Reply> {
        self.poll = Poll::Idle;
        match answer {
            // A drain is in flight: its output goes first.
            Answer::Reply(rep) if self.side == Side::Draining => {
                self.held = Some(rep);
                Vec::new()
            }
            Answer::Reply(rep) => self.in_order(rep),
            Answer::Gone => {
                self.gone();
                self.release()
            }
        }
    }

    /// [`Mode::Concurrent`] with numbered output: the answers that can be
    /// written now, in stream order — this one, once everything before its
    /// `offset` is written. Otherwise (or an answer without `offset`): now.
    fn in_order(&mut self, rep: Reply) -> Vec<Reply> {
        let at = rep.result.offset;
        match (self.mode, self.next, at) {
            (Mode::Concurrent, Some(_), Some(at)) => {
                self.arrivals = self.arrivals.wrapping_add(1);
                self.waiting.insert((at, self.arrivals), rep);
                self.release()
            }
            _ => {
                self.note(&rep);
                vec![rep]
            }
        }
    }

    /// Takes the waiting answers that are next in the stream; all of them
    /// when no request is in flight (nothing could fill a gap).
    fn release(&mut self) -> Vec<Reply> {
        let stuck = self.poll == Poll::Idle && self.side == Side::Idle;
        let mut out = Vec::new();
        while let Some(entry) = self.waiting.first_entry() {
            let (at, _) = *entry.key();
            let next = self.next.unwrap_or(at);
            if at > next && !stuck {
                break;
            }
            let rep = entry.remove();
            self.next = Some(next.max(at.saturating_add(rep.bytes)));
            self.note(&rep);
            out.push(rep);
        }
        out
    }

    /// The side request answered; returns the replies to write, in order.
    pub(super) fn on_side(&mut self, answer: Answer) -> Vec<Reply> {
        self.side = Side::Idle;
        let main = self.held.take();
        let order = match (answer, main) {
            // The drain saw the end after the main poll collected: the main
            // poll's output is older.
            (Answer::Reply(rep), Some(m)) if m.running && !rep.running => vec![m, rep],
            (Answer::Reply(rep), Some(m)) => vec![rep, m],
            (Answer::Reply(rep), None) => vec![rep],
            (Answer::Gone, main) => {
                self.gone();
                main.into_iter().collect()
            }
        };
        let mut out = Vec::new();
        for rep in order {
            out.extend(self.in_order(rep));
        }
        // Gone: what waits is written now.
        out.extend(self.release());
        out
    }

    /// A local SIGINT, SIGTERM or SIGHUP: the signal to send the remote
    /// process, if any.
    pub(super) fn on_signal(
        &mut self,
        signo: i32,
        on_signal: OnSignal,
        now: Instant,
    ) -> Option<&'static str> {
        match on_signal {
            OnSignal::Forward => {
                let name = match (self.forwarded, signo) {
                    (0, libc::SIGINT) => "INT",
                    (0, libc::SIGHUP) => "HUP",
                    (0, _) => "TERM",
                    _ => "KILL",
                };
                self.forwarded = self.forwarded.saturating_add(1);
                Some(name)
            }
            OnSignal::Stop(name) => match self.stop {
                Stop::None => {
                    self.stop = Stop::Asked {
                        signo,
                        deadline: now + STOP_GRACE,
                    };
                    Some(name)
                }
                _ => None,
            },
        }
    }

    /// When the stop in progress next needs attention.
    pub(super) fn stop_deadline(&self) -> Option<Instant> {
        match self.stop {
            Stop::Asked { deadline, .. } | Stop::Escalated { deadline, .. } => Some(deadline),
            Stop::None | Stop::GaveUp { .. } => None,
        }
    }

    /// The stop's deadline passed: KILL (returned), then giving up.
    pub(super) fn on_stop_deadline(&mut self, now: Instant) -> Option<&'static str> {
        match self.stop {
            Stop::Asked { signo, .. } => {
                self.stop = Stop::Escalated {
                    signo,
                    deadline: now + STOP_GRACE,
                };
                Some("KILL")
            }
            Stop::Escalated { signo, .. } => {
                self.stop = Stop::GaveUp { signo };
                None
            }
            Stop::None | Stop::GaveUp { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MAX_WAIT_MS, MIN_WAIT_MS};
    use super::*;
    use crate::ops::icm::ProcResult;

    fn reply(running: bool, output: &[u8]) -> Reply {
        let result: ProcResult = serde_json::from_value(serde_json::json!({
            "id": "p1", "running": running, "exit": if running { None } else { Some(0) }
        }))
        .unwrap();
        Reply {
            id: "p1".into(),
            running,
            result,
            output: !output.is_empty(),
            bytes: output.len() as u64,
            held: vec![(false, Bytes::copy_from_slice(output))],
        }
    }

    /// A reply of a server that numbers output: its first byte at `at`.
    fn at(at: u64, running: bool, output: &[u8]) -> Reply {
        let mut r = reply(running, output);
        r.result.offset = Some(at);
        r
    }

    fn outputs(replies: &[Reply]) -> Vec<Vec<u8>> {
        replies
            .iter()
            .map(|r| r.held.iter().flat_map(|(_, b)| b.to_vec()).collect())
            .collect()
    }

    #[test]
    fn queue_takes_at_most_max_and_splits_chunks() {
        let mut q = Queue::default();
        q.push(Bytes::from(vec![1u8; 10]));
        q.push(Bytes::new());
        q.push(Bytes::from(vec![2u8; 10]));
        assert_eq!(q.len, 20);
        assert_eq!(q.take(15).len(), 15);
        assert_eq!(q.len, 5);
        assert_eq!(&q.take(15)[..], &[2u8; 5]);
        assert!(q.is_empty());
        assert!(q.take(15).is_empty());
    }

    #[test]
    fn ordered_input_rides_on_the_poll_and_its_end_becomes_edt() {
        let t0 = Instant::now();
        let mut s = State::new(Mode::Ordered, true, None);
        // Nothing read yet: a poll without input, short while input is open.
        let x = s.next_poll(t0).unwrap();
        assert_eq!((x.close, x.data.is_none(), x.hold), (false, true, true));
        assert!(x.wait_ms <= INPUT_OPEN_MAX_WAIT_MS);
        assert!(s.next_poll(t0).is_none(), "one main poll at a time");
        assert!(s.next_side().is_none(), "ordered mode sends no side input");
        s.on_input(Some(Bytes::from_static(b"hello")));
        s.on_input(None);
        assert!(!s.wants_input(), "input ended");
        assert_eq!(outputs(&s.on_poll(Answer::Reply(reply(true, b"")))), [b""]);
        // The next poll carries all input and closes it.
        let x = s.next_poll(t0).unwrap();
        assert_eq!(x.data.as_deref(), Some(&b"hello"[..]));
        assert!(x.close);
        assert_eq!(s.input, Input::Closed);
        assert_eq!(x.wait_ms, MIN_WAIT_MS, "input resets the backoff");
        // Its answer ends the process: the verdict is its result.
        assert!(s.verdict().is_none());
        s.on_poll(Answer::Reply(reply(false, b"bye")));
        let out = s.verdict().unwrap().unwrap();
        assert_eq!(out.result.unwrap().ended.exit, Some(0));
        assert_eq!(out.interrupted, None);
    }

    #[test]
    fn ordered_input_beyond_one_send_goes_in_several_polls() {
        let t0 = Instant::now();
        let mut s = State::new(Mode::Ordered, true, None);
        s.on_input(Some(Bytes::from(vec![7u8; MAX_SEND + 10])));
        assert!(!s.wants_input(), "a full queue stops reading our input");
        s.on_input(None);
        let x = s.next_poll(t0).unwrap();
        assert_eq!((x.data.map(|d| d.len()), x.close), (Some(MAX_SEND), false));
        s.on_poll(Answer::Reply(reply(true, b"")));
        let x = s.next_poll(t0).unwrap();
        assert_eq!((x.data.map(|d| d.len()), x.close), (Some(10), true));
    }

    #[test]
    fn idle_polls_back_off_and_output_resets_them() {
        let t0 = Instant::now();
        let mut s = State::new(Mode::Concurrent, false, None);
        let mut waits = Vec::new();
        for _ in 0..10 {
            waits.push(s.next_poll(t0).unwrap().wait_ms);
            s.on_poll(Answer::Reply(reply(true, b"")));
        }
        assert_eq!(waits.first(), Some(&MIN_WAIT_MS));
        assert_eq!(waits.last(), Some(&MAX_WAIT_MS));
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        s.next_poll(t0).unwrap();
        s.on_poll(Answer::Reply(reply(true, b"x")));
        assert_eq!(s.next_poll(t0).unwrap().wait_ms, MIN_WAIT_MS);
    }

    #[test]
    fn ordered_wait_is_short_while_input_is_open() {
        let t0 = Instant::now();
        let mut s = State::new(Mode::Ordered, true, None);
        for _ in 0..10 {
            let x = s.next_poll(t0).unwrap();
            assert!(x.wait_ms <= INPUT_OPEN_MAX_WAIT_MS);
            s.on_poll(Answer::Reply(reply(true, b"")));
        }
        // Without input the wait grows to the maximum.
        let mut s = State::new(Mode::Ordered, false, None);
        let mut last = 0;
        for _ in 0..10 {
            last = s.next_poll(t0).unwrap().wait_ms;
            s.on_poll(Answer::Reply(reply(true, b"")));
        }
        assert_eq!(last, MAX_WAIT_MS);
    }

    #[test]
    fn concurrent_input_goes_out_at_once_beside_the_long_poll() {
        let t0 = Instant::now();
        let mut s = State::new(Mode::Concurrent, true, None);
        let poll = s.next_poll(t0).unwrap();
        assert_eq!((poll.data, poll.hold), (None, false));
        assert!(s.next_side().is_none(), "nothing to send yet");
        s.on_input(Some(Bytes::from_static(b"ls\n")));
        let x = s.next_side().unwrap();
        assert_eq!(
            (x.data.as_deref(), x.wait_ms, x.close),
            (Some(&b"ls\n"[..]), 0, false)
        );
        // Typed ahead while the send is in flight: queued, sent after.
        s.on_input(Some(Bytes::from_static(b"a")));
        s.on_input(None);
        assert!(s.next_side().is_none(), "one send at a time");
        assert_eq!(
            outputs(&s.on_side(Answer::Reply(reply(true, b"")))).len(),
            1
        );
        let x = s.next_side().unwrap();
        assert_eq!((x.data.as_deref(), x.close), (Some(&b"a"[..]), true));
        s.on_side(Answer::Reply(reply(true, b"")));
        assert!(
            s.next_side().is_none(),
            "input closed: nothing more to send"
        );
    }

    #[test]
    fn concurrent_answers_that_cross_are_written_in_offset_order() {
        let t0 = Instant::now();
        // The icm answer brought "$ " (offsets 0..2).
        let mut s = State::new(Mode::Concurrent, true, Some(2));
        let poll = s.next_poll(t0).unwrap();
        assert!(poll.hold, "output is held until its place is known");
        s.on_input(Some(Bytes::from_static(b"l")));
        let key = s.next_side().unwrap();
        assert!(key.hold);
        // The poll took the output after the echo and is answered first.
        assert!(s.on_poll(Answer::Reply(at(3, true, b"out"))).is_empty());
        assert!(s.next_poll(t0).is_none(), "no new poll while it waits");
        assert_eq!(s.verdict().map(|v| v.is_ok()), None);
        let order = s.on_side(Answer::Reply(at(2, true, b"l")));
        assert_eq!(outputs(&order), [b"l".to_vec(), b"out".to_vec()]);
        // An empty answer carries the current count; the end is written
        // after the output before it.
        assert!(s.next_poll(t0).is_some());
        s.on_input(Some(Bytes::from_static(b"x")));
        s.next_side().unwrap();
        assert!(s.on_poll(Answer::Reply(at(9, false, b""))).is_empty());
        assert!(s.verdict().is_none(), "the end waits for output before it");
        let order = s.on_side(Answer::Reply(at(6, true, b"abc")));
        assert_eq!(outputs(&order), [b"abc".to_vec(), b"".to_vec()]);
        assert!(matches!(s.verdict(), Some(Ok(_))));
    }

    #[test]
    fn concurrent_without_offsets_is_arrival_order() {
        let t0 = Instant::now();
        let mut s = State::new(Mode::Concurrent, true, None);
        assert!(!s.next_poll(t0).unwrap().hold);
        s.on_input(Some(Bytes::from_static(b"l")));
        s.next_side().unwrap();
        // Offsets from a server are ignored when the start had none.
        assert_eq!(
            outputs(&s.on_poll(Answer::Reply(at(3, true, b"out")))),
            [b"out"]
        );
        assert_eq!(
            outputs(&s.on_side(Answer::Reply(reply(true, b"l")))),
            [b"l"]
        );
    }

    #[test]
    fn a_gap_nothing_can_fill_is_not_waited_for() {
        let t0 = Instant::now();
        let mut s = State::new(Mode::Concurrent, false, Some(0));
        s.next_poll(t0).unwrap();
        // Output 0..5 never came (a server's bug): nothing else is in
        // flight, so it is written rather than held forever.
        assert_eq!(
            outputs(&s.on_poll(Answer::Reply(at(5, true, b"x")))),
            [b"x"]
        );
        assert!(s.next_poll(t0).is_some());
    }

    #[test]
    fn a_stuck_ordered_poll_is_drained_and_the_drain_output_goes_first() {
        let t0 = Instant::now();
        let mut s = State::new(Mode::Ordered, true, None);
        s.on_input(Some(Bytes::from_static(b"data")));
        let x = s.next_poll(t0).unwrap();
        assert!(x.data.is_some());
        assert_eq!(s.drain_at(), Some(t0 + DRAIN_AFTER));
        let t1 = t0 + DRAIN_AFTER;
        let d = s.on_drain_due(t1);
        assert_eq!((d.wait_ms, d.data, d.hold, d.close), (0, None, true, false));
        assert_eq!(s.drain_at(), None, "one drain at a time");
        // The stuck poll answers first; it is held until the drain answers.
        assert!(s.on_poll(Answer::Reply(reply(true, b"main"))).is_empty());
        assert!(
            s.next_poll(t1).is_none(),
            "no new poll while an answer is held"
        );
        assert!(s.verdict().is_none());
        let order = s.on_side(Answer::Reply(reply(true, b"drain")));
        assert_eq!(outputs(&order), [b"drain".to_vec(), b"main".to_vec()]);
        assert!(s.next_poll(t1).is_some());
    }

    #[test]
    fn a_drain_that_saw_the_end_goes_after_the_held_poll() {
        let t0 = Instant::now();
        let mut s = State::new(Mode::Ordered, true, None);
        s.on_input(Some(Bytes::from_static(b"data")));
        s.next_poll(t0).unwrap();
        s.on_drain_due(t0 + DRAIN_AFTER);
        s.on_poll(Answer::Reply(reply(true, b"main")));
        let order = s.on_side(Answer::Reply(reply(false, b"end")));
        assert_eq!(outputs(&order), [b"main".to_vec(), b"end".to_vec()]);
        assert!(s.verdict().unwrap().unwrap().result.is_some());
    }

    #[test]
    fn gone_without_a_result_is_an_error_once_nothing_is_in_flight() {
        let t0 = Instant::now();
        let mut s = State::new(Mode::Ordered, true, None);
        s.on_input(Some(Bytes::from_static(b"data")));
        s.next_poll(t0).unwrap();
        s.on_drain_due(t0 + DRAIN_AFTER);
        s.on_poll(Answer::Gone);
        assert!(
            s.verdict().is_none(),
            "the drain may still carry the result"
        );
        assert!(s.next_poll(t0).is_none(), "no polls for a gone process");
        s.on_side(Answer::Gone);
        assert!(matches!(s.verdict(), Some(Err(ClientError::Protocol(_)))));
        // Gone, but a held answer carried the end: that is the result.
        let mut s = State::new(Mode::Ordered, true, None);
        s.on_input(Some(Bytes::from_static(b"data")));
        s.next_poll(t0).unwrap();
        s.on_drain_due(t0 + DRAIN_AFTER);
        s.on_poll(Answer::Reply(reply(false, b"last")));
        let order = s.on_side(Answer::Gone);
        assert_eq!(outputs(&order), [b"last".to_vec()]);
        assert!(s.verdict().unwrap().is_ok());
    }

    #[test]
    fn forwarded_signals_pass_the_first_on_and_then_kill() {
        let t0 = Instant::now();
        let mut s = State::new(Mode::Concurrent, false, None);
        assert_eq!(
            s.on_signal(libc::SIGINT, OnSignal::Forward, t0),
            Some("INT")
        );
        assert_eq!(
            s.on_signal(libc::SIGINT, OnSignal::Forward, t0),
            Some("KILL")
        );
        let mut s = State::new(Mode::Concurrent, false, None);
        assert_eq!(
            s.on_signal(libc::SIGHUP, OnSignal::Forward, t0),
            Some("HUP")
        );
        let mut s = State::new(Mode::Concurrent, false, None);
        assert_eq!(
            s.on_signal(libc::SIGTERM, OnSignal::Forward, t0),
            Some("TERM")
        );
        assert_eq!(s.stop_deadline(), None, "forwarding never gives up");
        assert!(s.verdict().is_none());
    }

    #[test]
    fn a_local_stop_escalates_to_kill_then_gives_up() {
        let t0 = Instant::now();
        let mut s = State::new(Mode::Ordered, false, None);
        assert_eq!(
            s.on_signal(libc::SIGTERM, OnSignal::Stop("INT"), t0),
            Some("INT")
        );
        assert_eq!(s.on_signal(libc::SIGINT, OnSignal::Stop("INT"), t0), None);
        assert_eq!(s.stop_deadline(), Some(t0 + STOP_GRACE));
        assert!(s.verdict().is_none());
        let t1 = t0 + STOP_GRACE;
        assert_eq!(s.on_stop_deadline(t1), Some("KILL"));
        assert_eq!(s.stop_deadline(), Some(t1 + STOP_GRACE));
        assert_eq!(s.on_stop_deadline(t1 + STOP_GRACE), None);
        let out = s.verdict().unwrap().unwrap();
        assert_eq!(
            (out.result.is_none(), out.interrupted),
            (true, Some(libc::SIGTERM))
        );
    }

    #[test]
    fn a_stopped_process_that_ends_reports_its_result_and_the_signal() {
        let t0 = Instant::now();
        let mut s = State::new(Mode::Concurrent, false, None);
        s.next_poll(t0).unwrap();
        s.on_signal(libc::SIGINT, OnSignal::Stop("TERM"), t0);
        s.on_poll(Answer::Reply(reply(false, b"")));
        let out = s.verdict().unwrap().unwrap();
        assert_eq!(
            (out.result.is_some(), out.interrupted),
            (true, Some(libc::SIGINT))
        );
    }
}
