// Every bound in the system, in one place, with its unit in its name.

/** Largest amount of one money movement, in minor units (overridable by MAX_AMOUNT). */
export const AMOUNT_MINOR_MAX_DEFAULT = 1_000_000_000_000n;
/**
 * No debit or credit may take a balance or a system sub-balance beyond ±2^61 minor units: it
 * fails `balance_overflow` instead. Amounts and overdraft limits stay below 10^18 (< 2^61), so the
 * refund that returns a failed credit, which can never fail, still fits PostgreSQL's bigint
 * (±2^63) with room for two more such refunds (docs/reliability.md).
 */
export const BALANCE_MINOR_LIMIT = 2n ** 61n;
/** PostgreSQL's bigint. */
export const BIGINT_MAX = 2n ** 63n - 1n;
/** JSON integers above this lose precision in JavaScript numbers. */
export const JSON_SAFE_INTEGER_MAX = BigInt(Number.MAX_SAFE_INTEGER);

export const IDEMPOTENCY_KEY_LENGTH_MAX = 255;
export const BODY_BYTES_MAX = 16 * 1024;
export const WAIT_SECONDS_MAX = 30;
/** Connections the kernel may hold waiting for accept() (capped by net.core.somaxconn). */
export const LISTEN_BACKLOG_CONNECTIONS = 4_096;
/**
 * A client has this long to send a request's headers, and this long for the whole request, body
 * included, before it is answered 408 and its connection closed (Node's defaults are 60 s and
 * 300 s: a slow client could hold a request open for five minutes). Answers may take longer: a
 * long-poll waits up to WAIT_SECONDS_MAX after its request has arrived.
 */
export const HTTP_HEADERS_RECEIVE_MS_MAX = 10_000;
/** A request's headers, all of them, in bytes (Node's default); past it, 431. */
export const HTTP_HEADERS_BYTES_MAX = 16 * 1024;
export const HTTP_REQUEST_RECEIVE_MS_MAX = 30_000;
/** How often Node looks for requests past those limits (its default is every 30 s). */
export const HTTP_RECEIVE_CHECK_INTERVAL_MS = 1_000;
/** POST /v1/accounts/{id}/close waits this long for the owner before answering 202. */
export const CLOSE_WAIT_SECONDS = 10;
export const PAGE_SIZE_MAX = 200;
export const PAGE_SIZE_DEFAULT = 50;
export const HOLDER_LENGTH_MAX = 200;
export const DESCRIPTION_LENGTH_MAX = 500;

/** Intake coalescing: requests that arrive together share one INSERT and one enqueue. */
export const SUBMIT_BATCH_MAX = 500;
/**
 * One flush at a time: what arrives while a flush is recorded waits for the next, so flushes grow
 * with the load (group commit) instead of being cut per tick. Each flush makes one envelope per
 * partition it touches, and an envelope costs Redis two Lua calls whatever it carries: with many
 * payers over 16 partitions (the lab's hot destination), 4 flushes in flight sent 1.3 legs per
 * envelope and 1 sends 2.0; the intake bench took about 7 % more (3,228 and 3,262 accepted/s
 * against 2,966 and 3,090 at 4).
 */
export const SUBMIT_FLUSHES_IN_FLIGHT_MAX = 1;

/**
 * Admission control. A web process holds at most this many commands waiting to be recorded;
 * past it, and past a partition's backlog cap, it answers 503 overloaded at once with Retry-After.
 */
export const SUBMIT_WAITING_COMMANDS_MAX = 5_000;
/** Legs waiting to be applied on one partition (counted in PostgreSQL) before intake refuses. */
export const PARTITION_BACKLOG_LEGS_MAX = 50_000;
/** How often each web process re-reads the partitions' backlogs. */
export const BACKLOG_CHECK_INTERVAL_MS = 1_000;
export const OVERLOADED_RETRY_AFTER_S = 1;

/**
 * Envelopes: one BullMQ job carries up to this many legs for one partition (an intake flush, an
 * owner's forwards to one partition, a sweep's round).
 */
export const ENVELOPE_LEGS_MAX = 1_000;
/**
 * Worker: legs a batch takes from its partitions' queues, applied in one PostgreSQL transaction
 * (credits that join their debits' batch come on top, so a transaction holds at most twice this).
 */
export const APPLY_BATCH_LEGS_MAX = 1_000;
/**
 * Batches a worker process applies at once, over disjoint sets of its partitions, each on its own
 * connection: PostgreSQL runs a transaction on one backend, so one batch at a time leaves a
 * backlog's partitions waiting behind a hot one's.
 */
export const APPLY_BATCHES_IN_FLIGHT_MAX = 2;
/**
 * Envelopes an owner holds at once. An intake flush makes one envelope per partition, so under a
 * flash crowd a hot partition's envelopes are many and small: at 8 in hand its batches were
 * capped at 8 flushes' worth and the rest waited in Redis (the lab's hot source, 200
 * connections: about 2,150/s at 8, 2,400/s at 32, two runs each).
 */
export const ENVELOPES_IN_HAND_MAX = 32;
/** Credit legs handed in memory to an owner of the same process, waiting there at most. */
export const HAND_OFF_LEGS_MAX = 10_000;
/** Transient failures of one batch transaction are retried this often before BullMQ's attempts. */
export const APPLY_RETRIES_MAX = 5;
export const APPLY_RETRY_BACKOFF_MS_BASE = 50;
export const APPLY_RETRY_BACKOFF_MS_MAX = 2_000;

/**
 * Partition ownership. A dead owner's partitions move within LEASE_MS plus one claim interval; a
 * worker process that has not heartbeated for LEASE_MS no longer counts towards the fair share.
 */
export const LEASE_MS = 5_000;
/** Leases are renewed, and free partitions claimed, this often. */
export const CLAIM_INTERVAL_MS = 1_000;

/** The outbox sweep: transfers untouched for SWEEP_AFTER_MS are re-enqueued, SWEEP_BATCH_MAX at a time. */
export const SWEEP_AFTER_MS = 10_000;
export const SWEEP_INTERVAL_MS = 5_000;
export const SWEEP_BATCH_MAX = 1_000;

/** BullMQ job options: only infrastructure failures are retried. */
export const JOB_ATTEMPTS_MAX = 8;
export const JOB_BACKOFF_MS_BASE = 200;
export const JOB_FAILED_KEEP_COUNT = 10_000;
/** A partition with more legs than this waiting to be applied is reported at every sweep. */
export const BACKLOG_ALARM_LEGS = 100_000;
/** A job held by a process that died is re-delivered within about lock + check interval. */
export const JOB_LOCK_MS = 10_000;
export const JOB_STALLED_CHECK_INTERVAL_MS = 5_000;
/** Stalled more often than this, a job goes to the failed set, from which the sweep re-drives it. */
export const JOB_STALLED_COUNT_MAX = 5;

/** PostgreSQL. */
export const STATEMENT_TIMEOUT_MS = 10_000;
/** A transaction left idle this long is ended by PostgreSQL: well under LEASE_MS. */
export const IDLE_IN_TRANSACTION_MS = 2_000;
export const POOL_SIZE_MAX = 10;
export const PARTITIONS_MAX = 1024;

/** The audit trail is written in the background, once per interval, with a bounded buffer. */
export const AUDIT_FLUSH_INTERVAL_MS = 100;
export const AUDIT_BUFFER_EVENTS_MAX = 50_000;

/** Account event streams (SSE): per web process, per stream. */
export const EVENT_STREAMS_MAX = 1_000;
export const EVENT_STREAM_HEARTBEAT_MS = 15_000;
export const EVENT_STREAM_LIFETIME_MS = 60 * 60 * 1_000;
export const EVENT_STREAM_BATCH_ENTRIES_MAX = 500;

/** HTTP. */
/** On stop, requests in flight get this long before the connections still open are cut. */
export const STOP_GRACE_MS = 2_000;
export const API_KEY_CACHE_MS = 5_000;
/** Secrets remembered at once (known and unknown); past it the cache starts again empty. */
export const API_KEY_CACHE_ENTRIES_MAX = 10_000;
/** Per API key: a token bucket refilled at this rate, holding at most the burst. */
export const RATE_LIMIT_PER_SECOND_DEFAULT = 5_000;
export const RATE_LIMIT_BURST_DEFAULT = 10_000;
export const RATE_LIMIT_KEYS_MAX = 100_000;
export const LONG_POLL_WAITERS_MAX = 50_000;
export const API_KEY_NAME_LENGTH_MAX = 100;
export const INTEREST_RATE_BPS_MAX = 100_000;
/** Accounts a partition's owner looks at per page of an interest run, one page per poll. */
export const INTEREST_PAGE_ACCOUNTS_MAX = 1_000;
export const INTEREST_POLL_INTERVAL_MS = 1_000;
