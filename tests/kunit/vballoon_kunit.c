// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit suite for vballoon's device-independent logic.  It reaches the
 * driver only through symbols exported with EXPORT_SYMBOL_IF_KUNIT.
 */

#include <kunit/test.h>
#include <linux/bits.h>
#include <linux/build_bug.h>
#include <linux/limits.h>
#include <linux/mm.h>
#include <linux/sched/loadavg.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/virtio_config.h>
#include <linux/vmstat.h>

#include "core.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

/*
 * A device that negotiated VIRTIO_F_VERSION_1 (little-endian) or not.
 * On the heap: struct virtio_device is too large for a debug kernel's
 * stack frame limit.
 */
static struct virtio_device *vbt_vdev(struct kunit *test, bool modern)
{
	struct virtio_device *vdev;

	vdev = kunit_kzalloc(test, sizeof(*vdev), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, vdev);
	if (modern)
		vdev->features = BIT_ULL(VIRTIO_F_VERSION_1);
	return vdev;
}

/*
 * Constants the tests rely on, checked when the suite is built: the wire
 * format's 4 KiB frames, and the driver's two ways of saying how many of
 * them make a guest page.
 */
static_assert(BIT(VBALLOON_PFN_SHIFT) == SZ_4K);
static_assert(BIT(VB_FRAME_SHIFT) == VB_FRAMES_PER_PAGE);

/*
 * The frame helpers take log2 of the frames per page, so they are tried
 * here with the page sizes of other architectures too.  With 4 KiB pages
 * (x86) a page is one frame, and rounding to whole pages or writing
 * several consecutive frames per page cannot go wrong; 16 KiB (arm64,
 * loongarch) and 64 KiB (arm64, powerpc) pages are where they can.
 */
#define VBT_SHIFT_4K		0
#define VBT_SHIFT_16K		2
#define VBT_SHIFT_64K		4
#define VBT_FRAMES_MAX		BIT(VBT_SHIFT_64K)

static_assert(BIT(VBT_SHIFT_16K) == SZ_16K / SZ_4K);
static_assert(BIT(VBT_SHIFT_64K) == SZ_64K / SZ_4K);

/* 16 TiB, all that 32-bit frame numbers reach, in 64 KiB pages. */
#define VBT_64K_PAGES_IN_16T	0x10000000UL

/* ---- target and size arithmetic ---- */

struct vbt_target {
	const char *name;
	unsigned int shift;
	u32 frames;		/* the host's target, 4 KiB frames */
	unsigned long pages;	/* guest pages the driver must aim at */
};

static const struct vbt_target vbt_targets[] = {
	{ "4K_zero", VBT_SHIFT_4K, 0, 0 },
	{ "4K_frames", VBT_SHIFT_4K, 1000, 1000 },
	/* 16 TiB, far above any guest: must not wrap to small. */
	{ "4K_u32_max", VBT_SHIFT_4K, U32_MAX, U32_MAX },
	/* A partial guest page counts as a whole one: never below target. */
	{ "16K_one_frame", VBT_SHIFT_16K, 1, 1 },
	{ "16K_page_and_frame", VBT_SHIFT_16K, 29, 8 },
	{ "64K_zero", VBT_SHIFT_64K, 0, 0 },
	{ "64K_whole_pages", VBT_SHIFT_64K, 16000, 1000 },
	{ "64K_frame_short", VBT_SHIFT_64K, 15999, 1000 },
	{ "64K_frame_over", VBT_SHIFT_64K, 16001, 1001 },
	{ "64K_u32_max", VBT_SHIFT_64K, U32_MAX, VBT_64K_PAGES_IN_16T },
};

KUNIT_ARRAY_PARAM_DESC(vbt_target, vbt_targets, name);

/* The host's target in frames, as guest pages, rounded up. */
static void vbt_target_pages(struct kunit *test)
{
	const struct vbt_target *p = test->param_value;

	KUNIT_EXPECT_EQ(test, vb_target_pages(p->frames, p->shift), p->pages);
}

struct vbt_actual {
	const char *name;
	unsigned int shift;
	unsigned long pages;	/* guest pages in the balloon */
	u32 frames;		/* what "actual" must say, 4 KiB frames */
};

static const struct vbt_actual vbt_actuals[] = {
	{ "4K_zero", VBT_SHIFT_4K, 0, 0 },
	{ "4K_pages", VBT_SHIFT_4K, 1000, 1000 },
	{ "4K_u32_max", VBT_SHIFT_4K, U32_MAX, U32_MAX },
	/* More than 32 bits of frames is the maximum, never wrapped. */
	{ "4K_ulong_max", VBT_SHIFT_4K, ULONG_MAX, U32_MAX },
	{ "16K_pages", VBT_SHIFT_16K, 1000, 4000 },
	{ "64K_pages", VBT_SHIFT_64K, 1000, 16000 },
	{ "64K_last_fits", VBT_SHIFT_64K, VBT_64K_PAGES_IN_16T - 1,
	  0xfffffff0 },
	{ "64K_first_over", VBT_SHIFT_64K, VBT_64K_PAGES_IN_16T, U32_MAX },
	/* Times 16 is 2^64 on 64-bit: a multiplication would give 0. */
	{ "64K_wraps_multiply", VBT_SHIFT_64K,
	  (ULONG_MAX >> VBT_SHIFT_64K) + 1, U32_MAX },
	{ "64K_ulong_max", VBT_SHIFT_64K, ULONG_MAX, U32_MAX },
};

KUNIT_ARRAY_PARAM_DESC(vbt_actual, vbt_actuals, name);

/* The guest pages held, as the frames reported to the host, saturating. */
static void vbt_actual_frames(struct kunit *test)
{
	const struct vbt_actual *p = test->param_value;

	KUNIT_EXPECT_EQ(test, vb_actual_frames(p->pages, p->shift), p->frames);
}

struct vbt_diff {
	const char *name;
	unsigned long target;
	unsigned long current_pages;
	long diff;		/* > 0: inflate, < 0: deflate */
};

static const struct vbt_diff vbt_diffs[] = {
	{ "inflate", 300, 100, 200 },
	{ "deflate", 100, 300, -200 },
	{ "settled", 4242, 4242, 0 },
	{ "inflate_max", ULONG_MAX, 0, LONG_MAX },
	{ "deflate_max", 0, ULONG_MAX, -LONG_MAX },
};

KUNIT_ARRAY_PARAM_DESC(vbt_diff, vbt_diffs, name);

static void vbt_pages_diff(struct kunit *test)
{
	const struct vbt_diff *p = test->param_value;

	KUNIT_EXPECT_EQ(test, vb_pages_diff(p->target, p->current_pages),
			p->diff);
}

/* ---- frame numbers on the inflate/deflate queues ---- */

/* @p's four bytes read as little-endian, as a modern device reads them. */
static u32 vbt_bytes_le32(const void *p)
{
	const u8 *b = p;

	return b[0] | b[1] << 8 | b[2] << 16 | (u32)b[3] << 24;
}

struct vbt_pfn {
	const char *name;
	unsigned int shift;
	unsigned long pfn;	/* guest page frame number */
	int ret;
	u32 first, last;	/* 4 KiB frames expected on the queue */
};

static const struct vbt_pfn vbt_pfns[] = {
	{ "4K_zero", VBT_SHIFT_4K, 0, 0, 0, 0 },
	{ "4K_pfn", VBT_SHIFT_4K, 0x12345, 0, 0x12345, 0x12345 },
	{ "4K_last_fits", VBT_SHIFT_4K, U32_MAX, 0, U32_MAX, U32_MAX },
#if BITS_PER_LONG > 32
	/* Above what 32-bit frame numbers reach: refused, not truncated. */
	{ "4K_first_over", VBT_SHIFT_4K, (unsigned long)U32_MAX + 1, -ERANGE },
	/* Would become a small number if truncated. */
	{ "4K_truncates_small", VBT_SHIFT_4K, BIT(32) | 5, -ERANGE },
	{ "4K_ulong_max", VBT_SHIFT_4K, ULONG_MAX, -ERANGE },
#endif
	{ "16K_pfn", VBT_SHIFT_16K, 0x12345, 0, 0x48d14, 0x48d17 },
	{ "64K_zero", VBT_SHIFT_64K, 0, 0, 0, 0xf },
	{ "64K_pfn", VBT_SHIFT_64K, 0x12345, 0, 0x123450, 0x12345f },
	{ "64K_last_fits", VBT_SHIFT_64K, VBT_64K_PAGES_IN_16T - 1, 0,
	  0xfffffff0, U32_MAX },
	{ "64K_first_over", VBT_SHIFT_64K, VBT_64K_PAGES_IN_16T, -ERANGE },
	{ "64K_ulong_max", VBT_SHIFT_64K, ULONG_MAX, -ERANGE },
};

KUNIT_ARRAY_PARAM_DESC(vbt_pfn, vbt_pfns, name);

#define VBT_POISON	0xa5a5a5a5

/*
 * A guest page's frames, each in little-endian for a modern device, one
 * after the other from the first frame of the page, and nothing written
 * past them; a frame number that does not fit is refused and nothing is
 * written at all.
 */
static void vbt_encode_pfns(struct kunit *test)
{
	const struct vbt_pfn *p = test->param_value;
	__virtio32 out[VBT_FRAMES_MAX + 1];
	struct virtio_device *vdev;
	unsigned int i, n = 0;

	vdev = vbt_vdev(test, true);
	memset(out, 0xa5, sizeof(out));
	KUNIT_ASSERT_EQ(test, vb_encode_pfns(vdev, out, p->pfn, p->shift),
			p->ret);
	if (!p->ret) {
		n = p->last - p->first + 1;
		KUNIT_ASSERT_LE(test, n, VBT_FRAMES_MAX);
	}
	for (i = 0; i < n; i++)
		KUNIT_EXPECT_EQ(test, vbt_bytes_le32(&out[i]), p->first + i);
	for (; i < ARRAY_SIZE(out); i++)
		KUNIT_EXPECT_EQ(test, vbt_bytes_le32(&out[i]), VBT_POISON);
}

/*
 * A legacy device (no VIRTIO_F_VERSION_1) reads frame numbers in the
 * guest's native byte order.  On a little-endian guest, x86 included,
 * that is little-endian too, so here this case cannot tell the virtio
 * byte order (cpu_to_virtio32()) from plain cpu_to_le32(); only a
 * big-endian guest (s390, big-endian powerpc) can.  Which order a legacy
 * device uses is fixed when the kernel is built
 * (virtio_legacy_is_little_endian()) and cannot be set per device, so a
 * big-endian legacy device cannot be presented to the driver here.
 * What the case does show on every guest: the frames are in native order
 * for a legacy device, so a driver that wrote big-endian, or swapped
 * bytes on a little-endian guest, fails.
 */
static void vbt_pfn_legacy_native(struct kunit *test)
{
	const u32 first = 0x48d14;	/* pfn 0x12345 in 16 KiB pages */
	__virtio32 out[BIT(VBT_SHIFT_16K)];
	struct virtio_device *vdev;
	unsigned int i;
	u32 native;

	vdev = vbt_vdev(test, false);
	KUNIT_ASSERT_EQ(test, vb_encode_pfns(vdev, out, 0x12345, VBT_SHIFT_16K),
			0);
	for (i = 0; i < ARRAY_SIZE(out); i++) {
		native = first + i;
		KUNIT_EXPECT_EQ(test, memcmp(&out[i], &native, sizeof(native)),
				0);
	}
}

/* ---- statistics ---- */

/* 2-byte tag and 8-byte value, packed, as the device reads them. */
static_assert(sizeof(struct vballoon_stat) == 10);
static_assert(VBALLOON_S_NR == 16);

static void vbt_stats_encode_tags(struct kunit *test)
{
	struct vballoon_stat out[VBALLOON_S_NR];
	u64 vals[VBALLOON_S_NR] = {};
	struct virtio_device *vdev;
	unsigned int i;

	vdev = vbt_vdev(test, true);
	KUNIT_ASSERT_EQ(test, vb_stats_encode(vdev, out, vals, VBALLOON_S_NR),
			(unsigned int)VBALLOON_S_NR);
	for (i = 0; i < VBALLOON_S_NR; i++)
		KUNIT_EXPECT_EQ(test, virtio16_to_cpu(vdev, out[i].tag), (u16)i);
}

/* The default buffer stops before tag 10; nothing asks beyond 16. */
static void vbt_stats_encode_count(struct kunit *test)
{
	struct vballoon_stat out[VBALLOON_S_NR];
	u64 vals[VBALLOON_S_NR] = {};
	struct virtio_device *vdev;

	memset(out, 0xff, sizeof(out));
	vdev = vbt_vdev(test, true);
	KUNIT_EXPECT_EQ(test, vb_stats_encode(vdev, out, vals,
					      VBALLOON_S_OOM_KILL), 10U);
	KUNIT_EXPECT_EQ(test, virtio16_to_cpu(vdev, out[9].tag), (u16)9);
	/* Entry 10 untouched. */
	KUNIT_EXPECT_EQ(test, out[10].tag, (__virtio16)0xffff);
	KUNIT_EXPECT_EQ(test, vb_stats_encode(vdev, out, vals, 99),
			(unsigned int)VBALLOON_S_NR);
}

/* ---- descriptors ---- */

static void vbt_descs_for(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vb_descs_for(0), 0U);
	KUNIT_EXPECT_EQ(test, vb_descs_for(1), 1U);
	KUNIT_EXPECT_EQ(test, vb_descs_for(VB_FRAMES_PER_DESC), 1U);
	KUNIT_EXPECT_EQ(test, vb_descs_for(VB_FRAMES_PER_DESC + 1), 2U);
	/* A full batch fits a 128-entry ring (QEMU's) in one kick. */
	KUNIT_EXPECT_EQ(test, vb_descs_for(VB_BATCH_MAX * VB_FRAMES_PER_PAGE),
			(unsigned int)(VB_BATCH_MAX * VB_FRAMES_PER_PAGE /
				       VB_FRAMES_PER_DESC));
	KUNIT_EXPECT_LE(test, VB_FRAMES_PER_DESC, 256U);
}

/* ---- parallel allocation ---- */

static void vbt_alloc_cpus_auto(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vb_alloc_cpus_auto(1), 1U);
	KUNIT_EXPECT_EQ(test, vb_alloc_cpus_auto(2), 2U);
	KUNIT_EXPECT_EQ(test, vb_alloc_cpus_auto(3), 2U);
	KUNIT_EXPECT_EQ(test, vb_alloc_cpus_auto(8), 4U);
	KUNIT_EXPECT_EQ(test, vb_alloc_cpus_auto(64), VB_ALLOC_CPUS_MAX);
}

#define VBT_LOAD(x)	((unsigned long)(x) * FIXED_1)

static void vbt_alloc_helpers_bounded(struct kunit *test)
{
	unsigned long batch = VB_BATCH_DEFAULT;

	/* Off, or a single CPU. */
	KUNIT_EXPECT_EQ(test, vb_alloc_helpers(1, 8, 0, batch), 0U);
	KUNIT_EXPECT_EQ(test, vb_alloc_helpers(2, 1, 0, batch), 0U);
	/* An idle 2-vCPU guest: one helper beside the update work. */
	KUNIT_EXPECT_EQ(test, vb_alloc_helpers(2, 2, 0, batch), 1U);
	KUNIT_EXPECT_EQ(test, vb_alloc_helpers(2, 2, FIXED_1 / 2, batch), 1U);
	/* A loaded one: none. */
	KUNIT_EXPECT_EQ(test, vb_alloc_helpers(2, 2, FIXED_1 + 1, batch), 0U);
	KUNIT_EXPECT_EQ(test, vb_alloc_helpers(2, 2, VBT_LOAD(5), batch), 0U);
	/* No more than the parameter allows, nor than the load leaves. */
	KUNIT_EXPECT_EQ(test, vb_alloc_helpers(4, 16, 0, batch), 3U);
	KUNIT_EXPECT_EQ(test, vb_alloc_helpers(8, 8, VBT_LOAD(5), batch), 3U);
	KUNIT_EXPECT_EQ(test, vb_alloc_helpers(8, 8, VBT_LOAD(8), batch), 0U);
}

static void vbt_alloc_helpers_small_batch(struct kunit *test)
{
	/* Every share is at least one 2 MiB block. */
	KUNIT_EXPECT_EQ(test, vb_alloc_helpers(8, 8, 0, 1), 0U);
	KUNIT_EXPECT_EQ(test, vb_alloc_helpers(8, 8, 0, VB_BLOCK_PAGES), 0U);
	KUNIT_EXPECT_EQ(test, vb_alloc_helpers(8, 8, 0, 2 * VB_BLOCK_PAGES - 1),
			0U);
	KUNIT_EXPECT_EQ(test, vb_alloc_helpers(8, 8, 0, 2 * VB_BLOCK_PAGES), 1U);
	KUNIT_EXPECT_EQ(test, vb_alloc_helpers(8, 8, 0, 4 * VB_BLOCK_PAGES), 3U);
}

static void vbt_alloc_share(struct kunit *test)
{
	unsigned int h;

	KUNIT_EXPECT_EQ(test, vb_alloc_share(VB_BATCH_DEFAULT, 0), 0UL);
	KUNIT_EXPECT_EQ(test, vb_alloc_share(VB_BATCH_DEFAULT, 1),
			(unsigned long)VB_BATCH_DEFAULT / 2);
	/* Whole blocks, and never more than the batch. */
	for (h = 1; h < VB_ALLOC_CPUS_MAX; h++) {
		unsigned long want = 5 * VB_BLOCK_PAGES + 17;
		unsigned long share = vb_alloc_share(want, h);

		KUNIT_EXPECT_EQ(test, share % VB_BLOCK_PAGES, 0UL);
		KUNIT_EXPECT_LE(test, share * h, want);
	}
}

static void vbt_stats_encode_le(struct kunit *test)
{
	struct vballoon_stat out[VBALLOON_S_NR];
	u64 vals[VBALLOON_S_NR];
	struct virtio_device *vdev;
	__le64 le_val;
	__le16 le_tag;
	unsigned int i;

	for (i = 0; i < VBALLOON_S_NR; i++)
		vals[i] = 0x0102030405060708ULL + i;
	vdev = vbt_vdev(test, true);
	vb_stats_encode(vdev, out, vals, VBALLOON_S_NR);
	for (i = 0; i < VBALLOON_S_NR; i++) {
		le_tag = cpu_to_le16(i);
		le_val = cpu_to_le64(vals[i]);
		KUNIT_EXPECT_EQ(test, memcmp(&out[i].tag, &le_tag, 2), 0);
		KUNIT_EXPECT_EQ(test, memcmp(&out[i].val, &le_val, 8), 0);
	}
}

/* Collect from a synthetic snapshot where every event counter is known. */
static void vbt_collect(struct kunit *test, u64 vals[VBALLOON_S_NR],
			unsigned long **events_out)
{
	unsigned long *events;
	struct sysinfo si = {};
	int i;

	events = kunit_kcalloc(test, NR_VM_EVENT_ITEMS, sizeof(*events),
			       GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, events);
	for (i = 0; i < NR_VM_EVENT_ITEMS; i++)
		events[i] = 1000 + i;
	si.totalram = 5000;
	si.freeram = 3000;
	si.mem_unit = PAGE_SIZE;
	vb_stats_collect(vals, events, &si, 2500, 700);
	*events_out = events;
}

/* A statistic copied from one VM event counter, in pages or as a count. */
struct vbt_event_stat {
	const char *name;
	unsigned int tag;
	enum vm_event_item item;
	bool in_bytes;		/* the counter counts pages; the tag bytes */
};

static const struct vbt_event_stat vbt_event_stats[] = {
	{ "swap_in", VBALLOON_S_SWAP_IN, PSWPIN, true },
	{ "swap_out", VBALLOON_S_SWAP_OUT, PSWPOUT, true },
	{ "major_faults", VBALLOON_S_MAJFLT, PGMAJFAULT, false },
	{ "minor_faults", VBALLOON_S_MINFLT, PGFAULT, false },
	{ "oom_kills", VBALLOON_S_OOM_KILL, OOM_KILL, false },
	{ "async_scan", VBALLOON_S_ASYNC_SCAN, PGSCAN_KSWAPD, true },
	{ "direct_scan", VBALLOON_S_DIRECT_SCAN, PGSCAN_DIRECT, true },
	{ "async_reclaim", VBALLOON_S_ASYNC_RECLAIM, PGSTEAL_KSWAPD, true },
	{ "direct_reclaim", VBALLOON_S_DIRECT_RECLAIM, PGSTEAL_DIRECT, true },
};

KUNIT_ARRAY_PARAM_DESC(vbt_event_stat, vbt_event_stats, name);

/* Each event statistic is its counter, times the page size if in bytes. */
static void vbt_stats_from_events(struct kunit *test)
{
	const struct vbt_event_stat *p = test->param_value;
	u64 vals[VBALLOON_S_NR];
	unsigned long *ev;
	u64 want;

	vbt_collect(test, vals, &ev);
	want = ev[p->item];
	if (p->in_bytes)
		want *= PAGE_SIZE;
	KUNIT_EXPECT_EQ(test, vals[p->tag], want);
}

static void vbt_stats_memory_bytes(struct kunit *test)
{
	u64 vals[VBALLOON_S_NR];
	unsigned long *ev;

	vbt_collect(test, vals, &ev);
	KUNIT_EXPECT_EQ(test, vals[VBALLOON_S_MEMFREE], 3000ULL * PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, vals[VBALLOON_S_MEMTOT], 5000ULL * PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, vals[VBALLOON_S_AVAIL], 2500ULL * PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, vals[VBALLOON_S_CACHES], 700ULL * PAGE_SIZE);
}

static void vbt_stats_hugetlb_counts(struct kunit *test)
{
	u64 vals[VBALLOON_S_NR];
	unsigned long *ev;

	vbt_collect(test, vals, &ev);
#ifdef CONFIG_HUGETLB_PAGE
	KUNIT_EXPECT_EQ(test, vals[VBALLOON_S_HTLB_PGALLOC],
			(u64)ev[HTLB_BUDDY_PGALLOC]);
	KUNIT_EXPECT_EQ(test, vals[VBALLOON_S_HTLB_PGFAIL],
			(u64)ev[HTLB_BUDDY_PGALLOC_FAIL]);
#else
	KUNIT_EXPECT_EQ(test, vals[VBALLOON_S_HTLB_PGALLOC], 0ULL);
	KUNIT_EXPECT_EQ(test, vals[VBALLOON_S_HTLB_PGFAIL], 0ULL);
#endif
}

/*
 * Allocation stalls are summed over every zone the kernel has, once each:
 * each zone's counter gets a different power of two, so a zone left out
 * or a neighbouring counter taken in shows in the sum.
 */
static void vbt_stats_alloc_stall_sum(struct kunit *test)
{
	struct sysinfo si = {};
	u64 vals[VBALLOON_S_NR];
	unsigned long *ev;
	u64 want;

	vbt_collect(test, vals, &ev);
	ev[ALLOCSTALL_NORMAL] = BIT(0);
	ev[ALLOCSTALL_MOVABLE] = BIT(1);
	want = BIT(0) | BIT(1);
#ifdef CONFIG_ZONE_DMA
	ev[ALLOCSTALL_DMA] = BIT(2);
	want |= BIT(2);
#endif
#ifdef CONFIG_ZONE_DMA32
	ev[ALLOCSTALL_DMA32] = BIT(3);
	want |= BIT(3);
#endif
#ifdef CONFIG_HIGHMEM
	ev[ALLOCSTALL_HIGH] = BIT(4);
	want |= BIT(4);
#endif
#ifdef CONFIG_ZONE_DEVICE
	ev[ALLOCSTALL_DEVICE] = BIT(5);
	want |= BIT(5);
#endif
	vb_stats_collect(vals, ev, &si, 0, 0);
	KUNIT_EXPECT_EQ(test, vals[VBALLOON_S_ALLOC_STALL], want);
}

/* ---- OOM notifier accounting ---- */

static void vbt_oom_quota_bounded(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vb_oom_quota(100000, 1024), 1024UL);
}

static void vbt_oom_quota_small_balloon(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vb_oom_quota(5, 1024), 5UL);
}

static void vbt_oom_quota_empty(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vb_oom_quota(0, 1024), 0UL);
}

static void vbt_oom_quota_drains(struct kunit *test)
{
	unsigned long balloon = 2500, calls = 0, q;

	/* Repeated notifications empty the balloon in bounded steps. */
	while ((q = vb_oom_quota(balloon, 1024)) != 0) {
		KUNIT_EXPECT_LE(test, q, 1024UL);
		balloon -= q;
		calls++;
	}
	KUNIT_EXPECT_EQ(test, calls, 3UL);
}

static void vbt_pressure_none_above_floor(struct kunit *test)
{
	/* Plenty available (e.g. clean cache, or drop_caches): release none. */
	KUNIT_EXPECT_EQ(test, vb_pressure_quota(100000, 8192, 50000), 0UL);
	KUNIT_EXPECT_EQ(test, vb_pressure_quota(8192, 8192, 50000), 0UL);
}

static void vbt_pressure_deficit_only(struct kunit *test)
{
	/* Release the shortfall below the floor, not the whole balloon. */
	KUNIT_EXPECT_EQ(test, vb_pressure_quota(8000, 8192, 50000), 192UL);
}

static void vbt_pressure_bounded_by_balloon(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vb_pressure_quota(0, 8192, 100), 100UL);
	KUNIT_EXPECT_EQ(test, vb_pressure_quota(0, 8192, 0), 0UL);
}

static void vbt_pressure_negative_available(struct kunit *test)
{
	/* MemAvailable can go negative by the reserve: treat as zero. */
	KUNIT_EXPECT_EQ(test, vb_pressure_quota(-500, 8192, 50000), 8192UL);
}

static void vbt_autodeflate_parse(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vb_parse_autodeflate("off"), (int)VB_AD_OFF);
	KUNIT_EXPECT_EQ(test, vb_parse_autodeflate("oom\n"), (int)VB_AD_OOM);
	KUNIT_EXPECT_EQ(test, vb_parse_autodeflate("pressure"),
			(int)VB_AD_PRESSURE);
	KUNIT_EXPECT_EQ(test, vb_parse_autodeflate("auto"), (int)VB_AD_AUTO);
	KUNIT_EXPECT_EQ(test, vb_parse_autodeflate(""), (int)VB_AD_AUTO);
	KUNIT_EXPECT_EQ(test, vb_parse_autodeflate("shrinker"), -EINVAL);
	KUNIT_EXPECT_EQ(test, vb_parse_autodeflate("oomx"), -EINVAL);
}

static void vbt_autodeflate_needs_grant(struct kunit *test)
{
	/* Without DEFLATE_ON_OOM from the host, every mode becomes off. */
	KUNIT_EXPECT_EQ(test, vb_resolve_autodeflate(VB_AD_PRESSURE, false),
			VB_AD_OFF);
	KUNIT_EXPECT_EQ(test, vb_resolve_autodeflate(VB_AD_AUTO, false),
			VB_AD_OFF);
	KUNIT_EXPECT_EQ(test, vb_resolve_autodeflate(VB_AD_AUTO, true),
			VB_AD_OOM);
	KUNIT_EXPECT_EQ(test, vb_resolve_autodeflate(VB_AD_PRESSURE, true),
			VB_AD_PRESSURE);
	KUNIT_EXPECT_EQ(test, vb_resolve_autodeflate(VB_AD_OFF, true),
			VB_AD_OFF);
}

static void vbt_hold_counts_windows(struct kunit *test)
{
	unsigned long until = 0, now = 1000, len = 50;
	bool active = false;

	/* The first release opens a window. */
	KUNIT_EXPECT_TRUE(test, vb_hold_extend(&active, &until, now, len));
	KUNIT_EXPECT_TRUE(test, active);
	KUNIT_EXPECT_EQ(test, until, now + len);
	/* A release inside it extends it but is not a new window. */
	KUNIT_EXPECT_FALSE(test, vb_hold_extend(&active, &until, now + 10,
						len));
	KUNIT_EXPECT_EQ(test, until, now + 10 + len);
	/* Once it has run out, the next release opens another. */
	KUNIT_EXPECT_TRUE(test, vb_hold_extend(&active, &until,
					       now + 10 + len, len));
	/* So does a release after the update work closed the window. */
	active = false;
	KUNIT_EXPECT_TRUE(test, vb_hold_extend(&active, &until,
					       now + 20 + len, len));
}

static void vbt_hold_jiffies_wrap(struct kunit *test)
{
	unsigned long until = 0, now = ULONG_MAX - 10, len = 50;
	bool active = false;

	/* A window that ends past the jiffies wrap is still open inside. */
	KUNIT_EXPECT_TRUE(test, vb_hold_extend(&active, &until, now, len));
	KUNIT_EXPECT_FALSE(test, vb_hold_extend(&active, &until, now + 20,
						len));
	KUNIT_EXPECT_EQ(test, until, now + 20 + len);
}

/* ---- debugfs ---- */

static void vbt_counter_keys(struct kunit *test)
{
	/* What scripts parse: one key per counter, in this order. */
	static const char * const want[] = {
		"inflated_pages", "deflated_pages", "inflated_blocks",
		"requests", "alloc_shortfalls", "migrated_pages",
		"refused_pfns", "oom_released_pages", "oom_events",
		"pressure_released_pages", "holds", "stats_requests",
		"alloc_us", "inflate_host_us", "deflate_host_us",
		"descriptors", "oom_calls", "oom_slow_calls",
		"host_timeouts", "abandoned_requests", "untold_pages",
		"reported_pages", "reported_bytes", "reports",
		"report_failures", "hint_cmd_ids", "hint_runs",
		"hinted_blocks", "hinted_bytes", "hint_alloc_stops",
		"hint_host_stalls", "hint_shrunk_blocks", "hint_freed_blocks",
		"oom_waited_pages", "alloc_parallel_rounds",
		"alloc_helper_pages", "deflate_free_us",
	};
	unsigned int i;

	static_assert(ARRAY_SIZE(want) == VB_CNT_NR);
	for (i = 0; i < VB_CNT_NR; i++) {
		KUNIT_ASSERT_NOT_NULL(test, vb_counter_keys[i]);
		KUNIT_EXPECT_STREQ(test, vb_counter_keys[i], want[i]);
	}
}

/* ---- free page reporting and page poison ---- */

#define VBT_POISON32	0xaaaaaaaaU	/* PAGE_POISON in every byte */

struct vbt_fp {
	const char *name;
	bool init_on_free, poisoning, dev_poison, dev_reporting, want;
	bool accept_poison;
	u32 poison_val;
	enum vb_report_state report;	/* VB_REPORT_STOPPED: accepted */
};

static const struct vbt_fp vbt_fps[] = {
	/* Freed pages have no known content: nothing to tell the host. */
	{ "plain", false, false, true, true, true,
	  false, 0, VB_REPORT_STOPPED },
	{ "plain_no_dev_poison", false, false, false, true, true,
	  false, 0, VB_REPORT_STOPPED },
	{ "init_on_free", true, false, true, true, true,
	  true, 0, VB_REPORT_STOPPED },
	{ "page_poison", false, true, true, true, true,
	  true, VBT_POISON32, VB_REPORT_STOPPED },
	/* Both on: the page allocator only zeroes, as does poison_val. */
	{ "both", true, true, true, true, true,
	  true, 0, VB_REPORT_STOPPED },
	/* 5.5.6.1: content kept, the device cannot be told: no reporting. */
	{ "init_on_free_no_dev_poison", true, false, false, true, true,
	  false, 0, VB_REPORT_NO_POISON },
	{ "page_poison_no_dev_poison", false, true, false, true, true,
	  false, 0, VB_REPORT_NO_POISON },
	{ "not_offered", false, false, true, false, true,
	  false, 0, VB_REPORT_NOT_OFFERED },
	/* Poison is still accepted with reporting off: it says a fact. */
	{ "off_by_parameter", false, true, true, true, false,
	  true, VBT_POISON32, VB_REPORT_OFF },
	/* The parameter is looked at first. */
	{ "off_and_no_poison", true, false, false, false, false,
	  false, 0, VB_REPORT_OFF },
};

KUNIT_ARRAY_PARAM_DESC(vbt_fp, vbt_fps, name);

static void vbt_free_page_policy(struct kunit *test)
{
	const struct vbt_fp *c = test->param_value;
	struct vb_fp_policy p;

	memset(&p, 0x5a, sizeof(p));
	vb_free_page_policy(c->init_on_free, c->poisoning, c->dev_poison,
			    c->dev_reporting, c->want, &p);
	KUNIT_EXPECT_EQ(test, p.accept_poison, c->accept_poison);
	KUNIT_EXPECT_EQ(test, p.poison_val, c->poison_val);
	KUNIT_EXPECT_EQ(test, p.report, c->report);
}

struct vbt_order {
	const char *name;
	unsigned int param, pageblock, block, max;
	int order;
};

static const struct vbt_order vbt_orders[] = {
	/* x86, 4 KiB pages: the kernel's choice, pageblock order 9. */
	{ "4K_default", 0, 9, 9, 10, 0 },
	{ "4K_small", 1, 9, 9, 10, 1 },
	{ "4K_max", 10, 9, 9, 10, 10 },
	{ "4K_past_max", 11, 9, 9, 10, -EINVAL },
	{ "4K_huge", UINT_MAX, 9, 9, 10, -EINVAL },
	/* arm64, 64 KiB pages: 512 MiB pageblocks, 2 MiB is order 5. */
	{ "64K_default", 0, 13, 5, 13, 5 },
	{ "64K_asked", 8, 13, 5, 13, 8 },
	/* 16 KiB pages: 32 MiB pageblocks, 2 MiB is order 7. */
	{ "16K_default", 0, 11, 7, 11, 7 },
};

KUNIT_ARRAY_PARAM_DESC(vbt_order, vbt_orders, name);

static void vbt_reporting_order(struct kunit *test)
{
	const struct vbt_order *c = test->param_value;

	KUNIT_EXPECT_EQ(test, vb_pick_reporting_order(c->param, c->pageblock,
						      c->block, c->max),
			c->order);
}

static void vbt_report_state_names(struct kunit *test)
{
	/* What debugfs shows and scripts compare against. */
	static const char * const want[] = {
		"off", "not_offered", "no_poison", "vq_too_small", "stopped",
		"active", "busy", "failed",
	};
	unsigned int i;

	static_assert(ARRAY_SIZE(want) == VB_REPORT_NR);
	for (i = 0; i < VB_REPORT_NR; i++) {
		KUNIT_ASSERT_NOT_NULL(test, vb_report_state_names[i]);
		KUNIT_EXPECT_STREQ(test, vb_report_state_names[i], want[i]);
	}
}

/* ---- free page hinting: command ids ---- */

struct vbt_hint {
	const char *name;
	u32 cur_id, new_id;
	enum vb_hint_action act;
};

#define VBT_ID_A	0x80000000U	/* QEMU's first id */
#define VBT_ID_B	0x80000001U

static const struct vbt_hint vbt_hints[] = {
	/* From rest: ids start runs, STOP is nothing new, DONE frees. */
	{ "rest_new_id", VBALLOON_CMD_ID_STOP, VBT_ID_A, VB_HINT_ACT_RUN },
	{ "rest_stop", VBALLOON_CMD_ID_STOP, VBALLOON_CMD_ID_STOP,
	  VB_HINT_ACT_NONE },
	{ "rest_done", VBALLOON_CMD_ID_STOP, VBALLOON_CMD_ID_DONE,
	  VB_HINT_ACT_FREE },
	/* During a run: the same id goes on, anything else ends it. */
	{ "run_same_id", VBT_ID_A, VBT_ID_A, VB_HINT_ACT_NONE },
	{ "run_next_id", VBT_ID_A, VBT_ID_B, VB_HINT_ACT_RUN },
	{ "run_older_id", VBT_ID_B, VBT_ID_A, VB_HINT_ACT_RUN },
	{ "run_stop", VBT_ID_A, VBALLOON_CMD_ID_STOP, VB_HINT_ACT_STOP },
	{ "run_done", VBT_ID_A, VBALLOON_CMD_ID_DONE, VB_HINT_ACT_FREE },
	/* After DONE: a repeated DONE frees nothing twice; a new id runs. */
	{ "done_done", VBALLOON_CMD_ID_DONE, VBALLOON_CMD_ID_DONE,
	  VB_HINT_ACT_NONE },
	{ "done_stop", VBALLOON_CMD_ID_DONE, VBALLOON_CMD_ID_STOP,
	  VB_HINT_ACT_STOP },
	{ "done_new_id", VBALLOON_CMD_ID_DONE, VBT_ID_A, VB_HINT_ACT_RUN },
	/* Any other value from the host is an id, even small or huge ones. */
	{ "id_two", VBALLOON_CMD_ID_STOP, 2, VB_HINT_ACT_RUN },
	{ "id_max", VBALLOON_CMD_ID_STOP, U32_MAX, VB_HINT_ACT_RUN },
	{ "id_wraps", U32_MAX, 2, VB_HINT_ACT_RUN },
};

KUNIT_ARRAY_PARAM_DESC(vbt_hint, vbt_hints, name);

static void vbt_hint_next(struct kunit *test)
{
	const struct vbt_hint *c = test->param_value;

	KUNIT_EXPECT_EQ(test, vb_hint_next(c->cur_id, c->new_id), c->act);
}

static void vbt_hint_state_names(struct kunit *test)
{
	/* What debugfs shows and scripts compare against. */
	static const char * const want[] = {
		"off", "not_offered", "stopped", "failed", "idle", "hinting",
		"holding",
	};
	unsigned int i;

	static_assert(ARRAY_SIZE(want) == VB_HINT_NR);
	for (i = 0; i < VB_HINT_NR; i++) {
		KUNIT_ASSERT_NOT_NULL(test, vb_hint_state_names[i]);
		KUNIT_EXPECT_STREQ(test, vb_hint_state_names[i], want[i]);
	}
}

/* ---- parameters and back-off ---- */

static void vbt_param_in_range(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vb_clamp_param(512, VB_BATCH_MIN, VB_BATCH_MAX,
					     VB_BATCH_DEFAULT), 512U);
}

static void vbt_param_edges(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vb_clamp_param(VB_BATCH_MIN, VB_BATCH_MIN,
					     VB_BATCH_MAX, VB_BATCH_DEFAULT),
			VB_BATCH_MIN);
	KUNIT_EXPECT_EQ(test, vb_clamp_param(VB_BATCH_MAX, VB_BATCH_MIN,
					     VB_BATCH_MAX, VB_BATCH_DEFAULT),
			VB_BATCH_MAX);
}

static void vbt_param_out_of_range(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vb_clamp_param(0, VB_BATCH_MIN, VB_BATCH_MAX,
					     VB_BATCH_DEFAULT), VB_BATCH_DEFAULT);
	KUNIT_EXPECT_EQ(test, vb_clamp_param(VB_BATCH_MAX + 1, VB_BATCH_MIN,
					     VB_BATCH_MAX, VB_BATCH_DEFAULT),
			VB_BATCH_DEFAULT);
	KUNIT_EXPECT_EQ(test, vb_clamp_param(UINT_MAX, VB_OOM_MIN, VB_OOM_MAX,
					     VB_OOM_DEFAULT), VB_OOM_DEFAULT);
}

static void vbt_backoff_starts_small(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vb_next_backoff(0), VB_BACKOFF_MIN_MS);
}

static void vbt_backoff_grows_and_caps(struct kunit *test)
{
	unsigned int b = 0, prev = 0, steps = 0;

	while (b < VB_BACKOFF_MAX_MS && steps < 64) {
		b = vb_next_backoff(b);
		KUNIT_EXPECT_GT(test, b, prev);
		prev = b;
		steps++;
	}
	KUNIT_EXPECT_EQ(test, b, VB_BACKOFF_MAX_MS);
	KUNIT_EXPECT_LT(test, steps, 16U);
	KUNIT_EXPECT_EQ(test, vb_next_backoff(VB_BACKOFF_MAX_MS),
			VB_BACKOFF_MAX_MS);
	KUNIT_EXPECT_EQ(test, vb_next_backoff(UINT_MAX), VB_BACKOFF_MAX_MS);
}

static struct kunit_case vballoon_cases[] = {
	KUNIT_CASE_PARAM(vbt_target_pages, vbt_target_gen_params),
	KUNIT_CASE_PARAM(vbt_actual_frames, vbt_actual_gen_params),
	KUNIT_CASE_PARAM(vbt_pages_diff, vbt_diff_gen_params),
	KUNIT_CASE_PARAM(vbt_encode_pfns, vbt_pfn_gen_params),
	KUNIT_CASE(vbt_pfn_legacy_native),
	KUNIT_CASE(vbt_stats_encode_tags),
	KUNIT_CASE(vbt_stats_encode_le),
	KUNIT_CASE(vbt_stats_encode_count),
	KUNIT_CASE(vbt_descs_for),
	KUNIT_CASE(vbt_alloc_cpus_auto),
	KUNIT_CASE(vbt_alloc_helpers_bounded),
	KUNIT_CASE(vbt_alloc_helpers_small_batch),
	KUNIT_CASE(vbt_alloc_share),
	KUNIT_CASE_PARAM(vbt_stats_from_events, vbt_event_stat_gen_params),
	KUNIT_CASE(vbt_stats_memory_bytes),
	KUNIT_CASE(vbt_stats_hugetlb_counts),
	KUNIT_CASE(vbt_stats_alloc_stall_sum),
	KUNIT_CASE(vbt_oom_quota_bounded),
	KUNIT_CASE(vbt_oom_quota_small_balloon),
	KUNIT_CASE(vbt_oom_quota_empty),
	KUNIT_CASE(vbt_oom_quota_drains),
	KUNIT_CASE(vbt_pressure_none_above_floor),
	KUNIT_CASE(vbt_pressure_deficit_only),
	KUNIT_CASE(vbt_pressure_bounded_by_balloon),
	KUNIT_CASE(vbt_pressure_negative_available),
	KUNIT_CASE(vbt_autodeflate_parse),
	KUNIT_CASE(vbt_autodeflate_needs_grant),
	KUNIT_CASE(vbt_hold_counts_windows),
	KUNIT_CASE(vbt_hold_jiffies_wrap),
	KUNIT_CASE(vbt_counter_keys),
	KUNIT_CASE_PARAM(vbt_free_page_policy, vbt_fp_gen_params),
	KUNIT_CASE_PARAM(vbt_reporting_order, vbt_order_gen_params),
	KUNIT_CASE(vbt_report_state_names),
	KUNIT_CASE_PARAM(vbt_hint_next, vbt_hint_gen_params),
	KUNIT_CASE(vbt_hint_state_names),
	KUNIT_CASE(vbt_param_in_range),
	KUNIT_CASE(vbt_param_edges),
	KUNIT_CASE(vbt_param_out_of_range),
	KUNIT_CASE(vbt_backoff_starts_small),
	KUNIT_CASE(vbt_backoff_grows_and_caps),
	{}
};

static struct kunit_suite vballoon_suite = {
	.name = "vballoon",
	.test_cases = vballoon_cases,
};

kunit_test_suite(vballoon_suite);

MODULE_DESCRIPTION("KUnit tests for the vballoon virtio balloon driver");
MODULE_LICENSE("GPL");
