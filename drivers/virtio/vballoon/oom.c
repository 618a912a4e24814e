// SPDX-License-Identifier: GPL-2.0-only
/*
 * vballoon: giving memory back when the guest is out of it
 * (VIRTIO_BALLOON_F_DEFLATE_ON_OOM).
 *
 * The OOM killer calls its notifier chain before it picks a victim; the
 * pages released here count as freed, and when there are any the kill is
 * skipped.  Only a bounded number of pages goes per call, so a guest
 * that keeps allocating comes back for more instead of emptying the
 * balloon at once.
 */

#include <linux/oom.h>

#include "core.h"

/* Pages one OOM notification takes out of a balloon of @balloon_pages. */
VISIBLE_IF_KUNIT unsigned long vb_oom_quota(unsigned long balloon_pages,
					    unsigned int oom_pages)
{
	return min_t(unsigned long, balloon_pages, oom_pages);
}
EXPORT_SYMBOL_IF_KUNIT(vb_oom_quota);

unsigned long vb_oom_release(struct vballoon *vb)
{
	unsigned long freed;

	mutex_lock(&vb->lock);
	freed = vb_deflate(vb, vb_oom_quota(vb->num_pages, vb->oom_pages));
	vb_report_actual(vb);
	mutex_unlock(&vb->lock);

	if (freed) {
		atomic_long_add(freed, &vb->counters.oom_released);
		atomic_long_inc(&vb->counters.oom_events);
		dev_info_ratelimited(&vb->vdev->dev,
				     "out of memory: released %lu KiB from the balloon\n",
				     freed << (PAGE_SHIFT - 10));
	}
	return freed;
}

static int vb_oom_notify(struct notifier_block *nb, unsigned long unused,
			 void *parm)
{
	struct vballoon *vb = container_of(nb, struct vballoon, oom_nb);
	unsigned long *freed = parm;

	*freed += vb_oom_release(vb);
	return NOTIFY_OK;
}

int vb_oom_register(struct vballoon *vb)
{
	int err;

	if (!vb->deflate_on_oom)
		return 0;
	vb->oom_nb.notifier_call = vb_oom_notify;
	vb->oom_nb.priority = 0;
	err = register_oom_notifier(&vb->oom_nb);
	if (err)
		return err;
	vb->oom_registered = true;
	return 0;
}

void vb_oom_unregister(struct vballoon *vb)
{
	if (!vb->oom_registered)
		return;
	unregister_oom_notifier(&vb->oom_nb);
	vb->oom_registered = false;
}
