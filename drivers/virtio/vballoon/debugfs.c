// SPDX-License-Identifier: GPL-2.0-only
/*
 * vballoon: /sys/kernel/debug/vballoon/<device>/status, one
 * "name value" line per figure, for people and scripts.
 */

#include <linux/debugfs.h>
#include <linux/pageblock-flags.h>
#include <linux/seq_file.h>

#include "core.h"

static struct dentry *vb_debugfs_root;

/*
 * The debugfs key of each counter, in the order the status file lists
 * them.  Scripts and the admin guide know these names: change none.
 */
VISIBLE_IF_KUNIT const char * const vb_counter_keys[VB_CNT_NR] = {
	[VB_CNT_INFLATED_PAGES] = "inflated_pages",
	[VB_CNT_DEFLATED_PAGES] = "deflated_pages",
	[VB_CNT_INFLATED_BLOCKS] = "inflated_blocks",
	[VB_CNT_REQUESTS] = "requests",
	[VB_CNT_ALLOC_SHORTFALLS] = "alloc_shortfalls",
	[VB_CNT_MIGRATED_PAGES] = "migrated_pages",
	[VB_CNT_REFUSED_PFNS] = "refused_pfns",
	[VB_CNT_OOM_RELEASED_PAGES] = "oom_released_pages",
	[VB_CNT_OOM_EVENTS] = "oom_events",
	[VB_CNT_PRESSURE_RELEASED_PAGES] = "pressure_released_pages",
	[VB_CNT_HOLDS] = "holds",
	[VB_CNT_STATS_REQUESTS] = "stats_requests",
	[VB_CNT_ALLOC_US] = "alloc_us",
	[VB_CNT_INFLATE_HOST_US] = "inflate_host_us",
	[VB_CNT_DEFLATE_HOST_US] = "deflate_host_us",
	[VB_CNT_DESCRIPTORS] = "descriptors",
	[VB_CNT_OOM_CALLS] = "oom_calls",
	[VB_CNT_OOM_SLOW_CALLS] = "oom_slow_calls",
	[VB_CNT_HOST_TIMEOUTS] = "host_timeouts",
	[VB_CNT_ABANDONED] = "abandoned_requests",
	[VB_CNT_UNTOLD_PAGES] = "untold_pages",
	[VB_CNT_REPORTED_PAGES] = "reported_pages",
	[VB_CNT_REPORTED_BYTES] = "reported_bytes",
	[VB_CNT_REPORTS] = "reports",
	[VB_CNT_REPORT_FAILURES] = "report_failures",
	[VB_CNT_HINT_CMD_IDS] = "hint_cmd_ids",
	[VB_CNT_HINT_RUNS] = "hint_runs",
	[VB_CNT_HINTED_BLOCKS] = "hinted_blocks",
	[VB_CNT_HINTED_BYTES] = "hinted_bytes",
	[VB_CNT_HINT_ALLOC_STOPS] = "hint_alloc_stops",
	[VB_CNT_HINT_HOST_STALLS] = "hint_host_stalls",
	[VB_CNT_HINT_SHRUNK_BLOCKS] = "hint_shrunk_blocks",
	[VB_CNT_HINT_FREED_BLOCKS] = "hint_freed_blocks",
	[VB_CNT_OOM_WAITED_PAGES] = "oom_waited_pages",
	[VB_CNT_ALLOC_PARALLEL_ROUNDS] = "alloc_parallel_rounds",
	[VB_CNT_ALLOC_HELPER_PAGES] = "alloc_helper_pages",
	[VB_CNT_DEFLATE_FREE_US] = "deflate_free_us",
};
EXPORT_SYMBOL_IF_KUNIT(vb_counter_keys);

static int vb_status_show(struct seq_file *m, void *unused)
{
	struct vballoon *vb = m->private;
	int i;

	seq_printf(m, "target_pages %lu\n", vb_read_target(vb));
	seq_printf(m, "balloon_pages %lu\n", vb_balloon_pages(vb));
	seq_printf(m, "batch_pages %u\n", vb->batch_pages);
	seq_printf(m, "oom_pages %u\n", vb->oom_pages);
	seq_printf(m, "huge_blocks %d\n", vb->huge_blocks);
	seq_printf(m, "alloc_cpus %u\n", vb->alloc.cpus);
	seq_printf(m, "inflight_pages %ld\n",
		   atomic_long_read(&vb->inflate_inflight));
	seq_printf(m, "must_tell_host %d\n", vb->must_tell_host);
	seq_printf(m, "stats_vq %d\n", vb->has_stats);
	seq_printf(m, "deflate_on_oom %d\n", vb->deflate_on_oom);
	seq_printf(m, "autodeflate %s\n", vb_autodeflate_name(vb->autodeflate));
	seq_printf(m, "pressure_floor_pages %lu\n", vb->pressure_floor);
	seq_printf(m, "pressure_hold_ms %u\n", jiffies_to_msecs(vb->hold_jiffies));
	seq_printf(m, "adjust_managed %d\n", vb->adjust_managed);
	seq_printf(m, "stats_tags %u\n", vb->stats_tags);
	seq_printf(m, "frames_per_desc %u\n", VB_FRAMES_PER_DESC);
	seq_printf(m, "host_lost %d\n", READ_ONCE(vb->host_lost));
	seq_printf(m, "reporting %s\n",
		   vb_report_state_name(READ_ONCE(vb->rep.state)));
	seq_printf(m, "reporting_order %u\n",
		   vb->rep.order ? vb->rep.order : pageblock_order);
	seq_printf(m, "page_poison %d\n", vb->page_poison);
	seq_printf(m, "poison_val 0x%08x\n", vb->poison_val);
	seq_printf(m, "hinting %s\n",
		   vb_hint_state_name(READ_ONCE(vb->hint.state)));
	seq_printf(m, "hint_cmd_id %u\n", READ_ONCE(vb->hint.cur_id));
	seq_printf(m, "hint_held_pages %lu\n", vb_hint_held_pages(vb));
	seq_printf(m, "unacked_pages %lu\n", READ_ONCE(vb->deflate_req.nr_pages));
	seq_printf(m, "limbo_pages %lu\n", READ_ONCE(vb->nr_limbo));
	seq_printf(m, "oom_max_us %lld\n", atomic64_read(&vb->oom_max_us));
	seq_printf(m, "oom_wait_max_us %lld\n",
		   atomic64_read(&vb->oom_wait_max_us));
	for (i = 0; i < VB_CNT_NR; i++)
		seq_printf(m, "%s %lld\n", vb_counter_keys[i],
			   atomic64_read(&vb->counters[i]));
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
