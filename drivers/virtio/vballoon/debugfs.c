// SPDX-License-Identifier: GPL-2.0-only
/*
 * vballoon: /sys/kernel/debug/vballoon/<device>/status, one
 * "name value" line per figure, for people and scripts.
 */

#include <linux/debugfs.h>
#include <linux/seq_file.h>

#include "core.h"

static struct dentry *vb_debugfs_root;

static int vb_status_show(struct seq_file *m, void *unused)
{
	struct vballoon *vb = m->private;
	struct vb_counters *c = &vb->counters;

	seq_printf(m, "target_pages %lu\n", vb_read_target(vb));
	seq_printf(m, "balloon_pages %lu\n", READ_ONCE(vb->num_pages));
	seq_printf(m, "batch_pages %u\n", vb->batch_pages);
	seq_printf(m, "oom_pages %u\n", vb->oom_pages);
	seq_printf(m, "huge_blocks %d\n", vb->huge_blocks);
	seq_printf(m, "must_tell_host %d\n", vb->must_tell_host);
	seq_printf(m, "stats_vq %d\n", vb->has_stats);
	seq_printf(m, "deflate_on_oom %d\n", vb->deflate_on_oom);
	seq_printf(m, "autodeflate %s\n", vb_autodeflate_name(vb->autodeflate));
	seq_printf(m, "pressure_floor_pages %lu\n", vb->pressure_floor);
	seq_printf(m, "inflated_pages %ld\n", atomic_long_read(&c->inflated));
	seq_printf(m, "deflated_pages %ld\n", atomic_long_read(&c->deflated));
	seq_printf(m, "inflated_blocks %ld\n", atomic_long_read(&c->blocks));
	seq_printf(m, "requests %ld\n", atomic_long_read(&c->requests));
	seq_printf(m, "alloc_shortfalls %ld\n",
		   atomic_long_read(&c->alloc_short));
	seq_printf(m, "migrated_pages %ld\n", atomic_long_read(&c->migrated));
	seq_printf(m, "refused_pfns %ld\n",
		   atomic_long_read(&c->refused_pfns));
	seq_printf(m, "oom_released_pages %ld\n",
		   atomic_long_read(&c->oom_released));
	seq_printf(m, "oom_events %ld\n", atomic_long_read(&c->oom_events));
	seq_printf(m, "pressure_released_pages %ld\n",
		   atomic_long_read(&c->pressure_released));
	seq_printf(m, "holds %ld\n", atomic_long_read(&c->holds));
	seq_printf(m, "stats_requests %ld\n",
		   atomic_long_read(&c->stats_requests));
	seq_printf(m, "alloc_us %lld\n", atomic64_read(&c->alloc_us));
	seq_printf(m, "inflate_host_us %lld\n",
		   atomic64_read(&c->inflate_host_us));
	seq_printf(m, "deflate_host_us %lld\n",
		   atomic64_read(&c->deflate_host_us));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vb_status);

void vb_debugfs_add(struct vballoon *vb)
{
	if (IS_ERR_OR_NULL(vb_debugfs_root))
		return;
	vb->debugfs = debugfs_create_dir(dev_name(&vb->vdev->dev),
					 vb_debugfs_root);
	debugfs_create_file("status", 0444, vb->debugfs, vb, &vb_status_fops);
}

void vb_debugfs_remove(struct vballoon *vb)
{
	debugfs_remove_recursive(vb->debugfs);
	vb->debugfs = NULL;
}

void vb_debugfs_init(void)
{
	vb_debugfs_root = debugfs_create_dir(KBUILD_MODNAME, NULL);
}

void vb_debugfs_exit(void)
{
	debugfs_remove_recursive(vb_debugfs_root);
	vb_debugfs_root = NULL;
}
