// The C peer of bench/ring-driver.ts: the same driver-side ring work on the same memory layout,
// against the same minimal device loop, so that the TypeScript driver's cost per request can be
// read as a ratio to what C does.
//
// Driver: split (virtio 1.2 §2.7) or packed (§2.8) ring of 256 entries, EVENT_IDX, no indirect
// descriptors, polling (used-buffer notifications disabled). Per request it does what a careful C
// driver does: checks the chain (segment count, lengths, total ≤ 2^32, room), writes the
// descriptors and publishes them with a release store; per batch the kick decision (a full fence,
// then the device's event index); per used element it reads the device's values once and checks
// them (used index jump ≤ chains in flight, id in range and in flight, len ≤ the chain's writable
// bytes, packed AVAIL == USED) before using them, frees the chain and calls the request's
// completion callback through a function pointer.
//
// Device: moves every available chain to used (split: head id and len into the used ring; packed:
// id and len into the head slot, then flags), re-arming its avail event at every pass. It runs on
// the driver's thread between driver calls, so its accesses are relaxed (no barriers), as the
// TypeScript twin's are plain typed-array accesses.
//
//   gcc -O2 -o ring bench/c/ring.c && ./ring split|packed BATCH SECONDS
//   prints {"perSecond": …, "perCpuSecond": …, "notifies": …}   (req/s of wall and of CPU time)
//
// Written for this project from the virtio 1.2 specification.

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QSIZE 256
#define HEADER_LEN 16
#define STATUS_LEN 1

#define F_NEXT 1
#define F_WRITE 2
#define P_AVAIL (1 << 7)
#define P_USED (1 << 15)
#define EV_ENABLE 0
#define EV_DISABLE 1
#define EV_DESC 2

#define NOINLINE __attribute__((noinline))

struct seg {
    uint64_t addr;
    uint32_t len;
};

struct request;
typedef void (*done_fn)(struct request *r, uint32_t len);
struct request {
    struct seg readable[1];
    struct seg writable[1];
    done_fn done;
    uint64_t completed;
    uint64_t bytes;
};

static unsigned notifies;
static void NOINLINE notify_device(void) { notifies++; }

static void NOINLINE request_done(struct request *r, uint32_t len) {
    r->completed++;
    r->bytes += len;
}

static void die(const char *what) {
    fprintf(stderr, "ring: %s\n", what);
    exit(1);
}

static int need_event(unsigned event, unsigned now, unsigned old, unsigned m) {
    return (now - event - 1 + 2 * m) % m < (now - old + m) % m;
}

/* ---- bookkeeping shared by both layouts ---- */
struct live {
    uint8_t live[QSIZE];
    struct request *token[QSIZE];
    uint16_t descs[QSIZE];
    uint64_t writable[QSIZE];
    unsigned in_flight;
    unsigned num_free;
    int broken;
};

/* Chain checks before any change; returns the writable bytes or -1. */
static int64_t check_chain(const struct live *l, const struct seg *rd, unsigned nr, const struct seg *wr, unsigned nw) {
    unsigned n = nr + nw;
    uint64_t total = 0, writable = 0;
    if (l->broken || n == 0 || n > QSIZE) return -1;
    for (unsigned i = 0; i < nr; i++) {
        if (rd[i].len == 0) return -1;
        total += rd[i].len;
    }
    for (unsigned i = 0; i < nw; i++) {
        if (wr[i].len == 0) return -1;
        writable += wr[i].len;
    }
    if (total + writable > (1ull << 32)) return -1;
    if (n > l->num_free) return -2; /* full: back-pressure */
    return (int64_t)writable;
}

/* A used element (id, len) from the device: checks it names a live chain and stays within its
 * writable bytes, then takes the chain back. Returns its descriptor count, or 0 (broken). */
static unsigned take_back(struct live *l, unsigned id, uint32_t n, struct request **token, uint32_t *len) {
    if (id >= QSIZE || !l->live[id]) return l->broken = 1, 0;
    if (n > l->writable[id]) return l->broken = 1, 0;
    *token = l->token[id];
    *len = n;
    unsigned descs = l->descs[id];
    l->live[id] = 0;
    l->token[id] = NULL;
    l->in_flight--;
    l->num_free += descs;
    return descs;
}

static const struct seg *seg_at(const struct seg *rd, unsigned nr, const struct seg *wr, unsigned i) {
    return i < nr ? &rd[i] : &wr[i - nr];
}

/* ---- split ring ---- */
struct split_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
struct used_elem {
    uint32_t id;
    uint32_t len;
};

struct split {
    struct split_desc *desc;
    uint16_t *avail; /* flags, idx, ring[QSIZE], used_event */
    uint16_t *used16; /* flags, idx, then the elements; avail_event after them */
    struct used_elem *used_ring;
    uint16_t next_free[QSIZE];
    uint16_t free_head;
    uint16_t avail_idx, kicked_idx, last_used;
    unsigned added_since_kick;
    int interrupts_wanted;
    struct live l;
};

static void split_init(struct split *q, uint8_t *mem) {
    size_t avail = 16 * QSIZE;
    size_t used = (avail + 6 + 2 * QSIZE + 3) & ~(size_t)3;
    memset(q, 0, sizeof *q);
    q->desc = (struct split_desc *)mem;
    q->avail = (uint16_t *)(mem + avail);
    q->used16 = (uint16_t *)(mem + used);
    q->used_ring = (struct used_elem *)(mem + used + 4);
    for (unsigned i = 0; i < QSIZE; i++) q->next_free[i] = (uint16_t)(i + 1);
    q->l.num_free = QSIZE;
    q->interrupts_wanted = 1;
}

static int split_add(struct split *q, const struct seg *rd, unsigned nr, const struct seg *wr, unsigned nw, struct request *token) {
    int64_t writable = check_chain(&q->l, rd, nr, wr, nw);
    if (writable < 0) return (int)writable;
    unsigned n = nr + nw;
    uint16_t head = q->free_head, d = head;
    for (unsigned i = 0; i < n; i++) {
        const struct seg *s = seg_at(rd, nr, wr, i);
        uint16_t next = q->next_free[d];
        int last = i == n - 1;
        q->desc[d].addr = s->addr;
        q->desc[d].len = s->len;
        q->desc[d].flags = (uint16_t)((i < nr ? 0 : F_WRITE) | (last ? 0 : F_NEXT));
        q->desc[d].next = last ? 0 : next;
        d = next;
    }
    q->free_head = d;
    q->l.live[head] = 1;
    q->l.token[head] = token;
    q->l.descs[head] = (uint16_t)n;
    q->l.writable[head] = (uint64_t)writable;
    q->l.in_flight++;
    q->l.num_free -= n;
    q->avail[2 + (q->avail_idx & (QSIZE - 1))] = head;
    q->avail_idx++;
    q->added_since_kick++;
    __atomic_store_n(&q->avail[1], q->avail_idx, __ATOMIC_RELEASE);
    return 0;
}

static int split_kick(struct split *q) {
    if (q->l.broken || q->added_since_kick == 0) return 0;
    uint16_t old = q->kicked_idx, now = q->avail_idx;
    unsigned added = q->added_since_kick;
    q->kicked_idx = now;
    q->added_since_kick = 0;
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* publish before reading avail_event */
    uint16_t event = __atomic_load_n(&q->used16[2 + 4 * QSIZE], __ATOMIC_RELAXED);
    int notify = added >= 0x10000 || need_event(event, now, old, 0x10000);
    if (notify) notify_device();
    return notify;
}

/* 1: a used element was taken; 0: none; -1: the device broke the ring. */
static int split_pop(struct split *q, struct request **token, uint32_t *len) {
    if (q->l.broken) return -1;
    uint16_t used_idx = __atomic_load_n(&q->used16[1], __ATOMIC_ACQUIRE);
    uint16_t last = q->last_used;
    if (used_idx == last) return 0;
    if ((uint16_t)(used_idx - last) > q->l.in_flight) return q->l.broken = 1, -1;
    struct used_elem *e = &q->used_ring[last & (QSIZE - 1)];
    uint32_t id = e->id, n = e->len;
    unsigned descs = take_back(&q->l, id, n, token, len);
    if (descs == 0) return -1;
    uint16_t tail = (uint16_t)id;
    for (unsigned i = 1; i < descs; i++) tail = q->next_free[tail];
    q->next_free[tail] = q->free_head;
    q->free_head = (uint16_t)id;
    q->last_used = (uint16_t)(last + 1);
    if (q->interrupts_wanted) __atomic_store_n(&q->avail[2 + QSIZE], q->last_used, __ATOMIC_SEQ_CST);
    return 1;
}

static void split_disable_interrupts(struct split *q) {
    q->interrupts_wanted = 0;
    __atomic_store_n(&q->avail[2 + QSIZE], (uint16_t)(q->last_used - 1), __ATOMIC_SEQ_CST);
}

struct split_device {
    uint16_t *avail, *used16;
    struct used_elem *used_ring;
    uint16_t last_avail, used_idx;
};

static unsigned NOINLINE split_device_step(struct split_device *dv) {
    uint16_t avail_idx = __atomic_load_n(&dv->avail[1], __ATOMIC_RELAXED);
    unsigned n = 0;
    while (dv->last_avail != avail_idx) {
        uint16_t head = dv->avail[2 + (dv->last_avail & (QSIZE - 1))];
        struct used_elem *e = &dv->used_ring[dv->used_idx & (QSIZE - 1)];
        e->id = head;
        e->len = STATUS_LEN;
        dv->last_avail++;
        dv->used_idx++;
        n++;
    }
    if (n) __atomic_store_n(&dv->used16[1], dv->used_idx, __ATOMIC_RELAXED);
    __atomic_store_n(&dv->used16[2 + 4 * QSIZE], dv->last_avail, __ATOMIC_RELAXED);
    return n;
}

/* ---- packed ring ---- */
struct packed_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t id;
    uint16_t flags;
};
struct event {
    uint16_t off_wrap;
    uint16_t flags;
};

struct packed {
    struct packed_desc *desc;
    struct event *driver_ev, *device_ev;
    uint16_t free_ids[QSIZE];
    unsigned free_id_count;
    unsigned next_avail, last_used, kicked_pos, added_since_kick;
    int avail_wrap, used_wrap;
    int interrupts_wanted;
    struct live l;
};

static void packed_init(struct packed *q, uint8_t *mem) {
    memset(q, 0, sizeof *q);
    q->desc = (struct packed_desc *)mem;
    q->driver_ev = (struct event *)(mem + 16 * QSIZE);
    q->device_ev = (struct event *)(mem + 16 * QSIZE + 4);
    for (unsigned i = 0; i < QSIZE; i++) q->free_ids[i] = (uint16_t)(QSIZE - 1 - i);
    q->free_id_count = QSIZE;
    q->avail_wrap = q->used_wrap = 1;
    q->l.num_free = QSIZE;
    q->interrupts_wanted = 1;
}

static unsigned position(unsigned slot, int wrap) { return wrap ? slot : slot + QSIZE; }

static int packed_add(struct packed *q, const struct seg *rd, unsigned nr, const struct seg *wr, unsigned nw, struct request *token) {
    int64_t writable = check_chain(&q->l, rd, nr, wr, nw);
    if (writable < 0) return (int)writable;
    unsigned n = nr + nw;
    uint16_t id = q->free_ids[--q->free_id_count];
    unsigned head = q->next_avail;
    uint16_t head_flags = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct seg *s = seg_at(rd, nr, wr, i);
        uint16_t flags = (uint16_t)((i < nr ? 0 : F_WRITE) | (i < n - 1 ? F_NEXT : 0) | (q->avail_wrap ? P_AVAIL : P_USED));
        struct packed_desc *d = &q->desc[q->next_avail];
        d->addr = s->addr;
        d->len = s->len;
        d->id = id;
        if (i == 0) head_flags = flags;
        else d->flags = flags;
        if (++q->next_avail == QSIZE) {
            q->next_avail = 0;
            q->avail_wrap = !q->avail_wrap;
        }
    }
    q->l.live[id] = 1;
    q->l.token[id] = token;
    q->l.descs[id] = (uint16_t)n;
    q->l.writable[id] = (uint64_t)writable;
    q->l.in_flight++;
    q->l.num_free -= n;
    q->added_since_kick += n;
    __atomic_store_n(&q->desc[head].flags, head_flags, __ATOMIC_RELEASE);
    return 0;
}

static int packed_kick(struct packed *q) {
    if (q->l.broken || q->added_since_kick == 0) return 0;
    unsigned old = q->kicked_pos, now = position(q->next_avail, q->avail_wrap);
    unsigned added = q->added_since_kick;
    q->kicked_pos = now;
    q->added_since_kick = 0;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    unsigned flags = __atomic_load_n(&q->device_ev->flags, __ATOMIC_RELAXED) & 3;
    int notify = flags != EV_DISABLE;
    if (flags == EV_DESC && added < 2 * QSIZE) {
        unsigned off_wrap = __atomic_load_n(&q->device_ev->off_wrap, __ATOMIC_RELAXED);
        unsigned off = off_wrap & 0x7fff;
        notify = off >= QSIZE || need_event(position(off, off_wrap >= 0x8000), now, old, 2 * QSIZE);
    }
    if (notify) notify_device();
    return notify;
}

static int packed_pop(struct packed *q, struct request **token, uint32_t *len) {
    if (q->l.broken) return -1;
    if (q->l.in_flight == 0) return 0;
    unsigned slot = q->last_used;
    uint16_t flags = __atomic_load_n(&q->desc[slot].flags, __ATOMIC_ACQUIRE);
    int used = (flags & P_USED) != 0;
    if (used != q->used_wrap) return 0;
    if (((flags & P_AVAIL) != 0) != used) return q->l.broken = 1, -1;
    uint16_t id = q->desc[slot].id;
    uint32_t n = q->desc[slot].len;
    unsigned descs = take_back(&q->l, id, n, token, len);
    if (descs == 0) return -1;
    q->free_ids[q->free_id_count++] = id;
    q->last_used += descs;
    if (q->last_used >= QSIZE) {
        q->last_used -= QSIZE;
        q->used_wrap = !q->used_wrap;
    }
    if (q->interrupts_wanted) __atomic_store_n(&q->driver_ev->off_wrap, (uint16_t)(q->last_used | (q->used_wrap ? 0x8000 : 0)), __ATOMIC_SEQ_CST);
    return 1;
}

static void packed_disable_interrupts(struct packed *q) {
    q->interrupts_wanted = 0;
    __atomic_store_n(&q->driver_ev->flags, EV_DISABLE, __ATOMIC_SEQ_CST);
}

struct packed_device {
    struct packed_desc *desc;
    struct event *device_ev;
    unsigned slot;
    int wrap;
};

static unsigned NOINLINE packed_device_step(struct packed_device *dv) {
    unsigned n = 0;
    for (;;) {
        uint16_t flags = __atomic_load_n(&dv->desc[dv->slot].flags, __ATOMIC_RELAXED);
        if (((flags >> 7) & 1) != dv->wrap || ((flags >> 15) & 1) == dv->wrap) break;
        unsigned last = dv->slot, count = 1;
        while (dv->desc[last].flags & F_NEXT) {
            last = last + 1 == QSIZE ? 0 : last + 1;
            count++;
        }
        struct packed_desc *d = &dv->desc[dv->slot];
        d->id = dv->desc[last].id;
        d->len = STATUS_LEN;
        __atomic_store_n(&d->flags, dv->wrap ? P_AVAIL | P_USED : 0, __ATOMIC_RELAXED);
        dv->slot += count;
        if (dv->slot >= QSIZE) {
            dv->slot -= QSIZE;
            dv->wrap ^= 1;
        }
        n++;
    }
    __atomic_store_n(&dv->device_ev->off_wrap, (uint16_t)(dv->slot | (dv->wrap << 15)), __ATOMIC_RELAXED);
    return n;
}

/* ---- the benchmark ---- */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) die("usage: ring split|packed BATCH SECONDS");
    int packed = strcmp(argv[1], "packed") == 0;
    unsigned batch = (unsigned)atoi(argv[2]);
    double seconds = atof(argv[3]);
    if (batch < 1 || batch > QSIZE / 2) die("batch must be 1..128");
    uint8_t *mem = aligned_alloc(4096, 4096 * 4);
    memset(mem, 0, 4096 * 4);
    uint64_t iova = 0x100000000ull;
    struct request *reqs = calloc(batch, sizeof *reqs);
    for (unsigned i = 0; i < batch; i++) {
        reqs[i].readable[0] = (struct seg){iova + 0x10000 + 64 * i, HEADER_LEN};
        reqs[i].writable[0] = (struct seg){iova + 0x10000 + 64 * i + 32, STATUS_LEN};
        reqs[i].done = request_done;
    }
    static struct split sq;
    static struct packed pq;
    static struct split_device sd;
    static struct packed_device pd;
    if (packed) {
        packed_init(&pq, mem);
        packed_disable_interrupts(&pq);
        pd = (struct packed_device){pq.desc, pq.device_ev, 0, 1};
        pq.device_ev->flags = EV_DESC;
    } else {
        split_init(&sq, mem);
        split_disable_interrupts(&sq);
        sd = (struct split_device){sq.avail, sq.used16, sq.used_ring, 0, 0};
    }
    uint64_t done = 0;
    double start = 0, cpu_start = 0, until = 0, warm_until = now_s() + 0.3;
    int warming = 1;
    for (;;) {
        for (unsigned round = 0; round < 64; round++) {
            struct request *token;
            uint32_t len;
            int r;
            if (packed) {
                for (unsigned i = 0; i < batch; i++)
                    if (packed_add(&pq, reqs[i].readable, 1, reqs[i].writable, 1, &reqs[i])) die("add failed");
                packed_kick(&pq);
                packed_device_step(&pd);
                while ((r = packed_pop(&pq, &token, &len)) == 1) token->done(token, len);
            } else {
                for (unsigned i = 0; i < batch; i++)
                    if (split_add(&sq, reqs[i].readable, 1, reqs[i].writable, 1, &reqs[i])) die("add failed");
                split_kick(&sq);
                split_device_step(&sd);
                while ((r = split_pop(&sq, &token, &len)) == 1) token->done(token, len);
            }
            if (r < 0) die("the device broke the ring");
        }
        if (!warming) done += 64 * batch;
        double t = now_s();
        if (warming && t >= warm_until) {
            warming = 0;
            start = t;
            cpu_start = cpu_s();
            until = t + seconds;
        } else if (!warming && t >= until) {
            break;
        }
    }
    double elapsed = now_s() - start, cpu = cpu_s() - cpu_start;
    uint64_t completed = 0, bytes = 0;
    for (unsigned i = 0; i < batch; i++) completed += reqs[i].completed, bytes += reqs[i].bytes;
    if (bytes != completed * STATUS_LEN) die("lost completions");
    printf("{\"perSecond\": %.0f, \"perCpuSecond\": %.0f, \"notifies\": %u}\n", done / elapsed, done / cpu, notifies);
    return 0;
}
