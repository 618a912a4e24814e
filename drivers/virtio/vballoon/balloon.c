// SPDX-License-Identifier: GPL-2.0-only
/*
 * vballoon: moving pages between the guest and the host.
 *
 * Inflation allocates pages (2 MiB blocks first, then smaller blocks,
 * each split into order-0 pages, then single pages; alloc.c) before it
 * takes any lock, sends their frame numbers to the host in one request
 * per batch (host.c) without waiting, and allocates the next batch while
 * the host works: up to VB_INFLATE_SLOTS requests are in flight.  A
 * batch's pages go on the balloon list, where compaction may move them,
 * once the host has answered for them.  Deflation takes pages off the list, tells the host and
 * frees them; with MUST_TELL_HOST the host hears of them before the
 * guest may touch them again.
 */

#include <linux/delay.h>
#include <linux/ktime.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/device.h>
#include <linux/scatterlist.h>
#include <linux/sched.h>
#include <linux/vmstat.h>

#include "core.h"

/*
 * Host target (4 KiB frames) to guest pages of 1 << @frame_shift frames,
 * rounded up so that a target that is not a whole number of guest pages
 * settles instead of swinging between the two neighbouring sizes.
 */
VISIBLE_IF_KUNIT unsigned long vb_target_pages(u32 num_frames,
					       unsigned int frame_shift)
{
	return (unsigned long)(((u64)num_frames + BIT_ULL(frame_shift) - 1) >>
			       frame_shift);
}
EXPORT_SYMBOL_IF_KUNIT(vb_target_pages);

/*
 * Guest pages of 1 << @frame_shift frames to the 4 KiB frames reported
 * in "actual", saturating.  Compared before shifting, so that no page
 * count can wrap to a small number of frames.
 */
VISIBLE_IF_KUNIT u32 vb_actual_frames(unsigned long pages,
				      unsigned int frame_shift)
{
	if (pages > (U32_MAX >> frame_shift))
		return U32_MAX;
	return (u32)pages << frame_shift;
}
EXPORT_SYMBOL_IF_KUNIT(vb_actual_frames);

/* Positive: pages to inflate; negative: pages to deflate. */
VISIBLE_IF_KUNIT long vb_pages_diff(unsigned long target,
				    unsigned long current_pages)
{
	unsigned long delta;

	if (target >= current_pages) {
		delta = target - current_pages;
		return delta > LONG_MAX ? LONG_MAX : (long)delta;
	}
	delta = current_pages - target;
	return delta > LONG_MAX ? -LONG_MAX : -(long)delta;
}
EXPORT_SYMBOL_IF_KUNIT(vb_pages_diff);

/*
 * Write the 1 << @frame_shift frames of guest page @pfn to @out.  A frame
 * number the protocol cannot carry is refused, never truncated: the host
 * would otherwise discard someone else's memory.
 */
VISIBLE_IF_KUNIT int vb_encode_pfns(struct virtio_device *vdev,
				    __virtio32 *out, unsigned long pfn,
				    unsigned int frame_shift)
{
	u32 first;
	unsigned int i;

	/* Checked before shifting, so no bits can be lost on the way. */
	if (pfn > (U32_MAX >> frame_shift))
		return -ERANGE;
	first = (u32)pfn << frame_shift;
	for (i = 0; i < BIT(frame_shift); i++)
		out[i] = cpu_to_virtio32(vdev, first + i);
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(vb_encode_pfns);

/* Doubling retry delay after an allocation shortfall, capped. */
VISIBLE_IF_KUNIT unsigned int vb_next_backoff(unsigned int backoff_ms)
{
	if (backoff_ms < VB_BACKOFF_MIN_MS)
		return VB_BACKOFF_MIN_MS;
	if (backoff_ms >= VB_BACKOFF_MAX_MS / 2)
		return VB_BACKOFF_MAX_MS;
	return backoff_ms * 2;
}
EXPORT_SYMBOL_IF_KUNIT(vb_next_backoff);

unsigned long vb_read_target(struct vballoon *vb)
{
	u32 num_frames;

	virtio_cread_le(vb->vdev, struct vballoon_config, num_pages,
			&num_frames);
	return vb_target_pages(num_frames, VB_FRAME_SHIFT);
}

unsigned long vb_balloon_pages(struct vballoon *vb)
{
	return atomic_long_read(&vb->num_pages);
}

void vb_report_actual(struct vballoon *vb)
{
	long pages;
	u32 actual, seen;

	mutex_lock(&vb->actual_lock);
	/* Pages the host has not answered for yet are not in it. */
	pages = (long)vb_balloon_pages(vb);
	/*
	 * Pairs with vb_inflate(), which counts pages in flight before it
	 * counts them the balloon's: read the other way round, a report
	 * between its two steps falls short for a moment, never over.
	 */
	smp_rmb();
	pages -= atomic_long_read(&vb->inflate_inflight);
	actual = vb_actual_frames(max(pages, 0L), VB_FRAME_SHIFT);
	virtio_cread_le(vb->vdev, struct vballoon_config, actual, &seen);
	if (seen != actual)
		virtio_cwrite_le(vb->vdev, struct vballoon_config, actual,
				 &actual);
	mutex_unlock(&vb->actual_lock);
}

void vb_queue_update(struct vballoon *vb, unsigned long delay)
{
	unsigned long flags;

	spin_lock_irqsave(&vb->stop_lock, flags);
	if (!vb->stopping)
		mod_delayed_work(system_freezable_wq, &vb->update_work, delay);
	spin_unlock_irqrestore(&vb->stop_lock, flags);
}

/*
 * The host may have moved the target (a configuration change, through
 * the config work since configuration reads may sleep, or the device
 * starting).  Deflation starts at once; inflation keeps a
 * back-off already pending, so that a storm of configuration interrupts
 * cannot make the driver hammer an allocator that just failed.  While
 * the balloon moves it holds a wakeup reference, so that an autosleeping
 * guest does not suspend halfway (released by vb_adjust_done()).
 */
void vb_target_changed(struct vballoon *vb)
{
	unsigned long target = vb_read_target(vb), flags;
	unsigned long pages = vb_balloon_pages(vb);

	spin_lock_irqsave(&vb->stop_lock, flags);
	if (!vb->stopping) {
		if (target != pages && !vb->adjusting) {
			vb->adjusting = true;
			pm_stay_awake(&vb->vdev->dev);
		}
		if (target < pages)
			mod_delayed_work(system_freezable_wq,
					 &vb->update_work, 0);
		else
			queue_delayed_work(system_freezable_wq,
					   &vb->update_work, 0);
	}
	spin_unlock_irqrestore(&vb->stop_lock, flags);
}

void vb_config_work_fn(struct work_struct *work)
{
	struct vballoon *vb = container_of(work, struct vballoon, config_work);

	vb_target_changed(vb);
	vb_hint_config_changed(vb);
}

/* The balloon reached its target, or cannot move: drop the wakeup. */
static void vb_adjust_done(struct vballoon *vb)
{
	unsigned long flags;

	spin_lock_irqsave(&vb->stop_lock, flags);
	if (vb->adjusting) {
		vb->adjusting = false;
		pm_relax(&vb->vdev->dev);
	}
	spin_unlock_irqrestore(&vb->stop_lock, flags);
}

/* A page allocated for inflation that never became the balloon's. */
static void vb_drop_new_page(struct page *page)
{
	list_del(&page->lru);
	if (PageOffline(page))
		__ClearPageOffline(page);
	__free_page(page);
}

/*
 * Given-back pages are counted (num_pages, deflated_pages) a chunk at a
 * time as they are freed, not once for a whole batch: an OOM notifier
 * waiting for @deflate_lock behind a large deflation watches
 * deflated_pages to see memory coming back (vb_oom_notify()).
 */
#define VB_GIVE_BACK_CHUNK	256

static void vb_count_given_back(struct vballoon *vb, unsigned long n)
{
	atomic_long_sub(n, &vb->num_pages);
	vb_count(vb, VB_CNT_DEFLATED_PAGES, n);
}

/*
 * Give @n pages the balloon held (on @pages, off the balloon list and
 * finalized) back to the guest.
 */
static void vb_give_back(struct vballoon *vb, struct list_head *pages,
			 unsigned long n)
{
	struct page *page, *next;
	unsigned long chunk = 0;
	u64 t0 = ktime_get_ns();

	list_for_each_entry_safe(page, next, pages, lru) {
		list_del(&page->lru);
		if (PageOffline(page))
			__ClearPageOffline(page);
		if (vb->adjust_managed)
			adjust_managed_page_count(page, 1);
		put_page(page);
		if (++chunk == VB_GIVE_BACK_CHUNK) {
			vb_count_given_back(vb, chunk);
			n -= chunk;
			chunk = 0;
		}
	}
	vb_count_given_back(vb, n);
	vb_count(vb, VB_CNT_DEFLATE_FREE_US,
		 div_u64(ktime_get_ns() - t0, NSEC_PER_USEC));
}

/*
 * Make @n pages on @pages the balloon's (the host has them, or may): out
 * of MemTotal if the guest cannot take them back on its own.
 */
static void vb_take(struct vballoon *vb, struct list_head *pages,
		    unsigned long n)
{
	struct page *page;

	if (vb->adjust_managed)
		list_for_each_entry(page, pages, lru)
			adjust_managed_page_count(page, -1);
	atomic_long_add(n, &vb->num_pages);
}

/* Keep @n of the balloon's pages until the device is reset. */
static void vb_to_limbo(struct vballoon *vb, struct list_head *pages,
			unsigned long n)
{
	spin_lock(&vb->limbo_lock);
	list_splice_init(pages, &vb->limbo);
	vb->nr_limbo += n;
	spin_unlock(&vb->limbo_lock);
}

/*
 * Up to @want pages off the balloon list onto @pages, a few at a time so
 * that interrupts are never off for long.  Pages isolated by compaction
 * are skipped.
 */
static unsigned long vb_dequeue(struct vballoon *vb, struct list_head *pages,
				unsigned long want)
{
	unsigned long got = 0, n, chunk;
	u64 t0 = ktime_get_ns();

	while (got < want) {
		chunk = min(want - got, 32UL);
		n = balloon_page_list_dequeue(&vb->b_dev_info, pages, chunk);
		got += n;
		if (n < chunk)
			break;
		cond_resched();
	}
	vb_count(vb, VB_CNT_DEFLATE_FREE_US,
		 div_u64(ktime_get_ns() - t0, NSEC_PER_USEC));
	return got;
}

/*
 * Wait until the host has answered @req, an inflation sent earlier, and
 * put its pages on the balloon list, where compaction and deflation can
 * reach them.  If the host broke or was given up on instead, the pages
 * stay the balloon's until the device is reset.
 */
static void vb_inflate_retire(struct vballoon *vb, struct vb_req *req)
{
	unsigned long n = req->nr_pages;
	struct page *page, *next;

	lockdep_assert_held(&vb->inflate_lock);
	if (!n)
		return;
	if (vb_settle(vb, req, MAX_SCHEDULE_TIMEOUT)) {
		vb_to_limbo(vb, &req->pages, n);
	} else {
		list_for_each_entry_safe(page, next, &req->pages, lru) {
			list_del(&page->lru);
			balloon_page_enqueue(&vb->b_dev_info, page);
		}
		vb_count(vb, VB_CNT_INFLATED_PAGES, n);
	}
	req->nr_pages = 0;
	atomic_long_sub(n, &vb->inflate_inflight);
}

/*
 * Wait for every inflation still with the host, oldest first, so that
 * all of the balloon's pages are on its list (or in limbo).  The update
 * work calls it before it deflates or goes idle, teardown before it
 * empties the balloon.
 */
void vb_inflate_settle(struct vballoon *vb)
{
	unsigned int i, slot;

	mutex_lock(&vb->inflate_lock);
	for (i = 0; i < VB_INFLATE_SLOTS; i++) {
		slot = (vb->inflate_next + i) % VB_INFLATE_SLOTS;
		vb_inflate_retire(vb, &vb->inflate_req[slot]);
	}
	mutex_unlock(&vb->inflate_lock);
}

/*
 * Put the pages of every request the host has already answered on the
 * balloon list, oldest first, without waiting: so that autodeflate can
 * reach them while the next batch is being allocated.
 */
static void vb_inflate_retire_answered(struct vballoon *vb)
{
	unsigned int i, slot;
	struct vb_req *req;

	mutex_lock(&vb->inflate_lock);
	for (i = 0; i < VB_INFLATE_SLOTS; i++) {
		slot = (vb->inflate_next + i) % VB_INFLATE_SLOTS;
		req = &vb->inflate_req[slot];
		if (!req->nr_pages)
			continue;
		if (!vb_req_answered(req))
			break;
		vb_inflate_retire(vb, req);
	}
	mutex_unlock(&vb->inflate_lock);
}

/*
 * Inflate by up to @want pages (at most one batch).  The pages are
 * allocated before any lock is taken, marked offline and sent; the host
 * discards them while the caller allocates the next batch.  They go on
 * the balloon list once the host has answered (vb_inflate_retire(): when
 * their slot is needed again, or by vb_inflate_settle()).  Returns the
 * number of pages sent.
 */
static unsigned long vb_inflate(struct vballoon *vb, unsigned long want)
{
	struct page *page, *next;
	unsigned int frames = 0;
	unsigned long taken = 0;
	u64 start = ktime_get_ns();
	struct vb_req *req;
	LIST_HEAD(pages);
	int err;

	want = min_t(unsigned long, want, vb->batch_pages);
	vb_inflate_retire_answered(vb);
	WRITE_ONCE(vb->inflater, current);
	vb_alloc_batch(vb, &pages, want);
	WRITE_ONCE(vb->inflater, NULL);
	vb_count(vb, VB_CNT_ALLOC_US,
		 div_u64(ktime_get_ns() - start, NSEC_PER_USEC));

	mutex_lock(&vb->inflate_lock);
	req = &vb->inflate_req[vb->inflate_next];
	/* Its frame array is reused: the host must have answered it. */
	vb_inflate_retire(vb, req);
	/* Pages just deflated may be among ours: the host hears that first. */
	if (vb_wait_deflates(vb))
		goto drop_pages;
	list_for_each_entry_safe(page, next, &pages, lru) {
		if (vb_encode_pfns(vb->vdev, req->pfns + frames,
				   page_to_pfn(page), VB_FRAME_SHIFT)) {
			vb_count(vb, VB_CNT_REFUSED_PFNS, 1);
			dev_warn_ratelimited(&vb->vdev->dev,
					     "page above the 16 TiB frame limit not ballooned\n");
			vb_drop_new_page(page);
			continue;
		}
		/* Offline before the host may discard it: dumps skip it. */
		__SetPageOffline(page);
		frames += VB_FRAMES_PER_PAGE;
		taken++;
	}

	err = vb_send(vb, req, frames, false, MAX_SCHEDULE_TIMEOUT);
	if (err == -ENODEV)
		goto drop_pages;
	if (err) {
		/* The host may discard these yet: keep them until reset. */
		vb_take(vb, &pages, taken);
		vb_to_limbo(vb, &pages, taken);
		mutex_unlock(&vb->inflate_lock);
		return 0;
	}
	atomic_long_add(taken, &vb->inflate_inflight);
	/*
	 * In flight before they count as the balloon's, so that a report of
	 * "actual" in between can only fall short (vb_report_actual()).
	 */
	smp_mb__after_atomic();
	vb_take(vb, &pages, taken);
	list_splice_init(&pages, &req->pages);
	req->nr_pages = taken;
	vb->inflate_next = (vb->inflate_next + 1) % VB_INFLATE_SLOTS;
	mutex_unlock(&vb->inflate_lock);

	if (taken < want)
		vb_count(vb, VB_CNT_ALLOC_SHORTFALLS, 1);
	return taken;

drop_pages:
	list_for_each_entry_safe(page, next, &pages, lru)
		vb_drop_new_page(page);
	mutex_unlock(&vb->inflate_lock);
	return 0;
}

/*
 * Deflate by up to @want pages, a batch per request.  Returns the pages
 * given back to the guest; fewer than asked when the balloon is empty,
 * pages are isolated for migration, or the host did not answer within
 * @timeout jiffies (MAX_SCHEDULE_TIMEOUT: wait).
 *
 * With MUST_TELL_HOST the pages wait on the request until the host has
 * answered; if it has not by @timeout they stay there (still the
 * balloon's, never back on the balloon list) and are given back by the
 * next call that finds the request answered.  Without it they are given
 * back first and the host hears of them afterwards.
 */
unsigned long vb_deflate(struct vballoon *vb, unsigned long want,
			 long timeout)
{
	struct vb_req *req = &vb->deflate_req;
	unsigned long done = 0, n;
	unsigned int frames;
	struct page *page;
	LIST_HEAD(pages);
	bool lost;
	int err;

	lockdep_assert_held(&vb->deflate_lock);

	while (done < want) {
		/* The frame array is ours again once the host returned it. */
		if (vb_settle(vb, req, timeout))
			break;
		if (req->nr_pages) {
			done += req->nr_pages;
			vb_give_back(vb, &req->pages, req->nr_pages);
			req->nr_pages = 0;
			continue;
		}

		lost = READ_ONCE(vb->host_lost);
		if (lost && vb->must_tell_host)
			break;
		n = vb_dequeue(vb, &pages,
			       min_t(unsigned long, want - done,
				     vb->batch_pages));
		if (!n)
			break;

		if (lost) {
			/* The device is gone; without MUST_TELL_HOST the
			 * guest may use the pages without telling it.
			 */
			vb_count(vb, VB_CNT_UNTOLD_PAGES, n);
			vb_give_back(vb, &pages, n);
			done += n;
			continue;
		}

		frames = 0;
		list_for_each_entry(page, &pages, lru) {
			/* Encoded when inflated, so it fits. */
			vb_encode_pfns(vb->vdev, req->pfns + frames,
				       page_to_pfn(page), VB_FRAME_SHIFT);
			frames += VB_FRAMES_PER_PAGE;
		}

		if (!vb->must_tell_host) {
			/*
			 * On the ring before the pages are free, so that an
			 * inflation that gets one of them again can wait for
			 * this request (vb_wait_deflates()).  Nothing to undo
			 * if it fails: the guest may reuse the pages anyway.
			 */
			vb_send(vb, req, frames, false, timeout);
			vb_give_back(vb, &pages, n);
			done += n;
			continue;
		}

		list_splice_init(&pages, &req->pages);
		req->nr_pages = n;
		err = vb_send(vb, req, frames, true, timeout);
		if (err == -ENODEV) {
			/* Never told and never will be: kept until reset. */
			vb_to_limbo(vb, &req->pages, req->nr_pages);
			req->nr_pages = 0;
		}
		if (err)
			break;
	}
	return done;
}

static bool vb_list_empty(struct vballoon *vb)
{
	struct balloon_dev_info *info = &vb->b_dev_info;
	unsigned long flags;
	bool empty;

	spin_lock_irqsave(&info->pages_lock, flags);
	empty = list_empty(&info->pages) && !info->isolated_pages;
	spin_unlock_irqrestore(&info->pages_lock, flags);
	return empty;
}

/*
 * Empty the balloon for teardown, telling the host, while it answers.
 * Called with the device stopping: nothing else inflates, and compaction
 * no longer migrates (it backs off once it sees the device stopping;
 * taking @migrate_lock waits for a migration already under way).  Pages
 * isolated by compaction are off the list for a moment; drop the lock so
 * that it can put them back, then try again.
 */
void vb_deflate_all(struct vballoon *vb)
{
	vb_inflate_settle(vb);
	mutex_lock(&vb->migrate_lock);
	mutex_unlock(&vb->migrate_lock);

	mutex_lock(&vb->deflate_lock);
	while (!READ_ONCE(vb->host_lost)) {
		if (vb_deflate(vb, ULONG_MAX, MAX_SCHEDULE_TIMEOUT))
			continue;
		if (vb_list_empty(vb) && !vb->deflate_req.nr_pages)
			break;
		mutex_unlock(&vb->deflate_lock);
		usleep_range(1000, 2000);
		mutex_lock(&vb->deflate_lock);
	}
	vb_settle(vb, &vb->deflate_req, MAX_SCHEDULE_TIMEOUT);
	mutex_unlock(&vb->deflate_lock);
}

/*
 * After the device was reset nothing of ours is on a ring: give every
 * page the balloon still holds back to the guest (a lost host cannot be
 * told; a reset device has forgotten them) and forget the requests.
 */
void vb_free_after_reset(struct vballoon *vb)
{
	struct vb_req *req;
	unsigned long n;
	unsigned int i;
	LIST_HEAD(pages);

	mutex_lock(&vb->migrate_lock);
	vb_req_reset(&vb->migrate_in);
	vb_req_reset(&vb->migrate_out);
	mutex_unlock(&vb->migrate_lock);

	mutex_lock(&vb->inflate_lock);
	for (i = 0; i < VB_INFLATE_SLOTS; i++) {
		req = &vb->inflate_req[i];
		vb_req_reset(req);
		/* Settled before the reset; a reset device forgot them anyway. */
		if (req->nr_pages) {
			atomic_long_sub(req->nr_pages, &vb->inflate_inflight);
			vb_count(vb, VB_CNT_UNTOLD_PAGES, req->nr_pages);
			vb_give_back(vb, &req->pages, req->nr_pages);
			req->nr_pages = 0;
		}
	}
	vb->inflate_next = 0;
	mutex_unlock(&vb->inflate_lock);

	mutex_lock(&vb->deflate_lock);
	vb_req_reset(&vb->deflate_req);
	if (vb->deflate_req.nr_pages) {
		vb_count(vb, VB_CNT_UNTOLD_PAGES, vb->deflate_req.nr_pages);
		vb_give_back(vb, &vb->deflate_req.pages,
			     vb->deflate_req.nr_pages);
		vb->deflate_req.nr_pages = 0;
	}
	while (!vb_list_empty(vb)) {
		n = vb_dequeue(vb, &pages, vb->batch_pages);
		if (n) {
			vb_count(vb, VB_CNT_UNTOLD_PAGES, n);
			vb_give_back(vb, &pages, n);
			continue;
		}
		mutex_unlock(&vb->deflate_lock);
		usleep_range(1000, 2000);
		mutex_lock(&vb->deflate_lock);
	}
	mutex_unlock(&vb->deflate_lock);

	spin_lock(&vb->limbo_lock);
	list_splice_init(&vb->limbo, &pages);
	n = vb->nr_limbo;
	vb->nr_limbo = 0;
	spin_unlock(&vb->limbo_lock);
	if (n) {
		vb_count(vb, VB_CNT_UNTOLD_PAGES, n);
		vb_give_back(vb, &pages, n);
	}
}

void vb_update_work_fn(struct work_struct *work)
{
	struct vballoon *vb = container_of(to_delayed_work(work),
					   struct vballoon, update_work);
	unsigned long want, done, hold = 0, delay = 0;
	long diff;

	if (READ_ONCE(vb->host_lost)) {
		vb_adjust_done(vb);
		return;
	}

	diff = vb_pages_diff(vb_read_target(vb), vb_balloon_pages(vb));
	if (diff > 0)
		hold = vb_hold_remaining(vb);
	/*
	 * Only a continuing inflation leaves batches with the host; before
	 * anything else the balloon's pages must all be on its list.
	 */
	if (diff <= 0 || hold)
		vb_inflate_settle(vb);
	if (hold) {
		/* Memory was just given back: do not take it straight again. */
		delay = hold;
	} else if (diff > 0) {
		want = min_t(unsigned long, diff, vb->batch_pages);
		done = vb_inflate(vb, want);
		/* The back-off is the update work's alone: no lock. */
		if (done < want) {
			vb_inflate_settle(vb);
			vb->backoff_ms = vb_next_backoff(vb->backoff_ms);
			delay = msecs_to_jiffies(vb->backoff_ms);
		} else {
			vb->backoff_ms = 0;
		}
	} else if (diff < 0) {
		want = min_t(unsigned long, -diff, vb->batch_pages);
		mutex_lock(&vb->deflate_lock);
		/* A slow host must not keep the OOM notifier out for long. */
		done = vb_deflate(vb, want, VB_WAIT_SLICE);
		mutex_unlock(&vb->deflate_lock);
		/* Isolated or unacknowledged pages: try again shortly. */
		if (done < want)
			delay = msecs_to_jiffies(VB_BACKOFF_MIN_MS);
		vb->backoff_ms = 0;
	}
	vb_report_actual(vb);

	if (!diff || READ_ONCE(vb->host_lost))
		vb_adjust_done(vb);
	else
		vb_queue_update(vb, delay);
}

#ifdef CONFIG_BALLOON_COMPACTION
/*
 * Compaction wants @page moved to @newpage: give the host @newpage and
 * take @page back.  Called with both pages locked and @page isolated.
 * Only one migration at a time, with requests of its own, so that it
 * never waits for a batch's lock; it does wait its turn on the ring.
 */
static int vb_migratepage(struct balloon_dev_info *info,
			  struct page *newpage, struct page *page,
			  enum migrate_mode mode)
{
	struct vballoon *vb = container_of(info, struct vballoon, b_dev_info);
	unsigned long flags;
	LIST_HEAD(old);
	int err;

	if (!mutex_trylock(&vb->migrate_lock))
		return -EAGAIN;
	if (vb_stopping(vb) || READ_ONCE(vb->host_lost) ||
	    vb_encode_pfns(vb->vdev, vb->migrate_in.pfns,
			   page_to_pfn(newpage), VB_FRAME_SHIFT)) {
		mutex_unlock(&vb->migrate_lock);
		return -EAGAIN;
	}

	if (vb_wait_deflates(vb)) {
		mutex_unlock(&vb->migrate_lock);
		return -EAGAIN;
	}
	__SetPageOffline(newpage);
	err = vb_send(vb, &vb->migrate_in, VB_FRAMES_PER_PAGE, true,
		      MAX_SCHEDULE_TIMEOUT);
	if (err == -ENODEV) {
		__ClearPageOffline(newpage);
		mutex_unlock(&vb->migrate_lock);
		return -EAGAIN;
	}

	/* From here on @newpage is the balloon's, answered or not. */
	get_page(newpage);
	if (vb->adjust_managed && page_zone(page) != page_zone(newpage)) {
		adjust_managed_page_count(page, 1);
		adjust_managed_page_count(newpage, -1);
	}
	spin_lock_irqsave(&info->pages_lock, flags);
	balloon_page_insert(info, newpage);
	info->isolated_pages--;
	__count_vm_event(BALLOON_MIGRATE);
	spin_unlock_irqrestore(&info->pages_lock, flags);

	vb_encode_pfns(vb->vdev, vb->migrate_out.pfns, page_to_pfn(page),
		       VB_FRAME_SHIFT);
	if (!err)
		err = vb_send(vb, &vb->migrate_out, VB_FRAMES_PER_PAGE, true,
			      MAX_SCHEDULE_TIMEOUT);
	vb_balloon_page_finalize(page);
	if (err && vb->must_tell_host) {
		/* Not told: @page stays the balloon's until reset. */
		if (vb->adjust_managed)
			adjust_managed_page_count(page, -1);
		atomic_long_inc(&vb->num_pages);
		list_add(&page->lru, &old);
		vb_to_limbo(vb, &old, 1);
		mutex_unlock(&vb->migrate_lock);
		return MIGRATEPAGE_SUCCESS;
	}
	mutex_unlock(&vb->migrate_lock);

	vb_count(vb, VB_CNT_MIGRATED_PAGES, 1);
	put_page(page);
	return MIGRATEPAGE_SUCCESS;
}
#endif

int vb_balloon_init(struct vballoon *vb)
{
	unsigned int i;
	int err;

	mutex_init(&vb->inflate_lock);
	atomic_long_set(&vb->inflate_inflight, 0);
	vb->inflate_next = 0;
	mutex_init(&vb->deflate_lock);
	mutex_init(&vb->migrate_lock);
	mutex_init(&vb->actual_lock);
	spin_lock_init(&vb->limbo_lock);
	INIT_LIST_HEAD(&vb->limbo);
	atomic_long_set(&vb->num_pages, 0);
	vb_queue_init(&vb->inflate_q);
	vb_queue_init(&vb->deflate_q);
	INIT_DELAYED_WORK(&vb->update_work, vb_update_work_fn);
	INIT_WORK(&vb->config_work, vb_config_work_fn);
	balloon_devinfo_init(&vb->b_dev_info);
#ifdef CONFIG_BALLOON_COMPACTION
	vb->b_dev_info.migratepage = vb_migratepage;
#endif

	for (i = 0; i < VB_INFLATE_SLOTS; i++) {
		err = vb_req_alloc(&vb->inflate_req[i], &vb->inflate_q,
				   vb->batch_pages * VB_FRAMES_PER_PAGE);
		if (err)
			goto err_free;
	}
	err = vb_req_alloc(&vb->deflate_req, &vb->deflate_q,
			   vb->batch_pages * VB_FRAMES_PER_PAGE);
	if (err)
		goto err_free;
	err = vb_req_alloc(&vb->migrate_in, &vb->inflate_q,
			   VB_FRAMES_PER_PAGE);
	if (err)
		goto err_free;
	err = vb_req_alloc(&vb->migrate_out, &vb->deflate_q,
			   VB_FRAMES_PER_PAGE);
	if (err)
		goto err_free;
	return 0;

err_free:
	vb_balloon_free(vb);
	return err;
}

void vb_balloon_free(struct vballoon *vb)
{
	unsigned int i;

	vb_req_free(&vb->migrate_out);
	vb_req_free(&vb->migrate_in);
	vb_req_free(&vb->deflate_req);
	for (i = 0; i < VB_INFLATE_SLOTS; i++)
		vb_req_free(&vb->inflate_req[i]);
}
