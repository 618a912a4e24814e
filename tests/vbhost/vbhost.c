// SPDX-License-Identifier: GPL-2.0-only
/*
 * vbhost: a programmable virtio balloon device that runs inside the guest.
 *
 * Test-only.  The module registers virtio devices with device id
 * VIRTIO_ID_BALLOON on a tiny transport of its own (a root device as the
 * parent), so that vballoon and the kernel's virtio_balloon bind them like
 * any balloon device.  The "host" side is a work item per virtqueue that
 * walks the split ring directly, checks everything the driver put there
 * and answers (or, on request, misbehaves).
 *
 * The model only does split rings without event index: it never offers
 * VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED
 * or VIRTIO_F_ACCESS_PLATFORM, so every address in the ring is a
 * guest-physical address in the direct map.
 *
 * Profiles (profile=): qemu (default), firecracker, crosvm, legacy;
 * reporting=1 adds free page reporting (a reporting queue whose reports
 * are checked, counted and returned), hinting=1 free page hinting (a
 * free-page queue and a command id set through debugfs; hints are
 * checked, counted and returned), page_poison=1 PAGE_POISON.  Faults
 * and targets through debugfs: /sys/kernel/debug/vbhost/<n>/ (see
 * tests/vbhost/README.md).
 */

#include <linux/bitmap.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/device.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/nodemask.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <linux/virtio.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/workqueue.h>

#define VBH_VQ_INFLATE	0
#define VBH_VQ_DEFLATE	1
#define VBH_VQ_STATS	2
#define VBH_VQ_HINT	3
#define VBH_VQ_REPORT	4
#define VBH_NR_VQS	5	/* roles; the ring index is the transport's */

/* Longest buffer the model reads (1M frames); longer is a violation. */
#define VBH_MAX_BUF	(4U << 20)
/* Longest free page report (32 blocks of 4 MiB are 128 MiB). */
#define VBH_MAX_REPORT	BIT(30)
/* Stats tags the hosts know (virtio 1.2: 0-9). */
#define VBH_NR_TAGS	10
#define VBH_STAT_SIZE	10	/* __le16 tag + __le64 val, packed */
#define VBH_MSG_LEN	160
#define VBH_MAX_QSIZE	256
/* Command ids the device remembers having shown (older ones: never). */
#define VBH_HINT_IDS	8

enum vbh_profile {
	VBH_QEMU,
	VBH_FIRECRACKER,
	VBH_CROSVM,
	VBH_LEGACY,
};

static const char * const vbh_profile_names[] = {
	[VBH_QEMU] = "qemu",
	[VBH_FIRECRACKER] = "firecracker",
	[VBH_CROSVM] = "crosvm",
	[VBH_LEGACY] = "legacy",
};

enum vbh_fault {
	VBH_F_NONE,
	VBH_F_SILENT,
	VBH_F_DELAY,
	VBH_F_FLAP,
	VBH_F_STORM,
	VBH_F_BREAK_INFLATE,
	VBH_F_BREAK_DEFLATE,
	VBH_F_BADID,
	VBH_F_BADLEN,
	VBH_F_STATS_FLOOD,
	VBH_F_REMOVE_INFLATE,
	VBH_F_REPORT_SILENT,
	VBH_F_REMOVE_REPORT,
	VBH_F_HINT_SILENT,
	VBH_F_REMOVE_HINT,
};

static const char * const vbh_fault_names[] = {
	[VBH_F_NONE] = "none",
	[VBH_F_SILENT] = "silent",
	[VBH_F_DELAY] = "delay",
	[VBH_F_FLAP] = "flap",
	[VBH_F_STORM] = "storm",
	[VBH_F_BREAK_INFLATE] = "break-inflate",
	[VBH_F_BREAK_DEFLATE] = "break-deflate",
	[VBH_F_BADID] = "badid",
	[VBH_F_BADLEN] = "badlen",
	[VBH_F_STATS_FLOOD] = "stats-flood",
	[VBH_F_REMOVE_INFLATE] = "remove-inflate",
	[VBH_F_REPORT_SILENT] = "report-silent",
	[VBH_F_REMOVE_REPORT] = "remove-report",
	[VBH_F_HINT_SILENT] = "hint-silent",
	[VBH_F_REMOVE_HINT] = "remove-hint",
};

static char *profile = "qemu";
module_param(profile, charp, 0444);
MODULE_PARM_DESC(profile, "qemu (default), firecracker, crosvm or legacy");

static bool deflate_on_oom = true;
module_param(deflate_on_oom, bool, 0444);
MODULE_PARM_DESC(deflate_on_oom, "offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM (default 1)");

static bool reporting;
module_param(reporting, bool, 0444);
MODULE_PARM_DESC(reporting, "offer VIRTIO_BALLOON_F_REPORTING (default 0)");

static bool hinting;
module_param(hinting, bool, 0444);
MODULE_PARM_DESC(hinting, "offer VIRTIO_BALLOON_F_FREE_PAGE_HINT (default 0)");

static unsigned int hint_queue_size;
module_param(hint_queue_size, uint, 0444);
MODULE_PARM_DESC(hint_queue_size, "entries of the free-page queue: a power of two 2-256 (default 0: the profile's)");

static bool page_poison;
module_param(page_poison, bool, 0444);
MODULE_PARM_DESC(page_poison, "offer VIRTIO_BALLOON_F_PAGE_POISON (default 0)");

static unsigned int instances = 1;
module_param(instances, uint, 0444);
MODULE_PARM_DESC(instances, "balloon devices registered at load (1-8, default 1)");

struct vbh;

struct vbh_queue {
	struct vbh *vbh;
	unsigned int index;
	/* serializes everything that touches this ring */
	struct mutex lock;
	struct virtqueue *vq;		/* NULL when the queue is not set up */
	bool active;			/* cleared by reset / del_vqs */
	bool dead;			/* a ring the model gave up on */
	u16 last_avail;			/* next avail entry to take */
	u16 used_idx;			/* our copy of used->idx */
	unsigned long seen_at;		/* delay fault: when the next was seen */
	struct delayed_work work;
	/* stats queue only: the buffer the device holds */
	bool stats_held;
	u16 stats_head;
	/* the chain being processed: one entry per descriptor */
	unsigned int nr;
	struct {
		void *buf;		/* NULL if device-writable */
		u64 addr;
		u32 len;
		bool write;		/* device-writable */
	} chain[VBH_MAX_QSIZE];
};

/* A hinted block whose buffer the device took and has not returned. */
struct vbh_hint_block {
	u64 addr;
	u32 len;
	bool reported;			/* its violation was counted */
};

struct vbh {
	struct virtio_device vdev;
	struct vbh_slot *slot;
	enum vbh_profile profile;
	u64 features_offered;
	u64 features_accepted;
	u8 status;
	u32 generation;
	struct virtio_balloon_config config;	/* le32 fields */
	u32 target;

	/* protects the fields below, the config space and the counters */
	spinlock_t lock;
	enum vbh_fault fault;
	unsigned int fault_ms;
	unsigned int stats_period_ms;
	bool broken;
	bool stats_dead;

	struct vbh_queue q[VBH_NR_VQS];	/* by role (VBH_VQ_*) */
	u8 role[VBH_NR_VQS];		/* ring index -> role */
	unsigned int frame_limit;	/* frames per descriptor, 0: none */
	unsigned int queue_size;
	bool whole_chain;

	unsigned long end_pfn;
	unsigned long *held;		/* bitmap of frames held, end_pfn bits */

	u64 held_frames, held_at_reset;
	u64 inflate_reqs, deflate_reqs, inflate_frames, deflate_frames;
	u64 max_frames_per_desc, lost_descs, violations, stats_rejected;
	u64 stats_requests, stats_received, stats_ignored_tags, resets;
	u64 config_changes;
	u64 reports, report_ranges, report_pages, report_bytes;
	/* free page hinting: counters, under lock */
	u64 hint_cmd_changes, hint_ids, hint_ids_old, hint_stops;
	u64 hint_bufs, hint_blocks, hint_bytes, hint_stale_blocks;
	u64 hint_held_at_reset;
	/* ids shown in the config space (>= 2), the last VBH_HINT_IDS */
	u32 hint_shown[VBH_HINT_IDS];
	unsigned int hint_nshown;
	/* after hint_budget blocks of the current id, show hint_next */
	u32 hint_budget, hint_next;
	/*
	 * Under q[VBH_VQ_HINT].lock: the id of the driver's last command
	 * id buffer (0: none since the reset, or STOP), blocks answered
	 * since, and the buffers taken and not returned (hint-silent) with
	 * their blocks.
	 */
	u32 hint_round_id;
	u64 hint_round_blocks;
	unsigned int hint_nheads, hint_nheld;
	u16 hint_heads[VBH_MAX_QSIZE];
	struct vbh_hint_block hint_held[VBH_MAX_QSIZE];
	char first_violation[VBH_MSG_LEN];
	u64 stat_val[VBH_NR_TAGS];
	u16 stat_seen;			/* bit per tag received */

	struct work_struct fault_work;	/* flap and storm */
	struct delayed_work stats_work;	/* stats_period_ms */
};

struct vbh_slot {
	unsigned int n;
	struct dentry *dir;
	struct workqueue_struct *wq;
	/* protects dev and registered */
	struct mutex lock;
	struct vbh *dev;		/* current or last device; holds a ref */
	bool registered;
	struct work_struct remove_work;
};

static struct device *vbh_root;
static struct dentry *vbh_debugfs;
static struct vbh_slot *vbh_slots;
static unsigned int vbh_nr_slots;
static enum vbh_profile vbh_profile_param;

static inline struct vbh *to_vbh(struct virtio_device *vdev)
{
	return container_of(vdev, struct vbh, vdev);
}

static __printf(2, 3) void vbh_violation(struct vbh *vbh, const char *fmt, ...)
{
	char msg[VBH_MSG_LEN];
	unsigned long flags;
	va_list args;

	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	spin_lock_irqsave(&vbh->lock, flags);
	if (!vbh->violations++)
		strscpy(vbh->first_violation, msg, sizeof(vbh->first_violation));
	spin_unlock_irqrestore(&vbh->lock, flags);
	pr_warn_ratelimited("vbhost %s: violation: %s\n",
			    dev_name(&vbh->vdev.dev), msg);
}

static bool vbh_accepted(struct vbh *vbh, unsigned int bit)
{
	return vbh->vdev.features & BIT_ULL(bit);
}

/* ---- config space ------------------------------------------------------ */

static void vbh_get(struct virtio_device *vdev, unsigned int offset,
		    void *buf, unsigned int len)
{
	struct vbh *vbh = to_vbh(vdev);
	unsigned long flags;

	if (offset > sizeof(vbh->config) || len > sizeof(vbh->config) - offset) {
		vbh_violation(vbh, "config read of %u bytes at %u", len, offset);
		memset(buf, 0, len);
		return;
	}
	spin_lock_irqsave(&vbh->lock, flags);
	memcpy(buf, (u8 *)&vbh->config + offset, len);
	spin_unlock_irqrestore(&vbh->lock, flags);
}

static void vbh_set(struct virtio_device *vdev, unsigned int offset,
		    const void *buf, unsigned int len)
{
	struct vbh *vbh = to_vbh(vdev);
	unsigned long flags;

	/* the driver only writes `actual`, and poison_val with PAGE_POISON */
	if (offset == offsetof(struct virtio_balloon_config, poison_val) &&
	    len == sizeof(vbh->config.poison_val) &&
	    vbh_accepted(vbh, VIRTIO_BALLOON_F_PAGE_POISON)) {
		spin_lock_irqsave(&vbh->lock, flags);
		memcpy(&vbh->config.poison_val, buf, len);
		spin_unlock_irqrestore(&vbh->lock, flags);
		return;
	}
	if (offset != offsetof(struct virtio_balloon_config, actual) ||
	    len != sizeof(vbh->config.actual)) {
		vbh_violation(vbh, "config write of %u bytes at %u", len, offset);
		return;
	}
	spin_lock_irqsave(&vbh->lock, flags);
	memcpy(&vbh->config.actual, buf, len);
	spin_unlock_irqrestore(&vbh->lock, flags);
}

static u32 vbh_generation(struct virtio_device *vdev)
{
	return READ_ONCE(to_vbh(vdev)->generation);
}

static u8 vbh_get_status(struct virtio_device *vdev)
{
	return READ_ONCE(to_vbh(vdev)->status);
}

static void vbh_set_status(struct virtio_device *vdev, u8 status)
{
	WRITE_ONCE(to_vbh(vdev)->status, status);
}

static u64 vbh_get_features(struct virtio_device *vdev)
{
	return to_vbh(vdev)->features_offered;
}

static int vbh_finalize_features(struct virtio_device *vdev)
{
	struct vbh *vbh = to_vbh(vdev);

	vring_transport_features(vdev);
	vbh->features_accepted = vdev->features;
	if (vdev->features & ~vbh->features_offered)
		vbh_violation(vbh, "driver accepted features %#llx not offered",
			      vdev->features & ~vbh->features_offered);
	return 0;
}

static const char *vbh_bus_name(struct virtio_device *vdev)
{
	return "vbhost";
}

/* Deliver a config change to the driver as an interrupt would. */
static void vbh_config_irq(struct vbh *vbh)
{
	unsigned long flags;

	spin_lock_irqsave(&vbh->lock, flags);
	vbh->config_changes++;
	spin_unlock_irqrestore(&vbh->lock, flags);
	local_irq_save(flags);
	virtio_config_changed(&vbh->vdev);
	local_irq_restore(flags);
}

static void vbh_set_num_pages(struct vbh *vbh, u32 pages)
{
	unsigned long flags;

	spin_lock_irqsave(&vbh->lock, flags);
	vbh->config.num_pages = cpu_to_le32(pages);
	WRITE_ONCE(vbh->generation, vbh->generation + 1);
	spin_unlock_irqrestore(&vbh->lock, flags);
	vbh_config_irq(vbh);
}

/*
 * Show a free page hint command id: a new round (not STOP or DONE, kept
 * among the ids shown), STOP (0) or DONE (1); a config change.
 */
static void vbh_set_cmd_id(struct vbh *vbh, u32 id)
{
	unsigned long flags;

	spin_lock_irqsave(&vbh->lock, flags);
	vbh->config.free_page_hint_cmd_id = cpu_to_le32(id);
	if (id > VIRTIO_BALLOON_CMD_ID_DONE)
		vbh->hint_shown[vbh->hint_nshown++ % VBH_HINT_IDS] = id;
	vbh->hint_cmd_changes++;
	WRITE_ONCE(vbh->generation, vbh->generation + 1);
	spin_unlock_irqrestore(&vbh->lock, flags);
	vbh_config_irq(vbh);
}

/* ---- the ring ---------------------------------------------------------- */

/* Push one used element and make it visible; caller holds q->lock. */
static void vbh_push_used(struct vbh_queue *q, u16 head)
{
	struct vbh *vbh = q->vbh;
	struct virtio_device *vdev = &vbh->vdev;
	const struct vring *vr = virtqueue_get_vring(q->vq);
	u32 id = head, len = 0;
	unsigned long flags;

	spin_lock_irqsave(&vbh->lock, flags);
	if (vbh->fault == VBH_F_BADID) {
		id = vr->num + 7;
		vbh->fault = VBH_F_NONE;
	} else if (vbh->fault == VBH_F_BADLEN) {
		len = 0xffffffff;
		vbh->fault = VBH_F_NONE;
	}
	spin_unlock_irqrestore(&vbh->lock, flags);

	vr->used->ring[q->used_idx % vr->num].id = cpu_to_virtio32(vdev, id);
	vr->used->ring[q->used_idx % vr->num].len = cpu_to_virtio32(vdev, len);
	q->used_idx++;
	/* the element before the index that publishes it */
	virt_wmb();
	WRITE_ONCE(vr->used->idx, cpu_to_virtio16(vdev, q->used_idx));
	/* used idx visible before the interrupt's callback reads the ring */
	virt_mb();
}

static void vbh_interrupt(struct virtqueue *vq)
{
	unsigned long flags;

	/* the driver's callback expects interrupt context: no interrupts */
	local_irq_save(flags);
	vring_interrupt(0, vq);
	local_irq_restore(flags);
}

/* The range [addr, addr + len) is guest RAM in the direct map. */
static void *vbh_map(struct vbh *vbh, u64 addr, u32 len)
{
	unsigned long pfn, last;

	if (!len || addr + len < addr)
		return NULL;
	last = PHYS_PFN(addr + len - 1);
	if (last >= vbh->end_pfn)
		return NULL;
	for (pfn = PHYS_PFN(addr); pfn <= last; pfn++)
		if (!pfn_valid(pfn))
			return NULL;
	return phys_to_virt(addr);
}

/*
 * Walk the chain at `head`: every index in range, no loop, no indirect
 * descriptor, every descriptor device-readable (device-writable on the
 * reporting queue, whose buffers are free pages the model never maps;
 * either on the free-page queue, readable ones first: a command id is
 * readable, a hinted block writable and never mapped), every readable
 * buffer in guest RAM; the buffers go to q->chain[].  Returns false
 * (after counting a violation) if the chain is bad.  Caller holds
 * q->lock.
 */
static bool vbh_walk(struct vbh_queue *q, u16 head)
{
	struct vbh *vbh = q->vbh;
	struct virtio_device *vdev = &vbh->vdev;
	const struct vring *vr = virtqueue_get_vring(q->vq);
	bool report = q->index == VBH_VQ_REPORT;
	bool hint = q->index == VBH_VQ_HINT;
	u32 limit = report || hint ? VBH_MAX_REPORT : VBH_MAX_BUF;
	unsigned int i = head, n;
	bool seen_write = false;
	u32 bytes = 0;

	q->nr = 0;
	for (n = 0; ; n++) {
		struct vring_desc *d;
		bool write;
		u16 flags;
		u64 addr;
		u32 len;
		void *buf;

		if (i >= vr->num) {
			vbh_violation(vbh, "vq %u: descriptor %u out of range (size %u)",
				      q->index, i, vr->num);
			return false;
		}
		if (n >= vr->num || n >= VBH_MAX_QSIZE) {
			vbh_violation(vbh, "vq %u: descriptor loop at head %u",
				      q->index, head);
			return false;
		}
		d = &vr->desc[i];
		flags = virtio16_to_cpu(vdev, READ_ONCE(d->flags));
		addr = virtio64_to_cpu(vdev, READ_ONCE(d->addr));
		len = virtio32_to_cpu(vdev, READ_ONCE(d->len));
		if (flags & VRING_DESC_F_INDIRECT) {
			vbh_violation(vbh, "vq %u: indirect descriptor %u (not offered)",
				      q->index, i);
			return false;
		}
		write = flags & VRING_DESC_F_WRITE;
		if (!hint && write != report) {
			vbh_violation(vbh, "vq %u: device-%s descriptor %u",
				      q->index, report ? "readable" : "writable",
				      i);
			return false;
		}
		if (hint && !write && seen_write) {
			vbh_violation(vbh, "vq %u: readable descriptor %u after a writable one",
				      q->index, i);
			return false;
		}
		seen_write |= write;
		if (len > limit || bytes + len > limit ||
		    (!write && len > VBH_MAX_BUF)) {
			vbh_violation(vbh, "vq %u: %u bytes in descriptor %u, limit %u",
				      q->index, len, i, write ? limit : VBH_MAX_BUF);
			return false;
		}
		buf = write ? NULL : vbh_map(vbh, addr, len);
		if (!write && !buf) {
			vbh_violation(vbh, "vq %u: desc %u: %u bytes at %#llx not in RAM",
				      q->index, i, len, addr);
			return false;
		}
		q->chain[q->nr].buf = buf;
		q->chain[q->nr].addr = addr;
		q->chain[q->nr].len = len;
		q->chain[q->nr].write = write;
		q->nr++;
		bytes += len;
		if (!(flags & VRING_DESC_F_NEXT))
			return true;
		i = virtio16_to_cpu(vdev, READ_ONCE(d->next));
	}
}

/* Loads from the driver's buffers, which need not be aligned. */
static u32 vbh_load32(struct vbh *vbh, const void *p)
{
	__virtio32 v;

	memcpy(&v, p, sizeof(v));
	return virtio32_to_cpu(&vbh->vdev, v);
}

static u16 vbh_load16(struct vbh *vbh, const void *p)
{
	__virtio16 v;

	memcpy(&v, p, sizeof(v));
	return virtio16_to_cpu(&vbh->vdev, v);
}

static u64 vbh_load64(struct vbh *vbh, const void *p)
{
	__virtio64 v;

	memcpy(&v, p, sizeof(v));
	return virtio64_to_cpu(&vbh->vdev, v);
}

static void vbh_frame(struct vbh *vbh, bool inflate, u32 pfn)
{
	struct page *page;
	unsigned long flags;

	if (pfn >= vbh->end_pfn || !pfn_valid(pfn)) {
		vbh_violation(vbh, "%s of frame %#x outside guest RAM",
			      inflate ? "inflate" : "deflate", pfn);
		return;
	}
	if (inflate) {
		if (test_and_set_bit(pfn, vbh->held)) {
			vbh_violation(vbh, "frame %#x inflated while held", pfn);
			return;
		}
		spin_lock_irqsave(&vbh->lock, flags);
		vbh->held_frames++;
		spin_unlock_irqrestore(&vbh->lock, flags);
		return;
	}
	if (!test_and_clear_bit(pfn, vbh->held)) {
		vbh_violation(vbh, "frame %#x deflated but not held", pfn);
		return;
	}
	spin_lock_irqsave(&vbh->lock, flags);
	vbh->held_frames--;
	spin_unlock_irqrestore(&vbh->lock, flags);
	if (!vbh_accepted(vbh, VIRTIO_BALLOON_F_MUST_TELL_HOST))
		return;
	/* the guest must keep the page until the host acknowledged */
	page = pfn_to_page(pfn);
	if (!page_ref_count(page) || is_free_buddy_page(page))
		vbh_violation(vbh, "MUST_TELL_HOST: frame %#x free before its deflate",
			      pfn);
}

/* Inflate or deflate: the frame numbers of one chain. */
static void vbh_frames(struct vbh_queue *q)
{
	struct vbh *vbh = q->vbh;
	bool inflate = q->index == VBH_VQ_INFLATE;
	unsigned int i, nd = vbh->whole_chain ? q->nr : 1;
	u64 frames = 0, max = 0;
	u8 carry[4];
	unsigned int nc = 0;
	unsigned long flags;

	for (i = 0; i < nd; i++) {
		u8 *p = q->chain[i].buf;
		u32 len = q->chain[i].len, off = 0;

		max = max_t(u64, max, len / 4);
		while (off < len) {
			if (nc || len - off < 4) {
				carry[nc++] = p[off++];
				if (nc == 4) {
					vbh_frame(vbh, inflate,
						  vbh_load32(vbh, carry));
					frames++;
					nc = 0;
				}
				continue;
			}
			vbh_frame(vbh, inflate, vbh_load32(vbh, p + off));
			frames++;
			off += 4;
		}
	}
	if (nc)
		vbh_violation(vbh, "vq %u: %u bytes left after the last frame number",
			      q->index, nc);
	spin_lock_irqsave(&vbh->lock, flags);
	if (inflate) {
		vbh->inflate_reqs++;
		vbh->inflate_frames += frames;
	} else {
		vbh->deflate_reqs++;
		vbh->deflate_frames += frames;
	}
	vbh->max_frames_per_desc = max(vbh->max_frames_per_desc, max);
	spin_unlock_irqrestore(&vbh->lock, flags);
}

/* Stats: records of le16 tag + le64 value.  false: rejected. */
static bool vbh_stats_buf(struct vbh_queue *q)
{
	struct vbh *vbh = q->vbh;
	unsigned int i, nd = vbh->whole_chain ? q->nr : 1;
	u64 val[VBH_NR_TAGS];
	u16 seen = 0, ignored = 0;
	bool bad_tag = false;
	unsigned long flags;

	for (i = 0; i < nd; i++) {
		u8 *p = q->chain[i].buf;
		u32 off;

		if (q->chain[i].len % VBH_STAT_SIZE)
			vbh_violation(vbh, "stats: descriptor of %u bytes, not whole records",
				      q->chain[i].len);
		for (off = 0; off + VBH_STAT_SIZE <= q->chain[i].len;
		     off += VBH_STAT_SIZE) {
			u16 tag = vbh_load16(vbh, p + off);
			u64 v = vbh_load64(vbh, p + off + 2);

			if (tag >= VBH_NR_TAGS) {
				bad_tag = true;
				ignored++;
				continue;
			}
			val[tag] = v;
			seen |= BIT(tag);
		}
	}
	spin_lock_irqsave(&vbh->lock, flags);
	if (bad_tag && vbh->profile == VBH_FIRECRACKER) {
		/* firecracker < 1.15: malformed, dropped, no more requests */
		vbh->stats_rejected++;
		vbh->stats_dead = true;
		spin_unlock_irqrestore(&vbh->lock, flags);
		return false;
	}
	vbh->stats_received++;
	vbh->stats_ignored_tags += ignored;
	for (i = 0; i < VBH_NR_TAGS; i++)
		if (seen & BIT(i))
			vbh->stat_val[i] = val[i];
	vbh->stat_seen |= seen;
	spin_unlock_irqrestore(&vbh->lock, flags);
	return true;
}

/*
 * A free page report: each descriptor is one free block the guest took
 * off its free lists.  It must be whole pages of guest RAM, none of them
 * in the balloon, the first one free (reference count 0).  The model
 * keeps nothing (a real host would discard the pages).
 */
static void vbh_report_buf(struct vbh_queue *q)
{
	struct vbh *vbh = q->vbh;
	u64 pages = 0, bytes = 0;
	unsigned long flags;
	unsigned int i;

	for (i = 0; i < q->nr; i++) {
		u64 addr = q->chain[i].addr;
		u32 len = q->chain[i].len;
		unsigned long pfn, start, end, held;

		bytes += len;
		if (!len || !PAGE_ALIGNED(addr) || !PAGE_ALIGNED(len)) {
			vbh_violation(vbh, "report: range %#llx+%#x not page aligned",
				      addr, len);
			continue;
		}
		start = PHYS_PFN(addr);
		end = start + (len >> PAGE_SHIFT);
		pages += len >> PAGE_SHIFT;
		if (end > vbh->end_pfn) {
			vbh_violation(vbh, "report: range %#llx+%#x outside guest RAM",
				      addr, len);
			continue;
		}
		for (pfn = start; pfn < end; pfn++)
			if (!pfn_valid(pfn))
				break;
		if (pfn < end) {
			vbh_violation(vbh, "report: frame %#lx of range %#llx+%#x not in RAM",
				      pfn, addr, len);
			continue;
		}
		held = find_next_bit(vbh->held, end, start);
		if (held < end)
			vbh_violation(vbh, "report: %#llx+%#x overlaps held frame %#lx",
				      addr, len, held);
		if (page_ref_count(pfn_to_page(start)))
			vbh_violation(vbh, "report: frame %#lx reported but in use (refcount %d)",
				      start, page_ref_count(pfn_to_page(start)));
	}
	spin_lock_irqsave(&vbh->lock, flags);
	vbh->reports++;
	vbh->report_ranges += q->nr;
	vbh->report_pages += pages;
	vbh->report_bytes += bytes;
	spin_unlock_irqrestore(&vbh->lock, flags);
}

/* Was `id` (not STOP or DONE) shown in the config space lately?  lock held. */
static bool vbh_hint_id_shown(struct vbh *vbh, u32 id)
{
	unsigned int i, n = min_t(unsigned int, vbh->hint_nshown, VBH_HINT_IDS);

	for (i = 0; i < n; i++)
		if (vbh->hint_shown[i] == id)
			return true;
	return false;
}

/*
 * A command id buffer: STOP (0) ends the driver's round; any other id
 * must be one the device showed, the current one or an older one the
 * driver had not caught up with yet; DONE (1) is the host's word, never
 * the driver's.  Blocks that follow belong to that id.  q->lock held.
 */
static void vbh_hint_cmd(struct vbh_queue *q, const void *buf, u32 len)
{
	struct vbh *vbh = q->vbh;
	unsigned long flags;
	bool shown;
	u32 id, cur;

	if (len != sizeof(u32)) {
		vbh_violation(vbh, "hint: command id buffer of %u bytes", len);
		return;
	}
	id = vbh_load32(vbh, buf);
	spin_lock_irqsave(&vbh->lock, flags);
	cur = le32_to_cpu(vbh->config.free_page_hint_cmd_id);
	shown = id > VIRTIO_BALLOON_CMD_ID_DONE && vbh_hint_id_shown(vbh, id);
	if (id == VIRTIO_BALLOON_CMD_ID_STOP)
		vbh->hint_stops++;
	else if (id > VIRTIO_BALLOON_CMD_ID_DONE && id == cur)
		vbh->hint_ids++;
	else if (shown)
		vbh->hint_ids_old++;
	spin_unlock_irqrestore(&vbh->lock, flags);
	if (id == VIRTIO_BALLOON_CMD_ID_DONE)
		vbh_violation(vbh, "hint: DONE (1) sent as a command id");
	else if (id != VIRTIO_BALLOON_CMD_ID_STOP && id != cur && !shown)
		vbh_violation(vbh, "hint: command id %u never shown (current %u)",
			      id, cur);
	vbh->hint_round_id = id == VIRTIO_BALLOON_CMD_ID_DONE ? 0 : id;
	vbh->hint_round_blocks = 0;
}

/*
 * A hinted block (device-writable; the model never touches it): inside
 * a round (after a command id, before STOP), a power of two from 4 KiB
 * to 4 MiB aligned to its size, in guest RAM, outside the balloon,
 * allocated (the guest keeps it while the host acts on the hint: its
 * first page has a reference and is on no free list), and not part of a
 * block whose buffer the device holds.  A block after an id other than
 * the current one is stale (a host ignores it; counted).  The block
 * goes to hint_held[]; q->lock held.
 */
static void vbh_hint_block(struct vbh_queue *q, u64 addr, u32 len)
{
	struct vbh *vbh = q->vbh;
	unsigned long start, end, pfn, held, flags;
	u32 budget = READ_ONCE(vbh->hint_budget);
	struct page *page;
	unsigned int i;
	bool stale;

	spin_lock_irqsave(&vbh->lock, flags);
	vbh->hint_blocks++;
	vbh->hint_bytes += len;
	stale = vbh->hint_round_id !=
		le32_to_cpu(vbh->config.free_page_hint_cmd_id);
	if (vbh->hint_round_id && stale)
		vbh->hint_stale_blocks++;
	spin_unlock_irqrestore(&vbh->lock, flags);
	vbh->hint_round_blocks++;
	/* the host ends the round, as QEMU before its next bitmap pass */
	if (budget && !stale && vbh->hint_round_blocks == budget)
		vbh_set_cmd_id(vbh, xchg(&vbh->hint_next,
					 VIRTIO_BALLOON_CMD_ID_STOP));

	if (!vbh->hint_round_id)
		vbh_violation(vbh, "hint: block %#llx+%#x outside a round (no id, or STOP)",
			      addr, len);
	if (len < PAGE_SIZE || len > VBH_MAX_BUF || !is_power_of_2(len) ||
	    (addr & (len - 1))) {
		vbh_violation(vbh, "hint: block %#llx+%#x not a power of two aligned",
			      addr, len);
		return;
	}
	start = PHYS_PFN(addr);
	end = start + (len >> PAGE_SHIFT);
	if (end > vbh->end_pfn) {
		vbh_violation(vbh, "hint: block %#llx+%#x outside guest RAM",
			      addr, len);
		return;
	}
	for (pfn = start; pfn < end; pfn++)
		if (!pfn_valid(pfn))
			break;
	if (pfn < end) {
		vbh_violation(vbh, "hint: frame %#lx of block %#llx+%#x not in RAM",
			      pfn, addr, len);
		return;
	}
	held = find_next_bit(vbh->held, end, start);
	if (held < end)
		vbh_violation(vbh, "hint: block %#llx+%#x overlaps held frame %#lx",
			      addr, len, held);
	page = pfn_to_page(start);
	if (!page_ref_count(page) || is_free_buddy_page(page))
		vbh_violation(vbh, "hint: block %#llx+%#x free in the guest when hinted",
			      addr, len);
	for (i = 0; i < vbh->hint_nheld; i++) {
		const struct vbh_hint_block *b = &vbh->hint_held[i];

		if (addr < b->addr + b->len && b->addr < addr + len) {
			vbh_violation(vbh, "hint: block %#llx+%#x hinted again, held %#llx+%#x",
				      addr, len, b->addr, b->len);
			break;
		}
	}
	/* no more than the ring holds; a bound all the same */
	if (vbh->hint_nheld < ARRAY_SIZE(vbh->hint_held))
		vbh->hint_held[vbh->hint_nheld++] = (struct vbh_hint_block){
			.addr = addr, .len = len };
}

/*
 * While the device holds a block's buffer the guest must keep the
 * block: its first page still referenced, on no free list.  Each block
 * is reported once.  q[VBH_VQ_HINT].lock held.
 */
static void vbh_hint_audit(struct vbh *vbh)
{
	unsigned int i;

	for (i = 0; i < vbh->hint_nheld; i++) {
		struct vbh_hint_block *b = &vbh->hint_held[i];
		struct page *page = pfn_to_page(PHYS_PFN(b->addr));

		if (b->reported ||
		    (page_ref_count(page) && !is_free_buddy_page(page)))
			continue;
		b->reported = true;
		vbh_violation(vbh, "hint: block %#llx+%#x freed while the device holds its buffer",
			      b->addr, b->len);
	}
}

enum vbh_verdict { VBH_ANSWER, VBH_DROP, VBH_KEEP, VBH_HOLD, VBH_STOP };

/*
 * A buffer on the free-page queue: command ids (readable) and hinted
 * blocks (writable).  With hint-silent the device keeps the buffer
 * (VBH_HOLD): hint_heads[], its blocks in hint_held[].  remove-hint,
 * once the round had a block answered, keeps the buffers that follow,
 * and removes the device when the driver put the block that leaves two
 * entries of the ring free (it then waits for room) or its STOP after
 * giving up: the driver holds a block returned and a ring full of
 * them.  q->lock held.
 */
static enum vbh_verdict vbh_hint_request(struct vbh_queue *q, u16 head)
{
	struct vbh *vbh = q->vbh;
	unsigned int i, first = vbh->hint_nheld;
	unsigned int num = virtqueue_get_vring(q->vq)->num;
	bool block = false, silent;
	unsigned long flags;

	if (!vbh_walk(q, head))
		return VBH_DROP;
	for (i = 0; i < q->nr; i++)
		block |= q->chain[i].write;
	spin_lock_irqsave(&vbh->lock, flags);
	if (vbh->fault == VBH_F_REMOVE_HINT && vbh->hint_round_blocks &&
	    ((block && vbh->hint_nheads + 3 >= num) ||
	     (!block && vbh->hint_nheads))) {
		vbh->fault = VBH_F_NONE;
		vbh->broken = true;
		spin_unlock_irqrestore(&vbh->lock, flags);
		virtio_break_device(&vbh->vdev);
		queue_work(vbh->slot->wq, &vbh->slot->remove_work);
		return VBH_STOP;
	}
	silent = (vbh->fault == VBH_F_HINT_SILENT ||
		  (vbh->fault == VBH_F_REMOVE_HINT && vbh->hint_round_blocks)) &&
		 vbh->hint_nheads < ARRAY_SIZE(vbh->hint_heads);
	vbh->hint_bufs++;
	spin_unlock_irqrestore(&vbh->lock, flags);
	for (i = 0; i < q->nr; i++) {
		if (q->chain[i].write)
			vbh_hint_block(q, q->chain[i].addr, q->chain[i].len);
		else
			vbh_hint_cmd(q, q->chain[i].buf, q->chain[i].len);
	}
	if (!silent) {
		/* returned now: the host no longer has these blocks */
		vbh->hint_nheld = first;
		return VBH_ANSWER;
	}
	vbh->hint_heads[vbh->hint_nheads++] = head;
	return VBH_HOLD;
}

/* Give back every hint buffer the device kept; q->lock held. */
static bool vbh_hint_return(struct vbh_queue *q)
{
	struct vbh *vbh = q->vbh;
	unsigned int i;

	if (!vbh->hint_nheads)
		return false;
	for (i = 0; i < vbh->hint_nheads; i++)
		vbh_push_used(q, vbh->hint_heads[i]);
	vbh->hint_nheads = 0;
	vbh->hint_nheld = 0;
	return true;
}

static enum vbh_verdict vbh_request(struct vbh_queue *q, u16 head)
{
	struct vbh *vbh = q->vbh;
	unsigned long flags;
	bool remove = false;

	if (q->index == VBH_VQ_HINT)
		return vbh_hint_request(q, head);
	if (q->index != VBH_VQ_STATS) {
		enum vbh_fault brk = q->index == VBH_VQ_INFLATE ?
			VBH_F_BREAK_INFLATE : q->index == VBH_VQ_DEFLATE ?
			VBH_F_BREAK_DEFLATE : VBH_F_NONE;
		enum vbh_fault rm = q->index == VBH_VQ_INFLATE ?
			VBH_F_REMOVE_INFLATE : q->index == VBH_VQ_REPORT ?
			VBH_F_REMOVE_REPORT : VBH_F_NONE;

		spin_lock_irqsave(&vbh->lock, flags);
		if (vbh->fault != VBH_F_NONE &&
		    (vbh->fault == brk || vbh->fault == rm)) {
			remove = vbh->fault == rm;
			vbh->fault = VBH_F_NONE;
			vbh->broken = true;
			spin_unlock_irqrestore(&vbh->lock, flags);
			virtio_break_device(&vbh->vdev);
			if (remove)
				queue_work(vbh->slot->wq, &vbh->slot->remove_work);
			return VBH_STOP;
		}
		spin_unlock_irqrestore(&vbh->lock, flags);
	}
	if (!vbh_walk(q, head))
		return VBH_DROP;
	if (q->index == VBH_VQ_STATS) {
		if (!vbh_stats_buf(q))
			return VBH_DROP;
		return VBH_KEEP;
	}
	if (q->index == VBH_VQ_REPORT) {
		vbh_report_buf(q);
		return VBH_ANSWER;
	}
	if (vbh->frame_limit && q->chain[0].len / 4 > vbh->frame_limit) {
		/* firecracker: "bogus page count", skipped, never returned */
		spin_lock_irqsave(&vbh->lock, flags);
		vbh->lost_descs++;
		spin_unlock_irqrestore(&vbh->lock, flags);
		vbh_violation(vbh, "vq %u: %u frames in one descriptor, limit %u (descriptor lost)",
			      q->index, q->chain[0].len / 4, vbh->frame_limit);
		return VBH_DROP;
	}
	vbh_frames(q);
	return VBH_ANSWER;
}

/* Give the held stats buffer back (asks for fresh stats); q->lock held. */
static bool vbh_stats_return(struct vbh_queue *q)
{
	struct vbh *vbh = q->vbh;
	unsigned long flags;

	if (!q->active || !q->stats_held || READ_ONCE(vbh->broken))
		return false;
	q->stats_held = false;
	vbh_push_used(q, q->stats_head);
	spin_lock_irqsave(&vbh->lock, flags);
	vbh->stats_requests++;
	spin_unlock_irqrestore(&vbh->lock, flags);
	return true;
}

static void vbh_queue_work(struct work_struct *work)
{
	struct vbh_queue *q = container_of(to_delayed_work(work),
					   struct vbh_queue, work);
	struct vbh *vbh = q->vbh;
	struct virtio_device *vdev = &vbh->vdev;
	struct virtqueue *vq = NULL;
	bool irq = false, flood;
	unsigned long flags;

	mutex_lock(&q->lock);
	if (!q->active || q->dead)
		goto out;
	vq = q->vq;
	for (;;) {
		const struct vring *vr = virtqueue_get_vring(vq);
		enum vbh_fault fault;
		unsigned int delay;
		u16 avail, head;

		spin_lock_irqsave(&vbh->lock, flags);
		fault = vbh->fault;
		delay = vbh->fault_ms;
		flood = fault == VBH_F_STATS_FLOOD;
		if (vbh->broken ||
		    (q->index == VBH_VQ_STATS && vbh->stats_dead)) {
			spin_unlock_irqrestore(&vbh->lock, flags);
			break;
		}
		spin_unlock_irqrestore(&vbh->lock, flags);
		if ((q->index == VBH_VQ_INFLATE || q->index == VBH_VQ_DEFLATE) &&
		    fault == VBH_F_SILENT)
			break;
		if (q->index == VBH_VQ_REPORT && fault == VBH_F_REPORT_SILENT)
			break;
		/* the buffers hint-silent kept go back once it is lifted */
		if (q->index == VBH_VQ_HINT && fault != VBH_F_HINT_SILENT &&
		    fault != VBH_F_REMOVE_HINT)
			irq |= vbh_hint_return(q);
		/* flood: the buffer held when the fault was set goes back too */
		if (flood && q->stats_held)
			irq |= vbh_stats_return(q);

		avail = virtio16_to_cpu(vdev, READ_ONCE(vr->avail->idx));
		/* the ring entries after the index that published them */
		virt_rmb();
		if (avail == q->last_avail)
			break;
		if ((u16)(avail - q->last_avail) > vr->num) {
			vbh_violation(vbh, "vq %u: avail idx %u is %u ahead of %u (size %u)",
				      q->index, avail, (u16)(avail - q->last_avail),
				      q->last_avail, vr->num);
			q->dead = true;
			break;
		}
		if (q->index != VBH_VQ_STATS && fault == VBH_F_DELAY) {
			unsigned long due;

			if (!q->seen_at)
				q->seen_at = jiffies | 1;
			due = q->seen_at + msecs_to_jiffies(delay);
			if (time_before(jiffies, due)) {
				queue_delayed_work(vbh->slot->wq, &q->work,
						   due - jiffies);
				break;
			}
		}
		q->seen_at = 0;
		head = virtio16_to_cpu(vdev,
				       READ_ONCE(vr->avail->ring[q->last_avail % vr->num]));
		if (q->index == VBH_VQ_STATS && q->stats_held) {
			/* a second buffer while one is held: give the old back */
			vbh_violation(vbh, "stats: buffer %u added while %u is held",
				      head, q->stats_head);
			irq |= vbh_stats_return(q);
		}
		switch (vbh_request(q, head)) {
		case VBH_STOP:
			goto out;
		case VBH_ANSWER:
			q->last_avail++;
			vbh_push_used(q, head);
			irq = true;
			break;
		case VBH_KEEP:
			q->last_avail++;
			q->stats_held = true;
			q->stats_head = head;
			if (flood) {
				irq |= vbh_stats_return(q);
			} else if (READ_ONCE(vbh->stats_period_ms)) {
				unsigned int ms = READ_ONCE(vbh->stats_period_ms);

				queue_delayed_work(vbh->slot->wq, &vbh->stats_work,
						   msecs_to_jiffies(ms));
			}
			break;
		case VBH_HOLD:
		case VBH_DROP:
			q->last_avail++;
			break;
		}
	}
out:
	if (q->index == VBH_VQ_HINT)
		vbh_hint_audit(vbh);
	mutex_unlock(&q->lock);
	if (irq)
		vbh_interrupt(vq);
}

static void vbh_stats_work(struct work_struct *work)
{
	struct vbh *vbh = container_of(to_delayed_work(work), struct vbh,
				       stats_work);
	struct vbh_queue *q = &vbh->q[VBH_VQ_STATS];
	struct virtqueue *vq;
	bool irq;

	mutex_lock(&q->lock);
	vq = q->vq;
	irq = READ_ONCE(vbh->stats_period_ms) && vbh_stats_return(q);
	mutex_unlock(&q->lock);
	/* del_vqs cancels this work before it deletes the queue */
	if (irq)
		vbh_interrupt(vq);
}

static bool vbh_notify(struct virtqueue *vq)
{
	struct vbh *vbh = to_vbh(vq->vdev);

	/* may be called in atomic context: the "host" runs in a work item */
	if (vq->index < VBH_NR_VQS)
		queue_delayed_work(vbh->slot->wq,
				   &vbh->q[vbh->role[vq->index]].work, 0);
	return true;
}

static void vbh_kick_all(struct vbh *vbh)
{
	int i;

	for (i = 0; i < VBH_NR_VQS; i++)
		mod_delayed_work(vbh->slot->wq, &vbh->q[i].work, 0);
}

/* flap and storm: config changes, back to back, for fault_ms */
static void vbh_fault_work(struct work_struct *work)
{
	struct vbh *vbh = container_of(work, struct vbh, fault_work);
	enum vbh_fault fault = READ_ONCE(vbh->fault);
	unsigned long end = jiffies + msecs_to_jiffies(READ_ONCE(vbh->fault_ms));
	unsigned long flags;
	bool zero = false;

	while (time_before(jiffies, end) && READ_ONCE(vbh->fault) == fault) {
		if (fault == VBH_F_FLAP) {
			zero = !zero;
			vbh_set_num_pages(vbh, zero ? 0 : READ_ONCE(vbh->target));
			usleep_range(1000, 1100);
		} else {
			vbh_config_irq(vbh);
			cond_resched();
		}
	}
	if (fault == VBH_F_FLAP)
		vbh_set_num_pages(vbh, READ_ONCE(vbh->target));
	spin_lock_irqsave(&vbh->lock, flags);
	if (vbh->fault == fault)
		vbh->fault = VBH_F_NONE;
	spin_unlock_irqrestore(&vbh->lock, flags);
}

/* ---- virtqueues and reset ---------------------------------------------- */

static void vbh_stop_queues(struct vbh *vbh, bool del)
{
	int i;

	for (i = 0; i < VBH_NR_VQS; i++) {
		struct vbh_queue *q = &vbh->q[i];

		mutex_lock(&q->lock);
		q->active = false;
		q->stats_held = false;
		mutex_unlock(&q->lock);
	}
	/* no callback of the driver runs after this */
	cancel_delayed_work_sync(&vbh->stats_work);
	for (i = 0; i < VBH_NR_VQS; i++) {
		struct vbh_queue *q = &vbh->q[i];
		struct virtqueue *vq;

		cancel_delayed_work_sync(&q->work);
		if (!del)
			continue;
		mutex_lock(&q->lock);
		vq = q->vq;
		q->vq = NULL;
		mutex_unlock(&q->lock);
		if (vq)
			vring_del_virtqueue(vq);
	}
}

static void vbh_reset(struct virtio_device *vdev)
{
	struct vbh *vbh = to_vbh(vdev);
	struct vbh_queue *hq = &vbh->q[VBH_VQ_HINT];
	unsigned int kept;
	unsigned long flags;

	vbh_stop_queues(vbh, false);
	cancel_work_sync(&vbh->fault_work);
	/* and every hint buffer it kept: the guest may free those blocks */
	mutex_lock(&hq->lock);
	kept = vbh->hint_nheads;
	vbh->hint_nheads = 0;
	vbh->hint_nheld = 0;
	vbh->hint_round_id = 0;
	vbh->hint_round_blocks = 0;
	mutex_unlock(&hq->lock);
	spin_lock_irqsave(&vbh->lock, flags);
	vbh->hint_held_at_reset = kept;
	/* a reset device forgets the balloon: the guest owns every page */
	vbh->held_at_reset = vbh->held_frames;
	vbh->held_frames = 0;
	vbh->config.actual = 0;
	vbh->stats_dead = false;
	vbh->broken = false;
	vbh->resets++;
	vbh->status = 0;
	spin_unlock_irqrestore(&vbh->lock, flags);
	bitmap_zero(vbh->held, vbh->end_pfn);
}

static void vbh_del_vqs(struct virtio_device *vdev)
{
	vbh_stop_queues(to_vbh(vdev), true);
}

static int vbh_setup_vq(struct vbh *vbh, unsigned int index,
			unsigned int role, struct virtqueue **vqp,
			vq_callback_t *cb, const char *name)
{
	struct vbh_queue *q = &vbh->q[role];
	unsigned int num = vbh->queue_size;
	struct virtqueue *vq;

	vbh->role[index] = role;
	if (role == VBH_VQ_HINT && hint_queue_size)
		num = hint_queue_size;
	vq = vring_create_virtqueue(index, num, SMP_CACHE_BYTES, &vbh->vdev,
				    true, true, false, vbh_notify, cb, name);
	if (!vq)
		return -ENOMEM;
	mutex_lock(&q->lock);
	q->vq = vq;
	q->last_avail = 0;
	q->used_idx = 0;
	q->seen_at = 0;
	q->dead = false;
	q->stats_held = false;
	q->active = true;
	mutex_unlock(&q->lock);
	*vqp = vq;
	return 0;
}

static int vbh_find_vqs_common(struct virtio_device *vdev, unsigned int nvqs,
			       struct virtqueue *vqs[],
			       vq_callback_t * const callbacks[],
			       const char * const names[])
{
	struct vbh *vbh = to_vbh(vdev);
	unsigned int i, index = 0, nroles = 0;
	u8 roles[VBH_NR_VQS];
	int err;

	/*
	 * virtio 1.2, 5.5.2: inflateq, deflateq, statsq if STATS_VQ,
	 * free_page_vq if FREE_PAGE_HINT, reporting_vq if REPORTING; the
	 * queues present are numbered without gaps.
	 */
	roles[nroles++] = VBH_VQ_INFLATE;
	roles[nroles++] = VBH_VQ_DEFLATE;
	if (vbh_accepted(vbh, VIRTIO_BALLOON_F_STATS_VQ))
		roles[nroles++] = VBH_VQ_STATS;
	if (vbh_accepted(vbh, VIRTIO_BALLOON_F_FREE_PAGE_HINT))
		roles[nroles++] = VBH_VQ_HINT;
	if (vbh_accepted(vbh, VIRTIO_BALLOON_F_REPORTING))
		roles[nroles++] = VBH_VQ_REPORT;

	for (i = 0; i < nvqs; i++) {
		if (!names[i]) {
			vqs[i] = NULL;
			continue;
		}
		if (index >= nroles) {
			err = -ENOENT;
			goto fail;
		}
		err = vbh_setup_vq(vbh, index, roles[index], &vqs[i],
				   callbacks[i], names[i]);
		if (err)
			goto fail;
		index++;
	}
	return 0;
fail:
	vbh_del_vqs(vdev);
	return err;
}

#ifdef VBH_HAVE_VIRTQUEUE_INFO
static int vbh_find_vqs(struct virtio_device *vdev, unsigned int nvqs,
			struct virtqueue *vqs[],
			struct virtqueue_info vqs_info[],
			struct irq_affinity *desc)
{
	vq_callback_t *callbacks[VBH_NR_VQS + 4] = {};
	const char *names[VBH_NR_VQS + 4] = {};
	unsigned int i;

	if (nvqs > ARRAY_SIZE(names))
		return -ENOENT;
	for (i = 0; i < nvqs; i++) {
		callbacks[i] = vqs_info[i].callback;
		names[i] = vqs_info[i].name;
	}
	return vbh_find_vqs_common(vdev, nvqs, vqs, callbacks, names);
}
#else
static int vbh_find_vqs(struct virtio_device *vdev, unsigned int nvqs,
			struct virtqueue *vqs[], vq_callback_t *callbacks[],
			const char * const names[], const bool *ctx,
			struct irq_affinity *desc)
{
	return vbh_find_vqs_common(vdev, nvqs, vqs, callbacks, names);
}
#endif

static const struct virtio_config_ops vbh_config_ops = {
	.get = vbh_get,
	.set = vbh_set,
	.generation = vbh_generation,
	.get_status = vbh_get_status,
	.set_status = vbh_set_status,
	.reset = vbh_reset,
	.find_vqs = vbh_find_vqs,
	.del_vqs = vbh_del_vqs,
	.get_features = vbh_get_features,
	.finalize_features = vbh_finalize_features,
	.bus_name = vbh_bus_name,
};

/* ---- devices ----------------------------------------------------------- */

static void vbh_release(struct device *dev)
{
	struct vbh *vbh = to_vbh(dev_to_virtio(dev));
	int i;

	for (i = 0; i < VBH_NR_VQS; i++)
		cancel_delayed_work_sync(&vbh->q[i].work);
	cancel_delayed_work_sync(&vbh->stats_work);
	cancel_work_sync(&vbh->fault_work);
	vfree(vbh->held);
	kfree(vbh);
}

static unsigned long vbh_end_pfn(void)
{
	unsigned long end = 0;
	int nid;

	for_each_online_node(nid)
		end = max(end, node_end_pfn(nid));
	return end;
}

static struct vbh *vbh_create(struct vbh_slot *slot)
{
	struct vbh *vbh;
	int i;

	vbh = kzalloc(sizeof(*vbh), GFP_KERNEL);
	if (!vbh)
		return NULL;
	vbh->end_pfn = vbh_end_pfn();
	vbh->held = vzalloc(BITS_TO_LONGS(vbh->end_pfn) * sizeof(long));
	if (!vbh->held) {
		kfree(vbh);
		return NULL;
	}
	vbh->slot = slot;
	vbh->profile = vbh_profile_param;
	spin_lock_init(&vbh->lock);
	for (i = 0; i < VBH_NR_VQS; i++) {
		vbh->q[i].vbh = vbh;
		vbh->q[i].index = i;
		mutex_init(&vbh->q[i].lock);
		INIT_DELAYED_WORK(&vbh->q[i].work, vbh_queue_work);
	}
	INIT_WORK(&vbh->fault_work, vbh_fault_work);
	INIT_DELAYED_WORK(&vbh->stats_work, vbh_stats_work);

	vbh->features_offered = BIT_ULL(VIRTIO_BALLOON_F_STATS_VQ);
	if (deflate_on_oom)
		vbh->features_offered |= BIT_ULL(VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
	if (vbh->profile != VBH_LEGACY)
		vbh->features_offered |= BIT_ULL(VIRTIO_F_VERSION_1);
	if (vbh->profile == VBH_CROSVM)
		vbh->features_offered |= BIT_ULL(VIRTIO_BALLOON_F_MUST_TELL_HOST);
	if (reporting)
		vbh->features_offered |= BIT_ULL(VIRTIO_BALLOON_F_REPORTING);
	if (hinting)
		vbh->features_offered |= BIT_ULL(VIRTIO_BALLOON_F_FREE_PAGE_HINT);
	if (page_poison)
		vbh->features_offered |= BIT_ULL(VIRTIO_BALLOON_F_PAGE_POISON);
	vbh->queue_size = vbh->profile == VBH_FIRECRACKER ? 256 : 128;
	vbh->frame_limit = vbh->profile == VBH_FIRECRACKER ? 256 : 0;
	vbh->whole_chain = vbh->profile != VBH_FIRECRACKER;

	vbh->vdev.id.device = VIRTIO_ID_BALLOON;
	vbh->vdev.id.vendor = 0x5642;	/* "VB" */
	vbh->vdev.config = &vbh_config_ops;
	vbh->vdev.dev.parent = vbh_root;
	vbh->vdev.dev.release = vbh_release;
	return vbh;
}

/* Register a fresh device in `slot`; slot->lock held. */
static int vbh_add(struct vbh_slot *slot)
{
	struct vbh *vbh, *old;
	int err;

	if (slot->registered || work_pending(&slot->remove_work))
		return -EBUSY;
	vbh = vbh_create(slot);
	if (!vbh)
		return -ENOMEM;
	err = register_virtio_device(&vbh->vdev);
	if (err) {
		put_device(&vbh->vdev.dev);
		return err;
	}
	get_device(&vbh->vdev.dev);
	old = slot->dev;
	slot->dev = vbh;
	slot->registered = true;
	if (old)
		put_device(&old->vdev.dev);
	return 0;
}

static void vbh_remove_work(struct work_struct *work)
{
	struct vbh_slot *slot = container_of(work, struct vbh_slot,
					     remove_work);
	struct vbh *vbh;

	mutex_lock(&slot->lock);
	if (!slot->registered) {
		mutex_unlock(&slot->lock);
		return;
	}
	slot->registered = false;
	vbh = slot->dev;
	get_device(&vbh->vdev.dev);
	mutex_unlock(&slot->lock);
	/* whatever the driver does in its remove, it is called from here */
	unregister_virtio_device(&vbh->vdev);
	put_device(&vbh->vdev.dev);
}

/* ---- debugfs ----------------------------------------------------------- */

/* The slot's device with a reference, or NULL. */
static struct vbh *vbh_get_dev(struct vbh_slot *slot)
{
	struct vbh *vbh;

	mutex_lock(&slot->lock);
	vbh = slot->dev;
	if (vbh)
		get_device(&vbh->vdev.dev);
	mutex_unlock(&slot->lock);
	return vbh;
}

static void vbh_put_dev(struct vbh *vbh)
{
	put_device(&vbh->vdev.dev);
}

static int vbh_copy_from_user(char *buf, size_t size,
			      const char __user *ubuf, size_t count)
{
	if (count >= size)
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	strim(buf);
	return 0;
}

static u16 vbh_pending(struct vbh_queue *q)
{
	const struct vring *vr;
	u16 n = 0;

	mutex_lock(&q->lock);
	if (q->vq && q->active) {
		vr = virtqueue_get_vring(q->vq);
		n = (u16)(virtio16_to_cpu(&q->vbh->vdev,
					  READ_ONCE(vr->avail->idx)) - q->used_idx);
	}
	mutex_unlock(&q->lock);
	return n;
}

static int vbh_state_show(struct seq_file *m, void *v)
{
	struct vbh_slot *slot = m->private;
	struct vbh *vbh = vbh_get_dev(slot);
	unsigned long flags;
	unsigned int pending, reports_pending, hints_pending, hint_kept;
	u64 hint_round_blocks;
	struct vbh_queue *hq;
	u32 hint_round_id;
	bool registered;

	if (!vbh)
		return -ENODEV;
	mutex_lock(&slot->lock);
	registered = slot->registered && slot->dev == vbh;
	mutex_unlock(&slot->lock);
	pending = vbh_pending(&vbh->q[VBH_VQ_INFLATE]) +
		  vbh_pending(&vbh->q[VBH_VQ_DEFLATE]);
	reports_pending = vbh_pending(&vbh->q[VBH_VQ_REPORT]);
	hints_pending = vbh_pending(&vbh->q[VBH_VQ_HINT]);
	/* every read looks at the blocks the device holds */
	hq = &vbh->q[VBH_VQ_HINT];
	mutex_lock(&hq->lock);
	vbh_hint_audit(vbh);
	hint_kept = vbh->hint_nheads;
	hint_round_id = vbh->hint_round_id;
	hint_round_blocks = vbh->hint_round_blocks;
	mutex_unlock(&hq->lock);

	spin_lock_irqsave(&vbh->lock, flags);
	seq_printf(m, "device %s\n", dev_name(&vbh->vdev.dev));
	seq_printf(m, "present %d\n", registered);
	seq_printf(m, "driver %s\n",
		   vbh->vdev.dev.driver ? vbh->vdev.dev.driver->name : "-");
	seq_printf(m, "profile %s\n", vbh_profile_names[vbh->profile]);
	seq_printf(m, "features_offered %#llx\n", vbh->features_offered);
	seq_printf(m, "features_accepted %#llx\n", vbh->features_accepted);
	seq_printf(m, "status %#x\n", vbh->status);
	seq_printf(m, "target %u\n", le32_to_cpu(vbh->config.num_pages));
	seq_printf(m, "actual %u\n", le32_to_cpu(vbh->config.actual));
	seq_printf(m, "held_frames %llu\n", vbh->held_frames);
	seq_printf(m, "held_at_reset %llu\n", vbh->held_at_reset);
	seq_printf(m, "resets %llu\n", vbh->resets);
	seq_printf(m, "inflate_reqs %llu\n", vbh->inflate_reqs);
	seq_printf(m, "deflate_reqs %llu\n", vbh->deflate_reqs);
	seq_printf(m, "inflate_frames %llu\n", vbh->inflate_frames);
	seq_printf(m, "deflate_frames %llu\n", vbh->deflate_frames);
	seq_printf(m, "max_frames_per_desc %llu\n", vbh->max_frames_per_desc);
	seq_printf(m, "lost_descs %llu\n", vbh->lost_descs);
	seq_printf(m, "pending %u\n", pending);
	seq_printf(m, "broken %d\n", vbh->broken);
	seq_printf(m, "config_changes %llu\n", vbh->config_changes);
	seq_printf(m, "stats_requests %llu\n", vbh->stats_requests);
	seq_printf(m, "stats_received %llu\n", vbh->stats_received);
	seq_printf(m, "stats_rejected %llu\n", vbh->stats_rejected);
	seq_printf(m, "poison_val %#x\n", le32_to_cpu(vbh->config.poison_val));
	seq_printf(m, "reports %llu\n", vbh->reports);
	seq_printf(m, "report_ranges %llu\n", vbh->report_ranges);
	seq_printf(m, "report_pages %llu\n", vbh->report_pages);
	seq_printf(m, "report_bytes %llu\n", vbh->report_bytes);
	seq_printf(m, "reports_pending %u\n", reports_pending);
	seq_printf(m, "hint_cmd_id %u\n",
		   le32_to_cpu(vbh->config.free_page_hint_cmd_id));
	seq_printf(m, "hint_cmd_changes %llu\n", vbh->hint_cmd_changes);
	seq_printf(m, "hint_ids %llu\n", vbh->hint_ids);
	seq_printf(m, "hint_ids_old %llu\n", vbh->hint_ids_old);
	seq_printf(m, "hint_stops %llu\n", vbh->hint_stops);
	seq_printf(m, "hint_bufs %llu\n", vbh->hint_bufs);
	seq_printf(m, "hint_blocks %llu\n", vbh->hint_blocks);
	seq_printf(m, "hint_bytes %llu\n", vbh->hint_bytes);
	seq_printf(m, "hint_stale_blocks %llu\n", vbh->hint_stale_blocks);
	seq_printf(m, "hint_round_id %u\n", hint_round_id);
	seq_printf(m, "hint_round_blocks %llu\n", hint_round_blocks);
	seq_printf(m, "hints_pending %u\n", hints_pending);
	seq_printf(m, "hint_kept %u\n", hint_kept);
	seq_printf(m, "hint_held_at_reset %llu\n", vbh->hint_held_at_reset);
	seq_printf(m, "violations %llu\n", vbh->violations);
	seq_printf(m, "first_violation %s\n",
		   vbh->violations ? vbh->first_violation : "-");
	spin_unlock_irqrestore(&vbh->lock, flags);
	vbh_put_dev(vbh);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vbh_state);

static int vbh_stats_show(struct seq_file *m, void *v)
{
	struct vbh *vbh = vbh_get_dev(m->private);
	unsigned long flags;
	int i;

	if (!vbh)
		return -ENODEV;
	spin_lock_irqsave(&vbh->lock, flags);
	for (i = 0; i < VBH_NR_TAGS; i++)
		if (vbh->stat_seen & BIT(i))
			seq_printf(m, "%d %llu\n", i, vbh->stat_val[i]);
	seq_printf(m, "stats_requests %llu\n", vbh->stats_requests);
	seq_printf(m, "stats_received %llu\n", vbh->stats_received);
	seq_printf(m, "stats_ignored_tags %llu\n", vbh->stats_ignored_tags);
	seq_printf(m, "stats_rejected %llu\n", vbh->stats_rejected);
	spin_unlock_irqrestore(&vbh->lock, flags);
	vbh_put_dev(vbh);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vbh_stats);

static int vbh_fault_show(struct seq_file *m, void *v)
{
	struct vbh *vbh = vbh_get_dev(m->private);
	enum vbh_fault fault;
	unsigned int ms;

	if (!vbh)
		return -ENODEV;
	spin_lock_irq(&vbh->lock);
	fault = vbh->fault;
	ms = vbh->fault_ms;
	spin_unlock_irq(&vbh->lock);
	if (fault == VBH_F_DELAY || fault == VBH_F_FLAP || fault == VBH_F_STORM)
		seq_printf(m, "%s=%u\n", vbh_fault_names[fault], ms);
	else
		seq_printf(m, "%s\n", vbh_fault_names[fault]);
	vbh_put_dev(vbh);
	return 0;
}

static int vbh_fault_open(struct inode *inode, struct file *file)
{
	return single_open(file, vbh_fault_show, inode->i_private);
}

static int vbh_parse_fault(char *buf, enum vbh_fault *fault, unsigned int *ms)
{
	char *arg = strchr(buf, '=');
	int f;

	if (arg)
		*arg++ = '\0';
	f = match_string(vbh_fault_names, ARRAY_SIZE(vbh_fault_names), buf);
	if (f < 0)
		return -EINVAL;
	*fault = f;
	*ms = 0;
	if (f == VBH_F_DELAY || f == VBH_F_FLAP || f == VBH_F_STORM) {
		if (!arg || kstrtouint(arg, 0, ms) || !*ms || *ms > 600000)
			return -EINVAL;
	} else if (arg) {
		return -EINVAL;
	}
	return 0;
}

static ssize_t vbh_fault_write(struct file *file, const char __user *ubuf,
			       size_t count, loff_t *ppos)
{
	struct vbh_slot *slot = file_inode(file)->i_private;
	enum vbh_fault fault;
	struct vbh *vbh;
	unsigned int ms;
	char buf[48];
	int err;

	err = vbh_copy_from_user(buf, sizeof(buf), ubuf, count);
	if (!err)
		err = vbh_parse_fault(buf, &fault, &ms);
	if (err)
		return err;
	vbh = vbh_get_dev(slot);
	if (!vbh)
		return -ENODEV;
	spin_lock_irq(&vbh->lock);
	vbh->fault = fault;
	vbh->fault_ms = ms;
	spin_unlock_irq(&vbh->lock);
	if (fault == VBH_F_FLAP || fault == VBH_F_STORM)
		queue_work(slot->wq, &vbh->fault_work);
	/* answer what waits (none, delay), or start flooding */
	vbh_kick_all(vbh);
	vbh_put_dev(vbh);
	return count;
}

static const struct file_operations vbh_fault_fops = {
	.owner = THIS_MODULE,
	.open = vbh_fault_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = single_release,
	.write = vbh_fault_write,
};

/* target and stats_period_ms: one unsigned number each */
static int vbh_target_get(void *data, u64 *val)
{
	struct vbh *vbh = vbh_get_dev(data);

	if (!vbh)
		return -ENODEV;
	*val = READ_ONCE(vbh->target);
	vbh_put_dev(vbh);
	return 0;
}

static int vbh_target_set(void *data, u64 val)
{
	struct vbh_slot *slot = data;
	struct vbh *vbh;

	if (val > U32_MAX)
		return -ERANGE;
	vbh = vbh_get_dev(slot);
	if (!vbh)
		return -ENODEV;
	WRITE_ONCE(vbh->target, val);
	mutex_lock(&slot->lock);
	if (slot->registered && slot->dev == vbh)
		vbh_set_num_pages(vbh, val);
	mutex_unlock(&slot->lock);
	vbh_put_dev(vbh);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(vbh_target_fops, vbh_target_get, vbh_target_set,
			 "%llu\n");

static int vbh_period_get(void *data, u64 *val)
{
	struct vbh *vbh = vbh_get_dev(data);

	if (!vbh)
		return -ENODEV;
	*val = READ_ONCE(vbh->stats_period_ms);
	vbh_put_dev(vbh);
	return 0;
}

static int vbh_period_set(void *data, u64 val)
{
	struct vbh_slot *slot = data;
	struct vbh *vbh;

	if (val > 3600000)
		return -ERANGE;
	vbh = vbh_get_dev(slot);
	if (!vbh)
		return -ENODEV;
	WRITE_ONCE(vbh->stats_period_ms, val);
	if (val)
		mod_delayed_work(slot->wq, &vbh->stats_work,
				 msecs_to_jiffies(val));
	vbh_put_dev(vbh);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(vbh_period_fops, vbh_period_get, vbh_period_set,
			 "%llu\n");

/* free page hint command id: a new round (>= 2), STOP (0), DONE (1) */
static int vbh_cmd_id_get(void *data, u64 *val)
{
	struct vbh *vbh = vbh_get_dev(data);

	if (!vbh)
		return -ENODEV;
	spin_lock_irq(&vbh->lock);
	*val = le32_to_cpu(vbh->config.free_page_hint_cmd_id);
	spin_unlock_irq(&vbh->lock);
	vbh_put_dev(vbh);
	return 0;
}

static int vbh_cmd_id_set(void *data, u64 val)
{
	struct vbh_slot *slot = data;
	struct vbh *vbh;
	int err = 0;

	if (val > U32_MAX)
		return -ERANGE;
	vbh = vbh_get_dev(slot);
	if (!vbh)
		return -ENODEV;
	if (!(vbh->features_offered & BIT_ULL(VIRTIO_BALLOON_F_FREE_PAGE_HINT))) {
		err = -EOPNOTSUPP;
		goto out;
	}
	mutex_lock(&slot->lock);
	if (slot->registered && slot->dev == vbh)
		vbh_set_cmd_id(vbh, val);
	else
		err = -ENODEV;
	mutex_unlock(&slot->lock);
out:
	vbh_put_dev(vbh);
	return err;
}
DEFINE_DEBUGFS_ATTRIBUTE(vbh_cmd_id_fops, vbh_cmd_id_get, vbh_cmd_id_set,
			 "%llu\n");

/*
 * hint_budget and hint_next: after hint_budget blocks (0: no limit) of
 * a round of the current id, the device shows hint_next (then STOP
 * again) as if the test had written it to cmd_id.
 */
static int vbh_u32_get(void *data, u64 *val, size_t off)
{
	struct vbh *vbh = vbh_get_dev(data);

	if (!vbh)
		return -ENODEV;
	*val = READ_ONCE(*(u32 *)((char *)vbh + off));
	vbh_put_dev(vbh);
	return 0;
}

static int vbh_u32_set(void *data, u64 val, size_t off)
{
	struct vbh *vbh;

	if (val > U32_MAX)
		return -ERANGE;
	vbh = vbh_get_dev(data);
	if (!vbh)
		return -ENODEV;
	WRITE_ONCE(*(u32 *)((char *)vbh + off), val);
	vbh_put_dev(vbh);
	return 0;
}

static int vbh_budget_get(void *data, u64 *val)
{
	return vbh_u32_get(data, val, offsetof(struct vbh, hint_budget));
}

static int vbh_budget_set(void *data, u64 val)
{
	return vbh_u32_set(data, val, offsetof(struct vbh, hint_budget));
}
DEFINE_DEBUGFS_ATTRIBUTE(vbh_budget_fops, vbh_budget_get, vbh_budget_set,
			 "%llu\n");

static int vbh_next_get(void *data, u64 *val)
{
	return vbh_u32_get(data, val, offsetof(struct vbh, hint_next));
}

static int vbh_next_set(void *data, u64 val)
{
	return vbh_u32_set(data, val, offsetof(struct vbh, hint_next));
}
DEFINE_DEBUGFS_ATTRIBUTE(vbh_next_fops, vbh_next_get, vbh_next_set,
			 "%llu\n");

/* remove (asynchronous: the driver's remove may wait on the "host") */
static int vbh_remove_set(void *data, u64 val)
{
	struct vbh_slot *slot = data;
	int err = 0;

	if (val != 1)
		return -EINVAL;
	mutex_lock(&slot->lock);
	if (!slot->registered)
		err = -ENODEV;
	else
		queue_work(slot->wq, &slot->remove_work);
	mutex_unlock(&slot->lock);
	return err;
}
DEFINE_DEBUGFS_ATTRIBUTE(vbh_remove_fops, NULL, vbh_remove_set, "%llu\n");

static int vbh_add_set(void *data, u64 val)
{
	struct vbh_slot *slot = data;
	int err;

	if (val != 1)
		return -EINVAL;
	mutex_lock(&slot->lock);
	err = vbh_add(slot);
	mutex_unlock(&slot->lock);
	return err;
}
DEFINE_DEBUGFS_ATTRIBUTE(vbh_add_fops, NULL, vbh_add_set, "%llu\n");

/* ---- module ------------------------------------------------------------ */

static void vbh_slot_exit(struct vbh_slot *slot)
{
	struct vbh *vbh;

	debugfs_remove_recursive(slot->dir);
	vbh = vbh_get_dev(slot);
	if (vbh) {
		/* let the driver's remove finish: answer everything */
		spin_lock_irq(&vbh->lock);
		vbh->fault = VBH_F_NONE;
		spin_unlock_irq(&vbh->lock);
		vbh_kick_all(vbh);
		vbh_put_dev(vbh);
	}
	queue_work(slot->wq, &slot->remove_work);
	flush_work(&slot->remove_work);
	destroy_workqueue(slot->wq);
	if (slot->dev)
		put_device(&slot->dev->vdev.dev);
}

static int vbh_slot_init(struct vbh_slot *slot, unsigned int n)
{
	char name[16];
	int err;

	slot->n = n;
	mutex_init(&slot->lock);
	INIT_WORK(&slot->remove_work, vbh_remove_work);
	slot->wq = alloc_workqueue("vbhost%u", WQ_UNBOUND, 0, n);
	if (!slot->wq)
		return -ENOMEM;
	mutex_lock(&slot->lock);
	err = vbh_add(slot);
	mutex_unlock(&slot->lock);
	if (err) {
		destroy_workqueue(slot->wq);
		return err;
	}
	snprintf(name, sizeof(name), "%u", n);
	slot->dir = debugfs_create_dir(name, vbh_debugfs);
	debugfs_create_file("state", 0444, slot->dir, slot, &vbh_state_fops);
	debugfs_create_file("stats", 0444, slot->dir, slot, &vbh_stats_fops);
	debugfs_create_file("fault", 0644, slot->dir, slot, &vbh_fault_fops);
	debugfs_create_file_unsafe("target", 0644, slot->dir, slot,
				   &vbh_target_fops);
	debugfs_create_file_unsafe("stats_period_ms", 0644, slot->dir, slot,
				   &vbh_period_fops);
	debugfs_create_file_unsafe("cmd_id", 0644, slot->dir, slot,
				   &vbh_cmd_id_fops);
	debugfs_create_file_unsafe("hint_budget", 0644, slot->dir, slot,
				   &vbh_budget_fops);
	debugfs_create_file_unsafe("hint_next", 0644, slot->dir, slot,
				   &vbh_next_fops);
	debugfs_create_file_unsafe("remove", 0200, slot->dir, slot,
				   &vbh_remove_fops);
	debugfs_create_file_unsafe("add", 0200, slot->dir, slot,
				   &vbh_add_fops);
	return 0;
}

static int __init vbh_init(void)
{
	unsigned int i;
	int p, err;

	p = match_string(vbh_profile_names, ARRAY_SIZE(vbh_profile_names),
			 profile);
	if (p < 0) {
		pr_err("vbhost: unknown profile=%s\n", profile);
		return -EINVAL;
	}
	vbh_profile_param = p;
	if (hint_queue_size && (hint_queue_size < 2 ||
				hint_queue_size > VBH_MAX_QSIZE ||
				!is_power_of_2(hint_queue_size))) {
		pr_err("vbhost: hint_queue_size=%u not a power of two 2-%u\n",
		       hint_queue_size, VBH_MAX_QSIZE);
		return -EINVAL;
	}
	if (!instances || instances > 8) {
		pr_err("vbhost: instances=%u out of range 1-8\n", instances);
		return -EINVAL;
	}
	vbh_slots = kcalloc(instances, sizeof(*vbh_slots), GFP_KERNEL);
	if (!vbh_slots)
		return -ENOMEM;
	vbh_root = root_device_register("vbhost");
	if (IS_ERR(vbh_root)) {
		err = PTR_ERR(vbh_root);
		goto free;
	}
	vbh_debugfs = debugfs_create_dir("vbhost", NULL);
	for (i = 0; i < instances; i++) {
		err = vbh_slot_init(&vbh_slots[i], i);
		if (err)
			goto undo;
		vbh_nr_slots++;
	}
	pr_info("vbhost: %u balloon device(s), profile %s\n", instances,
		vbh_profile_names[p]);
	return 0;
undo:
	while (vbh_nr_slots)
		vbh_slot_exit(&vbh_slots[--vbh_nr_slots]);
	debugfs_remove_recursive(vbh_debugfs);
	root_device_unregister(vbh_root);
free:
	kfree(vbh_slots);
	return err;
}

static void __exit vbh_exit(void)
{
	while (vbh_nr_slots)
		vbh_slot_exit(&vbh_slots[--vbh_nr_slots]);
	debugfs_remove_recursive(vbh_debugfs);
	root_device_unregister(vbh_root);
	kfree(vbh_slots);
}

module_init(vbh_init);
module_exit(vbh_exit);
MODULE_DESCRIPTION("Programmable virtio balloon device for testing balloon drivers");
MODULE_LICENSE("GPL");
