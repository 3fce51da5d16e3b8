//! Budget covers (single instance): the durable side of budget reservations, without a database write per
//! request.
//!
//! A request under a spend cap may reach its upstream only once a durable record bounds what it can cost, so
//! that a crash never leaves spend uncharged. That record is a *cover* per key and endpoint (`spend_covers`):
//! an amount at least the worst case of the key's covered requests in flight.
//! - A request that fits in its cover's room is covered at once, in memory ([`Ticket::cover`]).
//! - One that does not fit raises the cover through the audit sequencer and is forwarded once the raise is
//!   durable. One raise at a time per cover; the others wait for it and look again. A raise adds a margin
//!   (the larger of what is in flight and [`MIN_REQUESTS`] of this request's worst case, within what the caps
//!   leave), and a cover running low is raised in the background before anyone has to wait, so most
//!   requests never wait for the disk.
//! - Each covered request's audit entry lowers the cover by its reservation in the entry's transaction.
//! - At start, what covers still hold is charged in full: requests in flight when the gateway stopped may
//!   have cost that much. The price of not writing per request is that the unused margin is charged too.
//!
//! Memory's view of a cover (`Cover::durable`) is never more than the database's: it rises only once a raise
//! is durable and falls as soon as a covered request settles, before its entry lowers the database's.
//!
//! The writes ([`hold`], [`lower`]) go through the audit sequencer, so a raise shares a transaction with
//! the entries around it and a lowering with the entry that settles it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::{ENDPOINTS, Ledger, TenantState, Ticket, lock};
use crate::audit::{AuditError, AuditLog};
use crate::storage::CoverRow;

/// Has the key's cover hold a capped request's reservation before it is forwarded: at once when it fits,
/// else after the cover's raise is durable (one raise at a time; the others wait for it and look again). A
/// cover running low is raised ahead, in the background. `Ok` carries how long the request waited for a
/// raise, if it did; `Err` means the raise could not be made durable, and the request must not go out.
pub async fn hold(
    audit: &AuditLog,
    ticket: &Ticket,
    background: &TaskTracker,
) -> Result<Option<Duration>, AuditError> {
    let start = Instant::now();
    let mut waited = false;
    loop {
        match ticket.cover() {
            CoverStep::Covered(ahead) => {
                if let Some(raise) = ahead {
                    let audit = audit.clone();
                    background.spawn(async move {
                        if audit.raise_cover(raise.row(), raise.lower()).await.is_ok() {
                            raise.landed();
                        }
                    });
                }
                return Ok(waited.then(|| start.elapsed()));
            }
            CoverStep::Raise(raise) => {
                waited = true;
                audit.raise_cover(raise.row(), raise.lower()).await?;
                raise.landed();
            }
            CoverStep::Wait(mut done) => {
                waited = true;
                // Returns once the raise is done, landed or not; then look again.
                let _ = done.changed().await;
            }
        }
    }
}

/// Lowers covers by what they hold beyond requests in flight (their slack, at shutdown: see
/// `Admission::release_covers`), durably.
pub async fn lower(audit: &AuditLog, slack: Vec<CoverRow>) -> Result<(), AuditError> {
    audit.lower_covers(slack).await
}

/// A raise's margin holds at least this many requests of the raising request's worst case.
pub const MIN_REQUESTS: u64 = 8;

/// One key's cover on one endpoint, as memory knows it.
#[derive(Debug, Default)]
pub(super) struct Cover {
    /// What the database's cover holds at least.
    durable: u64,
    /// Worst case of the covered requests in flight; never more than `durable`.
    covered: u64,
    /// Worst case of the requests waiting for a raise.
    waiting: u64,
    /// The raise on its way to disk, and its amount: its sender is dropped when it is done, landed or not.
    raising: Option<(watch::Receiver<()>, u64)>,
}

impl Cover {
    /// Takes back what the cover holds beyond its covered requests (memory's view falls now), unless a raise
    /// is on its way; the amount lowers the database's.
    fn take_slack(&mut self) -> Option<u64> {
        if self.raising.is_some() || self.durable <= self.covered {
            return None;
        }
        let slack = self.durable - self.covered;
        self.durable = self.covered;
        Some(slack)
    }
}

/// Where a ticket stands with its cover.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    #[default]
    None,
    Waiting,
    Covered,
}

/// What a request must do before it is forwarded.
#[derive(Debug)]
pub enum CoverStep {
    /// The cover holds the request. `Some`: the cover runs low; send this raise in the background.
    Covered(Option<CoverRaise>),
    /// Send this raise, wait until it is durable, then ask again.
    Raise(CoverRaise),
    /// Another request's raise is on its way: wait for it (`changed()` returns either way), then ask again.
    Wait(watch::Receiver<()>),
}

/// A raise of one cover, on its way to disk. Drop it after [`CoverRaise::landed`], or without it when the
/// raise failed: either way the cover can be raised again and the requests waiting look again.
#[derive(Debug)]
pub struct CoverRaise {
    cell: Arc<Mutex<TenantState>>,
    row: CoverRow,
    /// Other covers' slack taken back to make room, lowered in the same transaction.
    lower: Vec<CoverRow>,
    endpoint: usize,
    landed: bool,
    _done: watch::Sender<()>,
}

impl CoverRaise {
    /// The raise to write (`micro_usd` is the amount added).
    pub fn row(&self) -> CoverRow {
        self.row.clone()
    }

    /// Covers to lower by `micro_usd` in the raise's transaction (slack taken back from other covers).
    pub fn lower(&self) -> Vec<CoverRow> {
        self.lower.clone()
    }

    /// The raise is durable: memory's view of the cover may rise by it.
    pub fn landed(mut self) {
        self.landed = true;
    }
}

impl Drop for CoverRaise {
    fn drop(&mut self) {
        let mut st = lock(&self.cell);
        let key = st.keys.entry(self.row.key_id.clone()).or_default();
        let cover = &mut key.covers[self.endpoint];
        if self.landed {
            cover.durable = cover.durable.saturating_add(self.row.micro_usd);
        }
        cover.raising = None;
    }
}

impl Ledger {
    /// What the tightest cap leaves of its window, reservations not deducted (they are what covers hold);
    /// `None` without caps.
    fn cover_room(&self) -> Option<u64> {
        let day = self
            .budget
            .daily_micro_usd
            .map(|cap| cap.saturating_sub(self.spent_day));
        let month = self
            .budget
            .monthly_micro_usd
            .map(|cap| cap.saturating_sub(self.spent_month));
        match (day, month) {
            (Some(d), Some(m)) => Some(d.min(m)),
            (d, m) => d.or(m),
        }
    }
}

/// A raise's margin: the larger of what is in flight (`needed`) and `MIN_REQUESTS` requests of `worst`.
fn margin(needed: u64, worst: u64) -> u64 {
    needed.max(worst.saturating_mul(MIN_REQUESTS))
}

/// The cover to raise to for `needed` in flight: `needed` plus its margin, the margin within `room`.
fn target(needed: u64, worst: u64, room: u64) -> u64 {
    needed
        .saturating_add(margin(needed, worst))
        .min(room)
        .max(needed)
}

pub(super) fn endpoint_index(endpoint: &str) -> usize {
    ENDPOINTS.iter().position(|e| *e == endpoint).unwrap_or(0)
}

impl Ticket {
    /// Covers the request's budget reservation (made by `reserve_budget`, under a cap), or says what to do
    /// first. Call again after a `Raise` or a `Wait` until it answers `Covered`.
    pub fn cover(&self) -> CoverStep {
        let mut held = lock(&self.held);
        if held.cover == Standing::Covered {
            return CoverStep::Covered(None);
        }
        let worst = held.micro_usd;
        let e = endpoint_index(self.endpoint);
        let mut st = lock(&self.cell);
        let st = &mut *st;
        let cover = &mut st.keys.entry(self.key_id.clone()).or_default().covers[e];
        if cover.covered.saturating_add(worst) <= cover.durable {
            cover.covered += worst;
            if held.cover == Standing::Waiting {
                cover.waiting = cover.waiting.saturating_sub(worst);
            }
            held.cover = Standing::Covered;
            // Raise ahead when less than half a margin is left, so later requests need not wait. The room
            // (a walk over the tenant's covers) is looked at only then.
            let needed = cover.covered.saturating_add(cover.waiting);
            let slack = cover.durable - cover.covered;
            if cover.raising.is_some() || slack >= margin(needed, worst) / 2 {
                return CoverStep::Covered(None);
            }
            let to = target(needed, worst, self.room(st, e));
            let cover = &mut st.keys.entry(self.key_id.clone()).or_default().covers[e];
            let ahead = (to > cover.durable && slack < (to - needed) / 2)
                .then(|| self.raise(cover, e, to, Vec::new()));
            return CoverStep::Covered(ahead);
        }
        if held.cover == Standing::None {
            cover.waiting = cover.waiting.saturating_add(worst);
            held.cover = Standing::Waiting;
        }
        if let Some((rx, _)) = &cover.raising {
            return CoverStep::Wait(rx.clone());
        }
        let needed = cover.covered.saturating_add(cover.waiting);
        let mut reclaimed = Vec::new();
        let mut room = self.room(st, e);
        if room < needed {
            // Other covers hold the room as margin: take their slack back in the same transaction.
            reclaimed = self.reclaim(st, e);
            room = self.room(st, e);
        }
        let to = target(needed, worst, room);
        let cover = &mut st.keys.entry(self.key_id.clone()).or_default().covers[e];
        CoverStep::Raise(self.raise(cover, e, to, reclaimed))
    }

    /// A raise of `cover` (endpoint `e`) to `to`, lowering the `reclaimed` covers in the same transaction.
    fn raise(&self, cover: &mut Cover, e: usize, to: u64, lower: Vec<CoverRow>) -> CoverRaise {
        let (done, rx) = watch::channel(());
        let micro_usd = to - cover.durable;
        cover.raising = Some((rx, micro_usd));
        CoverRaise {
            cell: self.cell.clone(),
            row: CoverRow {
                tenant_id: self.tenant_id.clone(),
                key_id: self.key_id.clone(),
                endpoint: ENDPOINTS[e].to_owned(),
                micro_usd,
            },
            lower,
            endpoint: e,
            landed: false,
            _done: done,
        }
    }

    /// The other covers in this cover's scopes: `(key, endpoint)` pairs.
    fn others<'a>(
        &'a self,
        st: &'a TenantState,
        e: usize,
    ) -> impl Iterator<Item = (&'a str, usize, &'a Cover)> + 'a {
        let tenant_capped = st.ledger.cover_room().is_some();
        st.keys
            .iter()
            .filter(move |(k, _)| tenant_capped || k.as_str() == self.key_id)
            .flat_map(|(k, state)| {
                state
                    .covers
                    .iter()
                    .enumerate()
                    .map(move |(i, c)| (k.as_str(), i, c))
            })
            .filter(move |(k, i, _)| !(*k == self.key_id && *i == e))
    }

    /// Room for this cover: what the tenant's and the key's caps leave of their windows, minus what the other
    /// covers in their scope hold or are being raised by.
    fn room(&self, st: &TenantState, e: usize) -> u64 {
        let holds = |c: &Cover| {
            c.durable
                .saturating_add(c.raising.as_ref().map_or(0, |r| r.1))
        };
        let tenant = st.ledger.cover_room().map(|room| {
            room.saturating_sub(
                self.others(st, e)
                    .map(|(_, _, c)| holds(c))
                    .fold(0, u64::saturating_add),
            )
        });
        let key = st.keys.get(&self.key_id).and_then(|k| {
            k.ledger.cover_room().map(|room| {
                room.saturating_sub(
                    self.others(st, e)
                        .filter(|(k, _, _)| *k == self.key_id)
                        .map(|(_, _, c)| holds(c))
                        .fold(0, u64::saturating_add),
                )
            })
        });
        tenant.unwrap_or(u64::MAX).min(key.unwrap_or(u64::MAX))
    }

    /// Takes back the slack (durable but not holding a request) of the other covers in this cover's scopes
    /// that have no raise on its way. Memory's view falls now; the returned rows lower the database's.
    fn reclaim(&self, st: &mut TenantState, e: usize) -> Vec<CoverRow> {
        let tenant_capped = st.ledger.cover_room().is_some();
        let mut rows = Vec::new();
        for (k, state) in &mut st.keys {
            if !tenant_capped && *k != self.key_id {
                continue;
            }
            for (i, c) in state.covers.iter_mut().enumerate() {
                if *k == self.key_id && i == e {
                    continue;
                }
                if let Some(micro_usd) = c.take_slack() {
                    rows.push(CoverRow {
                        tenant_id: self.tenant_id.clone(),
                        key_id: k.clone(),
                        endpoint: ENDPOINTS[i].to_owned(),
                        micro_usd,
                    });
                }
            }
        }
        rows
    }

    /// What the request's audit entry releases from its cover: its reservation, if the cover held it.
    pub fn covered_micro_usd(&self) -> u64 {
        let held = lock(&self.held);
        if held.cover == Standing::Covered {
            held.micro_usd
        } else {
            0
        }
    }
}

impl super::Admission {
    /// Takes back every cover's slack (what it holds beyond its covered requests), for covers with no raise
    /// on its way: at shutdown, once requests have drained, so that a restart charges only requests whose
    /// outcome is unknown. Memory's view falls now; the returned rows lower the database's.
    pub fn release_covers(&self) -> Vec<CoverRow> {
        let mut rows = Vec::new();
        for (tenant, cell) in self.tenants.all() {
            let tenant = tenant.to_string();
            let mut st = lock(&cell);
            for (key, state) in &mut st.keys {
                for (i, c) in state.covers.iter_mut().enumerate() {
                    if let Some(micro_usd) = c.take_slack() {
                        rows.push(CoverRow {
                            tenant_id: tenant.clone(),
                            key_id: key.clone(),
                            endpoint: ENDPOINTS[i].to_owned(),
                            micro_usd,
                        });
                    }
                }
            }
        }
        rows
    }
}

/// Settles a ticket's standing with its cover (under the tenant's lock): a covered request leaves the cover
/// (memory's view falls now, the database's with the entry), a waiting one stops waiting.
pub(super) fn leave(cover: &mut Cover, standing: Standing, worst: u64) {
    match standing {
        Standing::Covered => {
            cover.covered = cover.covered.saturating_sub(worst);
            cover.durable = cover.durable.saturating_sub(worst);
        }
        Standing::Waiting => cover.waiting = cover.waiting.saturating_sub(worst),
        Standing::None => {}
    }
}
