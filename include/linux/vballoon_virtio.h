/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Wire format of the traditional virtio memory balloon device
 * (virtio specification 1.2, section 5.5), as vballoon speaks it.
 *
 * vballoon carries its own copy so that the same source builds against
 * kernels whose <uapi/linux/virtio_balloon.h> predates the newer
 * statistics tags.  Every name is prefixed VBALLOON_ so that this header
 * can sit next to the kernel's own in one translation unit.
 */
#ifndef _LINUX_VBALLOON_VIRTIO_H
#define _LINUX_VBALLOON_VIRTIO_H

#include <linux/types.h>
#include <linux/virtio_types.h>

/* Feature bits (5.5.3). */
#define VBALLOON_F_MUST_TELL_HOST	0
#define VBALLOON_F_STATS_VQ		1
#define VBALLOON_F_DEFLATE_ON_OOM	2
#define VBALLOON_F_FREE_PAGE_HINT	3
#define VBALLOON_F_PAGE_POISON		4
#define VBALLOON_F_REPORTING		5

/* PFNs on the inflate and deflate queues always name 4 KiB frames. */
#define VBALLOON_PFN_SHIFT		12

/*
 * Virtqueues in the order of 5.5.2.  A queue exists only with its
 * feature (statsq: STATS_VQ, free_page_vq: FREE_PAGE_HINT, reporting_vq:
 * REPORTING) and the queues after a missing one move down an index, as
 * Linux's transports and QEMU number them: with QEMU's stats queue and
 * no hinting, the reporting queue is queue 3.
 */
#define VBALLOON_VQ_INFLATE		0
#define VBALLOON_VQ_DEFLATE		1
#define VBALLOON_VQ_STATS		2
#define VBALLOON_VQ_FREE_PAGE		3
#define VBALLOON_VQ_REPORTING		4

/*
 * Device configuration layout (5.5.4).  num_pages and actual are
 * little-endian on every transport, legacy included.
 */
struct vballoon_config {
	__le32 num_pages;		/* target balloon size, 4 KiB units */
	__le32 actual;			/* current balloon size, 4 KiB units */
	__le32 free_page_hint_cmd_id;	/* FREE_PAGE_HINT only */
	__le32 poison_val;		/* PAGE_POISON only: freed pages' content */
};

/*
 * Special values of free_page_hint_cmd_id (5.5.6.4); any other value
 * starts a round of hints with that id.
 */
#define VBALLOON_CMD_ID_STOP		0	/* no hints wanted now */
#define VBALLOON_CMD_ID_DONE		1	/* hints over: reuse the pages */

/* Statistics tags (5.5.6.3); 10..15 were added by Linux 6.12. */
enum vballoon_stat_tag {
	VBALLOON_S_SWAP_IN		= 0,	/* bytes swapped in */
	VBALLOON_S_SWAP_OUT		= 1,	/* bytes swapped out */
	VBALLOON_S_MAJFLT		= 2,	/* major faults, count */
	VBALLOON_S_MINFLT		= 3,	/* minor faults, count */
	VBALLOON_S_MEMFREE		= 4,	/* free memory, bytes */
	VBALLOON_S_MEMTOT		= 5,	/* total memory, bytes */
	VBALLOON_S_AVAIL		= 6,	/* available memory, bytes */
	VBALLOON_S_CACHES		= 7,	/* page cache, bytes */
	VBALLOON_S_HTLB_PGALLOC		= 8,	/* hugetlb allocations, count */
	VBALLOON_S_HTLB_PGFAIL		= 9,	/* hugetlb failures, count */
	VBALLOON_S_OOM_KILL		= 10,	/* OOM kills, count */
	VBALLOON_S_ALLOC_STALL		= 11,	/* allocation stalls, count */
	VBALLOON_S_ASYNC_SCAN		= 12,	/* scanned by kswapd, bytes */
	VBALLOON_S_DIRECT_SCAN		= 13,	/* scanned directly, bytes */
	VBALLOON_S_ASYNC_RECLAIM	= 14,	/* reclaimed by kswapd, bytes */
	VBALLOON_S_DIRECT_RECLAIM	= 15,	/* reclaimed directly, bytes */
	VBALLOON_S_NR			= 16,
};

/* One entry of the statistics buffer; endianness follows the device. */
struct vballoon_stat {
	__virtio16 tag;
	__virtio64 val;
} __packed;

#endif /* _LINUX_VBALLOON_VIRTIO_H */
