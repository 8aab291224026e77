//! The ordered recovery as a pure state machine: the next [`RecoveryState`] from the
//! previous one, the [`RecoveryInputs`] and `now`.

use std::time::{Duration, SystemTime};

use super::state::{Phase, RecoveryInputs, RecoveryState, Tokens};
use crate::settings::RecoveryPolicy;
use crate::time;

/// One step of the recovery state machine. Pure: the next state from the previous one, the
/// inputs and `now`.
pub fn step(
    prev: &RecoveryState,
    inp: &RecoveryInputs,
    policy: &RecoveryPolicy,
    now: SystemTime,
) -> RecoveryState {
    let mut s = prev.clone();
    if !s.unreadable_times().is_empty() {
        // Hold: no step starts, times out or backs off on a time nobody can read (the
        // Recovery condition names it).
        return s;
    }
    let st = Stepper { inp, policy, now };
    if s.phase.in_attempt() {
        if let Some(why) = &inp.suppressed {
            // Abort: services go back to running (with the tokens they already have, so
            // nothing restarts twice); the attempt still counts.
            s.reason = format!("attempt {} interrupted: {why}", s.attempt);
            s.unhealthy_since = Some(time::format(now));
            st.enter(&mut s, Phase::Watching);
            return s;
        }
    }
    match s.phase {
        Phase::Idle | Phase::Watching => st.watch(&mut s),
        Phase::Stopping
        | Phase::StartingMaster
        | Phase::StartingChronos
        | Phase::StartingAgents => st.attempt_step(&mut s),
        Phase::Backoff => st.backoff(&mut s),
        Phase::GaveUp => st.gave_up(&mut s),
    }
    s
}

/// What one step reads: the inputs, the policy and the time.
struct Stepper<'a> {
    inp: &'a RecoveryInputs,
    policy: &'a RecoveryPolicy,
    now: SystemTime,
}

fn at(t: &Option<String>) -> Option<SystemTime> {
    t.as_deref().and_then(time::parse)
}

impl Stepper<'_> {
    fn enter(&self, s: &mut RecoveryState, phase: Phase) {
        s.phase = phase;
        s.since = time::format(self.now);
    }

    fn start_attempt(&self, s: &mut RecoveryState) {
        if s.attempt >= self.policy.max_attempts {
            self.enter(s, Phase::GaveUp);
            s.next_attempt_at = None;
            return;
        }
        s.attempt += 1;
        s.attempt_id = time::attempt_id(self.now, s.attempt);
        let stop = format!("{}-stop", s.attempt_id);
        s.tokens = Tokens {
            master: stop.clone(),
            chronos: stop.clone(),
            agents: stop,
        };
        s.next_attempt_at = None;
        s.reason = self.inp.problems.join("; ");
        self.enter(s, Phase::Stopping);
    }

    fn fail(&self, s: &mut RecoveryState, why: String) {
        s.reason = format!("attempt {} failed: {why}", s.attempt);
        if s.attempt >= self.policy.max_attempts {
            self.enter(s, Phase::GaveUp);
            s.next_attempt_at = None;
        } else {
            self.enter(s, Phase::Backoff);
            s.next_attempt_at = Some(time::format(self.now + self.policy.backoff(s.attempt)));
        }
    }

    fn healthy_now(&self, s: &mut RecoveryState) {
        if s.healthy_since.is_none() {
            s.healthy_since = Some(time::format(self.now));
        }
        s.unhealthy_since = None;
        let healthy_for = at(&s.healthy_since).map_or(Duration::ZERO, |h| time::since(self.now, h));
        if s.attempt > 0 && healthy_for >= self.policy.reset_after {
            s.attempt = 0;
        }
    }

    /// Idle or Watching: start watching on trouble, an attempt once it outlasts the grace.
    fn watch(&self, s: &mut RecoveryState) {
        let inp = self.inp;
        match inp.healthy {
            Some(true) => {
                self.healthy_now(s);
                if s.phase != Phase::Idle {
                    self.enter(s, Phase::Idle);
                    s.reason.clear();
                }
            }
            None => {}
            Some(false) => {
                s.healthy_since = None;
                if s.phase == Phase::Idle {
                    self.enter(s, Phase::Watching);
                    s.unhealthy_since = Some(time::format(self.now));
                    s.reason = inp.problems.join("; ");
                } else {
                    // Readable or absent here (`step` holds on an unreadable one); absent,
                    // it counts from now.
                    let since_bad = at(&s.unhealthy_since).unwrap_or(self.now);
                    if time::since(self.now, since_bad) >= self.policy.grace
                        && inp.suppressed.is_none()
                    {
                        self.start_attempt(s);
                    }
                }
            }
        }
    }

    /// One of the four steps of an attempt: the next on its evidence, a failure on timeout.
    fn attempt_step(&self, s: &mut RecoveryState) {
        let inp = self.inp;
        // Readable here (an unreadable one holds in `step`); an empty one, never recorded,
        // counts from now.
        let since = time::parse(&s.since).unwrap_or(self.now);
        let timed_out = time::since(self.now, since) >= self.policy.phase_timeout;
        let (done, next, failure) = match s.phase {
            Phase::Stopping => (
                inp.stopped,
                Phase::StartingMaster,
                "the services did not all report stopped",
            ),
            Phase::StartingMaster => (
                inp.master_elected,
                Phase::StartingChronos,
                "the manager's mesos-master was not elected",
            ),
            Phase::StartingChronos => (
                inp.chronos_registered,
                Phase::StartingAgents,
                "Chronos did not register with the master",
            ),
            _ => (
                inp.agents_active,
                Phase::Idle,
                "not every agent became active",
            ),
        };
        if done {
            match next {
                Phase::StartingMaster => s.tokens.master = format!("{}-master", s.attempt_id),
                Phase::StartingChronos => s.tokens.chronos = format!("{}-chronos", s.attempt_id),
                Phase::StartingAgents => s.tokens.agents = format!("{}-agents", s.attempt_id),
                _ => {}
            }
            self.enter(s, next);
            if next == Phase::Idle {
                s.reason.clear();
                s.healthy_since = None;
                self.healthy_now(s);
            }
        } else if timed_out {
            self.fail(s, failure.into());
        }
    }

    /// Backoff: back to Idle when healthy, the next attempt when due.
    fn backoff(&self, s: &mut RecoveryState) {
        let inp = self.inp;
        match inp.healthy {
            Some(true) => {
                self.enter(s, Phase::Idle);
                s.next_attempt_at = None;
                self.healthy_now(s);
            }
            _ => {
                let due = at(&s.next_attempt_at).is_none_or(|t| self.now >= t);
                if due && inp.healthy == Some(false) && inp.suppressed.is_none() {
                    self.start_attempt(s);
                }
            }
        }
    }

    /// Gave up: only health or a new retry annotation moves it.
    fn gave_up(&self, s: &mut RecoveryState) {
        let inp = self.inp;
        let retry = inp.retry.is_some() && inp.retry != s.retry_ack;
        if inp.healthy == Some(true) {
            self.enter(s, Phase::Idle);
            s.attempt = 0;
            s.reason.clear();
            self.healthy_now(s);
        } else if retry {
            s.retry_ack = inp.retry.clone();
            s.attempt = 0;
            if inp.suppressed.is_none() && inp.healthy == Some(false) {
                self.start_attempt(s);
            }
        }
    }
}

/// When to look again for this state.
pub fn requeue(s: &RecoveryState, policy: &RecoveryPolicy, now: SystemTime) -> Option<Duration> {
    // A deadline already past (start blocked by suppression or unknown health) polls
    // instead of spinning.
    let until = |t: Option<SystemTime>| {
        t.and_then(|t| t.duration_since(now).ok())
            .filter(|d| !d.is_zero())
            .or(Some(policy.poll))
    };
    match s.phase {
        Phase::Idle | Phase::GaveUp => None,
        Phase::Watching => until(
            s.unhealthy_since
                .as_deref()
                .and_then(time::parse)
                .map(|t| t + policy.grace),
        ),
        Phase::Backoff => until(s.next_attempt_at.as_deref().and_then(time::parse)),
        _ => Some(policy.poll),
    }
}
