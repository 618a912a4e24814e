// SPDX-License-Identifier: GPL-2.0-only
/*
 * vballoon: memory statistics for the host (VIRTIO_BALLOON_F_STATS_VQ).
 *
 * One buffer lives on the statistics queue.  The host asks for fresh
 * figures by handing it back; the driver refills it and queues it again.
 * Tags 0-9 are sent, in tag order, and 10-15 too with extended_stats=1:
 * the specification tells hosts to ignore tags they do not know, but
 * Firecracker before v1.15 rejects the whole buffer (and asks no more).
 */

#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/swap.h>
#include <linux/vmstat.h>

#include "core.h"

static inline u64 vb_pages_to_bytes(unsigned long pages)
{
	return (u64)pages << PAGE_SHIFT;
}

/*
 * Turn a snapshot of the guest's counters into the values of every tag,
 * in the units of the virtio specification and Linux 6.12: bytes for
 * amounts of memory (swap, scans and reclaims included), plain counts for
 * faults and events.
 */
VISIBLE_IF_KUNIT void vb_stats_collect(u64 vals[VBALLOON_S_NR],
				       const unsigned long *events,
				       const struct sysinfo *si,
				       unsigned long avail_pages,
				       unsigned long cache_pages)
{
	u64 stalls = 0;
	int zid;

	vals[VBALLOON_S_SWAP_IN] = vb_pages_to_bytes(events[PSWPIN]);
	vals[VBALLOON_S_SWAP_OUT] = vb_pages_to_bytes(events[PSWPOUT]);
	vals[VBALLOON_S_MAJFLT] = events[PGMAJFAULT];
	vals[VBALLOON_S_MINFLT] = events[PGFAULT];
	vals[VBALLOON_S_MEMFREE] = (u64)si->freeram * si->mem_unit;
	vals[VBALLOON_S_MEMTOT] = (u64)si->totalram * si->mem_unit;
	vals[VBALLOON_S_AVAIL] = vb_pages_to_bytes(avail_pages);
	vals[VBALLOON_S_CACHES] = vb_pages_to_bytes(cache_pages);
#ifdef CONFIG_HUGETLB_PAGE
	vals[VBALLOON_S_HTLB_PGALLOC] = events[HTLB_BUDDY_PGALLOC];
	vals[VBALLOON_S_HTLB_PGFAIL] = events[HTLB_BUDDY_PGALLOC_FAIL];
#else
	vals[VBALLOON_S_HTLB_PGALLOC] = 0;
	vals[VBALLOON_S_HTLB_PGFAIL] = 0;
#endif
	vals[VBALLOON_S_OOM_KILL] = events[OOM_KILL];
	/* ALLOCSTALL_* has one entry per zone, in zone order. */
	for (zid = 0; zid < MAX_NR_ZONES; zid++)
		stalls += events[ALLOCSTALL_NORMAL - ZONE_NORMAL + zid];
	vals[VBALLOON_S_ALLOC_STALL] = stalls;
	vals[VBALLOON_S_ASYNC_SCAN] = vb_pages_to_bytes(events[PGSCAN_KSWAPD]);
	vals[VBALLOON_S_DIRECT_SCAN] = vb_pages_to_bytes(events[PGSCAN_DIRECT]);
	vals[VBALLOON_S_ASYNC_RECLAIM] =
		vb_pages_to_bytes(events[PGSTEAL_KSWAPD]);
	vals[VBALLOON_S_DIRECT_RECLAIM] =
		vb_pages_to_bytes(events[PGSTEAL_DIRECT]);
}
EXPORT_SYMBOL_IF_KUNIT(vb_stats_collect);

/*
 * Fill @out with tags 0 to @nr - 1 (at most all of them) in the device's
 * byte order; returns the number of entries.
 */
VISIBLE_IF_KUNIT unsigned int vb_stats_encode(struct virtio_device *vdev,
					      struct vballoon_stat *out,
					      const u64 vals[VBALLOON_S_NR],
					      unsigned int nr)
{
	unsigned int tag;

	nr = min_t(unsigned int, nr, VBALLOON_S_NR);
	for (tag = 0; tag < nr; tag++) {
		out[tag].tag = cpu_to_virtio16(vdev, tag);
		out[tag].val = cpu_to_virtio64(vdev, vals[tag]);
	}
	return nr;
}
EXPORT_SYMBOL_IF_KUNIT(vb_stats_encode);

static unsigned int vb_stats_refresh(struct vballoon *vb)
{
	u64 vals[VBALLOON_S_NR];
	struct sysinfo si;

	lockdep_assert_held(&vb->stats_lock);
	all_vm_events(vb->events);
	si_meminfo(&si);
	vb_stats_collect(vals, vb->events, &si, si_mem_available(),
			 global_node_page_state(NR_FILE_PAGES));
	return vb_stats_encode(vb->vdev, vb->stats, vals, vb->stats_tags);
}

static void vb_stats_queue(struct vballoon *vb)
{
	struct scatterlist sg;
	unsigned int nr;
	int err;

	lockdep_assert_held(&vb->stats_lock);
	nr = vb_stats_refresh(vb);
	sg_init_one(&sg, vb->stats, sizeof(*vb->stats) * nr);
	err = virtqueue_add_outbuf(vb->stats_vq, &sg, 1, vb, GFP_KERNEL);
	if (err)
		dev_warn_ratelimited(&vb->vdev->dev,
				     "cannot queue statistics: %d\n", err);
}

/*
 * Put the first buffer on the queue before the device goes live; the
 * host can only ask once it holds one.  The kick follows DRIVER_OK.
 */
void vb_stats_prime(struct vballoon *vb)
{
	if (!vb->has_stats)
		return;
	mutex_lock(&vb->stats_lock);
	vb_stats_queue(vb);
	mutex_unlock(&vb->stats_lock);
}

void vb_stats_callback(struct virtqueue *vq)
{
	struct vballoon *vb = vq->vdev->priv;
	unsigned long flags;

	spin_lock_irqsave(&vb->stop_lock, flags);
	if (!vb->stopping)
		queue_work(system_freezable_wq, &vb->stats_work);
	spin_unlock_irqrestore(&vb->stop_lock, flags);
}

void vb_stats_work_fn(struct work_struct *work)
{
	struct vballoon *vb = container_of(work, struct vballoon, stats_work);
	unsigned int len;

	mutex_lock(&vb->stats_lock);
	/*
	 * Only answer when the host really returned our buffer: a spurious
	 * interrupt must not put a second copy on the queue.
	 */
	if (virtqueue_get_buf(vb->stats_vq, &len)) {
		vb_stats_queue(vb);
		vb_count(vb, VB_CNT_STATS_REQUESTS, 1);
	}
	/* Kick even when nothing was returned, for the primed buffer. */
	virtqueue_kick(vb->stats_vq);
	mutex_unlock(&vb->stats_lock);
}

int vb_stats_init(struct vballoon *vb)
{
	mutex_init(&vb->stats_lock);
	INIT_WORK(&vb->stats_work, vb_stats_work_fn);
	if (!vb->has_stats)
		return 0;

	vb->stats = kcalloc(VBALLOON_S_NR, sizeof(*vb->stats), GFP_KERNEL);
	if (!vb->stats)
		return -ENOMEM;
	vb->events = kcalloc(NR_VM_EVENT_ITEMS, sizeof(*vb->events),
			     GFP_KERNEL);
	if (!vb->events)
		goto err_free_stats;
	return 0;

err_free_stats:
	kfree(vb->stats);
	vb->stats = NULL;
	return -ENOMEM;
}

void vb_stats_free(struct vballoon *vb)
{
	kfree(vb->events);
	vb->events = NULL;
	kfree(vb->stats);
	vb->stats = NULL;
}
