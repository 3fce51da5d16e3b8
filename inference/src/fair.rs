//! A bounded queue of jobs, fair across tenants: each tenant's jobs wait in their own first-in-first-out
//! line, and the worker serves the lines in turn. One tenant's burst never delays another tenant by more
//! than one turn per job ahead of it; a tenant may hold at most `per_tenant` of the `capacity` places.

use std::collections::{HashMap, VecDeque};

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This tenant already holds its share of the queue.
    TenantFull,
    /// The queue is full.
    Full,
}

/// Jobs by tenant, served in rotation.
#[derive(Debug)]
pub struct FairQueue<J> {
    lines: HashMap<String, VecDeque<J>>,
    /// Tenants with jobs, in serving order; the front is served next.
    rotation: VecDeque<String>,
    len: usize,
    capacity: usize,
    per_tenant: usize,
}

impl<J> FairQueue<J> {
    /// A queue of `capacity` places, at most `per_tenant` of them for one tenant.
    pub fn new(capacity: usize, per_tenant: usize) -> FairQueue<J> {
        FairQueue {
            lines: HashMap::new(),
            rotation: VecDeque::new(),
            len: 0,
            capacity: capacity.max(1),
            per_tenant: per_tenant.clamp(1, capacity.max(1)),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Jobs of `tenant` in the queue.
    pub fn tenant_len(&self, tenant: &str) -> usize {
        self.lines.get(tenant).map_or(0, VecDeque::len)
    }

    /// Queues `job` at the back of `tenant`'s line.
    pub fn push(&mut self, tenant: &str, job: J) -> Result<(), (Refusal, J)> {
        if self.tenant_len(tenant) >= self.per_tenant {
            return Err((Refusal::TenantFull, job));
        }
        if self.len >= self.capacity {
            return Err((Refusal::Full, job));
        }
        let line = self.lines.entry(tenant.to_owned()).or_default();
        if line.is_empty() {
            self.rotation.push_back(tenant.to_owned());
        }
        line.push_back(job);
        self.len += 1;
        Ok(())
    }

    /// The tenant whose turn it is and the job at the front of its line.
    pub fn current(&mut self) -> Option<(&str, &mut J)> {
        let tenant = self.rotation.front()?;
        let job = self.lines.get_mut(tenant)?.front_mut()?;
        Some((tenant.as_str(), job))
    }

    /// Ends the current tenant's turn: its front job leaves the queue when `finished`, and the next tenant
    /// with jobs is served next.
    pub fn end_turn(&mut self, finished: bool) -> Option<J> {
        let tenant = self.rotation.pop_front()?;
        let mut done = None;
        if let Some(line) = self.lines.get_mut(&tenant) {
            if finished {
                done = line.pop_front();
                self.len -= usize::from(done.is_some());
            }
            if line.is_empty() {
                self.lines.remove(&tenant);
            } else {
                self.rotation.push_back(tenant);
            }
        }
        done
    }

    /// Removes every job for which `drop_it` says so (a client that went away), keeping the order.
    pub fn retain(&mut self, mut keep: impl FnMut(&J) -> bool) -> Vec<J> {
        let mut removed = Vec::new();
        for line in self.lines.values_mut() {
            let mut kept = VecDeque::with_capacity(line.len());
            for job in line.drain(..) {
                if keep(&job) {
                    kept.push_back(job);
                } else {
                    removed.push(job);
                }
            }
            *line = kept;
        }
        self.len -= removed.len();
        self.lines.retain(|_, line| !line.is_empty());
        let lines = &self.lines;
        self.rotation.retain(|t| lines.contains_key(t));
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_served_in_turn_and_jobs_in_order() {
        let mut q = FairQueue::new(10, 10);
        for i in 0..4 {
            assert!(q.push("a", ("a", i)).is_ok());
        }
        assert!(q.push("b", ("b", 0)).is_ok());
        let mut served = Vec::new();
        while let Some((_, job)) = q.current() {
            served.push(*job);
            q.end_turn(true);
        }
        assert_eq!(
            served,
            [("a", 0), ("b", 0), ("a", 1), ("a", 2), ("a", 3)],
            "b waits for one of a's jobs, not four"
        );
        assert!(q.is_empty());
    }

    #[test]
    fn an_unfinished_job_keeps_its_place_for_the_tenants_next_turn() {
        let mut q = FairQueue::new(10, 10);
        assert!(q.push("a", 1).is_ok());
        assert!(q.push("b", 2).is_ok());
        let mut turns = Vec::new();
        for _ in 0..4 {
            let Some((tenant, job)) = q.current() else {
                break;
            };
            turns.push((tenant.to_owned(), *job));
            q.end_turn(false);
        }
        assert_eq!(
            turns,
            [
                ("a".into(), 1),
                ("b".into(), 2),
                ("a".into(), 1),
                ("b".into(), 2)
            ]
        );
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn a_tenant_cannot_take_more_than_its_share_and_the_queue_is_bounded() {
        let mut q = FairQueue::new(3, 2);
        assert!(q.push("a", 0).is_ok());
        assert!(q.push("a", 1).is_ok());
        assert_eq!(q.push("a", 2).map_err(|e| e.0), Err(Refusal::TenantFull));
        assert!(q.push("b", 0).is_ok());
        assert_eq!(q.push("c", 0).map_err(|e| e.0), Err(Refusal::Full));
    }

    #[test]
    fn retain_removes_jobs_and_tenants_left_without_any() {
        let mut q = FairQueue::new(10, 10);
        assert!(q.push("a", 1).is_ok());
        assert!(q.push("b", 2).is_ok());
        assert!(q.push("b", 3).is_ok());
        let removed = q.retain(|j| *j != 1 && *j != 2);
        assert_eq!(removed.len(), 2);
        assert_eq!(q.len(), 1);
        assert_eq!(
            q.current().map(|(t, j)| (t.to_owned(), *j)),
            Some(("b".into(), 3))
        );
    }
}
