// SPDX-License-Identifier: GPL-2.0-only
/*
 * vballoon: free page hinting (VIRTIO_BALLOON_F_FREE_PAGE_HINT).
 *
 * During a precopy live migration the host tells the guest, through the
 * free_page_hint_cmd_id configuration field, that a new round of sending
 * memory began.  The guest answers with that id on the free-page queue,
 * then with blocks of memory it does not use: the host skips them in the
 * round.  To keep a hinted block from being used meanwhile, the guest
 * allocates it and holds ("parks") it until the host says the migration
 * is over (DONE), or until the guest needs the memory back (the shrinker
 * below).
 *
 * Command ids (virtio 1.2, 5.5.6.4): 0 is STOP (the host is not taking
 * hints now), 1 is DONE (hints are over: free what was hinted), any
 * other value opens a round of hints.  vb_hint_next() turns the id the
 * host shows and the one the driver acted on last into what to do.
 *
 * One run, in the hint work (never two at once):
 *   1. the id, as a 4-byte outbuf;
 *   2. blocks of the largest buddy order, each an inbuf, allocated with
 *      no reclaim at all (no direct reclaim, no kswapd, no OOM, no
 *      reserves, no warning): hinting only takes memory nobody uses;
 *   3. until an allocation fails, the host shows another id, or the
 *      ring is full and the host returns nothing for VB_HINT_WAIT_MS;
 *      one descriptor always stays free for the next outbuf;
 *   4. STOP (id 0) as an outbuf.
 *
 * Parked blocks are on @ring while the host holds their buffer, on @held
 * once it returned it.  The shrinker gives back only @held blocks, so a
 * block is never reused while a host might still act on its hint; DONE
 * frees @held and waits (bounded) for @ring.  Whatever is still parked
 * when the device stops is freed after its reset, when the host can no
 * longer touch a buffer.
 */

#include <linux/gfp.h>
#include <linux/jiffies.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <linux/sched.h>

#include "core.h"

/*
 * Hint blocks: the largest buddy order (4 MiB on x86), so that a hint
 * covers as much as one allocation can; upstream Linux does the same.
 */
#define VB_HINT_ORDER	VB_MAX_ORDER

/*
 * No reclaim of any kind (neither __GFP_DIRECT_RECLAIM nor
 * __GFP_KSWAPD_RECLAIM), no emergency reserves, no warning: a block
 * is hinted only if it is free for the taking.
 */
#define VB_HINT_GFP	(__GFP_NORETRY | __GFP_NOWARN | __GFP_NOMEMALLOC)

/* Longest wait for the host to return a buffer, when we need room. */
#define VB_HINT_WAIT_MS	1000U

/*
 * The debugfs value of each state of hinting.  Scripts and the admin
 * guide know these names: change none.
 */
VISIBLE_IF_KUNIT const char * const vb_hint_state_names[VB_HINT_NR] = {
	[VB_HINT_OFF] = "off",
	[VB_HINT_NOT_OFFERED] = "not_offered",
	[VB_HINT_STOPPED] = "stopped",
	[VB_HINT_FAILED] = "failed",
	[VB_HINT_IDLE] = "idle",
	[VB_HINT_RUNNING] = "hinting",
	[VB_HINT_HOLDING] = "holding",
};
EXPORT_SYMBOL_IF_KUNIT(vb_hint_state_names);

const char *vb_hint_state_name(enum vb_hint_state state)
{
	return state < VB_HINT_NR ? vb_hint_state_names[state] : "?";
}

/**
 * vb_hint_next() - what a command id from the host asks for
 * @cur_id: the id the driver acted on last (VBALLOON_CMD_ID_STOP at first)
 * @new_id: the id in the configuration space now
 *
 * Any value is possible from the host; none is refused.  DONE always
 * frees (again, if need be: freeing nothing is harmless), STOP ends a
 * run, an id other than the last one starts a run.
 *
 * Return: the action; a run in progress goes on only while this is
 * %VB_HINT_ACT_NONE for its id.
 */
VISIBLE_IF_KUNIT enum vb_hint_action vb_hint_next(u32 cur_id, u32 new_id)
{
	if (new_id == VBALLOON_CMD_ID_DONE)
		return cur_id == VBALLOON_CMD_ID_DONE ? VB_HINT_ACT_NONE :
							VB_HINT_ACT_FREE;
	if (new_id == VBALLOON_CMD_ID_STOP)
		return cur_id == VBALLOON_CMD_ID_STOP ? VB_HINT_ACT_NONE :
							VB_HINT_ACT_STOP;
	return new_id == cur_id ? VB_HINT_ACT_NONE : VB_HINT_ACT_RUN;
}
EXPORT_SYMBOL_IF_KUNIT(vb_hint_next);

static struct vballoon *vb_of_hint(struct vb_hinting *h)
{
	return container_of(h, struct vballoon, hint);
}

static void vb_hint_set_state(struct vb_hinting *h, enum vb_hint_state s)
{
	WRITE_ONCE(h->state, s);
}

/* Idle or holding, by what is parked. */
static void vb_hint_settle_state(struct vb_hinting *h)
{
	unsigned long flags;
	bool parked;

	spin_lock_irqsave(&h->lock, flags);
	parked = h->nr_ring || h->nr_held;
	spin_unlock_irqrestore(&h->lock, flags);
	vb_hint_set_state(h, parked ? VB_HINT_HOLDING : VB_HINT_IDLE);
}

/*
 * Take what the host returned off the ring: our outbufs become free for
 * the next id, blocks move from @ring to @held.  The virtio core hands
 * back only tokens we gave it, once each.
 */
static void vb_hint_reap(struct vb_hinting *h)
{
	unsigned int len;
	void *token;

	lockdep_assert_held(&h->lock);
	while ((token = virtqueue_get_buf(h->vq, &len))) {
		if (token == &h->cmd_start) {
			h->start_queued = false;
		} else if (token == &h->cmd_stop) {
			h->stop_queued = false;
		} else {
			struct page *page = token;

			list_move_tail(&page->lru, &h->held);
			WRITE_ONCE(h->nr_ring, h->nr_ring - 1);
			WRITE_ONCE(h->nr_held, h->nr_held + 1);
		}
	}
}

/* Reap; true when at least @need descriptors are free. */
static bool vb_hint_has_room(struct vb_hinting *h, unsigned int need)
{
	unsigned long flags;
	bool room;

	spin_lock_irqsave(&h->lock, flags);
	vb_hint_reap(h);
	room = virtqueue_get_vring_size(h->vq) - h->nr_ring -
	       h->start_queued - h->stop_queued >= need;
	spin_unlock_irqrestore(&h->lock, flags);
	return room;
}

/* May the run go on sending?  Not once the device stops or is lost. */
static bool vb_hint_usable(struct vballoon *vb)
{
	return READ_ONCE(vb->hint.open) && !READ_ONCE(vb->host_lost) &&
	       !virtqueue_is_broken(vb->hint.vq);
}

/*
 * Wait, at most VB_HINT_WAIT_MS, until @need descriptors are free.
 * False when they are not (a full ring the host does not drain, or the
 * device going away).
 */
static bool vb_hint_wait_room(struct vballoon *vb, unsigned int need)
{
	struct vb_hinting *h = &vb->hint;

	if (vb_hint_has_room(h, need))
		return true;
	wait_event_timeout(h->wq, vb_hint_has_room(h, need) ||
			   !vb_hint_usable(vb),
			   msecs_to_jiffies(VB_HINT_WAIT_MS));
	return vb_hint_usable(vb) && vb_hint_has_room(h, need);
}

/*
 * Put command id @id on the ring as an outbuf: @buf with @queued, the
 * one of the two command buffers (start, stop) that carries it.
 */
static int vb_hint_send_id(struct vballoon *vb, __le32 *buf, bool *queued,
			   u32 id)
{
	struct vb_hinting *h = &vb->hint;
	struct scatterlist sg;
	unsigned long flags;
	bool kick = false;
	int err;

	if (!vb_hint_wait_room(vb, 1))
		return -ENOSPC;
	spin_lock_irqsave(&h->lock, flags);
	if (!h->open || READ_ONCE(vb->host_lost)) {
		err = -ENODEV;
	} else if (*queued) {
		err = -EBUSY;	/* the host still holds the last one */
	} else {
		*buf = cpu_to_le32(id);
		sg_init_one(&sg, buf, sizeof(*buf));
		err = virtqueue_add_outbuf(h->vq, &sg, 1, buf, GFP_ATOMIC);
		if (!err) {
			*queued = true;
			kick = virtqueue_kick_prepare(h->vq);
		}
	}
	spin_unlock_irqrestore(&h->lock, flags);
	if (kick)
		virtqueue_notify(h->vq);
	return err;
}

/* Put @page (a hint block) on the ring and park it on @ring. */
static int vb_hint_send_block(struct vballoon *vb, struct page *page)
{
	struct vb_hinting *h = &vb->hint;
	struct scatterlist sg;
	unsigned long flags;
	bool kick = false;
	int err;

	sg_init_table(&sg, 1);
	sg_set_page(&sg, page, PAGE_SIZE << VB_HINT_ORDER, 0);
	spin_lock_irqsave(&h->lock, flags);
	if (!h->open || READ_ONCE(vb->host_lost)) {
		err = -ENODEV;
	} else {
		err = virtqueue_add_inbuf(h->vq, &sg, 1, page, GFP_ATOMIC);
		if (!err) {
			list_add_tail(&page->lru, &h->ring);
			WRITE_ONCE(h->nr_ring, h->nr_ring + 1);
			kick = virtqueue_kick_prepare(h->vq);
		}
	}
	spin_unlock_irqrestore(&h->lock, flags);
	if (kick)
		virtqueue_notify(h->vq);
	return err;
}

static u32 vb_hint_host_id(struct vb_hinting *h)
{
	unsigned long flags;
	u32 id;

	spin_lock_irqsave(&h->lock, flags);
	id = h->host_id;
	spin_unlock_irqrestore(&h->lock, flags);
	return id;
}

/* One round of hints for command id @id; see the top of this file. */
static void vb_hint_run(struct vballoon *vb, u32 id)
{
	struct vb_hinting *h = &vb->hint;
	struct page *page;
	int err;

	vb_count(vb, VB_CNT_HINT_RUNS, 1);
	vb_hint_set_state(h, VB_HINT_RUNNING);
	err = vb_hint_send_id(vb, &h->cmd_start, &h->start_queued, id);
	if (err) {
		vb_count(vb, VB_CNT_HINT_HOST_STALLS, 1);
		dev_warn_ratelimited(&vb->vdev->dev,
				     "free page hinting: cannot send command id %u (%d), round skipped\n",
				     id, err);
		goto settle;
	}

	for (;;) {
		if (!vb_hint_usable(vb) ||
		    vb_hint_next(id, vb_hint_host_id(h)) != VB_HINT_ACT_NONE)
			break;
		/* This block and, always, one for the next command id. */
		if (!vb_hint_wait_room(vb, 2)) {
			if (vb_hint_usable(vb))
				vb_count(vb, VB_CNT_HINT_HOST_STALLS, 1);
			break;
		}
		page = alloc_pages(VB_HINT_GFP, VB_HINT_ORDER);
		if (!page) {
			vb_count(vb, VB_CNT_HINT_ALLOC_STOPS, 1);
			break;
		}
		if (vb_hint_send_block(vb, page)) {
			__free_pages(page, VB_HINT_ORDER);
			break;
		}
		vb_count(vb, VB_CNT_HINTED_BLOCKS, 1);
		vb_count(vb, VB_CNT_HINTED_BYTES, PAGE_SIZE << VB_HINT_ORDER);
		cond_resched();
	}

	if (vb_hint_usable(vb) &&
	    vb_hint_send_id(vb, &h->cmd_stop, &h->stop_queued,
			    VBALLOON_CMD_ID_STOP))
		vb_count(vb, VB_CNT_HINT_HOST_STALLS, 1);
settle:
	vb_hint_settle_state(h);
}

/* Free every block on @list, holding no lock. */
static unsigned long vb_hint_free_list(struct list_head *list)
{
	struct page *page, *next;
	unsigned long n = 0;

	list_for_each_entry_safe(page, next, list, lru) {
		list_del(&page->lru);
		__free_pages(page, VB_HINT_ORDER);
		n++;
	}
	return n;
}

/* Take up to @max blocks off @held, into @out; returns how many. */
static unsigned long vb_hint_take_held(struct vb_hinting *h,
				       struct list_head *out,
				       unsigned long max)
{
	struct page *page, *next;
	unsigned long n = 0;

	lockdep_assert_held(&h->lock);
	list_for_each_entry_safe(page, next, &h->held, lru) {
		if (n == max)
			break;
		list_move(&page->lru, out);
		n++;
	}
	WRITE_ONCE(h->nr_held, h->nr_held - n);
	return n;
}

/*
 * DONE: give every parked block back.  Blocks whose buffer the host
 * still holds are waited for (@wait), at most VB_HINT_WAIT_MS; any left
 * then are freed as the host returns them (vb_hint_callback() queues the
 * work again while the id stays DONE), or by the shrinker or the reset.
 */
static void vb_hint_release(struct vballoon *vb, bool wait)
{
	struct vb_hinting *h = &vb->hint;
	unsigned long flags, n;
	LIST_HEAD(pages);

	if (wait && vb_hint_usable(vb))
		wait_event_timeout(h->wq, !vb_hint_usable(vb) ||
				   (vb_hint_has_room(h, 0) && !READ_ONCE(h->nr_ring)),
				   msecs_to_jiffies(VB_HINT_WAIT_MS));
	spin_lock_irqsave(&h->lock, flags);
	vb_hint_reap(h);
	vb_hint_take_held(h, &pages, ULONG_MAX);
	spin_unlock_irqrestore(&h->lock, flags);
	n = vb_hint_free_list(&pages);
	vb_count(vb, VB_CNT_HINT_FREED_BLOCKS, n);
	vb_hint_settle_state(h);
}

static void vb_hint_work_fn(struct work_struct *work)
{
	struct vb_hinting *h = container_of(work, struct vb_hinting, work);
	struct vballoon *vb = vb_of_hint(h);
	u32 id = vb_hint_host_id(h);
	enum vb_hint_action act = vb_hint_next(h->cur_id, id);

	if (act == VB_HINT_ACT_NONE) {
		/* Still DONE: blocks the host returned late go back now. */
		if (id == VBALLOON_CMD_ID_DONE)
			vb_hint_release(vb, false);
		return;
	}
	WRITE_ONCE(h->cur_id, id);
	switch (act) {
	case VB_HINT_ACT_RUN:
		vb_hint_run(vb, id);
		break;
	case VB_HINT_ACT_FREE:
		vb_hint_release(vb, true);
		break;
	default:
		/* STOP: a run, if one was going, saw it and ended. */
		break;
	}
}

/**
 * vb_hint_config_changed() - read the command id after a config change
 * @vb: the device; called by the configuration work, which may sleep
 */
void vb_hint_config_changed(struct vballoon *vb)
{
	struct vb_hinting *h = &vb->hint;
	unsigned long flags;
	u32 id;

	if (!h->negotiated)
		return;
	virtio_cread_le(vb->vdev, struct vballoon_config,
			free_page_hint_cmd_id, &id);
	spin_lock_irqsave(&h->lock, flags);
	if (h->open && id != h->host_id) {
		h->host_id = id;
		vb_count(vb, VB_CNT_HINT_CMD_IDS, 1);
		/* Wakes a run that waits for room: it looks at the id again. */
		wake_up_all(&h->wq);
		queue_work(h->workq, &h->work);
	}
	spin_unlock_irqrestore(&h->lock, flags);
}

/**
 * vb_hint_held_pages() - guest pages parked by hinting, for the shrinkers
 * @vb: the device
 *
 * Return: pages of the blocks hinted and not given back yet.
 */
unsigned long vb_hint_held_pages(struct vballoon *vb)
{
	return (READ_ONCE(vb->hint.nr_held) + READ_ONCE(vb->hint.nr_ring)) <<
	       VB_HINT_ORDER;
}

/*
 * Blocks still on @ring count too: the host may have returned them since
 * the last reap, which only the scan does once a round is over.  The
 * scan then gives back only what it finds returned.
 */
static unsigned long vb_hint_shrink_count(struct shrinker *s,
					  struct shrink_control *sc)
{
	return vb_hint_held_pages(vb_shrinker_private(s));
}

static unsigned long vb_hint_shrink_scan(struct shrinker *s,
					 struct shrink_control *sc)
{
	struct vballoon *vb = vb_shrinker_private(s);
	struct vb_hinting *h = &vb->hint;
	unsigned long flags, n;
	LIST_HEAD(pages);

	spin_lock_irqsave(&h->lock, flags);
	if (h->vq && h->open)
		vb_hint_reap(h);
	n = vb_hint_take_held(h, &pages,
			      DIV_ROUND_UP(sc->nr_to_scan, 1UL << VB_HINT_ORDER));
	spin_unlock_irqrestore(&h->lock, flags);
	if (!n)
		return SHRINK_STOP;
	vb_hint_free_list(&pages);
	vb_count(vb, VB_CNT_HINT_SHRUNK_BLOCKS, n);
	dev_info_ratelimited(&vb->vdev->dev,
			     "memory pressure: %lu KiB of hinted free memory given back early\n",
			     n << (VB_HINT_ORDER + PAGE_SHIFT - 10));
	return n << VB_HINT_ORDER;
}

/*
 * Buffers came back.  After DONE nobody waits for them any more: the
 * hint work frees the blocks the host returned late, so that they are
 * not parked until the next DONE or memory pressure.
 */
void vb_hint_callback(struct virtqueue *vq)
{
	struct vballoon *vb = vq->vdev->priv;
	struct vb_hinting *h = &vb->hint;
	unsigned long flags;

	wake_up_all(&h->wq);
	spin_lock_irqsave(&h->lock, flags);
	if (h->open && h->nr_ring &&
	    READ_ONCE(h->cur_id) == VBALLOON_CMD_ID_DONE)
		queue_work(h->workq, &h->work);
	spin_unlock_irqrestore(&h->lock, flags);
}

/**
 * vb_hint_setup() - decide, at probe, whether hinting runs
 * @vb: the device, its features negotiated
 */
void vb_hint_setup(struct vballoon *vb)
{
	struct vb_hinting *h = &vb->hint;

	spin_lock_init(&h->lock);
	init_waitqueue_head(&h->wq);
	INIT_LIST_HEAD(&h->ring);
	INIT_LIST_HEAD(&h->held);
	INIT_WORK(&h->work, vb_hint_work_fn);
	h->negotiated = virtio_has_feature(vb->vdev,
					   VBALLOON_F_FREE_PAGE_HINT);
	if (h->negotiated)
		h->state = VB_HINT_STOPPED;
	else if (!READ_ONCE(vb_param_free_page_hinting))
		h->state = VB_HINT_OFF;
	else
		h->state = VB_HINT_NOT_OFFERED;
}

/**
 * vb_hint_start() - accept command ids
 * @vb: the device, its queues set up; before DRIVER_OK
 *
 * A shrinker that cannot be registered leaves the device running
 * without hinting (state "failed", said once): hinting without a way to
 * give memory back under pressure is not worth it.
 */
void vb_hint_start(struct vballoon *vb)
{
	struct vb_hinting *h = &vb->hint;
	char name[32];
	unsigned long flags;
	int err;

	if (!h->negotiated)
		return;
	/*
	 * A round allocates and sends blocks without sleeping for long: on
	 * a shared per-CPU workqueue it would hold back the balloon's own
	 * work items (inflation, statistics, configuration) queued behind
	 * it on that CPU until the round ends.
	 */
	h->workq = alloc_workqueue("vballoon-hint-%s",
				   WQ_FREEZABLE | WQ_CPU_INTENSIVE, 0,
				   dev_name(&vb->vdev->dev));
	if (!h->workq) {
		dev_warn(&vb->vdev->dev,
			 "free page hinting off: cannot allocate its workqueue\n");
		vb_hint_set_state(h, VB_HINT_FAILED);
		return;
	}
	snprintf(name, sizeof(name), "hint-%s", dev_name(&vb->vdev->dev));
	err = vb_shrinker_register(&h->shrinker, vb_hint_shrink_count,
				   vb_hint_shrink_scan, vb, name);
	if (err) {
		dev_warn(&vb->vdev->dev,
			 "free page hinting off: cannot register its shrinker (%d)\n",
			 err);
		vb_hint_set_state(h, VB_HINT_FAILED);
		goto err_destroy_wq;
	}
	h->shrinker_registered = true;

	WRITE_ONCE(h->cur_id, VBALLOON_CMD_ID_STOP);
	spin_lock_irqsave(&h->lock, flags);
	h->host_id = VBALLOON_CMD_ID_STOP;
	h->start_queued = false;
	h->stop_queued = false;
	h->open = true;
	spin_unlock_irqrestore(&h->lock, flags);
	vb_hint_set_state(h, VB_HINT_IDLE);
	return;

err_destroy_wq:
	destroy_workqueue(h->workq);
	h->workq = NULL;
}

/**
 * vb_hint_close() - end hinting: no new run, the one going ends
 * @vb: the device, starting to stop
 *
 * The caller then cancels the configuration work and the hint work.
 */
void vb_hint_close(struct vballoon *vb)
{
	struct vb_hinting *h = &vb->hint;
	unsigned long flags;

	spin_lock_irqsave(&h->lock, flags);
	h->open = false;
	spin_unlock_irqrestore(&h->lock, flags);
	wake_up_all(&h->wq);
	cancel_work_sync(&h->work);
}

/**
 * vb_hint_stop() - give every parked block back
 * @vb: the device, closed and reset (the host holds no buffer any more),
 *	its queues not deleted yet
 */
void vb_hint_stop(struct vballoon *vb)
{
	struct vb_hinting *h = &vb->hint;
	unsigned long flags, n;
	LIST_HEAD(pages);
	void *token;

	if (!h->negotiated)
		return;
	/* No scan runs after this returns. */
	if (h->shrinker_registered) {
		vb_shrinker_unregister(&h->shrinker);
		h->shrinker_registered = false;
	}
	/* Closed: nothing queues the work any more, and it was cancelled. */
	if (h->workq) {
		destroy_workqueue(h->workq);
		h->workq = NULL;
	}
	spin_lock_irqsave(&h->lock, flags);
	WARN_ON_ONCE(h->open);
	/* Tokens only: blocks are freed from the lists below. */
	while ((token = virtqueue_detach_unused_buf(h->vq)))
		;
	list_splice_init(&h->ring, &pages);
	list_splice_init(&h->held, &pages);
	WRITE_ONCE(h->nr_ring, 0);
	WRITE_ONCE(h->nr_held, 0);
	h->start_queued = false;
	h->stop_queued = false;
	spin_unlock_irqrestore(&h->lock, flags);
	n = vb_hint_free_list(&pages);
	vb_count(vb, VB_CNT_HINT_FREED_BLOCKS, n);
	if (h->state != VB_HINT_FAILED)
		vb_hint_set_state(h, VB_HINT_STOPPED);
}
