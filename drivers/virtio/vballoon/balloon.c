// SPDX-License-Identifier: GPL-2.0-only
/*
 * vballoon: moving pages between the guest and the host.
 *
 * Inflation allocates pages (2 MiB blocks first, then smaller blocks,
 * each split into order-0 pages, then single pages), sends their frame numbers to the host in one
 * request per batch and only then puts them on the balloon list, where
 * compaction may move them.  Deflation takes pages off the list, tells
 * the host and frees them; with MUST_TELL_HOST the host hears of them
 * before the guest may touch them again.
 */

#include <linux/delay.h>
#include <linux/ktime.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>
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

void vb_report_actual(struct vballoon *vb)
{
	u32 actual, seen;

	lockdep_assert_held(&vb->lock);
	actual = vb_actual_frames(vb->num_pages, VB_FRAME_SHIFT);
	virtio_cread_le(vb->vdev, struct vballoon_config, actual, &seen);
	if (seen != actual)
		virtio_cwrite_le(vb->vdev, struct vballoon_config, actual,
				 &actual);
}

void vb_queue_update(struct vballoon *vb, unsigned long delay)
{
	unsigned long flags;

	spin_lock_irqsave(&vb->stop_lock, flags);
	if (!vb->stopping)
		mod_delayed_work(system_freezable_wq, &vb->update_work, delay);
	spin_unlock_irqrestore(&vb->stop_lock, flags);
}

void vb_ack_callback(struct virtqueue *vq)
{
	struct vballoon *vb = vq->vdev->priv;

	wake_up(&vb->ack_wq);
}

static bool vb_request_done(struct virtqueue *vq)
{
	unsigned int len;

	return virtqueue_get_buf(vq, &len) || virtqueue_is_broken(vq);
}

/* Add the microseconds since @start_ns to counter @c. */
static void vb_account_us(struct vballoon *vb, enum vb_counter c, u64 start_ns)
{
	vb_count(vb, c, div_u64(ktime_get_ns() - start_ns, NSEC_PER_USEC));
}

/*
 * Hand @nr_frames entries of @vb->pfns to the host on @vq and wait until
 * it has used them.  A host that never answers keeps us waiting (the
 * pages are its until it does), so say so now and then.
 */
static int vb_tell_host(struct vballoon *vb, struct virtqueue *vq,
			unsigned int nr_frames)
{
	struct scatterlist sg;
	u64 start = ktime_get_ns();
	int err;

	lockdep_assert_held(&vb->lock);
	if (!nr_frames)
		return 0;

	sg_init_one(&sg, vb->pfns, nr_frames * sizeof(vb->pfns[0]));
	err = virtqueue_add_outbuf(vq, &sg, 1, vb, GFP_KERNEL);
	if (err) {
		dev_warn_ratelimited(&vb->vdev->dev,
				     "cannot queue %u frames on %s: %d\n",
				     nr_frames, vq->name, err);
		return err;
	}
	virtqueue_kick(vq);
	vb_count(vb, VB_CNT_REQUESTS, 1);

	while (!wait_event_timeout(vb->ack_wq, vb_request_done(vq), 30 * HZ))
		dev_warn_ratelimited(&vb->vdev->dev,
				     "host has not answered on %s for 30s\n",
				     vq->name);

	vb_account_us(vb, vq == vb->inflate_vq ? VB_CNT_INFLATE_HOST_US :
		      VB_CNT_DEFLATE_HOST_US, start);
	return virtqueue_is_broken(vq) ? -EIO : 0;
}

/*
 * One free block of 2^@order pages, split into order-0 pages on @list.
 * No reclaim or compaction for it: when none is free, a smaller order is
 * next.  Returns the pages added, 0 if none.
 */
static unsigned long vb_alloc_chunk(struct list_head *list, unsigned int order)
{
	gfp_t gfp = (balloon_mapping_gfp_mask() & ~__GFP_RECLAIM) |
		    __GFP_NOWARN | __GFP_NORETRY | __GFP_NOMEMALLOC;
	unsigned long i, nr = 1UL << order;
	struct page *page;

	page = alloc_pages(gfp, order);
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
 * come last, with light reclaim.  Never triggers the OOM killer or
 * allocation-failure warnings.
 */
static unsigned long vb_alloc_pages(struct vballoon *vb, struct list_head *list,
				    unsigned long want)
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
		page = balloon_page_alloc();
		if (!page)
			break;
		list_add(&page->lru, list);
		got++;
	}
	return got;
}

/*
 * Inflate by up to @want pages (at most one batch).  Returns the number of
 * pages added to the balloon.
 */
static unsigned long vb_inflate(struct vballoon *vb, unsigned long want)
{
	struct page *page, *next;
	unsigned int frames = 0;
	unsigned long got, taken = 0;
	u64 start = ktime_get_ns();
	LIST_HEAD(pages);
	LIST_HEAD(refused);

	lockdep_assert_held(&vb->lock);
	want = min_t(unsigned long, want, vb->batch_pages);
	got = vb_alloc_pages(vb, &pages, want);
	vb_account_us(vb, VB_CNT_ALLOC_US, start);

	list_for_each_entry_safe(page, next, &pages, lru) {
		if (vb_encode_pfns(vb->vdev, vb->pfns + frames,
				   page_to_pfn(page), VB_FRAME_SHIFT)) {
			list_move(&page->lru, &refused);
			continue;
		}
		frames += VB_FRAMES_PER_PAGE;
		taken++;
	}

	if (!list_empty(&refused)) {
		vb_count(vb, VB_CNT_REFUSED_PFNS, got - taken);
		dev_warn_ratelimited(&vb->vdev->dev,
				     "%lu pages above the 16 TiB frame limit not ballooned\n",
				     got - taken);
		list_for_each_entry_safe(page, next, &refused, lru) {
			list_del(&page->lru);
			__free_page(page);
		}
	}

	if (vb_tell_host(vb, vb->inflate_vq, frames)) {
		list_for_each_entry_safe(page, next, &pages, lru) {
			list_del(&page->lru);
			__free_page(page);
		}
		return 0;
	}

	if (!vb->deflate_on_oom) {
		/* The host has these pages: the guest no longer owns them. */
		list_for_each_entry(page, &pages, lru)
			adjust_managed_page_count(page, -1);
	}
	balloon_page_list_enqueue(&vb->b_dev_info, &pages);

	WRITE_ONCE(vb->num_pages, vb->num_pages + taken);
	vb_count(vb, VB_CNT_INFLATED_PAGES, taken);
	if (taken < want)
		vb_count(vb, VB_CNT_ALLOC_SHORTFALLS, 1);
	return taken;
}

/*
 * Deflate by up to @want pages, one batch at a time.  Returns the number
 * of pages given back to the guest; fewer than asked when the balloon is
 * empty, pages are isolated for migration, or the host failed.
 */
unsigned long vb_deflate(struct vballoon *vb, unsigned long want)
{
	unsigned long done = 0, n;
	struct page *page, *next;
	unsigned int frames;
	bool tell, told;
	LIST_HEAD(pages);

	lockdep_assert_held(&vb->lock);

	while (done < want) {
		n = min_t(unsigned long, want - done, vb->batch_pages);
		n = balloon_page_list_dequeue(&vb->b_dev_info, &pages, n);
		if (!n)
			break;

		frames = 0;
		list_for_each_entry(page, &pages, lru) {
			/* Encoded when inflated, so it fits. */
			vb_encode_pfns(vb->vdev, vb->pfns + frames,
				       page_to_pfn(page), VB_FRAME_SHIFT);
			frames += VB_FRAMES_PER_PAGE;
		}

		/* A dead device can no longer be told, nor use the pages. */
		tell = !virtqueue_is_broken(vb->deflate_vq);
		told = false;
		if (tell && vb->must_tell_host) {
			if (vb_tell_host(vb, vb->deflate_vq, frames) &&
			    !virtqueue_is_broken(vb->deflate_vq)) {
				/* Not told: the pages stay the host's. */
				balloon_page_list_enqueue(&vb->b_dev_info,
							  &pages);
				break;
			}
			told = true;
		}

		list_for_each_entry_safe(page, next, &pages, lru) {
			list_del(&page->lru);
			if (!vb->deflate_on_oom)
				adjust_managed_page_count(page, 1);
			put_page(page);
		}

		/* Without MUST_TELL_HOST the host learns of it afterwards. */
		if (tell && !told)
			vb_tell_host(vb, vb->deflate_vq, frames);

		WRITE_ONCE(vb->num_pages, vb->num_pages - n);
		done += n;
		vb_count(vb, VB_CNT_DEFLATED_PAGES, n);
	}
	return done;
}

/*
 * Empty the balloon for teardown.  Pages isolated by compaction are off
 * the list for a moment; drop the lock so migration can finish or put
 * them back, then try again.
 */
void vb_deflate_all(struct vballoon *vb)
{
	mutex_lock(&vb->lock);
	while (vb->num_pages) {
		if (!vb_deflate(vb, vb->num_pages)) {
			mutex_unlock(&vb->lock);
			usleep_range(1000, 2000);
			mutex_lock(&vb->lock);
		}
	}
	vb_report_actual(vb);
	mutex_unlock(&vb->lock);
}

void vb_update_work_fn(struct work_struct *work)
{
	struct vballoon *vb = container_of(to_delayed_work(work),
					   struct vballoon, update_work);
	unsigned long want, done, hold = 0, delay = 0;
	long diff;

	mutex_lock(&vb->lock);
	diff = vb_pages_diff(vb_read_target(vb), vb->num_pages);
	if (diff > 0)
		hold = vb_hold_remaining(vb);
	if (hold) {
		/* Memory was just given back: do not take it straight again. */
		delay = hold;
	} else if (diff > 0) {
		want = min_t(unsigned long, diff, vb->batch_pages);
		done = vb_inflate(vb, want);
		if (done < want) {
			vb->backoff_ms = vb_next_backoff(vb->backoff_ms);
			delay = msecs_to_jiffies(vb->backoff_ms);
		} else {
			vb->backoff_ms = 0;
		}
	} else if (diff < 0) {
		want = min_t(unsigned long, -diff, vb->batch_pages);
		done = vb_deflate(vb, want);
		/* Isolated or unacknowledged pages: try again shortly. */
		if (done < want)
			delay = msecs_to_jiffies(VB_BACKOFF_MIN_MS);
		vb->backoff_ms = 0;
	}
	vb_report_actual(vb);
	mutex_unlock(&vb->lock);

	if (diff)
		vb_queue_update(vb, delay);
}

#ifdef CONFIG_BALLOON_COMPACTION
/*
 * Compaction wants @page moved to @newpage: give the host @newpage and
 * take @page back.  Called with both pages locked and @page isolated.
 */
static int vb_migratepage(struct balloon_dev_info *info,
			  struct page *newpage, struct page *page,
			  enum migrate_mode mode)
{
	struct vballoon *vb = container_of(info, struct vballoon, b_dev_info);
	unsigned long flags;

	/* Inflation or deflation holds the lock for a whole batch. */
	if (!mutex_trylock(&vb->lock))
		return -EAGAIN;

	if (vb_encode_pfns(vb->vdev, vb->pfns, page_to_pfn(newpage),
			   VB_FRAME_SHIFT)) {
		mutex_unlock(&vb->lock);
		return -EAGAIN;
	}
	if (vb_tell_host(vb, vb->inflate_vq, VB_FRAMES_PER_PAGE)) {
		mutex_unlock(&vb->lock);
		return -EAGAIN;
	}

	get_page(newpage);
	if (!vb->deflate_on_oom && page_zone(page) != page_zone(newpage)) {
		adjust_managed_page_count(page, 1);
		adjust_managed_page_count(newpage, -1);
	}

	spin_lock_irqsave(&info->pages_lock, flags);
	balloon_page_insert(info, newpage);
	info->isolated_pages--;
	__count_vm_event(BALLOON_MIGRATE);
	spin_unlock_irqrestore(&info->pages_lock, flags);

	vb_encode_pfns(vb->vdev, vb->pfns, page_to_pfn(page), VB_FRAME_SHIFT);
	vb_tell_host(vb, vb->deflate_vq, VB_FRAMES_PER_PAGE);
	mutex_unlock(&vb->lock);

	vb_count(vb, VB_CNT_MIGRATED_PAGES, 1);
	balloon_page_finalize(page);
	put_page(page);
	return MIGRATEPAGE_SUCCESS;
}
#endif

void vb_balloon_init(struct vballoon *vb)
{
	mutex_init(&vb->lock);
	init_waitqueue_head(&vb->ack_wq);
	INIT_DELAYED_WORK(&vb->update_work, vb_update_work_fn);
	balloon_devinfo_init(&vb->b_dev_info);
#ifdef CONFIG_BALLOON_COMPACTION
	vb->b_dev_info.migratepage = vb_migratepage;
#endif
}
