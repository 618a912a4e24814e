// SPDX-License-Identifier: GPL-2.0-only
/*
 * vballoon: giving memory back when the guest needs it
 * (VIRTIO_BALLOON_F_DEFLATE_ON_OOM).
 *
 * Modes (parameter autodeflate=):
 *
 * off       the balloon keeps its size whatever happens in the guest.
 * oom       the OOM killer's notifier chain: before a victim is picked, a
 *           bounded chunk of the balloon is released and the kill is
 *           skipped.
 * pressure  as oom, plus a shrinker that releases pages earlier, when the
 *           guest is short of memory that reclaim cannot produce.  It
 *           looks at MemAvailable, which counts clean page cache as
 *           available: while reclaim can still drop cache, or when
 *           drop_caches runs on a guest with memory to spare, it releases
 *           nothing.  This is what keeps a shrinker from deflating the
 *           balloon while the host is inflating it (the "busy no-op").
 *
 * After any release, inflation holds off for pressure_hold_ms so the
 * driver does not inflate straight back into the same shortage.
 */

#include <linux/delay.h>
#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/oom.h>
#include <linux/sched.h>
#include <linux/string.h>

#include "core.h"

static const char * const vb_autodeflate_names[] = {
	[VB_AD_OFF] = "off",
	[VB_AD_OOM] = "oom",
	[VB_AD_PRESSURE] = "pressure",
};

static int vb_param_autodeflate = VB_AD_AUTO;

/* "off", "oom", "pressure", or "auto"/"" for the host-dependent default. */
VISIBLE_IF_KUNIT int vb_parse_autodeflate(const char *val)
{
	int i;

	if (!val || !*val || sysfs_streq(val, "auto"))
		return VB_AD_AUTO;
	for (i = 0; i < ARRAY_SIZE(vb_autodeflate_names); i++)
		if (sysfs_streq(val, vb_autodeflate_names[i]))
			return i;
	return -EINVAL;
}
EXPORT_SYMBOL_IF_KUNIT(vb_parse_autodeflate);

/*
 * The mode a device runs in: what was asked for, if the host granted
 * DEFLATE_ON_OOM; "off" otherwise, since the specification lets the
 * driver take balloon pages back on its own only when the host agreed.
 */
VISIBLE_IF_KUNIT enum vb_autodeflate vb_resolve_autodeflate(int requested,
							    bool granted)
{
	if (!granted)
		return VB_AD_OFF;
	if (requested < 0 || requested >= ARRAY_SIZE(vb_autodeflate_names))
		return VB_AD_OOM;
	return requested;
}
EXPORT_SYMBOL_IF_KUNIT(vb_resolve_autodeflate);

const char *vb_autodeflate_name(enum vb_autodeflate mode)
{
	return mode < ARRAY_SIZE(vb_autodeflate_names) ?
		vb_autodeflate_names[mode] : "?";
}

static int vb_autodeflate_set(const char *val, const struct kernel_param *kp)
{
	int mode = vb_parse_autodeflate(val);

	if (mode == -EINVAL) {
		/* a sysfs write ends in a newline: keep the message on one line */
		pr_warn("vballoon: autodeflate=%.*s: use off, oom, pressure or auto\n",
			(int)strcspn(val, "\n"), val);
		return -EINVAL;
	}
	*(int *)kp->arg = mode;
	return 0;
}

static int vb_autodeflate_get(char *buf, const struct kernel_param *kp)
{
	int mode = *(int *)kp->arg;

	return sysfs_emit(buf, "%s\n", mode == VB_AD_AUTO ? "auto" :
			  vb_autodeflate_name(mode));
}

static const struct kernel_param_ops vb_autodeflate_ops = {
	.set = vb_autodeflate_set,
	.get = vb_autodeflate_get,
};
module_param_cb(autodeflate, &vb_autodeflate_ops, &vb_param_autodeflate,
		0644);
MODULE_PARM_DESC(autodeflate,
		 "Give balloon memory back to a guest short of it: off, oom, pressure, or auto (oom when the host allows it; default)");

static unsigned int vb_param_hold_ms = VB_HOLD_DEFAULT_MS;
module_param_named(pressure_hold_ms, vb_param_hold_ms, uint, 0644);
MODULE_PARM_DESC(pressure_hold_ms,
		 "Milliseconds inflation waits after memory was given back (0-600000, default 10000)");

/* Pages one OOM notification takes out of a balloon of @balloon_pages. */
VISIBLE_IF_KUNIT unsigned long vb_oom_quota(unsigned long balloon_pages,
					    unsigned int oom_pages)
{
	return min_t(unsigned long, balloon_pages, oom_pages);
}
EXPORT_SYMBOL_IF_KUNIT(vb_oom_quota);

/*
 * Pages the shrinker may release: the shortfall of available memory
 * below @floor, no more than the balloon holds; nothing while
 * available memory (free plus reclaimable cache) is at or above the floor.
 */
VISIBLE_IF_KUNIT unsigned long vb_pressure_quota(long avail_pages,
						 unsigned long floor,
						 unsigned long balloon_pages)
{
	unsigned long deficit;

	if (avail_pages >= 0 && (unsigned long)avail_pages >= floor)
		return 0;
	deficit = avail_pages < 0 ? floor : floor - avail_pages;
	return min(deficit, balloon_pages);
}
EXPORT_SYMBOL_IF_KUNIT(vb_pressure_quota);

/*
 * Open a hold-off window of @len jiffies at @now, or extend the one still
 * open (@active, until *@until) to @now + @len.  Returns true only when a
 * new window opens: "holds" counts windows, not releases.
 */
VISIBLE_IF_KUNIT bool vb_hold_extend(bool *active, unsigned long *until,
				     unsigned long now, unsigned long len)
{
	bool was_open = *active && time_before(now, *until);

	*until = now + len;
	*active = true;
	return !was_open;
}
EXPORT_SYMBOL_IF_KUNIT(vb_hold_extend);

/*
 * Release up to @want pages now and hold inflation off for a while.  The
 * host gets VB_RELEASE_WAIT_MS to answer a MUST_TELL_HOST request; pages
 * it has not acknowledged by then are released by a later call.
 */
static unsigned long vb_release(struct vballoon *vb, unsigned long want)
{
	unsigned long freed, flags;
	bool opened = false;

	lockdep_assert_held(&vb->deflate_lock);
	freed = vb_deflate(vb, want, msecs_to_jiffies(VB_RELEASE_WAIT_MS));
	if (freed && vb->hold_jiffies) {
		spin_lock_irqsave(&vb->stop_lock, flags);
		opened = vb_hold_extend(&vb->hold_active, &vb->hold_until,
					jiffies, vb->hold_jiffies);
		spin_unlock_irqrestore(&vb->stop_lock, flags);
	}
	if (opened)
		vb_count(vb, VB_CNT_HOLDS, 1);
	vb_report_actual(vb);
	return freed;
}

/*
 * Take @deflate_lock, waiting VB_RELEASE_WAIT_MS at most: its holders
 * wait for the host a second at a time, and the OOM killer waits on us.
 * A holder deflating a large batch gives pages back as it goes (a chunk
 * at a time, vb_give_back()): once it has given any back, stop waiting
 * and return false with *@others set to how many; the OOM path then
 * retries the allocation with that memory instead of killing.
 */
static bool vb_lock_deflate_bounded(struct vballoon *vb,
				    unsigned long *others)
{
	unsigned long end = jiffies + msecs_to_jiffies(VB_RELEASE_WAIT_MS);
	atomic64_t *deflated = &vb->counters[VB_CNT_DEFLATED_PAGES];
	s64 base = atomic64_read(deflated);

	*others = 0;
	while (!mutex_trylock(&vb->deflate_lock)) {
		*others = max_t(s64, atomic64_read(deflated) - base, 0);
		if (*others || time_after(jiffies, end))
			return false;
		usleep_range(200, 500);
	}
	return true;
}

/* Raise *@max to @val if below; lock-free. */
static void vb_max(atomic64_t *max, s64 val)
{
	s64 old = atomic64_read(max), seen;

	while (val > old) {
		seen = atomic64_cmpxchg(max, old, val);
		if (seen == old)
			break;
		old = seen;
	}
}

/*
 * Time an OOM notifier call: @total_ns in all, of which @wait_ns waiting
 * for others (the deflate mutex, or the host's answer to a request sent
 * before the call).  A call that waited 10 ms or more counts as slow; the
 * release itself (dequeuing and freeing oom_pages pages, telling the
 * host) is work, not waiting, and grows with oom_pages.
 */
static void vb_oom_latency(struct vballoon *vb, u64 total_ns, u64 wait_ns)
{
	vb_count(vb, VB_CNT_OOM_CALLS, 1);
	if (wait_ns >= 10 * NSEC_PER_MSEC)
		vb_count(vb, VB_CNT_OOM_SLOW_CALLS, 1);
	vb_max(&vb->oom_max_us, div_u64(total_ns, NSEC_PER_USEC));
	vb_max(&vb->oom_wait_max_us, div_u64(wait_ns, NSEC_PER_USEC));
}

static int vb_oom_notify(struct notifier_block *nb, unsigned long unused,
			 void *parm)
{
	struct vballoon *vb = container_of(nb, struct vballoon, oom_nb);
	long timeout = msecs_to_jiffies(VB_RELEASE_WAIT_MS);
	u64 start = ktime_get_ns(), wait_ns;
	unsigned long *freed = parm;
	unsigned long n = 0, others;

	if (vb_lock_deflate_bounded(vb, &others)) {
		/* A request someone else left with the host comes first. */
		vb_settle(vb, &vb->deflate_req, timeout);
		wait_ns = ktime_get_ns() - start;
		n = vb_release(vb, vb_oom_quota(vb_balloon_pages(vb),
						vb->oom_pages));
		mutex_unlock(&vb->deflate_lock);
	} else {
		wait_ns = ktime_get_ns() - start;
	}
	vb_oom_latency(vb, ktime_get_ns() - start, wait_ns);

	if (n) {
		vb_count(vb, VB_CNT_OOM_RELEASED_PAGES, n);
		vb_count(vb, VB_CNT_OOM_EVENTS, 1);
		dev_info_ratelimited(&vb->vdev->dev,
				     "out of memory: released %lu KiB from the balloon\n",
				     n << (PAGE_SHIFT - 10));
	}
	/* Freed during this call all the same: worth a retry, not a kill. */
	if (others)
		vb_count(vb, VB_CNT_OOM_WAITED_PAGES, others);
	*freed += n + others;
	return NOTIFY_OK;
}

/*
 * Available memory as the pressure shrinker sees it: blocks parked by
 * free page hinting count as available, since its own shrinker gives
 * them back first; a migration must not deflate the balloon.
 */
static long vb_available(struct vballoon *vb)
{
	return si_mem_available() + vb_hint_held_pages(vb);
}

static unsigned long vb_shrink_count(struct shrinker *s,
				     struct shrink_control *sc)
{
	struct vballoon *vb = vb_shrinker_private(s);

	/* Reclaim caused by our own inflation: do not undo it. */
	if (READ_ONCE(vb->inflater) == current)
		return 0;
	return vb_pressure_quota(vb_available(vb), vb->pressure_floor,
				 vb_balloon_pages(vb));
}

static unsigned long vb_shrink_scan(struct shrinker *s,
				    struct shrink_control *sc)
{
	struct vballoon *vb = vb_shrinker_private(s);
	unsigned long want, n;

	/* Never wait here, nor undo an inflation that is reclaiming. */
	if (READ_ONCE(vb->inflater) == current ||
	    !mutex_trylock(&vb->deflate_lock))
		return SHRINK_STOP;
	want = min(sc->nr_to_scan,
		   vb_pressure_quota(vb_available(vb), vb->pressure_floor,
				     vb_balloon_pages(vb)));
	n = want ? vb_release(vb, want) : 0;
	mutex_unlock(&vb->deflate_lock);

	if (!n)
		return SHRINK_STOP;
	vb_count(vb, VB_CNT_PRESSURE_RELEASED_PAGES, n);
	dev_info_ratelimited(&vb->vdev->dev,
			     "memory pressure: released %lu KiB from the balloon\n",
			     n << (PAGE_SHIFT - 10));
	return n;
}

/*
 * Jiffies inflation should still wait, 0 if it may go on; closes a
 * window that has run out.  Called by the update work before it inflates.
 */
unsigned long vb_hold_remaining(struct vballoon *vb)
{
	unsigned long flags, left = 0;

	spin_lock_irqsave(&vb->stop_lock, flags);
	if (vb->hold_active && time_after_eq(jiffies, vb->hold_until))
		vb->hold_active = false;
	if (vb->hold_active)
		left = vb->hold_until - jiffies;
	spin_unlock_irqrestore(&vb->stop_lock, flags);
	return left;
}

void vb_autodeflate_setup(struct vballoon *vb)
{
	unsigned int hold = READ_ONCE(vb_param_hold_ms);
	int requested = READ_ONCE(vb_param_autodeflate);

	vb->autodeflate = vb_resolve_autodeflate(requested,
						 vb->deflate_on_oom);
	vb->adjust_managed = vb->autodeflate == VB_AD_OFF;
	if (requested != VB_AD_AUTO && requested != vb->autodeflate)
		dev_warn(&vb->vdev->dev,
			 "autodeflate=%s needs the host to offer deflate-on-oom: autodeflate off\n",
			 vb_autodeflate_name(requested));
	if (hold > VB_HOLD_MAX_MS) {
		dev_warn(&vb->vdev->dev,
			 "pressure_hold_ms=%u above %u, using %u\n",
			 hold, VB_HOLD_MAX_MS, VB_HOLD_DEFAULT_MS);
		hold = VB_HOLD_DEFAULT_MS;
	}
	vb->hold_jiffies = msecs_to_jiffies(hold);
	/*
	 * Keep 1/256 of memory, at least 4 MiB, available.  MemAvailable
	 * already leaves out the watermark reserves, so a larger floor only
	 * gives the guest more than it needs and the host less.
	 */
	vb->pressure_floor = max(totalram_pages() / 256,
				 (unsigned long)(SZ_4M >> PAGE_SHIFT));
}

int vb_autodeflate_start(struct vballoon *vb)
{
	int err;

	if (vb->autodeflate == VB_AD_OFF)
		return 0;

	vb->oom_nb.notifier_call = vb_oom_notify;
	/* As the kernel's own balloon: before most other notifiers. */
	vb->oom_nb.priority = 80;
	err = register_oom_notifier(&vb->oom_nb);
	if (err)
		return err;
	vb->oom_registered = true;

	if (vb->autodeflate != VB_AD_PRESSURE)
		return 0;
	err = vb_shrinker_register(&vb->shrinker, vb_shrink_count,
				   vb_shrink_scan, vb,
				   dev_name(&vb->vdev->dev));
	if (err)
		goto err_unregister_oom;
	vb->shrinker_registered = true;
	return 0;

err_unregister_oom:
	unregister_oom_notifier(&vb->oom_nb);
	vb->oom_registered = false;
	return err;
}

void vb_autodeflate_stop(struct vballoon *vb)
{
	if (vb->shrinker_registered) {
		vb_shrinker_unregister(&vb->shrinker);
		vb->shrinker_registered = false;
	}
	if (vb->oom_registered) {
		unregister_oom_notifier(&vb->oom_nb);
		vb->oom_registered = false;
	}
}
