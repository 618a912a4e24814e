/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vballoon: state shared between the files of the driver.
 *
 * One struct vballoon exists per bound device; nothing is global except
 * the module parameters, which are copied into it at probe time.
 */
#ifndef _VBALLOON_CORE_H
#define _VBALLOON_CORE_H

#include <linux/atomic.h>
#include <linux/balloon_compaction.h>
#include <linux/completion.h>
#include <linux/log2.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/page_reporting.h>
#include <linux/spinlock.h>
#include <linux/vballoon_virtio.h>
#include <linux/virtio.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "compat.h"

/*
 * Balloon (4 KiB) frames per guest page, and its log2.  The frame
 * helpers take the shift as a parameter so that KUnit can try page sizes
 * other than the one the kernel was built with; the driver always passes
 * VB_FRAME_SHIFT.
 */
#define VB_FRAME_SHIFT		(PAGE_SHIFT - VBALLOON_PFN_SHIFT)
#define VB_FRAMES_PER_PAGE	(PAGE_SIZE >> VBALLOON_PFN_SHIFT)

/* Order of the blocks inflation tries first: 2 MiB, a host huge page. */
#define VB_BLOCK_ORDER		(21 - PAGE_SHIFT)
#define VB_BLOCK_PAGES		BIT(VB_BLOCK_ORDER)

/*
 * The largest buddy order: MAX_ORDER - 1 on 6.1, MAX_PAGE_ORDER on 6.12.
 * MAX_ORDER_NR_PAGES is the size of such a block under both names.
 */
#define VB_MAX_ORDER		ilog2(MAX_ORDER_NR_PAGES)

/* Limits of the batch_pages parameter, in guest pages. */
#define VB_BATCH_MIN		1U
#define VB_BATCH_MAX		32768U
#define VB_BATCH_DEFAULT	4096U

/*
 * Frames per descriptor.  A request is cut into descriptors of at most
 * this many frames: every Linux release has sent 256, and Firecracker
 * skips (and never returns) an inflate descriptor holding more.
 */
#define VB_FRAMES_PER_DESC	256U

/* Most CPUs that allocate one inflation batch together (alloc.c). */
#define VB_ALLOC_CPUS_MAX	8U

/*
 * Inflate requests in flight at once: the host works on them while the
 * next batch is allocated; one whose answer is in is retired before
 * that allocation starts.
 */
#define VB_INFLATE_SLOTS	2U

/* Limits of the oom_pages parameter, in guest pages. */
#define VB_OOM_MIN		1U
#define VB_OOM_MAX		VB_BATCH_MAX
#define VB_OOM_DEFAULT		1024U

/* Limits of the pressure_hold_ms parameter. */
#define VB_HOLD_DEFAULT_MS	10000U
#define VB_HOLD_MAX_MS		600000U

/* Retry delays after an allocation shortfall, in milliseconds. */
#define VB_BACKOFF_MIN_MS	10U
#define VB_BACKOFF_MAX_MS	2000U

/*
 * Waiting for the host.  Waits are cut into slices so that a device
 * broken without an interrupt is noticed; a host silent for
 * VB_WARN_SECS is reported; once the device is being stopped, a request
 * that makes no progress for VB_STOP_GRACE_MS is given up, and with it
 * the host (see vb_send()).  The OOM notifier and the shrinker wait at
 * most VB_RELEASE_WAIT_MS for the host before they give up.
 */
#define VB_WAIT_SLICE		HZ
#define VB_WARN_SECS		30U
#define VB_STOP_GRACE_MS	3000U
#define VB_RELEASE_WAIT_MS	1000U

/* How the balloon gives memory back on its own (autodeflate.c). */
enum vb_autodeflate {
	VB_AD_AUTO = -1,	/* parameter only: oom if the host allows */
	VB_AD_OFF = 0,
	VB_AD_OOM,
	VB_AD_PRESSURE,
};

/*
 * Event counters, atomics read without locks through debugfs.  Each name
 * is the counter's key in debugfs (vb_counter_keys[], debugfs.c), and
 * debugfs lists them in this order.
 */
enum vb_counter {
	VB_CNT_INFLATED_PAGES,		/* pages given to the host */
	VB_CNT_DEFLATED_PAGES,		/* pages taken back from the host */
	VB_CNT_INFLATED_BLOCKS,		/* 2 MiB blocks inflated whole */
	VB_CNT_REQUESTS,		/* inflate + deflate requests sent */
	VB_CNT_ALLOC_SHORTFALLS,	/* inflate rounds that fell short */
	VB_CNT_MIGRATED_PAGES,		/* pages moved by compaction */
	VB_CNT_REFUSED_PFNS,		/* pages whose frame does not fit 32 bits */
	VB_CNT_OOM_RELEASED_PAGES,	/* pages released by the OOM notifier */
	VB_CNT_OOM_EVENTS,		/* OOM notifier calls that released */
	VB_CNT_PRESSURE_RELEASED_PAGES,	/* pages released by the shrinker */
	VB_CNT_HOLDS,			/* hold-off windows started */
	VB_CNT_STATS_REQUESTS,		/* statistics requests answered */
	/* Where inflation and deflation spend their time, microseconds. */
	VB_CNT_ALLOC_US,		/* allocating pages to inflate */
	VB_CNT_INFLATE_HOST_US,		/* waiting for the host, inflating */
	VB_CNT_DEFLATE_HOST_US,		/* waiting for the host, deflating */
	VB_CNT_DESCRIPTORS,		/* descriptors (<= 256 frames) sent */
	VB_CNT_OOM_CALLS,		/* OOM notifier calls */
	VB_CNT_OOM_SLOW_CALLS,		/* of those, waiting 10 ms or longer */
	VB_CNT_HOST_TIMEOUTS,		/* releases that gave up on the host */
	VB_CNT_ABANDONED,		/* requests given up while stopping */
	VB_CNT_UNTOLD_PAGES,		/* pages taken back from a lost host */
	/* Free page reporting (reporting.c). */
	VB_CNT_REPORTED_PAGES,		/* guest pages the host acknowledged */
	VB_CNT_REPORTED_BYTES,		/* the same, in bytes */
	VB_CNT_REPORTS,			/* reports put on the reporting queue */
	VB_CNT_REPORT_FAILURES,		/* reports not sent or not acknowledged */
	/* Free page hinting (hinting.c). */
	VB_CNT_HINT_CMD_IDS,		/* new command ids read from the host */
	VB_CNT_HINT_RUNS,		/* rounds of hints started */
	VB_CNT_HINTED_BLOCKS,		/* blocks put on the free-page queue */
	VB_CNT_HINTED_BYTES,		/* the same, in bytes */
	VB_CNT_HINT_ALLOC_STOPS,	/* rounds ended by a failed allocation */
	VB_CNT_HINT_HOST_STALLS,	/* rounds ended on a full, silent ring */
	VB_CNT_HINT_SHRUNK_BLOCKS,	/* hinted blocks the shrinker gave back */
	VB_CNT_HINT_FREED_BLOCKS,	/* hinted blocks freed on DONE or stop */
	VB_CNT_OOM_WAITED_PAGES,	/* pages others gave back to a waiting
					 * OOM notifier (reported as freed)
					 */
	/* Parallel allocation (alloc.c). */
	VB_CNT_ALLOC_PARALLEL_ROUNDS,	/* batches allocated on several CPUs */
	VB_CNT_ALLOC_HELPER_PAGES,	/* pages the helper CPUs allocated */
	VB_CNT_DEFLATE_FREE_US,		/* taking pages off the list, freeing */
	VB_CNT_NR
};

/*
 * Whether free page reporting runs on a device, and if not, why not; the
 * debugfs key of each is in vb_report_state_names[] (reporting.c).  The
 * first four are decided at probe and hold for the whole binding.
 */
enum vb_report_state {
	VB_REPORT_OFF,		/* free_page_reporting=0 */
	VB_REPORT_NOT_OFFERED,	/* the device has no REPORTING feature */
	VB_REPORT_NO_POISON,	/* freed pages keep a value, no PAGE_POISON */
	VB_REPORT_VQ_SMALL,	/* reporting queue shorter than one report */
	VB_REPORT_STOPPED,	/* negotiated; the device is not running */
	VB_REPORT_ACTIVE,	/* registered with the page allocator */
	VB_REPORT_BUSY,		/* another driver reports free pages */
	VB_REPORT_FAILED,	/* registration failed otherwise */
	VB_REPORT_NR
};

/*
 * Whether free page hinting runs on a device; the debugfs key of each is
 * in vb_hint_state_names[] (hinting.c).  The first two hold for the
 * whole binding.
 */
enum vb_hint_state {
	VB_HINT_OFF,		/* free_page_hinting=0 */
	VB_HINT_NOT_OFFERED,	/* the device has no FREE_PAGE_HINT feature */
	VB_HINT_STOPPED,	/* negotiated; the device is not running */
	VB_HINT_FAILED,		/* its shrinker could not be registered */
	VB_HINT_IDLE,		/* waiting for a command id, nothing parked */
	VB_HINT_RUNNING,	/* a round of hints is going */
	VB_HINT_HOLDING,	/* blocks parked, waiting for DONE */
	VB_HINT_NR
};

/* What a command id from the host asks for (vb_hint_next()). */
enum vb_hint_action {
	VB_HINT_ACT_NONE,	/* nothing new: a run goes on */
	VB_HINT_ACT_RUN,	/* a new id: start a round of hints */
	VB_HINT_ACT_STOP,	/* STOP: end the round, keep the blocks */
	VB_HINT_ACT_FREE,	/* DONE: give every hinted block back */
};

/*
 * Free page hinting on one device (hinting.c).
 *
 * @lock is a leaf spinlock that protects @open, @host_id, @start_queued,
 * @stop_queued, the lists @ring and @held with their counts, and every
 * operation on @vq; the counts are also read without it (READ_ONCE) by
 * the shrinker's count and debugfs, so they are written with
 * WRITE_ONCE.  @vq is set by vb_start() and
 * cleared by vb_stop() after the work is cancelled and the shrinker
 * unregistered.  @cur_id belongs to the hint work, which never runs
 * twice at once; it writes it with WRITE_ONCE for debugfs and for the
 * virtqueue callback, which reads it with READ_ONCE.  @workq is
 * allocated by vb_hint_start() and destroyed by vb_hint_stop().
 * @cmd_start and @cmd_stop are written only while not on the ring
 * (@start_queued, @stop_queued clear).  @negotiated is set at probe,
 * then read-only; @shrinker and @shrinker_registered belong to probe,
 * removal, freeze and restore, which the driver core serialises.
 * @state: written by the work and those, read by debugfs (READ_ONCE).
 */
struct vb_hinting {
	struct virtqueue *vq;
	spinlock_t lock;		/* see above */
	wait_queue_head_t wq;		/* buffers returned, new id, closing */
	struct work_struct work;	/* queued under @lock, while @open */
	struct workqueue_struct *workq;	/* runs @work; see above */
	bool negotiated;		/* FREE_PAGE_HINT accepted */
	bool open;			/* runs may start and send; under @lock */
	u32 host_id;			/* last id read; under @lock */
	u32 cur_id;			/* last id acted on; see above */
	bool start_queued;		/* @cmd_start on the ring; under @lock */
	bool stop_queued;		/* @cmd_stop on the ring; under @lock */
	__le32 cmd_start;		/* outbuf: the id of a round */
	__le32 cmd_stop;		/* outbuf: STOP */
	struct list_head ring;		/* blocks the host holds; under @lock */
	struct list_head held;		/* blocks it returned; under @lock */
	unsigned long nr_ring;		/* blocks on @ring; under @lock */
	unsigned long nr_held;		/* blocks on @held; under @lock */
	struct vb_shrinker shrinker;
	bool shrinker_registered;
	enum vb_hint_state state;
};

/*
 * What to negotiate for free pages, from what the guest does with freed
 * pages, what the device offers and the free_page_reporting parameter
 * (vb_free_page_policy()).
 */
struct vb_fp_policy {
	bool accept_poison;		/* accept PAGE_POISON */
	u32 poison_val;			/* to write when PAGE_POISON is accepted */
	enum vb_report_state report;	/* VB_REPORT_STOPPED: accept REPORTING */
};

/*
 * Free page reporting on one device (reporting.c).  The page allocator
 * calls vb_report() from its reporting work, one report at a time; each
 * report is one buffer on @vq and waits until the host returns it.
 *
 * @lock is a leaf spinlock (taken from the virtqueue callback) that
 * protects @open, @inflight and @reset and every operation on @vq.  @vq
 * is set by vb_start() and cleared by vb_stop() while no report can run
 * (before registration, after unregistration).  @order and @negotiated
 * are set at probe, then read-only.  @registered and @told belong to
 * probe, removal, freeze and restore, which the driver core serialises.
 * @state is written by those too, and read by debugfs with READ_ONCE().
 */
struct vb_reporting {
	struct page_reporting_dev_info pr;
	struct virtqueue *vq;
	spinlock_t lock;		/* see above */
	wait_queue_head_t wq;		/* buffer returned, device reset */
	bool open;			/* reports may be sent; under @lock */
	bool inflight;			/* our buffer is on @vq; under @lock */
	bool reset;			/* device reset since the send; under @lock */
	bool negotiated;		/* REPORTING accepted */
	bool registered;		/* page_reporting_register() succeeded */
	bool told;			/* why it is off was said once */
	unsigned int order;		/* asked of the page allocator, 0: its own */
	enum vb_report_state state;
};

/*
 * One request to the host: frame numbers cut into descriptors of at most
 * VB_FRAMES_PER_DESC frames, all put on one virtqueue, then one kick.
 * Each request has its own frame array, so that one still on the ring
 * (the host has not answered) never has its frames overwritten.
 *
 * @pfns, @max_frames and @q are set at probe and read-only afterwards.
 * The rest belongs to whoever holds the mutex that owns the request
 * (see struct vballoon), except @queued, @used, @seq and @done_seq,
 * which the queue's @lock protects because the virtqueue callback counts
 * returned buffers.
 */
struct vb_queue;

struct vb_req {
	struct vb_queue *q;
	__virtio32 *pfns;
	unsigned int max_frames;
	unsigned int nr_frames;
	unsigned int nr_descs;
	unsigned int queued;		/* protected by @q->lock */
	unsigned int used;		/* protected by @q->lock */
	/* Sends so far, and the last one the host returned in full. */
	unsigned long seq;		/* protected by @q->lock */
	unsigned long done_seq;		/* protected by @q->lock */
	bool inflight;			/* on the ring, not all returned yet */
	/*
	 * Pages waiting for the host's answer: a MUST_TELL_HOST deflation's
	 * (freed once it answered) or a pipelined inflation's (put on the
	 * balloon list once it answered).
	 */
	struct list_head pages;
	unsigned long nr_pages;
};

/*
 * A virtqueue to the host.  @lock (a spinlock, taken from the virtqueue
 * callback in interrupt context) protects the virtqueue operations and
 * the @queued/@used counts of the requests on it; it is never held while
 * sleeping.  @vq is set by vb_start() and cleared by vb_stop() while
 * nothing can send.
 */
struct vb_queue {
	struct virtqueue *vq;
	spinlock_t lock;		/* see above */
	wait_queue_head_t wq;		/* buffers returned, device stopping */
};

/*
 * A share of an inflation batch that a helper allocates on another CPU
 * (alloc.c).  @vb, @work and @done are set at probe; the rest is
 * written by the update work before it queues the job and read back
 * after @done, the helper writing @pages and @got in between.
 */
struct vb_alloc_job {
	struct vballoon *vb;
	struct work_struct work;
	struct completion done;
	struct list_head pages;
	unsigned long want;
	unsigned long got;
};

/*
 * Parallel allocation.  @cpus (1: off) and @wq are set at probe and
 * read-only afterwards; @jobs, @next_cpu (where the next batch's helpers
 * start), @last_cpus and @last_end (the CPUs that allocated the last
 * batch, and when it ended, in jiffies) are used by the update work
 * alone, which never runs twice at once, so no lock.
 */
struct vb_alloc {
	unsigned int cpus;
	struct workqueue_struct *wq;
	struct vb_alloc_job jobs[VB_ALLOC_CPUS_MAX - 1];
	unsigned int next_cpu;
	unsigned int last_cpus;
	unsigned long last_end;
};

/*
 * Locks, outermost first; none is held across a page allocation that
 * can reclaim, and none but the owner's request mutex across a wait for
 * the host:
 *
 *   @inflate_lock   the inflate requests (the update work inflating)
 *   @deflate_lock   the deflate request; taken by
 *                   the update work, the OOM notifier and teardown, only
 *                   tried by the shrinker
 *   @migrate_lock   the two migration requests; only tried, by
 *                   compaction's migrate callback
 *   @actual_lock    writing "actual" to the configuration space
 *   queue locks, @b_dev_info.pages_lock, @limbo_lock, @stop_lock,
 *   @rep.lock: leaves
 *
 * No two of the request mutexes are ever held together.  The OOM
 * notifier runs with the kernel's oom_lock held: it only takes
 * @deflate_lock, never waits for it for long (vb_oom_notify()), and
 * bounds its wait for the host.  Inflation allocates its pages before it
 * takes @inflate_lock, which nothing else in the guest's memory paths
 * ever needs.
 */
struct vballoon {
	struct virtio_device *vdev;	/* set at probe, then read-only */

	/*
	 * Features and parameters, set at probe before the device starts;
	 * read-only afterwards, so no lock.
	 */
	bool must_tell_host;
	bool deflate_on_oom;
	bool has_stats;
	bool page_poison;		/* PAGE_POISON accepted */
	u32 poison_val;			/* written before DRIVER_OK, never changed */
	unsigned int stats_tags;	/* statistics tags sent: 10 or 16 */
	unsigned int batch_pages;	/* pages per inflate/deflate request */
	unsigned int oom_pages;		/* pages released per OOM call */
	bool huge_blocks;		/* try 2 MiB blocks first */
	enum vb_autodeflate autodeflate; /* never VB_AD_AUTO here */
	/*
	 * Ballooned pages leave MemTotal when the guest cannot take them
	 * back on its own (autodeflate off), whatever the host offered.
	 */
	bool adjust_managed;
	unsigned long hold_jiffies;	/* inflation pause after a release */
	unsigned long pressure_floor;	/* pages of MemAvailable to keep */

	/*
	 * @stop_lock (a leaf, taken with interrupts off; the PM core's
	 * wakeup-source lock nests inside it) protects @stopping,
	 * @stop_time, @adjusting and the hold-off window (@hold_until,
	 * @hold_active: inflation waits after autodeflate released pages).  While @stopping is set
	 * nothing queues the update or stats work, and waits for the host
	 * give up a request that stalls for VB_STOP_GRACE_MS.  @adjusting:
	 * the balloon is moving toward a new target and holds a wakeup
	 * reference (pm_stay_awake()).
	 */
	spinlock_t stop_lock;
	bool stopping;
	unsigned long stop_time;	/* jiffies */
	bool adjusting;
	unsigned long hold_until;	/* jiffies */
	bool hold_active;

	/*
	 * The host stopped answering (a request given up while stopping) or
	 * the device broke.  Set once with WRITE_ONCE(), read with
	 * READ_ONCE(); cleared by vb_start() while nothing runs.  Once set
	 * nothing is sent any more; pages the host may still act on wait in
	 * @limbo until the device is reset.
	 */
	bool host_lost;

	struct vb_queue inflate_q;
	struct vb_queue deflate_q;

	/* Moves the balloon toward the host's target; queued under @stop_lock. */
	struct delayed_work update_work;
	/*
	 * Reads a new target after a configuration interrupt (configuration
	 * reads may sleep); queued under @stop_lock.
	 */
	struct work_struct config_work;

	/*
	 * Inflation is pipelined: a batch is sent without waiting for the
	 * host, and the next one is allocated while the host discards it.
	 * Up to VB_INFLATE_SLOTS requests are in flight, their pages on
	 * their request's @pages until the host answers; @inflate_next is
	 * the slot the next batch goes to (the oldest in flight, if any).
	 * @inflate_inflight counts the pages sent and not yet answered:
	 * they are in @num_pages but not yet in "actual".
	 */
	struct mutex inflate_lock;	/* see the lock list above */
	struct vb_req inflate_req[VB_INFLATE_SLOTS]; /* protected by @inflate_lock */
	unsigned int inflate_next;	/* protected by @inflate_lock */
	atomic_long_t inflate_inflight;
	/* Only the update work, which never runs twice at once, uses it. */
	unsigned int backoff_ms;
	/* Helpers allocating inflation batches; see struct vb_alloc. */
	struct vb_alloc alloc;
	/*
	 * The task allocating pages to inflate, while it does: reclaim it
	 * causes must not have the shrinker give pages straight back.
	 * Written with WRITE_ONCE() by the update work, read by the shrinker.
	 */
	struct task_struct *inflater;

	struct mutex deflate_lock;	/* see the lock list above */
	struct vb_req deflate_req;	/* protected by @deflate_lock */

	struct mutex migrate_lock;	/* see the lock list above */
	struct vb_req migrate_in;	/* protected by @migrate_lock */
	struct vb_req migrate_out;	/* protected by @migrate_lock */

	struct mutex actual_lock;	/* serialises writes of "actual" */

	/*
	 * Pages the host holds: on the balloon list, on @limbo, waiting on
	 * the deflate request, or on an inflate request in flight.  Changed
	 * with atomic operations under the request mutex that moves the
	 * pages; read anywhere.
	 */
	atomic_long_t num_pages;

	/*
	 * Pages the host may still discard or may not have been told of
	 * (a request given up, a device broken mid-request): the balloon's
	 * until the device is reset, then freed.  @limbo_lock is a leaf.
	 */
	spinlock_t limbo_lock;
	struct list_head limbo;		/* protected by @limbo_lock */
	unsigned long nr_limbo;		/* protected by @limbo_lock */

	/* The page list of the balloon, under @b_dev_info.pages_lock. */
	struct balloon_dev_info b_dev_info;

	/*
	 * @stats_lock protects the statistics virtqueue and its buffer.
	 * Only the stats work and vb_start() (priming the first buffer)
	 * take it; @stats_vq is set by vb_start() and cleared by vb_stop(),
	 * @stats and @events are allocated at probe and freed at removal,
	 * all while the stats work cannot run.
	 */
	struct mutex stats_lock;
	struct work_struct stats_work;	/* queued under @stop_lock */
	struct virtqueue *stats_vq;	/* protected by @stats_lock */
	struct vballoon_stat *stats;	/* protected by @stats_lock */
	unsigned long *events;		/* protected by @stats_lock */

	/* Free page reporting; struct vb_reporting says what protects what. */
	struct vb_reporting rep;
	/* Free page hinting; struct vb_hinting says what protects what. */
	struct vb_hinting hint;

	/*
	 * Set and read by probe, removal, freeze and restore only, which
	 * the driver core serialises; no lock of ours.  @started: between
	 * a successful vb_start() and the next vb_stop().
	 */
	bool started;
	struct notifier_block oom_nb;
	bool oom_registered;
	struct vb_shrinker shrinker;
	bool shrinker_registered;
	struct dentry *debugfs;

	/* Atomics, no lock; indexed by enum vb_counter. */
	atomic64_t counters[VB_CNT_NR];
	atomic64_t oom_max_us;		/* longest OOM notifier call */
	atomic64_t oom_wait_max_us;	/* longest wait in one, see autodeflate.c */
};

static inline void vb_count(struct vballoon *vb, enum vb_counter c, s64 n)
{
	atomic64_add(n, &vb->counters[c]);
}

/* Module parameters (main.c), copied into each device at probe. */
extern unsigned int vb_param_batch_pages;
extern unsigned int vb_param_oom_pages;
extern bool vb_param_huge_blocks;
extern bool vb_param_extended_stats;
extern bool vb_param_free_page_reporting;
extern unsigned int vb_param_reporting_order;
extern bool vb_param_free_page_hinting;
extern unsigned int vb_param_alloc_cpus;

/*
 * Pure helpers: static unless KUnit is on, then exported to the KUnit
 * suite (tests/kunit) through EXPORT_SYMBOL_IF_KUNIT.
 */
struct sysinfo;

#if IS_ENABLED(CONFIG_KUNIT)
unsigned long vb_target_pages(u32 num_frames, unsigned int frame_shift);
u32 vb_actual_frames(unsigned long pages, unsigned int frame_shift);
long vb_pages_diff(unsigned long target, unsigned long current_pages);
int vb_encode_pfns(struct virtio_device *vdev, __virtio32 *out,
		   unsigned long pfn, unsigned int frame_shift);
unsigned int vb_next_backoff(unsigned int backoff_ms);
unsigned int vb_clamp_param(unsigned int val, unsigned int lo,
			    unsigned int hi, unsigned int dflt);
unsigned long vb_oom_quota(unsigned long balloon_pages,
			   unsigned int oom_pages);
unsigned long vb_pressure_quota(long avail_pages, unsigned long floor,
				unsigned long balloon_pages);
int vb_parse_autodeflate(const char *val);
bool vb_hold_extend(bool *active, unsigned long *until, unsigned long now,
		    unsigned long len);
enum vb_autodeflate vb_resolve_autodeflate(int requested, bool granted);
void vb_stats_collect(u64 vals[VBALLOON_S_NR], const unsigned long *events,
		      const struct sysinfo *si, unsigned long avail_pages,
		      unsigned long cache_pages);
unsigned int vb_stats_encode(struct virtio_device *vdev,
			     struct vballoon_stat *out,
			     const u64 vals[VBALLOON_S_NR], unsigned int nr);
unsigned int vb_descs_for(unsigned int nr_frames);
unsigned int vb_alloc_cpus_auto(unsigned int online);
unsigned int vb_alloc_helpers(unsigned int cpus, unsigned int online,
			      unsigned long load, unsigned long want);
unsigned long vb_alloc_share(unsigned long want, unsigned int helpers);
extern const char * const vb_counter_keys[VB_CNT_NR];
void vb_free_page_policy(bool init_on_free, bool poisoning, bool dev_poison,
			 bool dev_reporting, bool want_reporting,
			 struct vb_fp_policy *out);
int vb_pick_reporting_order(unsigned int param, unsigned int pageblock,
			    unsigned int block, unsigned int max);
extern const char * const vb_report_state_names[VB_REPORT_NR];
enum vb_hint_action vb_hint_next(u32 cur_id, u32 new_id);
extern const char * const vb_hint_state_names[VB_HINT_NR];
#endif

/* host.c: requests to the host */
int vb_req_alloc(struct vb_req *req, struct vb_queue *q,
		 unsigned int max_frames);
void vb_req_free(struct vb_req *req);
void vb_req_reset(struct vb_req *req);
void vb_queue_init(struct vb_queue *q);
void vb_ack_callback(struct virtqueue *vq);
void vb_wake_waiters(struct vballoon *vb);
int vb_send(struct vballoon *vb, struct vb_req *req, unsigned int nr_frames,
	    bool wait, long timeout);
int vb_settle(struct vballoon *vb, struct vb_req *req, long timeout);
bool vb_req_answered(struct vb_req *req);
int vb_wait_deflates(struct vballoon *vb);
bool vb_stopping(struct vballoon *vb);
void vb_lose_host(struct vballoon *vb, const char *why);

/* alloc.c */
void vb_alloc_init(struct vballoon *vb);
void vb_alloc_free(struct vballoon *vb);
unsigned long vb_alloc_batch(struct vballoon *vb, struct list_head *list,
			     unsigned long want);

/* balloon.c */
int vb_balloon_init(struct vballoon *vb);
void vb_balloon_free(struct vballoon *vb);
void vb_update_work_fn(struct work_struct *work);
void vb_queue_update(struct vballoon *vb, unsigned long delay);
void vb_target_changed(struct vballoon *vb);
void vb_config_work_fn(struct work_struct *work);
unsigned long vb_deflate(struct vballoon *vb, unsigned long want,
			 long timeout);
void vb_inflate_settle(struct vballoon *vb);
void vb_deflate_all(struct vballoon *vb);
void vb_free_after_reset(struct vballoon *vb);
void vb_report_actual(struct vballoon *vb);
unsigned long vb_read_target(struct vballoon *vb);
unsigned long vb_balloon_pages(struct vballoon *vb);

/* stats.c */
int vb_stats_init(struct vballoon *vb);
void vb_stats_free(struct vballoon *vb);
void vb_stats_prime(struct vballoon *vb);
void vb_stats_callback(struct virtqueue *vq);
void vb_stats_work_fn(struct work_struct *work);

/* reporting.c */
void vb_free_page_features(struct virtio_device *vdev);
void vb_reporting_setup(struct vballoon *vb);
void vb_reporting_callback(struct virtqueue *vq);
void vb_reporting_start(struct vballoon *vb);
void vb_reporting_close(struct vballoon *vb);
void vb_reporting_stop(struct vballoon *vb);
const char *vb_report_state_name(enum vb_report_state state);

/* hinting.c */
void vb_hint_setup(struct vballoon *vb);
void vb_hint_callback(struct virtqueue *vq);
void vb_hint_start(struct vballoon *vb);
void vb_hint_config_changed(struct vballoon *vb);
void vb_hint_close(struct vballoon *vb);
void vb_hint_stop(struct vballoon *vb);
unsigned long vb_hint_held_pages(struct vballoon *vb);
const char *vb_hint_state_name(enum vb_hint_state state);

/* autodeflate.c */
void vb_autodeflate_setup(struct vballoon *vb);
int vb_autodeflate_start(struct vballoon *vb);
void vb_autodeflate_stop(struct vballoon *vb);
unsigned long vb_hold_remaining(struct vballoon *vb);
const char *vb_autodeflate_name(enum vb_autodeflate mode);

/* debugfs.c */
void vb_debugfs_add(struct vballoon *vb);
void vb_debugfs_remove(struct vballoon *vb);
void vb_debugfs_init(void);
void vb_debugfs_exit(void);

#endif /* _VBALLOON_CORE_H */
