// SPDX-License-Identifier: GPL-2.0-only
/*
 * vballoon: allocating the pages of an inflation.
 *
 * A batch is allocated largest free blocks first (2 MiB, then smaller
 * blocks, each split into order-0 pages), single pages last.  Allocating
 * and zeroing (init_on_alloc=1) is most of an inflation's guest time, and
 * one CPU does it while the others may sit idle: a large batch is
 * therefore shared with helper work items on other CPUs, each taking
 * whole 2 MiB shares from its own CPU's free lists.
 *
 * Bounded so that a small or busy guest is not disturbed:
 *  - at most alloc_cpus CPUs in all (the update work's included), and no
 *    more than the load average leaves idle (less what the driver's own
 *    allocating CPUs put in it during an inflation);
 *  - only when the last round had no shortfall and free memory covers
 *    the batch twice over above the pressure floor: a guest short of
 *    memory inflates on one CPU, with the back-off as before;
 *  - helpers never reclaim (blocks and single pages without
 *    __GFP_RECLAIM), so they never enter the shrinkers or the OOM path;
 *    only the update work's own share may reclaim lightly;
 *  - helpers go to housekeeping CPUs (not isolated ones), starting
 *    after the CPU the last batch started at;
 *  - the update work waits VB_ALLOC_WAIT_MS in all for helpers to finish;
 *    one that has not started by then is cancelled, one that has is
 *    waited for (it never sleeps in reclaim).  What helpers could not
 *    allocate without reclaim the update work makes up on its own.
 */

#include <linux/gfp.h>
#include <linux/jiffies.h>
#include <linux/mm.h>
#include <linux/cpu.h>
#include <linux/sched/isolation.h>
#include <linux/sched/loadavg.h>
#include <linux/smp.h>
#include <linux/vmstat.h>

#include "core.h"

/* How long a helper may take to start before its share is cancelled. */
#define VB_ALLOC_WAIT_MS	1000U

/*
 * The load average remembers the driver's own allocating CPUs for about
 * a minute: that long after a batch they are not counted as others' load.
 */
#define VB_ALLOC_LOAD_MEMORY	(60 * HZ)

/*
 * CPUs that allocate one batch together when the alloc_cpus parameter is
 * 0 (auto): half of the online CPUs, but two on a guest of two or three,
 * at most VB_ALLOC_CPUS_MAX.
 */
VISIBLE_IF_KUNIT unsigned int vb_alloc_cpus_auto(unsigned int online)
{
	if (online < 2)
		return 1;
	return clamp(online / 2, 2U, VB_ALLOC_CPUS_MAX);
}
EXPORT_SYMBOL_IF_KUNIT(vb_alloc_cpus_auto);

/*
 * Helpers for one batch: @cpus allocate at most (the update work among
 * them), no more than the @online CPUs the load average @load (fixed
 * point, FSHIFT bits, as avenrun[]) leaves idle, and no helper for a
 * share smaller than a 2 MiB block: @want / (helpers + 1) >= VB_BLOCK_PAGES.
 */
VISIBLE_IF_KUNIT unsigned int vb_alloc_helpers(unsigned int cpus,
					       unsigned int online,
					       unsigned long load,
					       unsigned long want)
{
	unsigned long busy = DIV_ROUND_UP(load, FIXED_1);
	unsigned int n;

	if (cpus < 2 || online < 2)
		return 0;
	/* The update work's own CPU counts as busy. */
	busy = max(busy, 1UL);
	if (busy >= online)
		return 0;
	if (want < 2 * VB_BLOCK_PAGES)
		return 0;
	n = min_t(unsigned long, cpus - 1, online - busy);
	return min_t(unsigned long, n, want / VB_BLOCK_PAGES - 1);
}
EXPORT_SYMBOL_IF_KUNIT(vb_alloc_helpers);

/*
 * Pages each of @helpers helpers allocates of @want: an equal share in
 * whole 2 MiB blocks; the update work takes the rest.
 */
VISIBLE_IF_KUNIT unsigned long vb_alloc_share(unsigned long want,
					      unsigned int helpers)
{
	if (!helpers)
		return 0;
	return rounddown(want / (helpers + 1), VB_BLOCK_PAGES);
}
EXPORT_SYMBOL_IF_KUNIT(vb_alloc_share);

/* What helpers and the block steps allocate with: no reclaim at all. */
static gfp_t vb_noreclaim_gfp(void)
{
	return (balloon_mapping_gfp_mask() & ~__GFP_RECLAIM) |
	       __GFP_NOWARN | __GFP_NORETRY | __GFP_NOMEMALLOC;
}

/*
 * One free block of 2^@order pages, split into order-0 pages on @list.
 * No reclaim or compaction for it: when none is free, a smaller order is
 * next.  Returns the pages added, 0 if none.
 */
static unsigned long vb_alloc_chunk(struct list_head *list, unsigned int order)
{
	unsigned long i, nr = 1UL << order;
	struct page *page;

	page = alloc_pages(vb_noreclaim_gfp(), order);
	if (!page)
		return 0;
	split_page(page, order);
	/* Tail first: the balloon list is LIFO, so deflation walks up. */
	for (i = 0; i < nr; i++)
		list_add(&page[i].lru, list);
	return nr;
}

/*
 * Allocate up to @want pages onto @list, largest free blocks first: a
 * 2 MiB block lets the host drop a whole huge page, and a smaller block
 * still spoils fewer of them than the same memory in scattered pages.
 * An order that failed is not tried again in this round.  Single pages
 * come last, with light reclaim if @reclaim.  Never triggers the OOM
 * killer or allocation-failure warnings.
 */
static unsigned long vb_alloc_serial(struct vballoon *vb,
				     struct list_head *list,
				     unsigned long want, bool reclaim)
{
	unsigned int order = vb->huge_blocks ? VB_BLOCK_ORDER : 0;
	unsigned long got = 0, n;
	struct page *page;

	while (got < want) {
		while (order && (1UL << order) > want - got)
			order--;
		if (order) {
			n = vb_alloc_chunk(list, order);
			if (!n) {
				order--;
				continue;
			}
			got += n;
			if (order == VB_BLOCK_ORDER)
				vb_count(vb, VB_CNT_INFLATED_BLOCKS, 1);
			continue;
		}
		page = reclaim ? balloon_page_alloc() :
				 alloc_page(vb_noreclaim_gfp());
		if (!page)
			break;
		list_add(&page->lru, list);
		got++;
	}
	return got;
}

static void vb_alloc_job_fn(struct work_struct *work)
{
	struct vb_alloc_job *job = container_of(work, struct vb_alloc_job,
						work);

	job->got = vb_alloc_serial(job->vb, &job->pages, job->want, false);
	complete(&job->done);
}

/*
 * Room to share: no shortfall in the last round, and free memory covers
 * the batch twice over above the pressure floor.
 */
static bool vb_alloc_roomy(struct vballoon *vb, unsigned long want)
{
	unsigned long free = global_zone_page_state(NR_FREE_PAGES);

	return !vb->backoff_ms && free > vb->pressure_floor + 2 * want;
}

/*
 * Allocate up to @want pages for one inflation batch onto @list, on up
 * to alloc_cpus CPUs (see the top of this file).  Called by the update
 * work only, without locks.  Returns the pages allocated.
 */
unsigned long vb_alloc_batch(struct vballoon *vb, struct list_head *list,
			     unsigned long want)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(VB_ALLOC_WAIT_MS);
	unsigned long load = READ_ONCE(avenrun[0]);
	struct vb_alloc *al = &vb->alloc;
	unsigned int helpers = 0, i, cpu, self;
	unsigned long share, got, hgot = 0;
	struct vb_alloc_job *job;
	long left;

	/* Our own CPUs of the last batches are in the load average too. */
	if (al->last_cpus &&
	    time_before(jiffies, al->last_end + VB_ALLOC_LOAD_MEMORY))
		load -= min_t(unsigned long, load,
			      (unsigned long)al->last_cpus * FIXED_1);
	if (al->wq && vb_alloc_roomy(vb, want))
		helpers = vb_alloc_helpers(al->cpus, num_online_cpus(), load,
					   want);
	share = vb_alloc_share(want, helpers);
	if (!share)
		helpers = 0;

	i = 0;
	if (helpers) {
		self = raw_smp_processor_id();
		cpus_read_lock();
		for_each_cpu_wrap(cpu, cpu_online_mask, al->next_cpu) {
			if (i == helpers)
				break;
			if (cpu == self || !housekeeping_cpu(cpu, HK_TYPE_WQ))
				continue;
			job = &al->jobs[i++];
			job->want = share;
			job->got = 0;
			INIT_LIST_HEAD(&job->pages);
			reinit_completion(&job->done);
			queue_work_on(cpu, al->wq, &job->work);
			/* The next batch starts after this one's helpers. */
			al->next_cpu = cpu + 1 < nr_cpu_ids ? cpu + 1 : 0;
		}
		cpus_read_unlock();
	}
	helpers = i;

	got = vb_alloc_serial(vb, list, want - share * helpers, true);

	for (i = 0; i < helpers; i++) {
		job = &al->jobs[i];
		left = max_t(long, (long)(deadline - jiffies), 1);
		if (!wait_for_completion_timeout(&job->done, left)) {
			/* A helper that never started gives nothing. */
			if (cancel_work_sync(&job->work))
				continue;
			/* It ran: the cancel waited for it to finish. */
			wait_for_completion(&job->done);
		}
		list_splice_tail_init(&job->pages, list);
		hgot += job->got;
	}
	if (helpers) {
		vb_count(vb, VB_CNT_ALLOC_PARALLEL_ROUNDS, 1);
		vb_count(vb, VB_CNT_ALLOC_HELPER_PAGES, hgot);
		/* Helpers do not reclaim: what they missed, try here. */
		if (got + hgot < want)
			got += vb_alloc_serial(vb, list, want - got - hgot,
					       true);
	}
	al->last_cpus = helpers + 1;
	al->last_end = jiffies;
	return got + hgot;
}

void vb_alloc_init(struct vballoon *vb)
{
	struct vb_alloc *al = &vb->alloc;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(al->jobs); i++) {
		al->jobs[i].vb = vb;
		INIT_WORK(&al->jobs[i].work, vb_alloc_job_fn);
		init_completion(&al->jobs[i].done);
	}
	al->wq = NULL;
	al->next_cpu = 0;
	/* The parameter's 0: auto (vb_read_params() checked the range). */
	if (!al->cpus)
		al->cpus = vb_alloc_cpus_auto(num_online_cpus());
	if (al->cpus < 2)
		return;
	/*
	 * Per-CPU, so that a share is allocated on the CPU it was given to.
	 * Not freezable: the update work (freezable) waits for its helpers,
	 * and a helper held back by the freezer would stall the freeze.
	 */
	al->wq = alloc_workqueue("vballoon-alloc-%s", WQ_CPU_INTENSIVE, 0,
				 dev_name(&vb->vdev->dev));
	if (!al->wq) {
		dev_warn(&vb->vdev->dev,
			 "no workqueue for parallel allocation: inflating on one CPU\n");
		al->cpus = 1;
	}
}

void vb_alloc_free(struct vballoon *vb)
{
	if (vb->alloc.wq)
		destroy_workqueue(vb->alloc.wq);
	vb->alloc.wq = NULL;
}
