/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Differences between the kernels vballoon builds against, in one place.
 * Each is decided by a feature test: the VB_HAVE_* macros are set by the
 * Makefile in this directory after looking at the kernel's headers
 * (sparse does not understand __has_include()).
 */
#ifndef _VBALLOON_COMPAT_H
#define _VBALLOON_COMPAT_H

#include <linux/balloon_compaction.h>
#include <linux/page_reporting.h>
#include <linux/shrinker.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>

/*
 * KUnit visibility helpers appeared in 6.2.  Where they are missing (6.1)
 * there is no KUnit build of vballoon: keep the helpers static.
 */
#ifdef VB_HAVE_KUNIT_VISIBILITY
#include <kunit/visibility.h>
#elif IS_ENABLED(CONFIG_KUNIT)
#error "vballoon's KUnit suite needs <kunit/visibility.h> (Linux 6.2 or later)"
#else
#define VISIBLE_IF_KUNIT static
#define EXPORT_SYMBOL_IF_KUNIT vb_no_kunit_export
#define vb_no_kunit_export(symbol) \
	static_assert(!__builtin_types_compatible_p(typeof(symbol), void))
#endif

/*
 * What vballoon needs to know of one virtqueue it asks the transport for.
 * An entry without a name is a queue the device does not have: the
 * transports leave it out and number the queues that follow without it.
 */
struct vb_vq_spec {
	const char *name;
	vq_callback_t *callback;
};

/* Every queue of the traditional balloon (VBALLOON_VQ_*). */
#define VB_MAX_VQS 5

/*
 * virtio_find_vqs() takes a struct virtqueue_info array since 6.11 and
 * separate callback and name arrays before.  VB_HAVE_VIRTQUEUE_INFO is
 * set by the Makefile when <linux/virtio_config.h> defines the struct.
 */
static inline int vb_find_vqs(struct virtio_device *vdev, unsigned int nvqs,
			      struct virtqueue *vqs[],
			      const struct vb_vq_spec *spec)
{
	unsigned int i;
#ifdef VB_HAVE_VIRTQUEUE_INFO
	struct virtqueue_info info[VB_MAX_VQS] = {};

	if (nvqs > VB_MAX_VQS)
		return -EINVAL;
	for (i = 0; i < nvqs; i++) {
		info[i].name = spec[i].name;
		info[i].callback = spec[i].callback;
	}
	return virtio_find_vqs(vdev, nvqs, vqs, info, NULL);
#else
	vq_callback_t *callbacks[VB_MAX_VQS];
	const char *names[VB_MAX_VQS];

	if (nvqs > VB_MAX_VQS)
		return -EINVAL;
	for (i = 0; i < nvqs; i++) {
		names[i] = spec[i].name;
		callbacks[i] = spec[i].callback;
	}
	return virtio_find_vqs(vdev, nvqs, vqs, callbacks, names, NULL);
#endif
}

/*
 * Shrinkers are allocated by the core since 6.7 (shrinker_alloc); before,
 * the caller embeds one and registers it.  vb_shrinker hides the
 * difference; VB_HAVE_SHRINKER_ALLOC is set by the Makefile.
 */
struct vb_shrinker {
#ifdef VB_HAVE_SHRINKER_ALLOC
	struct shrinker *shrinker;
#else
	struct shrinker shrinker;
	void *private_data;
#endif
};

typedef unsigned long (*vb_shrink_fn)(struct shrinker *s,
				      struct shrink_control *sc);

static inline int vb_shrinker_register(struct vb_shrinker *vs,
				       vb_shrink_fn count, vb_shrink_fn scan,
				       void *priv, const char *name)
{
#ifdef VB_HAVE_SHRINKER_ALLOC
	struct shrinker *s = shrinker_alloc(0, "vballoon-%s", name);

	if (!s)
		return -ENOMEM;
	s->count_objects = count;
	s->scan_objects = scan;
	s->seeks = 0;
	s->private_data = priv;
	vs->shrinker = s;
	shrinker_register(s);
	return 0;
#else
	vs->shrinker.count_objects = count;
	vs->shrinker.scan_objects = scan;
	vs->shrinker.seeks = 0;
	vs->private_data = priv;
	return register_shrinker(&vs->shrinker, "vballoon-%s", name);
#endif
}

static inline void vb_shrinker_unregister(struct vb_shrinker *vs)
{
#ifdef VB_HAVE_SHRINKER_ALLOC
	shrinker_free(vs->shrinker);
	vs->shrinker = NULL;
#else
	unregister_shrinker(&vs->shrinker);
#endif
}

static inline void *vb_shrinker_private(struct shrinker *s)
{
#ifdef VB_HAVE_SHRINKER_ALLOC
	return s->private_data;
#else
	return container_of(s, struct vb_shrinker, shrinker)->private_data;
#endif
}

/*
 * A page taken off the balloon list, ready for the page allocator:
 * balloon_page_finalize() (6.12, and later 6.1 stable releases) or, on
 * older 6.1 releases, balloon_page_delete(), which also unlinks the page
 * unless it is isolated.  vballoon only calls this for isolated pages
 * (migration), where the two do the same.  VB_HAVE_BALLOON_PAGE_FINALIZE
 * is set by the Makefile.
 */
static inline void vb_balloon_page_finalize(struct page *page)
{
#ifdef VB_HAVE_BALLOON_PAGE_FINALIZE
	balloon_page_finalize(page);
#else
	balloon_page_delete(page);
#endif
}

/*
 * The page allocator's free page reporting exists with
 * CONFIG_PAGE_REPORTING only (the in-tree Kconfig selects it); its header
 * has no stubs.  Without it a device binds without reporting.
 */
#if IS_ENABLED(CONFIG_PAGE_REPORTING)
static inline int vb_page_reporting_register(struct page_reporting_dev_info *pr)
{
	return page_reporting_register(pr);
}

static inline void
vb_page_reporting_unregister(struct page_reporting_dev_info *pr)
{
	page_reporting_unregister(pr);
}
#else
static inline int vb_page_reporting_register(struct page_reporting_dev_info *pr)
{
	return -EOPNOTSUPP;
}

static inline void
vb_page_reporting_unregister(struct page_reporting_dev_info *pr)
{
}
#endif

#endif /* _VBALLOON_COMPAT_H */
