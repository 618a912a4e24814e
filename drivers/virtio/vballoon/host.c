// SPDX-License-Identifier: GPL-2.0-only
/*
 * vballoon: requests to the host on the inflate and deflate virtqueues.
 *
 * A request's frame numbers go out as descriptors of at most
 * VB_FRAMES_PER_DESC frames each, as many as the ring has room for, then
 * one kick; the rest follow as the host returns buffers.  The virtqueue
 * callback only counts returned buffers, per request; the sender sleeps
 * until its own request is complete, or (a pipelined inflation, a
 * deflation without MUST_TELL_HOST) until it is on the ring, and waits
 * for the rest later (vb_settle()).  No lock is held while sleeping
 * except the mutex of the request's owner.
 *
 * A host may be slow, silent, or broken.  Waits are unbounded while the
 * device runs (the host owns the pages it was sent until it answers) but
 * come in slices: a broken virtqueue is noticed within a second, a
 * silent host is reported every VB_WARN_SECS, and callers that must not
 * wait long (the OOM notifier, the shrinker) pass a timeout.  Once the
 * device is being stopped, a request that makes no progress for
 * VB_STOP_GRACE_MS is given up and the host is declared lost: nothing is
 * sent any more, and pages the host might still act on are only freed
 * after the device is reset.
 */

#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>

#include "core.h"

/* Descriptors a request of @nr_frames frames takes. */
VISIBLE_IF_KUNIT unsigned int vb_descs_for(unsigned int nr_frames)
{
	return DIV_ROUND_UP(nr_frames, VB_FRAMES_PER_DESC);
}
EXPORT_SYMBOL_IF_KUNIT(vb_descs_for);

void vb_queue_init(struct vb_queue *q)
{
	q->vq = NULL;
	spin_lock_init(&q->lock);
	init_waitqueue_head(&q->wq);
}

int vb_req_alloc(struct vb_req *req, struct vb_queue *q,
		 unsigned int max_frames)
{
	req->q = q;
	req->max_frames = max_frames;
	INIT_LIST_HEAD(&req->pages);
	req->nr_pages = 0;
	vb_req_reset(req);
	req->pfns = kmalloc_array(max_frames, sizeof(*req->pfns), GFP_KERNEL);
	return req->pfns ? 0 : -ENOMEM;
}

void vb_req_free(struct vb_req *req)
{
	kfree(req->pfns);
	req->pfns = NULL;
}

/*
 * Forget whatever the device had of @req: only once the device is reset
 * (or before it starts), when no buffer of it can be on a ring.
 */
void vb_req_reset(struct vb_req *req)
{
	req->nr_frames = 0;
	req->nr_descs = 0;
	req->queued = 0;
	req->used = 0;
	req->done_seq = req->seq;
	req->inflight = false;
}

bool vb_stopping(struct vballoon *vb)
{
	return READ_ONCE(vb->stopping);
}

/* Wake every sender, so that each looks at the device's state again. */
void vb_wake_waiters(struct vballoon *vb)
{
	wake_up_all(&vb->inflate_q.wq);
	wake_up_all(&vb->deflate_q.wq);
}

/*
 * The host is gone for this run of the device: broken, or silent while
 * the device is being stopped.  Said once; nothing is sent afterwards.
 */
void vb_lose_host(struct vballoon *vb, const char *why)
{
	unsigned long flags;
	bool first;

	spin_lock_irqsave(&vb->stop_lock, flags);
	first = !vb->host_lost;
	WRITE_ONCE(vb->host_lost, true);
	spin_unlock_irqrestore(&vb->stop_lock, flags);
	if (first)
		dev_warn(&vb->vdev->dev,
			 "%s: balloon frozen, %lu pages kept until the device is reset\n",
			 why, vb_balloon_pages(vb));
	vb_wake_waiters(vb);
}

static struct vb_queue *vb_queue_of(struct vballoon *vb, struct virtqueue *vq)
{
	return vq->index == VBALLOON_VQ_INFLATE ? &vb->inflate_q :
						  &vb->deflate_q;
}

/*
 * Count the buffers the host returned on @vq against their requests.  The
 * virtio core only hands back tokens it gave out, once each.
 */
static void vb_reap(struct vb_queue *q, struct virtqueue *vq)
{
	struct vb_req *req;
	unsigned int len;

	lockdep_assert_held(&q->lock);
	while ((req = virtqueue_get_buf(vq, &len))) {
		if (req->used < req->queued)
			req->used++;
		if (req->queued == req->nr_descs && req->used == req->queued)
			req->done_seq = req->seq;
	}
}

void vb_ack_callback(struct virtqueue *vq)
{
	struct vballoon *vb = vq->vdev->priv;
	struct vb_queue *q = vb_queue_of(vb, vq);
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	vb_reap(q, vq);
	spin_unlock_irqrestore(&q->lock, flags);
	wake_up_all(&q->wq);
}

/*
 * Put on the ring what fits of @req; *@kick is set when something was
 * added.  Returns the virtio core's error, if any.
 */
static int vb_push(struct vballoon *vb, struct vb_req *req, bool *kick)
{
	struct vb_queue *q = req->q;
	struct scatterlist sg;
	unsigned int first, n;
	int err;

	lockdep_assert_held(&q->lock);
	while (req->queued < req->nr_descs && q->vq->num_free) {
		first = req->queued * VB_FRAMES_PER_DESC;
		n = min(VB_FRAMES_PER_DESC, req->nr_frames - first);
		sg_init_one(&sg, req->pfns + first, n * sizeof(req->pfns[0]));
		err = virtqueue_add_outbuf(q->vq, &sg, 1, req, GFP_ATOMIC);
		if (err)
			return err;
		req->queued++;
		*kick = true;
		vb_count(vb, VB_CNT_DESCRIPTORS, 1);
	}
	return 0;
}

/* Anything new for a sender of @req that last saw @progress? */
static bool vb_moved(struct vballoon *vb, struct vb_req *req,
		     unsigned int progress, bool was_stopping)
{
	struct vb_queue *q = req->q;
	unsigned long flags;
	bool moved;

	if (vb_stopping(vb) != was_stopping || READ_ONCE(vb->host_lost))
		return true;
	spin_lock_irqsave(&q->lock, flags);
	vb_reap(q, q->vq);
	moved = req->queued + req->used != progress ||
		(req->queued < req->nr_descs && q->vq->num_free) ||
		virtqueue_is_broken(q->vq);
	spin_unlock_irqrestore(&q->lock, flags);
	return moved;
}

/*
 * Drive @req until every descriptor is on the ring and, if @until_used,
 * returned by the host.  Gives up after @timeout jiffies
 * (MAX_SCHEDULE_TIMEOUT: never), or when the device is stopping and the
 * request has not moved for VB_STOP_GRACE_MS (the host is then lost).
 */
static int vb_wait(struct vballoon *vb, struct vb_req *req, bool until_used,
		   long timeout)
{
	struct vb_queue *q = req->q;
	unsigned long start = jiffies, moved_at = jiffies, warned_at = jiffies;
	unsigned int progress = UINT_MAX;
	bool kick, done, broken, stopping;
	u64 t0 = ktime_get_ns();
	unsigned long flags;
	int err, ret;

	for (;;) {
		kick = false;
		stopping = vb_stopping(vb);
		spin_lock_irqsave(&q->lock, flags);
		broken = virtqueue_is_broken(q->vq);
		err = broken ? -EIO : vb_push(vb, req, &kick);
		vb_reap(q, q->vq);
		kick = kick && virtqueue_kick_prepare(q->vq);
		done = req->queued == req->nr_descs &&
		       (!until_used || req->used == req->queued);
		if (req->queued + req->used != progress) {
			progress = req->queued + req->used;
			moved_at = jiffies;
		}
		spin_unlock_irqrestore(&q->lock, flags);
		if (kick)
			virtqueue_notify(q->vq);

		if (done) {
			ret = 0;
			break;
		}
		if (err && err != -ENOSPC) {
			vb_lose_host(vb, "virtqueue broken");
			ret = -EIO;
			break;
		}
		if (READ_ONCE(vb->host_lost)) {
			ret = -EIO;
			break;
		}
		if (stopping &&
		    time_after(jiffies, max(moved_at, READ_ONCE(vb->stop_time)) +
				      msecs_to_jiffies(VB_STOP_GRACE_MS))) {
			vb_count(vb, VB_CNT_ABANDONED, 1);
			vb_lose_host(vb, "host silent while stopping");
			ret = -ETIMEDOUT;
			break;
		}
		if (timeout != MAX_SCHEDULE_TIMEOUT &&
		    time_after_eq(jiffies, start + timeout)) {
			vb_count(vb, VB_CNT_HOST_TIMEOUTS, 1);
			ret = -ETIMEDOUT;
			break;
		}
		if (time_after(jiffies, max(moved_at, warned_at) +
				      VB_WARN_SECS * HZ)) {
			warned_at = jiffies;
			dev_warn_ratelimited(&vb->vdev->dev,
					     "host has not answered on %s for %us\n",
					     q->vq->name, VB_WARN_SECS);
		}
		wait_event_timeout(q->wq,
				   vb_moved(vb, req, progress, stopping),
				   VB_WAIT_SLICE);
	}

	vb_count(vb, q == &vb->inflate_q ? VB_CNT_INFLATE_HOST_US :
		 VB_CNT_DEFLATE_HOST_US,
		 div_u64(ktime_get_ns() - t0, NSEC_PER_USEC));
	if (!ret && until_used)
		req->inflight = false;
	return ret;
}

/*
 * Send the first @nr_frames entries of @req->pfns.  With @wait, returns
 * 0 once the host has returned every descriptor; without, once all are
 * on the ring (vb_settle() waits for them later).  Errors:
 *   -ENODEV     nothing reached the ring (host lost): the frames are
 *               still the guest's to do with as it likes;
 *   -EIO        the device broke after some descriptors were queued;
 *   -ETIMEDOUT  the wait ran out (or was given up): the request stays
 *               in flight, and the host may still act on every frame.
 */
int vb_send(struct vballoon *vb, struct vb_req *req, unsigned int nr_frames,
	    bool wait, long timeout)
{
	unsigned long flags;
	unsigned int queued;
	int err;

	if (!nr_frames)
		return 0;
	/* A request given up on stays in flight until the reset. */
	if (READ_ONCE(vb->host_lost))
		return -ENODEV;
	if (WARN_ON_ONCE(req->inflight || nr_frames > req->max_frames))
		return -EINVAL;

	spin_lock_irqsave(&req->q->lock, flags);
	req->nr_frames = nr_frames;
	req->nr_descs = vb_descs_for(nr_frames);
	req->queued = 0;
	req->used = 0;
	req->seq++;
	spin_unlock_irqrestore(&req->q->lock, flags);
	req->inflight = true;
	vb_count(vb, VB_CNT_REQUESTS, 1);

	err = vb_wait(vb, req, wait, timeout);
	if (!err)
		return 0;

	spin_lock_irqsave(&req->q->lock, flags);
	queued = req->queued;
	spin_unlock_irqrestore(&req->q->lock, flags);
	if (!queued) {
		req->inflight = false;
		return -ENODEV;
	}
	return err;
}

/* Has the host returned everything of @req, sent earlier?  Never waits. */
bool vb_req_answered(struct vb_req *req)
{
	struct vb_queue *q = req->q;
	unsigned long flags;
	bool done;

	spin_lock_irqsave(&q->lock, flags);
	vb_reap(q, q->vq);
	done = req->done_seq == req->seq;
	spin_unlock_irqrestore(&q->lock, flags);
	return done;
}

/*
 * Wait (as vb_send() does) until the host has returned everything of a
 * request sent earlier.  0 when nothing of @req is left on the ring.
 */
int vb_settle(struct vballoon *vb, struct vb_req *req, long timeout)
{
	if (!req->inflight)
		return 0;
	return vb_wait(vb, req, true, timeout);
}

/* Has the host returned the deflate request that was current at @seq? */
static bool vb_deflated_since(struct vballoon *vb, unsigned long seq)
{
	struct vb_req *req = &vb->deflate_req;
	struct vb_queue *q = req->q;
	unsigned long flags;
	bool done;

	spin_lock_irqsave(&q->lock, flags);
	vb_reap(q, q->vq);
	done = (long)(req->done_seq - seq) >= 0 ||
	       virtqueue_is_broken(q->vq);
	spin_unlock_irqrestore(&q->lock, flags);
	return done || READ_ONCE(vb->host_lost) || vb_stopping(vb);
}

/*
 * Wait until the host has answered every deflate request sent so far.
 * Without MUST_TELL_HOST deflated pages are freed as soon as their
 * request is on the ring; one of them may be allocated again for the
 * next inflation, and the host must not hear of that inflation before
 * it has seen the deflation.  Returns 0, or -ENODEV when the host is
 * lost or the device stops first (the caller then sends nothing).
 */
int vb_wait_deflates(struct vballoon *vb)
{
	struct vb_req *req = &vb->deflate_req;
	struct vb_queue *q = req->q;
	unsigned long flags, seq;
	bool done;

	spin_lock_irqsave(&q->lock, flags);
	seq = req->seq;
	spin_unlock_irqrestore(&q->lock, flags);
	while (!vb_deflated_since(vb, seq))
		wait_event_timeout(q->wq, vb_deflated_since(vb, seq),
				   VB_WAIT_SLICE);

	spin_lock_irqsave(&q->lock, flags);
	done = (long)(req->done_seq - seq) >= 0;
	spin_unlock_irqrestore(&q->lock, flags);
	return done ? 0 : -ENODEV;
}
