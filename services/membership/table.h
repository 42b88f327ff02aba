/*
 * The member table of one agent and the rules that change it: merging what
 * gossip brings, failure detection (suspect, then down only on a second
 * source), refutation, catching up after a pause, forgetting. Pure logic:
 * no sockets, no threads, no clock of its own (every call is given "now"),
 * so unit tests drive it exactly. docs/membership.md is the reference.
 *
 * Not thread-safe: the agent holds its lock around every call.
 */
#ifndef RK_MS_TABLE_H
#define RK_MS_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#define RK_MS_ID_BYTES     16
#define RK_MS_MAX_ACCUSERS 8
#define RK_MS_URL_MAX      256
#define RK_MS_NAME_MAX     64
#define RK_MS_MAX_MEMBERS  1024

/* Member states: the values of ringkv.v1.MemberState. */
enum {
	RK_MS_ALIVE = 1,
	RK_MS_SUSPECT = 2,
	RK_MS_DOWN = 3,
	RK_MS_LEFT = 4,
};

/* Accusation sources: the values of ringkv.v1.AccusationSource. */
enum {
	RK_MS_ACCUSE_STALLED = 1,
	RK_MS_ACCUSE_PROBE = 2,
	RK_MS_ACCUSE_INDIRECT = 3,
};

/* One member's suspicion of another. */
typedef struct rk_ms_accuser {
	uint8_t id[RK_MS_ID_BYTES]; /* UUID of the accuser */
	int source;                 /* RK_MS_ACCUSE_* */
	uint64_t since_ms;          /* accuser's wall ms */
	uint64_t incarnation;       /* the accused's incarnation it is about */
} rk_ms_accuser_t;

/* One entry of the table. */
typedef struct rk_ms_member {
	uint8_t id[RK_MS_ID_BYTES];      /* the member's UUID */
	uint64_t generation;             /* raised at every restart */
	int role;                        /* ringkv.v1.ServiceId value */
	char rpc_url[RK_MS_URL_MAX];     /* its RPC endpoint, "" if none */
	char events_url[RK_MS_URL_MAX];  /* its events endpoint, "" if none */
	char datacenter[RK_MS_NAME_MAX]; /* placement */
	char rack[RK_MS_NAME_MAX];       /* placement */
	char name[RK_MS_NAME_MAX];       /* human name, not identity */
	char version[RK_MS_NAME_MAX];    /* software version */
	uint32_t weight;                 /* ring weight */
	int state;                       /* RK_MS_ALIVE ... RK_MS_LEFT */
	uint64_t heartbeat;              /* raised by its agent each round */
	uint64_t incarnation;            /* raised to refute suspicion */
	rk_ms_accuser_t accusers[RK_MS_MAX_ACCUSERS]; /* who suspects it */
	size_t naccusers;                             /* entries of accusers */
	uint64_t state_since_ms;          /* wall ms of the last state change */
	bool has_agent;                   /* agent_id is set */
	uint8_t agent_id[RK_MS_ID_BYTES]; /* the agent vouching for it */
	/* Local view, never gossiped: */
	uint64_t rise_mono;  /* monotonic ms its heartbeat last rose */
	uint64_t state_mono; /* monotonic ms of the last state change here */
} rk_ms_member_t;

/* Timings of failure detection, in ms. */
typedef struct rk_ms_timing {
	uint64_t suspect_ms; /* no heartbeat rise for this long: suspect */
	uint64_t
	    isolated_ms;    /* heard from no one for this long: not caught up */
	uint64_t forget_ms; /* left or down for this long: forgotten */
} rk_ms_timing_t;

/* What kind of change a callback reports: MembershipEventKind values. */
enum {
	RK_MS_ADDED = 1,
	RK_MS_CHANGED = 2,
	RK_MS_REMOVED = 3,
};

/* Called for every change but heartbeats, after the table changed, with
 * the entry (borrowed for the call; for REMOVED the entry as it was). */
typedef void (*rk_ms_change_fn)(void *arg, int kind, const rk_ms_member_t *m,
                                uint64_t version);

/* A forgotten entry, kept so gossip from slower peers does not bring it
 * back. */
typedef struct rk_ms_forgotten {
	uint8_t id[RK_MS_ID_BYTES]; /* its UUID */
	uint64_t generation;        /* its generation when forgotten */
	uint64_t incarnation;       /* its incarnation when forgotten */
	uint64_t until_mono;        /* remembered until then */
} rk_ms_forgotten_t;

typedef struct rk_ms_table {
	rk_ms_member_t *m;         /* the entries; m[0] is this agent */
	size_t n;                  /* entries in use */
	size_t cap;                /* entries allocated */
	rk_ms_forgotten_t *gone;   /* forgotten entries still remembered */
	size_t ngone;              /* entries of gone */
	size_t capgone;            /* allocated */
	rk_ms_timing_t timing;     /* failure detection settings */
	uint64_t version;          /* raised on every change but heartbeats */
	uint64_t heard_mono;       /* last exchange with any other agent */
	bool caught_up;            /* heard recently: may convict */
	bool leaving;              /* this agent left on purpose */
	bool healthy;              /* the local service answers its check */
	uint64_t refutations;      /* times this agent refuted a suspicion */
	rk_ms_change_fn on_change; /* may be NULL */
	void *change_arg;          /* for on_change */
} rk_ms_table_t;

/* Starts a table holding SELF (copied; its state becomes ALIVE). NOW is
 * monotonic ms. RK_RESOURCE_EXHAUSTED out of memory. */
rk_status_t rk_ms_table_init(rk_ms_table_t *t, const rk_ms_member_t *self,
                             const rk_ms_timing_t *timing, uint64_t now);
void rk_ms_table_fini(rk_ms_table_t *t);

/* This agent's entry. */
rk_ms_member_t *rk_ms_table_self(rk_ms_table_t *t);

/* The entry with ID, or NULL. Borrowed until the next change. */
rk_ms_member_t *rk_ms_table_find(rk_ms_table_t *t, const uint8_t *id);

/* Merges entries received from another agent (validated already: see
 * rk_ms_member_check). Returns how many entries changed other than by a
 * heartbeat. NOW is monotonic ms, WALL wall ms. */
size_t rk_ms_table_merge(rk_ms_table_t *t, const rk_ms_member_t *in, size_t n,
                         uint64_t now, uint64_t wall);

/* Records an exchange with another agent at NOW. After a silence longer
 * than isolated_ms, every other member's heartbeat clock restarts: what
 * this agent missed while away is not held against them. */
void rk_ms_table_heard(rk_ms_table_t *t, uint64_t now);

/* One round of this agent's own bookkeeping: raises its heartbeat when the
 * local service is healthy, refutes when others suspect it, suspects
 * members whose heartbeat stalled, convicts suspects with two distinct
 * accusers, forgets old left and down entries. Writes into PROBE (up to
 * CAP) the suspects that have only this agent as accuser, for indirect
 * probes, and returns how many. */
size_t rk_ms_table_tick(rk_ms_table_t *t, uint64_t now, uint64_t wall,
                        uint8_t (*probe)[RK_MS_ID_BYTES], size_t cap);

/* Adds an accusation of TARGET by ACCUSER (another member who failed to
 * reach it), and convicts when that makes two sources. RK_NOT_FOUND for
 * an unknown target, RK_FAILED_PRECONDITION if it is not suspect. */
rk_status_t rk_ms_table_accuse(rk_ms_table_t *t, const uint8_t *target,
                               const uint8_t *accuser, int source, uint64_t now,
                               uint64_t wall);

/* Evidence TARGET is alive (an indirect probe reached it): its heartbeat
 * as the target reported it, at (GENERATION, INCARNATION). */
void rk_ms_table_alive_evidence(rk_ms_table_t *t, const uint8_t *target,
                                uint64_t generation, uint64_t incarnation,
                                uint64_t heartbeat, uint64_t now);

/* This agent leaves (state LEFT, incarnation raised) or, with JOIN,
 * comes back (ALIVE, incarnation raised). */
void rk_ms_table_leave_self(rk_ms_table_t *t, bool join, uint64_t now,
                            uint64_t wall);

/* Members registered through this agent (Join, agent_node_id = this
 * agent) are vouched for by it: it raises their heartbeat while their own
 * Health check answers (HEALTHY), refutes suspicion on their behalf, and
 * never suspects them itself. True if this agent vouches for M. */
bool rk_ms_table_vouches(const rk_ms_table_t *t, const rk_ms_member_t *m);

/* One round's Health result for vouched member ID. RK_NOT_FOUND, or
 * RK_FAILED_PRECONDITION when this agent does not vouch for it. */
rk_status_t rk_ms_table_vouch(rk_ms_table_t *t, const uint8_t *id, bool healthy,
                              uint64_t now, uint64_t wall);

/* Graceful leave of ID: this agent, or a member it vouches for (state LEFT
 * at a higher incarnation). RK_NOT_FOUND, or RK_FAILED_PRECONDITION for a
 * member another agent vouches for. */
rk_status_t rk_ms_table_leave_member(rk_ms_table_t *t, const uint8_t *id,
                                     uint64_t now, uint64_t wall);

/* Forgets ID now (operator removal). RK_NOT_FOUND, or
 * RK_FAILED_PRECONDITION for an alive or suspect member or for self. */
rk_status_t rk_ms_table_remove(rk_ms_table_t *t, const uint8_t *id,
                               uint64_t now);

/* Distinct accusers of M about its current incarnation. */
size_t rk_ms_member_accusers(const rk_ms_member_t *m);

/* Digest of the ring-relevant part of the table (who holds tokens, with
 * what role, weight and placement): 16 bytes into OUT. */
void rk_ms_table_digest(const rk_ms_table_t *t, uint8_t out[16]);

/* "alive", "suspect", "down", "left", "?". */
const char *rk_ms_state_name(int state);

#endif
