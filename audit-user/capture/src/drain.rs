//! Stage 1→3 driver: waits on the ring buffer, drains it in batches, decodes
//! each event into a record and hands records to the next stage (a [`Sink`]).
//! Also turns increases of the kernel's loss counters into `loss` records, so
//! every event the kernel accepted is either delivered or counted.

use std::{
    collections::BTreeMap,
    os::fd::{AsFd, AsRawFd},
    time::Duration,
};

use audit_common::kind::{EventKind, KIND_SLOTS, LossCounters, loss_slot};
use audit_log::sink::Sink;
use aya::maps::{MapData, MapError, PerCpuArray, RingBuf};
use thiserror::Error;

use crate::{
    decode::decode,
    error::{SinkError, error_text},
    probes::{LoadError, ProbeOptions, Probes, Scope},
    record::{self, Clock, now_ns},
};

/// Draining stopped: the sink refused a record (the log failed), or the
/// kernel's loss counters could not be read (the capture failed).
#[derive(Debug, Error)]
pub enum DrainError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("reading the kernel loss counters")]
    LossCounters(#[source] MapError),
}

type Result<T> = std::result::Result<T, DrainError>;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainStats {
    pub events: u64,
    pub malformed: u64,
    pub lost: u64,
}

pub struct Drain {
    ring: RingBuf<MapData>,
    loss: PerCpuArray<MapData, LossCounters>,
    loss_seen: [u64; KIND_SLOTS as usize],
    loss_checked_ns: u64,
    clock: Clock,
    /// The last batch stopped at its cap: more is waiting, do not sleep.
    backlog: bool,
    pub stats: DrainStats,
    // Keeps the programs attached for as long as the capture lives.
    probes: Probes,
}

/// Events per batch: ~20 ms of a 1M events/s flood, so timers stay on time.
const BATCH_MAX: u64 = 20_000;

/// Name of a loss-counter slot in `loss` records.
fn slot_name(slot: usize) -> String {
    let slot = slot as u32;
    match EventKind::from_u32(slot) {
        Some(k) => k.name().to_string(),
        None => match slot {
            loss_slot::SCOPE_MAP_FULL => "scope_map_full".to_string(),
            loss_slot::PENDING_MAP_FULL => "pending_map_full".to_string(),
            loss_slot::FIRST_WRITE_UNTRACKED => "first_write_untracked".to_string(),
            _ => format!("slot_{slot}"),
        },
    }
}

impl Drain {
    pub fn start(scope: Scope, opts: &ProbeOptions) -> std::result::Result<Drain, LoadError> {
        let mut probes = Probes::load(scope, opts)?;
        let ring = probes.take_ring()?;
        let loss = probes.take_loss_counters()?;
        Ok(Drain {
            ring,
            loss,
            loss_seen: [0; KIND_SLOTS as usize],
            loss_checked_ns: now_ns(),
            clock: Clock::now(),
            backlog: false,
            stats: DrainStats::default(),
            probes,
        })
    }

    pub fn probes(&self) -> &Probes {
        &self.probes
    }

    /// Ends the capture without waiting for the kernel to detach the probes
    /// (see `probes::detach`); falls back to a plain, slow drop.
    pub fn release(self) {
        match crate::probes::detach::hand_off() {
            Ok(handoff) => {
                drop(self);
                drop(handoff);
            }
            Err(e) => {
                log::warn!("detaching in the foreground: {}", error_text(&e));
                drop(self);
            }
        }
    }

    /// Waits up to `timeout` for a kernel wakeup (the probes only wake us when
    /// much data is waiting), then drains everything that is there.
    /// At most one batch: the caller's loop (signals, store timers via
    /// `Sink::flush`) then runs again even under a continuous flood.
    pub fn pump(&mut self, timeout: Duration, sink: &mut dyn Sink) -> Result<u64> {
        if !self.backlog {
            let mut pfd = libc::pollfd {
                fd: self.ring.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd. EINTR (a signal) just means "drain now".
            unsafe { libc::poll(&mut pfd, 1, ms) };
        }
        self.drain_batch(sink, BATCH_MAX)
    }

    /// Drains the ring buffer until it is empty (for the final drain, when no
    /// producer is left), reporting loss and flushing after every batch.
    pub fn drain(&mut self, sink: &mut dyn Sink) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = self.drain_batch(sink, BATCH_MAX)?;
            total += n;
            if n < BATCH_MAX {
                return Ok(total);
            }
        }
    }

    /// Takes up to `max` events, then reports any new loss and flushes.
    fn drain_batch(&mut self, sink: &mut dyn Sink, max: u64) -> Result<u64> {
        self.clock = Clock::now();
        let mut n = 0;
        while n < max {
            let Some(item) = self.ring.next() else { break };
            let rec = match decode(&item) {
                Ok(ev) => record::from_event(&ev, &self.clock),
                Err(e) => {
                    self.stats.malformed += 1;
                    record::malformed(now_ns(), &e.to_string(), &item)
                }
            };
            drop(item);
            sink.accept(rec)?;
            n += 1;
        }
        self.backlog = n == max;
        self.stats.events += n;
        self.check_loss(sink)?;
        sink.flush()?;
        Ok(n)
    }

    fn check_loss(&mut self, sink: &mut dyn Sink) -> Result<()> {
        let per_cpu = self.loss.get(&0, 0).map_err(DrainError::LossCounters)?;
        let mut totals = [0u64; KIND_SLOTS as usize];
        for cpu in per_cpu.iter() {
            for (t, c) in totals.iter_mut().zip(cpu.counts.iter()) {
                *t += c;
            }
        }
        let mut kinds = BTreeMap::new();
        for (slot, (&now, seen)) in totals.iter().zip(self.loss_seen.iter_mut()).enumerate() {
            if now > *seen {
                kinds.insert(slot_name(slot), now - *seen);
                *seen = now;
            }
        }
        let t = now_ns();
        if !kinds.is_empty() {
            let rec = record::loss(t, self.loss_checked_ns, &kinds);
            self.stats.lost += kinds.values().sum::<u64>();
            sink.accept(rec)?;
        }
        self.loss_checked_ns = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loss_slot_has_a_name() {
        assert_eq!(slot_name(EventKind::Syscall as usize), "syscall");
        assert_eq!(
            slot_name(loss_slot::PENDING_MAP_FULL as usize),
            "pending_map_full"
        );
        assert_eq!(
            slot_name(loss_slot::FIRST_WRITE_UNTRACKED as usize),
            "first_write_untracked"
        );
        assert_eq!(
            slot_name(loss_slot::SCOPE_MAP_FULL as usize),
            "scope_map_full"
        );
        assert_eq!(slot_name(63), "slot_63");
    }
}
