// SPDX-License-Identifier: GPL-2.0-only
/*
 * vballoon: free page reporting (VIRTIO_BALLOON_F_REPORTING) and page
 * poison (VIRTIO_BALLOON_F_PAGE_POISON).
 *
 * The page allocator finds free blocks of at least the reporting order,
 * takes them off its free lists and hands them to vb_report() in a
 * scatterlist; vballoon puts that list on the reporting queue as one
 * buffer, and once the host has returned it the blocks go back to the
 * free lists, marked reported.  The host may discard what it was
 * reported: the guest reads zeros (or the poison value) there later.
 *
 * Page poison tells the host what freed pages contain.  A guest that
 * fills them (init_on_free: zeros, page_poison: 0xaa) would see a
 * discarded page as corruption unless the host keeps that content, so
 * it accepts REPORTING only from a device that also offers PAGE_POISON,
 * and writes the value into poison_val before DRIVER_OK.
 *
 * Waiting for the host.  The blocks of a report are the host's from the
 * moment the buffer is on the ring until the host returns it or the
 * device is reset: the page allocator puts them back on its free lists
 * as soon as vb_report() returns, whatever it returns, and a block the
 * guest reuses while the host still holds its report could be discarded
 * under the guest's new data.  So vb_report() never gives up on a clock
 * alone.  It waits in slices, says so when the host has not answered for
 * VB_WARN_SECS, and returns:
 *
 *   0           the host returned the buffer;
 *   -ENODEV     nothing was sent: the device is stopping or the host lost;
 *   -ENOSPC...  the virtqueue refused the buffer: nothing was sent;
 *   -EIO        the device was reset under a report the host never
 *               returned (the device is being stopped).
 *
 * Only the errors before sending are cheap; each makes the page
 * allocator end its pass, leave the blocks unreported and try again on
 * later frees.  What bounds the wait is the device's teardown: vb_stop()
 * closes reporting first (no new report is sent), deflates (where only
 * inflate and deflate requests get VB_STOP_GRACE_MS of a silent host),
 * resets the device, and only then lets a waiting report return -EIO and
 * unregisters from the page allocator, before deleting the queues.  So
 * unbinding, rmmod and suspend end without waiting for a report the host
 * never answers, and no reported block is reused while the host may
 * still act on it.  While the device runs, a host that never answers
 * keeps one report (at most PAGE_REPORTING_CAPACITY blocks) out of the
 * free lists and the page allocator's reporting work waiting, as the
 * inflate work waits for a silent host.
 */

#include <linux/mm.h>
#include <linux/pageblock-flags.h>
#include <linux/poison.h>
#include <linux/scatterlist.h>

#include "core.h"

/*
 * The debugfs value of each state of reporting.  Scripts and the admin
 * guide know these names: change none.
 */
VISIBLE_IF_KUNIT const char * const vb_report_state_names[VB_REPORT_NR] = {
	[VB_REPORT_OFF] = "off",
	[VB_REPORT_NOT_OFFERED] = "not_offered",
	[VB_REPORT_NO_POISON] = "no_poison",
	[VB_REPORT_VQ_SMALL] = "vq_too_small",
	[VB_REPORT_STOPPED] = "stopped",
	[VB_REPORT_ACTIVE] = "active",
	[VB_REPORT_BUSY] = "busy",
	[VB_REPORT_FAILED] = "failed",
};
EXPORT_SYMBOL_IF_KUNIT(vb_report_state_names);

const char *vb_report_state_name(enum vb_report_state state)
{
	return state < VB_REPORT_NR ? vb_report_state_names[state] : "?";
}

/**
 * vb_free_page_policy() - what to negotiate for free pages
 * @init_on_free: the guest zeroes pages as it frees them
 * @poisoning: the guest fills freed pages with PAGE_POISON
 * @dev_poison: the device offers PAGE_POISON
 * @dev_reporting: the device offers REPORTING
 * @want_reporting: the free_page_reporting parameter
 * @out: the decision
 *
 * PAGE_POISON is accepted whenever freed pages have a known content, with
 * that content as poison_val (zero wins when both are on, as the page
 * allocator then only zeroes).  REPORTING is accepted if wanted and
 * offered, unless freed pages keep a content the device was not told of
 * (virtio 1.2, 5.5.6.1: no REPORTING without PAGE_POISON then).
 */
VISIBLE_IF_KUNIT void vb_free_page_policy(bool init_on_free, bool poisoning,
					  bool dev_poison, bool dev_reporting,
					  bool want_reporting,
					  struct vb_fp_policy *out)
{
	bool keeps_value = init_on_free || poisoning;

	out->accept_poison = keeps_value && dev_poison;
	out->poison_val = 0;
	if (out->accept_poison && !init_on_free)
		memset(&out->poison_val, PAGE_POISON, sizeof(out->poison_val));

	if (!want_reporting)
		out->report = VB_REPORT_OFF;
	else if (!dev_reporting)
		out->report = VB_REPORT_NOT_OFFERED;
	else if (keeps_value && !dev_poison)
		out->report = VB_REPORT_NO_POISON;
	else
		out->report = VB_REPORT_STOPPED;
}
EXPORT_SYMBOL_IF_KUNIT(vb_free_page_policy);

/**
 * vb_pick_reporting_order() - the order to ask the page allocator for
 * @param: the reporting_order parameter (0: the kernel's choice)
 * @pageblock: the kernel's pageblock order
 * @block: the order of a 2 MiB block (a host huge page)
 * @max: the largest buddy order
 *
 * Return: @param if it is a valid order, 0 (the page allocator's own
 * choice, the pageblock order) by default, or the 2 MiB order by default
 * where pageblocks are larger than that (512 MiB with 64 KiB pages, where
 * only whole free pageblocks would ever be reported); -EINVAL for an
 * order the page allocator has no free lists for.
 */
VISIBLE_IF_KUNIT int vb_pick_reporting_order(unsigned int param,
					     unsigned int pageblock,
					     unsigned int block,
					     unsigned int max)
{
	if (param > max)
		return -EINVAL;
	if (param)
		return param;
	return pageblock > block ? block : 0;
}
EXPORT_SYMBOL_IF_KUNIT(vb_pick_reporting_order);

static bool vb_guest_inits_freed_pages(bool *init_on_free, bool *poisoning)
{
	*init_on_free = want_init_on_free();
	*poisoning = page_poisoning_enabled_static();
	return *init_on_free || *poisoning;
}

/**
 * vb_free_page_features() - drop the free page features not to accept
 * @vdev: the device, from the driver's validate callback
 *
 * Runs before the features are written to the device, when the features
 * set are those both sides offer.
 */
void vb_free_page_features(struct virtio_device *vdev)
{
	struct vb_fp_policy p;
	bool iof, poisoning;

	vb_guest_inits_freed_pages(&iof, &poisoning);
	vb_free_page_policy(iof, poisoning,
			    virtio_has_feature(vdev, VBALLOON_F_PAGE_POISON),
			    virtio_has_feature(vdev, VBALLOON_F_REPORTING),
			    READ_ONCE(vb_param_free_page_reporting), &p);
	if (!p.accept_poison)
		__virtio_clear_bit(vdev, VBALLOON_F_PAGE_POISON);
	if (p.report != VB_REPORT_STOPPED)
		__virtio_clear_bit(vdev, VBALLOON_F_REPORTING);
}

static int vb_report(struct page_reporting_dev_info *pr,
		     struct scatterlist *sg, unsigned int nents);

/**
 * vb_reporting_setup() - decide, at probe, what reporting will do
 * @vb: the device, its features negotiated
 *
 * Sets @vb->page_poison and @vb->poison_val, and the reporting order and
 * state.  When REPORTING was not accepted, the device's offer is read
 * again to say why.
 */
void vb_reporting_setup(struct vballoon *vb)
{
	struct virtio_device *vdev = vb->vdev;
	struct vb_reporting *rep = &vb->rep;
	u64 offered = vdev->config->get_features(vdev);
	unsigned int param = READ_ONCE(vb_param_reporting_order);
	struct vb_fp_policy p;
	bool iof, poisoning;
	int order;

	spin_lock_init(&rep->lock);
	init_waitqueue_head(&rep->wq);
	rep->pr.report = vb_report;

	vb_guest_inits_freed_pages(&iof, &poisoning);
	vb_free_page_policy(iof, poisoning,
			    offered & BIT_ULL(VBALLOON_F_PAGE_POISON),
			    offered & BIT_ULL(VBALLOON_F_REPORTING),
			    READ_ONCE(vb_param_free_page_reporting), &p);
	vb->page_poison = virtio_has_feature(vdev, VBALLOON_F_PAGE_POISON);
	vb->poison_val = vb->page_poison ? p.poison_val : 0;

	rep->negotiated = virtio_has_feature(vdev, VBALLOON_F_REPORTING);
	if (rep->negotiated)
		rep->state = VB_REPORT_STOPPED;
	else if (p.report == VB_REPORT_STOPPED)
		rep->state = VB_REPORT_OFF;	/* parameter changed meanwhile */
	else
		rep->state = p.report;

	order = vb_pick_reporting_order(param, pageblock_order,
					VB_BLOCK_ORDER, VB_MAX_ORDER);
	if (order < 0) {
		order = vb_pick_reporting_order(0, pageblock_order,
						VB_BLOCK_ORDER, VB_MAX_ORDER);
		dev_warn(&vdev->dev,
			 "reporting_order=%u out of range 0-%u, using %u\n",
			 param, VB_MAX_ORDER, order ? order : pageblock_order);
	}
	rep->order = order;
	rep->pr.order = order;
}

void vb_reporting_callback(struct virtqueue *vq)
{
	struct vballoon *vb = vq->vdev->priv;

	wake_up_all(&vb->rep.wq);
}

/*
 * Is the report on the ring settled: returned by the host (0), or the
 * device reset under it (-EIO)?  -EINPROGRESS while neither.
 */
static int vb_report_settled(struct vb_reporting *rep)
{
	unsigned long flags;
	unsigned int len;
	int ret;

	spin_lock_irqsave(&rep->lock, flags);
	if (rep->inflight && !rep->reset && virtqueue_get_buf(rep->vq, &len))
		rep->inflight = false;
	if (!rep->inflight)
		ret = 0;
	else if (rep->reset)
		ret = -EIO;
	else
		ret = -EINPROGRESS;
	spin_unlock_irqrestore(&rep->lock, flags);
	return ret;
}

/*
 * Wait until the host returns the report or the device is reset under
 * it; see the top of this file for why there is no clock here.
 */
static int vb_report_wait(struct vballoon *vb)
{
	struct vb_reporting *rep = &vb->rep;
	unsigned long warned_at = jiffies;
	int ret;

	for (;;) {
		ret = vb_report_settled(rep);
		if (ret != -EINPROGRESS)
			return ret;
		if (virtqueue_is_broken(rep->vq))
			vb_lose_host(vb, "reporting virtqueue broken");
		if (time_after(jiffies, warned_at + VB_WARN_SECS * HZ)) {
			warned_at = jiffies;
			dev_warn_ratelimited(&vb->vdev->dev,
					     "host has not answered a free page report for %us; its pages stay reported\n",
					     VB_WARN_SECS);
		}
		wait_event_timeout(rep->wq,
				   vb_report_settled(rep) != -EINPROGRESS,
				   VB_WAIT_SLICE);
	}
}

/* The page allocator's report callback: one report, one buffer. */
static int vb_report(struct page_reporting_dev_info *pr,
		     struct scatterlist *sg, unsigned int nents)
{
	struct vballoon *vb = container_of(pr, struct vballoon, rep.pr);
	struct vb_reporting *rep = &vb->rep;
	struct scatterlist *s;
	unsigned long flags;
	bool kick = false;
	u64 bytes = 0;
	unsigned int i;
	int err;

	for_each_sg(sg, s, nents, i)
		bytes += s->length;

	spin_lock_irqsave(&rep->lock, flags);
	if (!rep->open || READ_ONCE(vb->host_lost) || WARN_ON_ONCE(rep->inflight)) {
		err = -ENODEV;
	} else {
		err = virtqueue_add_inbuf(rep->vq, sg, nents, rep,
					  GFP_NOWAIT | __GFP_NOWARN);
		if (!err) {
			rep->inflight = true;
			rep->reset = false;
			kick = virtqueue_kick_prepare(rep->vq);
		}
	}
	spin_unlock_irqrestore(&rep->lock, flags);
	if (err) {
		vb_count(vb, VB_CNT_REPORT_FAILURES, 1);
		return err;
	}
	if (kick)
		virtqueue_notify(rep->vq);
	vb_count(vb, VB_CNT_REPORTS, 1);

	err = vb_report_wait(vb);
	if (err) {
		vb_count(vb, VB_CNT_REPORT_FAILURES, 1);
		return err;
	}
	vb_count(vb, VB_CNT_REPORTED_PAGES, bytes >> PAGE_SHIFT);
	vb_count(vb, VB_CNT_REPORTED_BYTES, bytes);
	return 0;
}

/* Say once per binding why reporting is off, where that is news. */
static void vb_reporting_tell(struct vballoon *vb, int err)
{
	struct vb_reporting *rep = &vb->rep;
	struct device *dev = &vb->vdev->dev;

	if (rep->told)
		return;
	rep->told = true;
	switch (rep->state) {
	case VB_REPORT_BUSY:
		dev_info(dev, "free page reporting off: another driver reports free pages already (%d)\n",
			 err);
		break;
	case VB_REPORT_FAILED:
		dev_warn(dev, "free page reporting off: cannot register (%d)\n",
			 err);
		break;
	case VB_REPORT_VQ_SMALL:
		dev_info(dev, "free page reporting off: reporting queue holds %u entries, a report needs %u\n",
			 virtqueue_get_vring_size(rep->vq),
			 PAGE_REPORTING_CAPACITY);
		break;
	case VB_REPORT_NO_POISON:
		dev_info(dev, "free page reporting off: freed pages are %s and the device has no page poison\n",
			 want_init_on_free() ? "zeroed" : "poisoned");
		break;
	default:
		break;
	}
}

/**
 * vb_reporting_start() - register with the page allocator
 * @vb: the device, after DRIVER_OK (reports may come at once)
 *
 * Nothing here fails the device: when the reporting queue is too short
 * or another driver already reports free pages, the device runs without
 * reporting, says so once, and shows why in debugfs.
 */
void vb_reporting_start(struct vballoon *vb)
{
	struct vb_reporting *rep = &vb->rep;
	unsigned long flags;
	int err = 0;

	if (!rep->negotiated || rep->state == VB_REPORT_VQ_SMALL)
		goto tell;
	if (virtqueue_get_vring_size(rep->vq) < PAGE_REPORTING_CAPACITY) {
		rep->state = VB_REPORT_VQ_SMALL;
		goto tell;
	}

	spin_lock_irqsave(&rep->lock, flags);
	rep->open = true;
	rep->inflight = false;
	rep->reset = false;
	spin_unlock_irqrestore(&rep->lock, flags);

	err = vb_page_reporting_register(&rep->pr);
	if (err) {
		spin_lock_irqsave(&rep->lock, flags);
		rep->open = false;
		spin_unlock_irqrestore(&rep->lock, flags);
		WRITE_ONCE(rep->state, err == -EBUSY ? VB_REPORT_BUSY :
			   VB_REPORT_FAILED);
		goto tell;
	}
	rep->registered = true;
	WRITE_ONCE(rep->state, VB_REPORT_ACTIVE);
	return;

tell:
	vb_reporting_tell(vb, err);
}

/**
 * vb_reporting_close() - send no more reports
 * @vb: the device, starting to stop
 *
 * A report already on the ring keeps waiting: for the host, or for the
 * reset vb_reporting_stop() announces.
 */
void vb_reporting_close(struct vballoon *vb)
{
	struct vb_reporting *rep = &vb->rep;
	unsigned long flags;

	spin_lock_irqsave(&rep->lock, flags);
	rep->open = false;
	spin_unlock_irqrestore(&rep->lock, flags);
}

/**
 * vb_reporting_stop() - unregister from the page allocator
 * @vb: the device, closed and reset, its queues not deleted yet
 *
 * A report the host never returned ends now (the reset took the buffer
 * from the host), then the page allocator's work is flushed.
 */
void vb_reporting_stop(struct vballoon *vb)
{
	struct vb_reporting *rep = &vb->rep;
	unsigned long flags;

	spin_lock_irqsave(&rep->lock, flags);
	WARN_ON_ONCE(rep->open);
	rep->reset = true;
	spin_unlock_irqrestore(&rep->lock, flags);
	wake_up_all(&rep->wq);

	if (rep->registered) {
		vb_page_reporting_unregister(&rep->pr);
		rep->registered = false;
	}
	if (rep->state == VB_REPORT_ACTIVE)
		WRITE_ONCE(rep->state, VB_REPORT_STOPPED);
}
