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
#include <linux/mutex.h>
#include <linux/notifier.h>
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

/* Limits of the batch_pages parameter, in guest pages. */
#define VB_BATCH_MIN		1U
#define VB_BATCH_MAX		32768U
#define VB_BATCH_DEFAULT	4096U

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
	VB_CNT_NR
};

/*
 * Lock ordering: @lock -> @b_dev_info.pages_lock.
 *
 * @lock (a mutex) is the outer lock of the balloon: the balloon
 * compaction helpers and vb_migratepage() take the page list's spinlock
 * @b_dev_info.pages_lock inside it, never the other way round.
 *
 * The other locks nest with nothing of the driver's:
 * - @stats_lock is never held together with @lock;
 * - @stop_lock is a leaf (taken from virtqueue callbacks too), never
 *   held while taking another lock of the driver; work is queued under
 *   it, and the work functions take @lock or @stats_lock themselves.
 *
 * Outside callers reach @lock as follows:
 * - the OOM notifier chain calls vb_oom_notify(), which sleeps on @lock,
 *   with the kernel's oom_lock held: nothing under @lock may allocate
 *   memory in a way that can invoke the OOM killer;
 * - reclaim (the pressure shrinker) and page migration (with the balloon
 *   page locked) only mutex_trylock() @lock and back off when it is
 *   busy, because inflation under @lock allocates and so may be the
 *   reason they run.
 *
 * The autodeflate state (@hold_until, @hold_active) is under @lock; the
 * counters are atomics and need no lock.
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
	unsigned int batch_pages;	/* pages per inflate/deflate request */
	unsigned int oom_pages;		/* pages released per OOM call */
	bool huge_blocks;		/* try 2 MiB blocks first */
	enum vb_autodeflate autodeflate; /* never VB_AD_AUTO here */
	unsigned long hold_jiffies;	/* inflation pause after a release */
	unsigned long pressure_floor;	/* pages of MemAvailable to keep */

	/*
	 * @stopping is protected by @stop_lock (a leaf, taken with
	 * interrupts off); while it is set nothing queues the update or
	 * stats work.
	 */
	spinlock_t stop_lock;
	bool stopping;			/* protected by @stop_lock */

	/*
	 * Woken by the inflate and deflate virtqueue callbacks; has its
	 * own lock.
	 */
	wait_queue_head_t ack_wq;

	/*
	 * Moves the balloon toward the host's target, one batch a run;
	 * queued under @stop_lock, runs under @lock.
	 */
	struct delayed_work update_work;

	/*
	 * @lock serialises everything that changes the balloon: the
	 * inflate and deflate virtqueues, @pfns, @num_pages, @backoff_ms,
	 * the hold-off window.  Taken by the update work, the OOM notifier
	 * and device teardown; the shrinker and the migration callback
	 * only try it.  @inflate_vq and @deflate_vq are set by vb_start() and
	 * cleared by vb_stop() while no work, notifier or shrinker can run;
	 * in between they are used under @lock only.  @num_pages is written
	 * under @lock with WRITE_ONCE(), so that debugfs and the shrinker's
	 * count can read it with READ_ONCE() without taking @lock.
	 */
	struct mutex lock;
	struct virtqueue *inflate_vq;	/* protected by @lock */
	struct virtqueue *deflate_vq;	/* protected by @lock */
	__virtio32 *pfns;		/* protected by @lock */
	unsigned long num_pages;	/* protected by @lock; see above */
	unsigned int backoff_ms;	/* protected by @lock */
	unsigned long hold_until;	/* protected by @lock; jiffies */
	bool hold_active;		/* protected by @lock */

	/*
	 * The page list of the balloon, protected by its own
	 * @b_dev_info.pages_lock (taken inside @lock, see above).
	 */
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
};

static inline void vb_count(struct vballoon *vb, enum vb_counter c, s64 n)
{
	atomic64_add(n, &vb->counters[c]);
}

/* Module parameters (main.c), copied into each device at probe. */
extern unsigned int vb_param_batch_pages;
extern unsigned int vb_param_oom_pages;
extern bool vb_param_huge_blocks;

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
			     const u64 vals[VBALLOON_S_NR]);
extern const char * const vb_counter_keys[VB_CNT_NR];
#endif

/* balloon.c */
void vb_balloon_init(struct vballoon *vb);
void vb_update_work_fn(struct work_struct *work);
void vb_queue_update(struct vballoon *vb, unsigned long delay);
unsigned long vb_deflate(struct vballoon *vb, unsigned long want);
void vb_deflate_all(struct vballoon *vb);
void vb_report_actual(struct vballoon *vb);
unsigned long vb_read_target(struct vballoon *vb);
void vb_ack_callback(struct virtqueue *vq);

/* stats.c */
int vb_stats_init(struct vballoon *vb);
void vb_stats_free(struct vballoon *vb);
void vb_stats_prime(struct vballoon *vb);
void vb_stats_callback(struct virtqueue *vq);
void vb_stats_work_fn(struct work_struct *work);

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
