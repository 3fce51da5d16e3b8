"""Hand-written English seeds for the `complex` tier, engineering side: system design, debugging
investigations, code review, data-analysis plans, long-form technical writing and agentic tasks.

Several are short on purpose: a two-sentence question can need a frontier model.
"""

from seedlib import Book, M

b = Book("complex")

AGENT_SYSTEM = """You are a coding agent working inside the user's repository. You can call these tools: read_file(path), write_file(path, content), run_shell(cmd), search_code(query). Make changes in small steps, run the tests after each change, and explain what you did at the end."""

OPS_AGENT_SYSTEM = """You are an SRE assistant with read-only access to the production cluster through tools: kubectl(args), promql(query, range), logs(service, since, filter), and describe_incident(id). Never run mutating commands. Report findings with evidence."""

b.add("system-design", "en", [
    "Design a Raft-based replicated key-value store that supports membership changes without downtime. Cover joint consensus vs single-server changes, how you handle a leader that is being removed, log compaction with snapshots, and linearizable reads.",
    "How would you build a multi-region rate limiter for a public API (about 2M requests/s globally) where each customer has a single global quota? Discuss consistency vs latency trade-offs, what happens during a region partition, and how much over-admission you would tolerate.",
    "Design a URL shortener that has to handle 50k writes/s and 2M reads/s, with custom aliases, expiry, and per-link analytics. I care most about the ID generation scheme and how analytics avoid becoming the bottleneck.",
    "We need exactly-once processing for a payments ledger fed from Kafka into Postgres. Is exactly-once even achievable end to end here? Propose a design (idempotency keys, transactional outbox, whatever you think) and explain the failure cases it does and does not cover.",
    "Design the backend for a collaborative text editor like Google Docs. Compare OT and CRDTs for our case (up to 50 simultaneous editors per document, offline edits of up to a day), and explain how you'd store history and do presence.",
    """We're a team of 6 running a monolith (Django + Postgres, ~400 tables, 30k requests/min peak). Management wants "microservices" next year. Give me an honest assessment: what would you split out first, if anything, what's the migration plan (strangler fig? shared DB for a while?), and what are the operational costs we're likely underestimating? We have no dedicated platform team and deploy twice a week.""",
    "Design a job scheduler for ~10 million scheduled tasks per day (cron-like and one-off), with at-least-once execution, per-tenant fairness, and the ability to reschedule or cancel a task up to the second before it fires. What's the storage model and how do workers claim tasks without a thundering herd?",
    "How would you design a feature-flag service used by 300 microservices, where flag evaluation must be local (no network hop per request), updates should propagate in under 5 seconds, and we need an audit trail plus gradual percentage rollouts that are sticky per user?",
    "Design a globally distributed object store's metadata layer. Clients need read-after-write consistency for their own writes and list-after-write for buckets. Explain the partitioning scheme, how you handle hot buckets with billions of keys, and what you do on a regional failover.",
    """I need an architecture for ingesting IoT telemetry: 200k devices, each sending a 1 KB reading every 10 seconds, sometimes buffering for hours when offline and then dumping everything. We need (1) a live dashboard with <5s latency, (2) 2 years of queryable history, (3) alerts on thresholds per device. Budget is tight. What would you pick for the ingestion layer, storage tiers and alerting, and how do you deal with out-of-order and duplicated data?""",
    "Design a distributed cache in front of a slow pricing service. Prices change unpredictably, stale prices for more than 2 seconds cost real money, and the pricing service can only handle 5% of our read traffic. How do you do invalidation, stampede protection and what happens when the cache cluster loses a node?",
    "Sketch a leaderless, Dynamo-style storage system and explain how you'd choose N, R and W for a shopping-cart workload versus an inventory-count workload. Include anti-entropy, hinted handoff, and how conflicts get resolved in each case.",
    "Design a notification system (email, SMS, push) for 80M users that guarantees no duplicates after retries, respects per-user quiet hours in their time zone, and supports a marketing blast of 30M messages within an hour without starving transactional messages.",
    "How should we design zero-downtime schema migrations for a Postgres database behind 40 services that all deploy independently? Give a concrete playbook for renaming a column on a 2 TB table that gets 5k writes/s.",
    "Design a search autocomplete service for an e-commerce site with 20M products in 12 languages. p99 under 50ms, personalised ranking, typo tolerance. Where does the index live, how is it updated, and how do you evaluate it offline and online?",
    "Propose an architecture for a multi-tenant SaaS analytics product where tenants range from 10 rows to 10 billion rows. Shared tables with tenant_id, schema per tenant, or database per tenant? Consider noisy neighbours, migrations, backups and per-tenant deletion for GDPR.",
    """Our LLM gateway routes requests to three tiers of models. We want a semantic cache keyed by prompt embeddings: if a new prompt is close enough to a cached one, return the cached answer. Design it: embedding model choice and where it runs, the vector index, similarity thresholds and how to tune them without serving wrong answers, cache invalidation when models change, tenant isolation, and how to measure whether the cache is actually saving money without hurting quality.""",
    "Design a leader election mechanism for a set of cron workers using only a Postgres database (no ZooKeeper/etcd). How do you avoid two leaders during a network partition or a long GC pause, and what guarantees can you actually give?",
    "Design an offline-first mobile app sync protocol for a field-inspection app: forms with photos, edited by multiple inspectors, synced over flaky 3G. How do you handle conflicts, partial uploads of large photos, and schema changes to the forms?",
])

b.add("debugging", "en", [
    """After upgrading CoreDNS from 1.8.6 to 1.10.1 on our Kubernetes cluster (EKS, 1.24, ~120 nodes), pods intermittently fail DNS resolution. Maybe 1 in 200 lookups times out after 5s, then retries succeed. It's worse on busy nodes.

From a failing pod:
```
$ kubectl exec -it api-7d9f8c-xk2lp -- sh -c 'for i in $(seq 1 500); do getent hosts orders.default.svc.cluster.local >/dev/null || echo fail; done' | wc -l
3
```
CoreDNS logs show nothing at the time of failures. conntrack -S on a node:
```
cpu=0 found=0 invalid=1843 insert=0 insert_failed=412 drop=412 early_drop=0 error=0 search_restart=0
```
Corefile is the default plus `cache 30` and `forward . /etc/resolv.conf`. We didn't change ndots. What's going on and how do we fix it properly? I've read about the conntrack race with UDP — is that related to the upgrade at all or a coincidence?""",
    """My Rust service deadlocks under load. It uses tokio and a std::sync::Mutex around a HashMap. Here's the relevant code and a stack dump from gdb when it hangs:

```rust
async fn handle(state: Arc<AppState>, req: Request) -> Response {
    let mut sessions = state.sessions.lock().unwrap();
    let s = sessions.entry(req.user_id).or_insert_with(Session::new);
    if s.needs_refresh() {
        let token = state.auth.refresh(&s.token).await?;   // network call
        s.token = token;
    }
    s.touch();
    drop(sessions);
    state.backend.call(req).await
}
```
```
Thread 7 (Thread 0x7f2c1a7fc640 "tokio-runtime-w"):
#0  syscall () at ../sysdeps/unix/sysv/linux/x86_64/syscall.S:38
#1  std::sys::unix::locks::futex_mutex::Mutex::lock_contended
#2  std::sync::mutex::Mutex<T>::lock
#3  myservice::handlers::handle::{{closure}}
#4  <core::future::from_generator::GenFuture<T> as core::future::future::Future>::poll
...
Thread 3 (Thread 0x7f2c1b9ff640 "tokio-runtime-w"):
#0  syscall ()
#1  std::sys::unix::locks::futex_mutex::Mutex::lock_contended
#2  std::sync::mutex::Mutex<T>::lock
#3  myservice::handlers::handle::{{closure}}
```
All 8 worker threads look like this. Oddly it compiles fine. Why does it compile, why does it deadlock, and what's the right restructuring? I don't want to hold any lock across the network call, but two concurrent requests for the same user shouldn't both refresh the token.""",
    "Why does my Go service deadlock when two goroutines lock mutexes A and B in opposite orders? Propose a fix that keeps both critical sections.",
    """Our Node.js (18, Express) service's memory grows from ~300 MB to 1.8 GB over about 6 hours and then gets OOM-killed. Heap snapshots taken 1h apart show the biggest growth in `(closure)` and `Array` retained by `Socket` objects. We use `ioredis`, `pg` with a pool of 20, and a homegrown in-memory LRU for user profiles (max 10k entries). Request rate is steady at ~400 rps. Event loop lag is fine until the last hour.

Things I tried: raising --max-old-space-size (just delays it), disabling the LRU (still leaks, slower). What's your plan to pin this down, which retainer paths would you look at first, and what are the usual suspects with this stack?""",
    """Intermittent 502s from our nginx ingress to a gunicorn backend, about 0.3% of requests, only on requests that arrive on connections that were idle for a while. nginx error log:

```
2024/05/02 13:11:47 [error] 31#31: *884213 upstream prematurely closed connection while reading response header from upstream, client: 10.2.3.4, server: api.example.com, request: "POST /v1/orders HTTP/1.1", upstream: "http://10.0.7.12:8000/v1/orders"
```
gunicorn: `--workers 8 --worker-class gthread --threads 4 --keep-alive 2`. nginx upstream block has `keepalive 64;` and `proxy_http_version 1.1; proxy_set_header Connection "";`. There's an AWS NLB in between. What's the race here, which timeout should be longer than which, and why does it only hit POST requests in our metrics?""",
    """A Postgres query went from 40ms to 9 seconds overnight with no deploy. EXPLAIN ANALYZE now:

```
Nested Loop  (cost=1.13..2841.22 rows=1 width=64) (actual time=0.412..9012.554 rows=1832 loops=1)
  ->  Index Scan using orders_created_at_idx on orders o  (cost=0.56..1320.11 rows=1 width=40) (actual time=0.031..85.221 rows=91234 loops=1)
        Index Cond: (created_at > (now() - '1 day'::interval))
        Filter: (status = 'pending'::text)
  ->  Index Scan using customers_pkey on customers c  (cost=0.57..1521.10 rows=1 width=32) (actual time=0.097..0.097 rows=0 loops=91234)
        Index Cond: (id = o.customer_id)
        Filter: (region = 'EU'::text)
```
Table orders has 400M rows, autovacuum is on. Why did the planner suddenly estimate rows=1, what would you check (pg_stats, last analyze, correlated columns?), and what are the options besides just running ANALYZE — extended statistics, a partial index, rewriting the query?""",
    "Our Java service's p99 latency spikes to 2s every ~20 minutes. GC logs (G1, 8 GB heap) show a 1.8s 'Pause Full (G1 Compaction Pause)' at exactly those times, with humongous allocations beforehand. What's likely causing humongous objects, and how would you confirm and fix it without just throwing more heap at it?",
    """Python asyncio app: after a few hours we get `RuntimeError: Task got Future <Future pending> attached to a different loop` and then every request fails until restart. We use aiohttp, an aioredis client created at import time, and run under gunicorn with uvicorn workers (--preload). Stack:

```
Traceback (most recent call last):
  File "/app/handlers.py", line 88, in get_profile
    cached = await redis.get(f"profile:{uid}")
  File "/usr/local/lib/python3.11/site-packages/redis/asyncio/client.py", line 545, in execute_command
    conn = self.connection or await pool.get_connection(command_name, **options)
  File "/usr/local/lib/python3.11/site-packages/redis/asyncio/connection.py", line 1079, in get_connection
    async with self._lock:
RuntimeError: Task <Task pending name='Task-88213'> got Future <Future pending> attached to a different loop
```
Why only after hours and not immediately? Walk me through the lifecycle problem and the correct fix.""",
    "Terraform plan wants to destroy and recreate our production RDS instance because of a change to `engine_version` from \"13.7\" to \"13\". Nobody changed that line. We're on AWS provider 5.x. Why is this happening and how do I get a plan that doesn't replace the DB?",
    """Flaky test in CI, fails maybe 1 in 30 runs, never locally:

```
--- FAIL: TestOrderExpiry (0.51s)
    order_test.go:142: expected status EXPIRED, got PENDING
```
The test creates an order with a 500ms TTL, sleeps 510ms and checks. The expiry is done by a background goroutine that ticks every 100ms using time.NewTicker and a SELECT ... WHERE expires_at < now(). The DB is a Postgres testcontainer. CI runners are shared and slow. Besides 'sleep longer', what's actually wrong with the test and with the design, and how would you make this deterministic?""",
    """Kafka consumer lag keeps growing on one partition out of 24 while the others are near zero. Same consumer group, 12 consumers, cooperative-sticky assignor. The slow partition's consumer logs show frequent `Revoking previously assigned partitions` followed by reassignment. max.poll.interval.ms=300000, max.poll.records=500, processing is ~50ms per record but sometimes a record triggers a call to an external API that takes 30s+. Explain the feedback loop and give me a fix that doesn't just hide it.""",
    "Our React app gets 'Maximum update depth exceeded' only in production builds, only in Safari, only when a user comes back to the tab after a while. The component uses useEffect with a dependency on an object built from a context value, and an IntersectionObserver. How would you approach this systematically?",
    "We see TCP retransmits and 200ms stalls between two services in the same AZ, only for responses larger than ~1400 bytes, after we moved to a VPN overlay. Smaller requests are fine. What's going on and what are the options to fix it?",
    """A C++ service crashes with SIGSEGV in a destructor about once a day. Core dump backtrace:

```
#0  0x00007f8e4c2a1b3e in std::_Sp_counted_base<(__gnu_cxx::_Lock_policy)2>::_M_release() ()
#1  0x000055d0c9e4a7f2 in std::shared_ptr<Connection>::~shared_ptr()
#2  0x000055d0c9e4b019 in ConnectionPool::~ConnectionPool() at pool.cc:58
#3  0x00007f8e4bf3e8a7 in __run_exit_handlers () from /lib/x86_64-linux-gnu/libc.so.6
#4  0x00007f8e4bf3ea60 in exit () from /lib/x86_64-linux-gnu/libc.so.6
```
ConnectionPool is a function-local static singleton. Worker threads are detached std::threads that hold shared_ptr<Connection> from the pool. The crash happens during shutdown after SIGTERM. Explain the mechanics and how you would fix shutdown ordering.""",
    "Why would `git bisect` point to a commit that only changes a README as the first bad commit for a performance regression in our benchmark suite? The regression is real (about 8% slower) and reproducible. What does that tell us and how should we continue?",
    """Our Spark job (PySpark, 3.4) that joins a 2 TB events table with a 40 GB users table started taking 4 hours instead of 40 minutes. The Spark UI shows one task in the join stage running for 3.5h while the other 1999 finished in minutes; that task read 180 GB of shuffle. The join key is user_id. We recently started ingesting events from a partner that sends user_id = '' for anonymous users. What's the fix, and how do I handle skew in general if it happens on a legitimate key?""",
    M("Still failing. Here's the new output after your suggestion:\n\n```\n$ dig @10.96.0.10 orders.default.svc.cluster.local +tries=1 +time=1\n;; connection timed out; no servers could be reached\n$ dig @10.96.0.10 orders.default.svc.cluster.local +tcp\n;; ANSWER SECTION:\norders.default.svc.cluster.local. 30 IN A 172.20.41.9\n```\nTCP works every time, UDP times out about 1 in 50. We already set `single-request-reopen` in dnsConfig. NodeLocal DNSCache isn't installed. What next? Should we roll out NodeLocal DNSCache and what are the risks of doing that on a live cluster?",
      history=["Pods on our EKS cluster sometimes can't resolve service names, lookups hang for 5s. Started after a CoreDNS upgrade. Ideas?",
               "A 5-second stall that then succeeds is the classic signature of a dropped UDP DNS packet followed by the resolver's retry timeout. The most common cause on Kubernetes is a race in conntrack when glibc sends the A and AAAA queries in parallel from the same socket: both packets race to create the same conntrack entry, one insert fails and the packet is dropped. Things to check: `conntrack -S` for insert_failed, whether the failures correlate with busy nodes, and try `options single-request-reopen` (glibc) in the pod's dnsConfig as a quick mitigation. The CoreDNS upgrade itself may be a coincidence, or it may have changed the number of replicas or their placement."]),
    M("""The integration suite for our checkout service has 14 failing tests since the dependency bump in the last PR (stripe-node 12 -> 14, and TypeScript 5.4). Find out why they fail, fix the code (not the tests, unless a test is genuinely wrong), and make sure `npm test` passes. Tell me at the end which breaking changes in the Stripe library were responsible.""",
      system=AGENT_SYSTEM, tools=True),
    M("""Error rates on the `payments-api` service went from 0.1% to 4% about 40 minutes ago. Investigate: figure out which endpoints and which upstream dependencies are affected, whether it correlates with a deploy, a node, or a specific customer, and give me a short incident summary with the most likely cause and what evidence supports it.""",
      system=OPS_AGENT_SYSTEM, tools=True),
    M("Our nightly ETL job started failing with 'disk quota exceeded' on the worker even though the dataset didn't grow. Look through the repo's job definitions and the last few runs' logs, find what's filling the disk, and propose a fix as a patch.",
      system=AGENT_SYSTEM, tools=True),
])

b.add("code-review", "en", [
    """Please review this function. It's supposed to transfer money between two accounts safely under concurrency. Point out every bug you find, rank them by severity, and suggest a corrected version.

```python
def transfer(db, from_id, to_id, amount):
    src = db.execute("SELECT balance FROM accounts WHERE id = %s", (from_id,)).fetchone()
    if src[0] < amount:
        raise ValueError("insufficient funds")
    db.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, from_id))
    db.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, to_id))
    db.commit()
    log.info(f"transferred {amount} from {from_id} to {to_id}")
    return True
```
We use psycopg2 with autocommit off, Postgres 15, READ COMMITTED.""",
    """Code review please — this is our retry helper that everyone in the company uses. Anything wrong with it? Think about thundering herds, cancellation and what exceptions it retries.

```ts
export async function retry<T>(fn: () => Promise<T>, attempts = 5, delayMs = 100): Promise<T> {
  let lastErr: any;
  for (let i = 0; i < attempts; i++) {
    try {
      return await fn();
    } catch (e) {
      lastErr = e;
      await new Promise(r => setTimeout(r, delayMs * 2 ** i));
    }
  }
  throw lastErr;
}
```""",
    """Review this Rust for soundness. It's meant to be a lock-free single-producer single-consumer ring buffer.

```rust
pub struct Ring<T> {
    buf: Box<[MaybeUninit<T>]>,
    head: AtomicUsize, // written by consumer
    tail: AtomicUsize, // written by producer
}

unsafe impl<T> Sync for Ring<T> {}

impl<T> Ring<T> {
    pub fn push(&self, v: T) -> Result<(), T> {
        let tail = self.tail.load(Ordering::Relaxed);
        let next = (tail + 1) % self.buf.len();
        if next == self.head.load(Ordering::Relaxed) {
            return Err(v);
        }
        unsafe { (self.buf.as_ptr().add(tail) as *mut MaybeUninit<T>).write(MaybeUninit::new(v)); }
        self.tail.store(next, Ordering::Relaxed);
        Ok(())
    }

    pub fn pop(&self) -> Option<T> {
        let head = self.head.load(Ordering::Relaxed);
        if head == self.tail.load(Ordering::Relaxed) {
            return None;
        }
        let v = unsafe { self.buf[head].assume_init_read() };
        self.head.store((head + 1) % self.buf.len(), Ordering::Relaxed);
        Some(v)
    }
}
```
Is `Sync` for all T okay? Are the orderings right? What happens on drop?""",
    """Can you review this Go HTTP handler? It's in our auth service and I have a bad feeling about it.

```go
func (s *Server) ResetPassword(w http.ResponseWriter, r *http.Request) {
    token := r.URL.Query().Get("token")
    email := r.URL.Query().Get("email")
    rec, err := s.db.GetResetToken(email)
    if err != nil {
        http.Error(w, err.Error(), 500)
        return
    }
    if rec.Token != token || time.Now().After(rec.Expires) {
        http.Error(w, "invalid token for "+email, 403)
        return
    }
    newPw := r.FormValue("password")
    hash, _ := bcrypt.GenerateFromPassword([]byte(newPw), 4)
    s.db.SetPassword(email, string(hash))
    w.Write([]byte("ok"))
}
```""",
    """Review this SQL migration before I run it on production (MySQL 8, orders table ~300M rows, heavy write traffic). What will happen, and how would you do it instead?

```sql
ALTER TABLE orders ADD COLUMN fulfillment_center_id INT NOT NULL DEFAULT 0;
UPDATE orders SET fulfillment_center_id = (SELECT fc.id FROM fulfillment_centers fc WHERE fc.region = orders.region LIMIT 1);
ALTER TABLE orders ADD INDEX idx_fc (fulfillment_center_id);
ALTER TABLE orders ADD CONSTRAINT fk_fc FOREIGN KEY (fulfillment_center_id) REFERENCES fulfillment_centers(id);
```""",
    """Please do a thorough review of this LRU cache implementation — correctness, complexity, thread-safety, API design. It's going into a shared library.

```java
public class LRUCache<K, V> {
    private final int capacity;
    private final Map<K, V> map = new HashMap<>();
    private final LinkedList<K> order = new LinkedList<>();

    public LRUCache(int capacity) { this.capacity = capacity; }

    public synchronized V get(K key) {
        if (!map.containsKey(key)) return null;
        order.remove(key);
        order.addFirst(key);
        return map.get(key);
    }

    public void put(K key, V value) {
        if (map.size() >= capacity) {
            K last = order.removeLast();
            map.remove(last);
        }
        map.put(key, value);
        order.addFirst(key);
    }
}
```""",
    """Review this React hook. Users report stale search results sometimes showing up after they type fast.

```jsx
function useSearch(query) {
  const [results, setResults] = useState([]);
  const [loading, setLoading] = useState(false);
  useEffect(() => {
    if (!query) return;
    setLoading(true);
    fetch(`/api/search?q=${query}`)
      .then(r => r.json())
      .then(data => { setResults(data.items); setLoading(false); });
  }, [query]);
  return { results, loading };
}
```
Explain the race, anything else wrong (encoding? errors? unmount?), and give a fixed version.""",
    """Our team lead wants this merged today. Is this C function safe? It parses a length-prefixed message from a network buffer.

```c
int parse_msg(const uint8_t *buf, size_t len, struct msg *out) {
    if (len < 4) return -1;
    uint32_t n = (buf[0] << 24) | (buf[1] << 16) | (buf[2] << 8) | buf[3];
    if (n + 4 > len) return -1;
    out->payload = malloc(n);
    memcpy(out->payload, buf + 4, n);
    out->len = n;
    return 0;
}
```""",
    "In code review, a colleague replaced all our `Arc<Mutex<HashMap<K, V>>>` with `DashMap` \"for performance\". The service does a lot of read-modify-write across two keys at a time. What are the risks, what would you ask them to measure, and when is the change a good idea?",
    """Review this Python data pipeline step for correctness and performance. It runs daily on ~50M rows.

```python
def dedupe_events(df):
    df = df.sort_values('ts')
    out = []
    seen = {}
    for _, row in df.iterrows():
        key = (row.user_id, row.event_type)
        if key in seen and (row.ts - seen[key]).total_seconds() < 60:
            continue
        seen[key] = row.ts
        out.append(row)
    return pd.DataFrame(out)
```
Is the semantics even what we want (we want to drop events within 60s of the previous *kept* event of the same type)? How would you vectorize it?""",
])

b.add("data-analysis", "en", [
    """We ran an A/B test on a new checkout page for 3 weeks. Control: 412,330 sessions, 12,103 purchases. Treatment: 409,877 sessions, 12,699 purchases. Average order value is slightly lower in treatment (€61.20 vs €63.05). Product wants to ship it. Before I say yes: analyse this properly — significance on conversion, what to do about AOV and revenue per session, novelty effects, whether sessions are even the right unit (users can have many sessions), and what else you'd want to see.""",
    "Design an analysis plan to figure out whether our new onboarding email sequence reduced 90-day churn, given that we rolled it out to everyone at once in March (no holdout). What quasi-experimental methods could work, what are their assumptions, and which confounders worry you?",
    """I have 3 years of daily sales for 400 stores, plus weather, local holidays and promotions. I need store-level forecasts 8 weeks ahead for staffing. Propose a modelling approach, how to validate it (backtesting scheme), how to handle new stores with little history, and how to communicate uncertainty to store managers who hate ranges.""",
    "Our fraud model's precision dropped from 0.82 to 0.61 over two months while recall stayed about the same. Lay out an investigation plan: how to tell label delay from data drift from concept drift from a pipeline bug, which plots and stats you'd compute first, and what you'd do meanwhile.",
    "We want to measure the effect of a price increase on demand, but prices were changed in different regions at different times, and a competitor also changed prices. How would you set up a difference-in-differences or synthetic control analysis here, and how would you check the parallel trends assumption?",
    """Here's a summary from our hospital readmission dataset (n = 18,422 discharges): 30-day readmission 14.1%. Patients seen by the new follow-up phone program: 11.2% (n = 5,310); not enrolled: 15.3%. Enrollment was offered by nurses at discharge at their discretion. The board wants to report the program cut readmissions by 27%. What's wrong with that claim, what analysis would give a defensible estimate, and what data would we need to collect going forward?""",
    "Plan an analysis of our Kubernetes cost data (per-namespace CPU/memory requests vs actual usage, node pricing, spot vs on-demand) to find the top savings opportunities. What metrics, what joins, what pitfalls (bursty workloads, requests vs limits), and how would you present it to teams so they actually act on it?",
    "Given clickstream logs for a news site (user_id, article_id, timestamp, referrer, dwell_time), how would you build and evaluate a metric for 'article quality' that isn't just clickbait-friendly CTR? Consider position bias, dwell-time censoring and bot traffic.",
    """Survey data: 2,400 responses to a customer satisfaction survey sent to 31,000 customers. Responses skew toward long-tenure customers (response rate 14% vs 4% for customers under 6 months). Overall CSAT is 4.3/5. Leadership wants CSAT by segment and by product line for the annual report. How should we weight and report this, and which numbers should we refuse to publish?""",
    "We have sensor data from 60 wind turbines (10-minute SCADA: wind speed, power, rotor speed, temperatures, error codes) and maintenance logs. Outline an approach to predict gearbox failures 2-4 weeks ahead, including labelling, leakage risks, class imbalance and how to evaluate in a way the maintenance team would trust.",
])

b.add("long-form", "en", [
    M("""Write a design document (about 2,500 words) for adding multi-tenant quotas to our LLM gateway. Sections: context and goals, non-goals, current architecture, proposed design (token-bucket per tenant stored in Redis with a local fallback, hierarchical quotas org -> team -> key), API changes, failure modes, migration, rollout plan, alternatives considered, open questions. The audience is senior engineers; be concrete about data structures and consistency trade-offs.""",
      max_tokens=4000),
    M("Write a 2,000-word essay on whether remote work has been good or bad for junior software engineers' career development. Take a position, engage seriously with the strongest counterarguments, and use concrete mechanisms (mentorship, visibility, feedback loops) rather than vibes.",
      max_tokens=4000),
    M("""Draft a grant proposal (NSF-style, roughly 3 pages of text) for a project on low-cost air quality sensing in rural schools. Include: project summary, intellectual merit, broader impacts, research aims with methods, evaluation plan, timeline over 3 years, and a budget justification in prose. Our team: one environmental engineer, one education researcher, two partner school districts in New Mexico.""",
      max_tokens=6000),
    M("Write a long-form technical blog post (around 3,000 words) explaining how consistent hashing works, why virtual nodes matter, how bounded-load consistent hashing improves on it, and when you'd choose rendezvous hashing instead. Include small worked examples and pseudo-code.",
      max_tokens=5000),
    M("""I need a post-mortem document for an incident. Facts: on 12 March, a config push at 14:02 UTC set the connection pool size of our orders service to 0 in eu-west-1 due to a templating bug (an env var missing in the new region template). Orders failed for 47 minutes in that region. Alerting fired at 14:09 but paged the wrong team. Rollback at 14:49. ~18,000 failed checkouts, estimated €1.1M in delayed revenue, ~3% not recovered. Write a blameless post-mortem in the usual format: summary, impact, timeline, root cause analysis (5 whys), what went well, what went poorly, action items with owners-by-role and priorities. Be thorough.""",
      max_tokens=4000),
    "Write a 1,500-word short story set on a generation ship where the crew discovers the destination planet was settled centuries ago by a faster ship launched after theirs. Literary tone, limited third person, no info-dumps, end on an ambiguous note.",
    M("Write a comprehensive onboarding guide for new backend engineers joining a team that runs a Rust + Postgres + Kafka stack on Kubernetes. Cover the first two weeks day by day, the mental model of the system, how to deploy safely, on-call expectations, and a glossary. Aim for something a new hire could actually follow.",
      max_tokens=8000),
    M("Write a whitepaper-style report (~3,500 words) on the trade-offs of running open-weight LLMs on-premises versus using hosted APIs for a mid-size European bank: cost model with explicit assumptions, latency, data residency and GDPR, model quality, operational burden, vendor risk. End with a recommendation framework rather than a single answer.",
      max_tokens=6000),
    "Write a detailed literature-review style essay on the replication crisis in social psychology: its history, the main methodological causes (p-hacking, small samples, publication bias), reforms like preregistration and registered reports, and an assessment of whether they are working. About 2,500 words, with references to well-known studies and debates.",
    M("""Write an RFC for changing our public REST API's pagination from offset-based to cursor-based. Current state: 140 endpoints, ~3,000 external API consumers, some of which page through millions of records nightly. Cover: motivation with data, cursor format (opaque, signed?), ordering guarantees under concurrent inserts/deletes, backwards compatibility and deprecation timeline, SDK changes, documentation, and how we'll measure adoption. Long and detailed please.""",
      max_tokens=4000),
    "Write a persuasive 2,000-word op-ed arguing that cities should replace minimum parking requirements with parking maximums near transit, anticipating objections from small businesses, disability advocates and suburban commuters.",
    M("Write a complete course syllabus and the first three lecture notes (detailed, ~1,500 words each) for an undergraduate course 'Introduction to Distributed Systems'. The lectures: 1) why distributed systems are hard (partial failure, no global clock), 2) logical clocks and causality, 3) replication and consistency models.",
      max_tokens=8000),
])

SEEDS = b.seeds
