# SPDX-License-Identifier: GPL-2.0-only
#
# vballoon: out-of-tree build, lint, tests and demo.
#
# `make help` lists the targets: the "## " comment lines right above a
# target are its help text (keep them to the point; the README says more).

SHELL := /bin/bash
TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD := $(TOP)/build
CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/vballoon
PYTHON ?= /usr/bin/python3
VERSION := $(strip $(file <$(TOP)/VERSION))
SRCS := Kbuild VERSION $(shell find drivers include -type f 2>/dev/null | sort)

RUNNING_KDIR := /lib/modules/$(shell uname -r)/build
NEWEST_KDIR := $(lastword $(shell ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V))
KDIR ?= $(if $(wildcard $(RUNNING_KDIR)/Makefile),$(RUNNING_KDIR),$(NEWEST_KDIR))

.PHONY: all modules lint checkpatch check deps need-deps run bench clean vmtest help intree kunit \
	deb install uninstall image imagetest

## build vballoon.ko for KDIR (default: the running
## kernel, else the newest installed Debian headers)
all:
	@if [ -z "$(KDIR)" ] || [ ! -f "$(KDIR)/Makefile" ]; then \
		echo "vballoon: no kernel headers found (KDIR unset): run 'make deps' or pass KDIR=..." >&2; \
		exit 1; fi
	$(MAKE) -C $(KDIR) M=$(TOP) modules
	@echo "built $(TOP)/drivers/virtio/vballoon/vballoon.ko for $(KDIR)"

## install vballoon.ko for KDIR into /lib/modules/<release>/
## updates/ (depmod) and keep virtio_balloon from loading
## (/etc/modprobe.d/vballoon.conf); DESTDIR= for staging
install: all
	@$(TOP)/scripts/install.sh install $(KDIR)

## undo 'make install' for KDIR's kernel (modprobe.d file
## too, once no kernel has vballoon in updates/ any more)
uninstall:
	@$(TOP)/scripts/install.sh uninstall $(KDIR)

## build/deb/vballoon-dkms_<version>_all.deb (debhelper,
## dh-sequence-dkms), checked with lintian
deb:
	@$(TOP)/scripts/deb.sh $(BUILD)/deb

## the Debian 12 guest image of the libvirt tests (cached
## by content in ~/.cache/vballoon/image; needs root)
image: need-deps
	@$(PYTHON) $(TOP)/tests/image/build.py

## boot that image under libvirt on 6.1 and 6.12: the
## package, virsh setmem/dommemstat, autodeflate, purge
imagetest: need-deps
	cd $(TOP)/tests/image && $(PYTHON) -m pytest -v test_image.py

## build for the newest Debian 6.1 and 6.12 headers into
## build/<release>/vballoon.ko (W=1, sparse; warnings fail)
# Each kernel builds in its own copy of the sources, so both can coexist.
modules:
	@$(TOP)/scripts/build-modules.sh $(BUILD) $(SRCS)

## checkpatch --strict + the W=1/sparse builds of 'modules'
lint: checkpatch modules

## checkpatch.pl --strict over the driver's sources
checkpatch:
	@$(TOP)/scripts/checkpatch.sh $(CACHE)

## graft into linux-source-6.12 and build it with
## vballoon=y (debug kernel: KASAN, lockdep, kmemleak,
## KUnit) and =m (scripts/intree.py)
intree:
	@$(PYTHON) $(TOP)/scripts/intree.py build

## run the KUnit suite with kunit.py on the debug kernel
kunit:
	@$(PYTHON) $(TOP)/scripts/intree.py kunit

## deps (if missing) + lint + modules + intree + KUnit +
## VM tests on Debian 6.1, 6.12 and the debug kernel, the
## package and the guest image (scripts/check.py)
check: need-deps
	@$(PYTHON) $(TOP)/scripts/check.py

## VM tests on Debian 6.1 and 6.12 (VMTEST_ARGS=... for
## tests/vm/run.py, e.g. --kernels 6.1,6.12,debug)
vmtest: modules
	$(PYTHON) $(TOP)/tests/vm/run.py $(VMTEST_ARGS)

## boot a 6.12 guest and watch vballoon work
run: need-deps modules
	cd $(TOP)/tests/vm && $(PYTHON) demo.py

## vballoon against virtio_balloon: speed, CPU, host THP,
## free page reporting and hinting (BENCH_ARGS=... for
## tests/bench/bench.py, e.g. --parts reporting,hinting)
bench: need-deps modules
	$(PYTHON) $(TOP)/tests/bench/bench.py $(BENCH_ARGS)

## install everything with apt
deps:
	$(TOP)/scripts/deps.sh

need-deps:
	@$(TOP)/scripts/deps.sh --check 2>/dev/null || $(TOP)/scripts/deps.sh

## remove build/ and the out-of-tree build products (not
## the caches: 'scripts/intree.py clean' does the in-tree)
clean:
	rm -rf $(BUILD)
	@if [ -n "$(KDIR)" ] && [ -f "$(KDIR)/Makefile" ]; then \
		$(MAKE) -C $(KDIR) M=$(TOP) clean; fi

## this list
help:
	@echo "vballoon: out-of-tree build, lint, tests and demo"
	@echo
	@awk '/^## / { text[n++] = substr($$0, 4); next } /^#/ { next } \
		/^[a-z][a-z-]*:/ && n { t = $$1; sub(/:.*/, "", t); \
			for (i = 0; i < n; i++) \
				printf "  %-16s %s\n", i ? "" : "make " t, text[i] } \
		{ n = 0 }' $(TOP)/Makefile
