// SPDX-License-Identifier: GPL-2.0-only
/*
 * vballoon: a virtio memory balloon driver.
 *
 * This file binds devices: feature negotiation, virtqueues, probe and
 * teardown, suspend and resume, and the module's parameters.
 */

#include <linux/module.h>
#include <linux/device.h>
#include <linux/slab.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "core.h"

unsigned int vb_param_batch_pages = VB_BATCH_DEFAULT;
module_param_named(batch_pages, vb_param_batch_pages, uint, 0644);
MODULE_PARM_DESC(batch_pages,
		 "Guest pages per inflate/deflate request (1-32768, default 4096)");

unsigned int vb_param_oom_pages = VB_OOM_DEFAULT;
module_param_named(oom_pages, vb_param_oom_pages, uint, 0644);
MODULE_PARM_DESC(oom_pages,
		 "Guest pages released per out-of-memory notification (1-32768, default 1024)");

bool vb_param_huge_blocks = true;
module_param_named(huge_blocks, vb_param_huge_blocks, bool, 0644);
MODULE_PARM_DESC(huge_blocks,
		 "Inflate with 2 MiB blocks first, falling back to single pages (default on)");

bool vb_param_extended_stats;
module_param_named(extended_stats, vb_param_extended_stats, bool, 0644);
MODULE_PARM_DESC(extended_stats,
		 "Also send statistics tags 10-15 (OOM kills, stalls, scans, reclaims); Firecracker before v1.15 drops all statistics when it sees them (default off)");

bool vb_param_free_page_reporting = true;
module_param_named(free_page_reporting, vb_param_free_page_reporting, bool, 0644);
MODULE_PARM_DESC(free_page_reporting,
		 "Report free memory to the host when the device offers it (VIRTIO_BALLOON_F_REPORTING) so that it can reclaim it (default on)");

unsigned int vb_param_reporting_order;
module_param_named(reporting_order, vb_param_reporting_order, uint, 0644);
MODULE_PARM_DESC(reporting_order,
		 "Smallest free block reported, as a buddy order (0: the kernel's choice, the pageblock order, 2 MiB on x86; 1 to the largest order). Smaller orders split the host's huge pages");

bool vb_param_free_page_hinting = true;
module_param_named(free_page_hinting, vb_param_free_page_hinting, bool, 0644);
MODULE_PARM_DESC(free_page_hinting,
		 "Tell the host which memory is free during a live migration when the device offers it (VIRTIO_BALLOON_F_FREE_PAGE_HINT), so that it is not sent (default on)");

unsigned int vb_param_alloc_cpus;
module_param_named(alloc_cpus, vb_param_alloc_cpus, uint, 0644);
MODULE_PARM_DESC(alloc_cpus,
		 "CPUs that allocate a large inflation together, idle ones only and never while memory is short (0: auto, half the online CPUs, 2 to 8; 1: one CPU, off)");

/* @val if within [@lo, @hi], else @dflt. */
VISIBLE_IF_KUNIT unsigned int vb_clamp_param(unsigned int val, unsigned int lo,
					     unsigned int hi, unsigned int dflt)
{
	return (val < lo || val > hi) ? dflt : val;
}
EXPORT_SYMBOL_IF_KUNIT(vb_clamp_param);

/*
 * The value of parameter @name for this device: @val if it is within
 * [@lo, @hi], else @dflt, with a warning that says which was used.
 */
static unsigned int vb_param_or_default(struct vballoon *vb, const char *name,
					unsigned int val, unsigned int lo,
					unsigned int hi, unsigned int dflt)
{
	unsigned int used = vb_clamp_param(val, lo, hi, dflt);

	if (used != val)
		dev_warn(&vb->vdev->dev, "%s=%u out of range %u-%u, using %u\n",
			 name, val, lo, hi, used);
	return used;
}

static void vb_read_params(struct vballoon *vb)
{
	vb->batch_pages = vb_param_or_default(vb, "batch_pages",
					      READ_ONCE(vb_param_batch_pages),
					      VB_BATCH_MIN, VB_BATCH_MAX,
					      VB_BATCH_DEFAULT);
	vb->oom_pages = vb_param_or_default(vb, "oom_pages",
					    READ_ONCE(vb_param_oom_pages),
					    VB_OOM_MIN, VB_OOM_MAX,
					    VB_OOM_DEFAULT);
	vb->huge_blocks = READ_ONCE(vb_param_huge_blocks);
	vb->alloc.cpus = vb_param_or_default(vb, "alloc_cpus",
					     READ_ONCE(vb_param_alloc_cpus),
					     0, VB_ALLOC_CPUS_MAX, 0);
	vb->stats_tags = READ_ONCE(vb_param_extended_stats) ?
			 VBALLOON_S_NR : VBALLOON_S_OOM_KILL;
}

static void vb_read_features(struct vballoon *vb)
{
	struct virtio_device *vdev = vb->vdev;

	vb->must_tell_host = virtio_has_feature(vdev,
						VBALLOON_F_MUST_TELL_HOST);
	vb->has_stats = virtio_has_feature(vdev, VBALLOON_F_STATS_VQ);
	vb->deflate_on_oom = virtio_has_feature(vdev,
						VBALLOON_F_DEFLATE_ON_OOM);
}

/*
 * Ask the transport for every queue of 5.5.2, in that order; those of
 * features not negotiated have no name and are left out.
 */
static int vb_init_vqs(struct vballoon *vb)
{
	struct vb_vq_spec spec[VB_MAX_VQS] = {
		[VBALLOON_VQ_INFLATE] = { "inflate", vb_ack_callback },
		[VBALLOON_VQ_DEFLATE] = { "deflate", vb_ack_callback },
	};
	struct virtqueue *vqs[VB_MAX_VQS] = {};
	int err;

	if (vb->has_stats)
		spec[VBALLOON_VQ_STATS] = (struct vb_vq_spec){
			"stats", vb_stats_callback };
	if (vb->hint.negotiated)
		spec[VBALLOON_VQ_FREE_PAGE] = (struct vb_vq_spec){
			"free_page", vb_hint_callback };
	if (vb->rep.negotiated)
		spec[VBALLOON_VQ_REPORTING] = (struct vb_vq_spec){
			"reporting", vb_reporting_callback };

	err = vb_find_vqs(vb->vdev, VB_MAX_VQS, vqs, spec);
	if (err)
		return err;

	vb->inflate_q.vq = vqs[VBALLOON_VQ_INFLATE];
	vb->deflate_q.vq = vqs[VBALLOON_VQ_DEFLATE];
	vb->stats_vq = vqs[VBALLOON_VQ_STATS];
	vb->hint.vq = vqs[VBALLOON_VQ_FREE_PAGE];
	vb->rep.vq = vqs[VBALLOON_VQ_REPORTING];
	return 0;
}

static void vb_del_vqs(struct vballoon *vb)
{
	vb->vdev->config->del_vqs(vb->vdev);
	vb->inflate_q.vq = NULL;
	vb->deflate_q.vq = NULL;
	vb->stats_vq = NULL;
	vb->hint.vq = NULL;
	vb->rep.vq = NULL;
}

/*
 * Bring a stopped device to life: virtqueues, autodeflate, the first
 * statistics buffer, poison_val, DRIVER_OK, then free page reporting and
 * the work items.  The counterpart of vb_stop(); probe and restore both
 * end with it.  On failure the device is left stopped, with nothing to
 * undo: reporting is registered only after the last step that can fail.
 */
static int vb_start(struct vballoon *vb)
{
	struct virtio_device *vdev = vb->vdev;
	unsigned long flags;
	int err;

	/* A fresh device: whatever a lost host held was freed at reset. */
	vb->host_lost = false;
	err = vb_init_vqs(vb);
	if (err) {
		dev_err(&vdev->dev, "cannot set up virtqueues: %d\n", err);
		return err;
	}

	err = vb_autodeflate_start(vb);
	if (err) {
		dev_err(&vdev->dev, "cannot start autodeflate: %d\n", err);
		goto err_del_vqs;
	}

	vb_stats_prime(vb);
	spin_lock_irqsave(&vb->stop_lock, flags);
	vb->stopping = false;
	spin_unlock_irqrestore(&vb->stop_lock, flags);
	vb->started = true;

	/* Before DRIVER_OK, and the same value after every reset. */
	if (vb->page_poison)
		virtio_cwrite_le(vdev, struct vballoon_config, poison_val,
				 &vb->poison_val);
	vb_hint_start(vb);
	virtio_device_ready(vdev);
	vb_reporting_start(vb);

	if (vb->has_stats)
		queue_work(system_freezable_wq, &vb->stats_work);
	vb_target_changed(vb);
	/* A command id set before this start is acted on now. */
	vb_hint_config_changed(vb);
	return 0;

err_del_vqs:
	virtio_reset_device(vdev);
	vb_del_vqs(vb);
	return err;
}

/*
 * Quiesce: no new work, none running, every page back with the guest,
 * the device reset and its queues gone.  Bounded even when the host has
 * gone silent: a request that does not move for VB_STOP_GRACE_MS is
 * given up (host.c), the device is reset, and the pages the host may
 * still have had are freed only then.  Does nothing on a device that is
 * already stopped (a restore that failed, then removal).
 */
static void vb_stop(struct vballoon *vb)
{
	unsigned long flags;
	bool adjusting;

	if (!vb->started)
		return;

	spin_lock_irqsave(&vb->stop_lock, flags);
	vb->stopping = true;
	vb->stop_time = jiffies;
	adjusting = vb->adjusting;
	vb->adjusting = false;
	if (adjusting)
		pm_relax(&vb->vdev->dev);
	spin_unlock_irqrestore(&vb->stop_lock, flags);
	/* Senders waiting for the host look at the clock from now on. */
	vb_wake_waiters(vb);
	vb_reporting_close(vb);
	/* Before the configuration work: that one may queue the hint work. */
	vb_hint_close(vb);

	vb_autodeflate_stop(vb);
	cancel_work_sync(&vb->config_work);
	cancel_delayed_work_sync(&vb->update_work);
	cancel_work_sync(&vb->stats_work);

	vb_deflate_all(vb);
	virtio_reset_device(vb->vdev);
	/* Reported pages are free again only now; unregistered before del_vqs. */
	vb_reporting_stop(vb);
	/* Hinted blocks too: the host holds none of their buffers now. */
	vb_hint_stop(vb);
	vb_free_after_reset(vb);
	vb_report_actual(vb);
	vb_del_vqs(vb);
	vb->started = false;
	if (READ_ONCE(vb->host_lost))
		dev_info(&vb->vdev->dev, "stopped without the host: balloon emptied after reset\n");
}

static void vb_config_changed(struct virtio_device *vdev)
{
	struct vballoon *vb = vdev->priv;
	unsigned long flags;

	/* Interrupt context: the work reads the configuration. */
	spin_lock_irqsave(&vb->stop_lock, flags);
	if (!vb->stopping)
		queue_work(system_freezable_wq, &vb->config_work);
	spin_unlock_irqrestore(&vb->stop_lock, flags);
}

static int vb_probe(struct virtio_device *vdev)
{
	struct vballoon *vb;
	int err;

	if (!vdev->config->get) {
		dev_err(&vdev->dev, "transport cannot read configuration\n");
		return -EINVAL;
	}

	vb = kzalloc(sizeof(*vb), GFP_KERNEL);
	if (!vb)
		return -ENOMEM;
	vb->vdev = vdev;
	vdev->priv = vb;

	spin_lock_init(&vb->stop_lock);
	vb->stopping = true;
	vb_read_params(vb);
	vb_read_features(vb);
	vb_reporting_setup(vb);
	vb_hint_setup(vb);
	vb_autodeflate_setup(vb);
	err = vb_balloon_init(vb);
	if (err)
		goto err_free_vb;
	vb_alloc_init(vb);
	vb_debugfs_add(vb);

	err = vb_stats_init(vb);
	if (err)
		goto err_remove_debugfs;

	err = vb_start(vb);
	if (err)
		goto err_free_stats;

	/* Userspace may let the balloon keep an autosleeping guest awake. */
	device_set_wakeup_capable(&vdev->dev, true);
	dev_info(&vdev->dev,
		 "vballoon ready: must-tell-host %s, stats %s (%u tags), deflate-on-oom %s, autodeflate %s, %u pages per request, %u allocating CPUs, free page reporting %s, page poison %s, free page hinting %s\n",
		 str_on_off(vb->must_tell_host), str_on_off(vb->has_stats),
		 vb->stats_tags, str_on_off(vb->deflate_on_oom),
		 vb_autodeflate_name(vb->autodeflate), vb->batch_pages,
		 vb->alloc.cpus, vb_report_state_name(vb->rep.state),
		 str_on_off(vb->page_poison),
		 vb_hint_state_name(vb->hint.state));
	return 0;

err_free_stats:
	vb_stats_free(vb);
err_remove_debugfs:
	vb_debugfs_remove(vb);
	vb_alloc_free(vb);
	vb_balloon_free(vb);
err_free_vb:
	vdev->priv = NULL;
	kfree(vb);
	return err;
}

static void vb_remove(struct virtio_device *vdev)
{
	struct vballoon *vb = vdev->priv;

	vb_stop(vb);
	device_set_wakeup_capable(&vdev->dev, false);
	vb_stats_free(vb);
	vb_debugfs_remove(vb);
	vb_alloc_free(vb);
	vb_balloon_free(vb);
	vdev->priv = NULL;
	kfree(vb);
}

#ifdef CONFIG_PM_SLEEP
static int vb_freeze(struct virtio_device *vdev)
{
	vb_stop(vdev->priv);
	return 0;
}

static int vb_restore(struct virtio_device *vdev)
{
	return vb_start(vdev->priv);
}
#endif

static int vb_validate(struct virtio_device *vdev)
{
	if (!READ_ONCE(vb_param_free_page_hinting))
		__virtio_clear_bit(vdev, VBALLOON_F_FREE_PAGE_HINT);
	/* Page poison and reporting by the guest's use of freed pages. */
	vb_free_page_features(vdev);
	/*
	 * Frame numbers name guest memory, not DMA addresses: a device that
	 * needs them translated (an IOMMU, or a confidential guest whose
	 * private memory the host must not be handed) cannot be served.
	 * Refusing the bit makes the virtio core refuse the device where
	 * the platform demands it (SEV, TDX); elsewhere the device runs
	 * without translation, as with the kernel's own driver.
	 */
	__virtio_clear_bit(vdev, VIRTIO_F_ACCESS_PLATFORM);
	/* One buffer per descriptor: indirect tables would buy nothing. */
	__virtio_clear_bit(vdev, VIRTIO_RING_F_INDIRECT_DESC);
	return 0;
}

static const struct virtio_device_id vb_id_table[] = {
	{ VIRTIO_ID_BALLOON, VIRTIO_DEV_ANY_ID },
	{ 0 },
};
MODULE_DEVICE_TABLE(virtio, vb_id_table);

static unsigned int vb_features[] = {
	VBALLOON_F_MUST_TELL_HOST,
	VBALLOON_F_STATS_VQ,
	VBALLOON_F_DEFLATE_ON_OOM,
	VBALLOON_F_FREE_PAGE_HINT,
	VBALLOON_F_PAGE_POISON,
	VBALLOON_F_REPORTING,
};

static struct virtio_driver vb_driver = {
	.feature_table = vb_features,
	.feature_table_size = ARRAY_SIZE(vb_features),
	.driver.name = KBUILD_MODNAME,
	.id_table = vb_id_table,
	.validate = vb_validate,
	.probe = vb_probe,
	.remove = vb_remove,
	.config_changed = vb_config_changed,
#ifdef CONFIG_PM_SLEEP
	.freeze = vb_freeze,
	.restore = vb_restore,
#endif
};

static int __init vb_init(void)
{
	int err;

	vb_debugfs_init();
	err = register_virtio_driver(&vb_driver);
	if (err)
		goto err_debugfs;
	return 0;

err_debugfs:
	vb_debugfs_exit();
	return err;
}

static void __exit vb_exit(void)
{
	unregister_virtio_driver(&vb_driver);
	vb_debugfs_exit();
}

module_init(vb_init);
module_exit(vb_exit);

MODULE_DESCRIPTION("Virtio memory balloon driver with batched, block-aware inflation");
MODULE_LICENSE("GPL");
#ifdef VB_VERSION
MODULE_VERSION(VB_VERSION);
#endif
